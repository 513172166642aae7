//! A small client for the Segment Public API over the [`Env`] transport: envelopes, errors,
//! pagination. Knows nothing about Baton.

use super::model::{ErrorEnvelope, ListPage, Pagination};
use crate::env::{Env, HttpRequest, HttpResponse, Method, TransportError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::ops::ControlFlow;

/// Segment recommends 200 per page; larger pages are a documented cause of rate limiting.
pub const DEFAULT_PAGE_SIZE: u32 = 200;

/// Wait suggested when a 429 carries neither `msBeforeNext` nor a usable reset header.
const DEFAULT_RATE_LIMIT_WAIT_MS: u64 = 1_000;

/// What went wrong with one API call. `op` names the call ("GET /users").
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub op: String,
    pub kind: ApiErrorKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiErrorKind {
    /// No HTTP response.
    Transport(TransportError),
    /// A non-2xx answer with Segment's first error message (or the raw body's start).
    Status {
        status: u16,
        error_type: String,
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// A 2xx answer whose body is not what the API documents.
    Malformed(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ApiErrorKind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Segment's error message, if the answer had one.
    pub fn message(&self) -> &str {
        match &self.kind {
            ApiErrorKind::Status { message, .. } => message,
            ApiErrorKind::Malformed(m) => m,
            ApiErrorKind::Transport(_) => "",
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            ApiErrorKind::Transport(e) => write!(f, "{}: {e}", self.op),
            ApiErrorKind::Status {
                status,
                error_type,
                message,
                ..
            } => {
                write!(f, "{}: Segment answered HTTP {status}", self.op)?;
                match (error_type.is_empty(), message.is_empty()) {
                    (_, false) if !error_type.is_empty() => write!(f, " ({error_type}: {message})"),
                    (_, false) => write!(f, " ({message})"),
                    (false, true) => write!(f, " ({error_type})"),
                    (true, true) => Ok(()),
                }
            }
            ApiErrorKind::Malformed(m) => {
                write!(f, "{}: Segment's answer is not valid: {m}", self.op)
            }
        }
    }
}

/// One page of a list endpoint.
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<String>,
}

pub struct Api<'e, E: Env> {
    env: &'e E,
    page_size: u32,
}

impl<'e, E: Env> Api<'e, E> {
    pub fn new(env: &'e E, page_size: u32) -> Self {
        Api {
            env,
            page_size: page_size.clamp(1, 1000),
        }
    }

    pub fn env(&self) -> &'e E {
        self.env
    }

    /// `GET path` and decode `data`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call(&HttpRequest::get(path))
    }

    /// Several GETs with as many in flight as the environment allows throughout; `each` gets
    /// every decoded answer (with the index of its path) as it arrives, and may stop.
    pub fn get_each<T: DeserializeOwned>(
        &self,
        paths: &[String],
        each: &mut dyn FnMut(usize, Result<T, ApiError>) -> ControlFlow<()>,
    ) {
        let requests: Vec<HttpRequest> = paths.iter().map(HttpRequest::get).collect();
        self.env
            .send_each(&requests, &mut |i, res| each(i, decode(&requests[i], res)));
    }

    /// A request with a JSON body (or none); decodes `data`.
    pub fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ApiError> {
        let request = match body {
            Some(body) => HttpRequest::with_json(method, path, body),
            None => HttpRequest {
                method,
                path: path.to_string(),
                body: None,
            },
        };
        self.call(&request)
    }

    pub fn call<T: DeserializeOwned>(&self, request: &HttpRequest) -> Result<T, ApiError> {
        decode(request, self.env.send(request))
    }

    /// The path and query of one page of a list endpoint.
    pub fn page_url(&self, path: &str, query: &str, cursor: Option<&str>) -> String {
        let mut url = format!("{path}?{}={}", encode("pagination[count]"), self.page_size);
        if let Some(cursor) = cursor {
            url.push_str(&format!(
                "&{}={}",
                encode("pagination[cursor]"),
                encode(cursor)
            ));
        }
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        url
    }

    /// One page of a list endpoint. `query` holds extra parameters (already encoded);
    /// `cursor` is `None` for the first page.
    pub fn page<P>(
        &self,
        path: &str,
        query: &str,
        cursor: Option<&str>,
    ) -> Result<Page<P::Item>, ApiError>
    where
        P: ListPage + DeserializeOwned,
    {
        let request = HttpRequest::get(self.page_url(path, query, cursor));
        let response = self.env.send(&request);
        page_of::<P>(&request, response, cursor)
    }

    /// Every page of a list endpoint.
    pub fn all<P>(&self, path: &str, query: &str) -> Result<Vec<P::Item>, ApiError>
    where
        P: ListPage + DeserializeOwned,
    {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut walk = Cursors::default();
        loop {
            let page = self.page::<P>(path, query, cursor.as_deref())?;
            items.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(walk.follow(path, next)?),
                None => return Ok(items),
            }
        }
    }
}

/// The cursors one walk through a listing has followed: a cursor handed out a second time
/// means the pages form a cycle, and following it would never end.
#[derive(Default)]
pub struct Cursors(std::collections::HashSet<String>);

impl Cursors {
    /// `next`, the first time it comes; an error naming the listing when it comes again.
    pub fn follow(&mut self, path: &str, next: String) -> Result<String, ApiError> {
        if self.0.insert(next.clone()) {
            return Ok(next);
        }
        Err(ApiError {
            op: format!("GET {path}"),
            kind: ApiErrorKind::Malformed(format!(
                "the cursor {next:?} came back a second time; stopping to avoid an endless loop"
            )),
        })
    }
}

/// The page in `response` to `request` (a page of a list endpoint read from `cursor`).
pub(crate) fn page_of<P>(
    request: &HttpRequest,
    response: Result<HttpResponse, TransportError>,
    cursor: Option<&str>,
) -> Result<Page<P::Item>, ApiError>
where
    P: ListPage + DeserializeOwned,
{
    let page: P = decode(request, response)?;
    let (items, pagination) = page.into_parts();
    let op = request.describe();
    let pagination: Pagination = pagination.ok_or_else(|| ApiError {
        op: op.clone(),
        kind: ApiErrorKind::Malformed("a list answer without `data.pagination`".into()),
    })?;
    let next = pagination.next.filter(|n| !n.is_empty());
    if let Some(next) = &next {
        // A cursor that points back at the page just read would loop forever.
        if Some(next.as_str()) == cursor || Some(next) == pagination.current.as_ref() {
            return Err(ApiError {
                op,
                kind: ApiErrorKind::Malformed(format!(
                    "the next-page cursor {next:?} repeats the current page; stopping to avoid an endless loop"
                )),
            });
        }
    }
    Ok(Page { items, next })
}

#[derive(Deserialize)]
struct DataEnvelope<T> {
    data: T,
}

pub(crate) fn decode<T: DeserializeOwned>(
    request: &HttpRequest,
    response: Result<HttpResponse, TransportError>,
) -> Result<T, ApiError> {
    let op = request.describe();
    let response = response.map_err(|e| ApiError {
        op: op.clone(),
        kind: ApiErrorKind::Transport(e),
    })?;
    if !(200..300).contains(&response.status) {
        return Err(ApiError {
            op,
            kind: status_error(&response),
        });
    }
    match serde_json::from_slice::<DataEnvelope<T>>(&response.body) {
        Ok(envelope) => Ok(envelope.data),
        Err(e) => Err(ApiError {
            op,
            kind: ApiErrorKind::Malformed(describe_json_error(&e, &response.body)),
        }),
    }
}

fn describe_json_error(e: &serde_json::Error, body: &[u8]) -> String {
    if body.is_empty() {
        "the body is empty".into()
    } else if e.is_eof() {
        format!(
            "the JSON body ends early (truncated after {} bytes)",
            body.len()
        )
    } else if e.is_syntax() {
        format!("the body is not valid JSON ({e})")
    } else {
        format!("the JSON does not have the documented shape ({e})")
    }
}

fn status_error(response: &HttpResponse) -> ApiErrorKind {
    let envelope: Option<ErrorEnvelope> = serde_json::from_slice(&response.body).ok();
    let first = envelope.as_ref().and_then(|e| e.errors.first());
    let error_type = first.and_then(|e| e.kind.clone()).unwrap_or_default();
    let mut message = first.and_then(|e| e.message.clone()).unwrap_or_default();
    if let Some(field) = first.and_then(|e| e.field.as_deref()) {
        message = format!("{message} (field `{field}`)");
    }
    if message.is_empty() && first.is_none() {
        // At most 200 characters of it: never a copy of a whole (maybe huge) body.
        let start = &response.body[..response.body.len().min(800)];
        message = String::from_utf8_lossy(start).chars().take(200).collect();
    }
    let retry_after_ms = (response.status == 429).then(|| {
        first
            .and_then(|e| e.data.as_ref())
            .and_then(|d| d.get("msBeforeNext"))
            .and_then(|v| v.as_f64())
            .map(|ms| ms.max(0.0).ceil() as u64)
            .unwrap_or(DEFAULT_RATE_LIMIT_WAIT_MS)
    });
    ApiErrorKind::Status {
        status: response.status,
        error_type,
        message,
        retry_after_ms,
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Encodes an array query parameter the way Segment's Go SDK does: `name.0=a&name.1=b`.
pub fn encode_array(name: &str, values: &[&str]) -> String {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{}={}", encode(&format!("{name}.{i}")), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::model::UsersPage;
    use crate::testing::FakeEnv;

    #[test]
    fn encodes_brackets_and_base64_cursors() {
        assert_eq!(encode("pagination[count]"), "pagination%5Bcount%5D");
        assert_eq!(encode("Mg=="), "Mg%3D%3D");
        assert_eq!(
            encode_array("emails", &["a+b@x.test"]),
            "emails.0=a%2Bb%40x.test"
        );
    }

    #[test]
    fn walks_pages_until_next_is_absent() {
        let env = FakeEnv::new();
        env.route("GET /users?pagination%5Bcount%5D=2", 200, r#"{"data":{"users":[{"id":"a","name":"","email":"a@x"},{"id":"b","name":"B","email":"b@x"}],"pagination":{"current":"MA==","next":"Mg=="}}}"#);
        env.route("GET /users?pagination%5Bcount%5D=2&pagination%5Bcursor%5D=Mg%3D%3D", 200, r#"{"data":{"users":[{"id":"c","name":"C","email":"c@x"}],"pagination":{"current":"Mg==","previous":"MA=="}}}"#);
        let api = Api::new(&env, 2);
        let users = api.all::<UsersPage>("/users", "").unwrap();
        assert_eq!(
            users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(env.requests().len(), 2);
    }

    #[test]
    fn a_repeated_cursor_is_an_error_not_a_loop() {
        let env = FakeEnv::new();
        env.route(
            "GET /users?pagination%5Bcount%5D=200",
            200,
            r#"{"data":{"users":[],"pagination":{"current":"MA==","next":"MA=="}}}"#,
        );
        let api = Api::new(&env, 200);
        let err = api.all::<UsersPage>("/users", "").unwrap_err();
        assert!(err.to_string().contains("endless loop"), "{err}");
    }

    #[test]
    fn missing_pagination_is_malformed() {
        let env = FakeEnv::new();
        env.route(
            "GET /users?pagination%5Bcount%5D=200",
            200,
            r#"{"data":{"users":[]}}"#,
        );
        let err = Api::new(&env, 200)
            .page::<UsersPage>("/users", "", None)
            .err()
            .unwrap();
        assert!(matches!(err.kind, ApiErrorKind::Malformed(_)));
        assert_eq!(err.op, "GET /users");
    }

    #[test]
    fn truncated_json_names_the_endpoint() {
        let env = FakeEnv::new();
        env.route(
            "GET /users?pagination%5Bcount%5D=200",
            200,
            r#"{"data":{"users":[{"id":"a""#,
        );
        let err = Api::new(&env, 200)
            .page::<UsersPage>("/users", "", None)
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.starts_with("GET /users:") && text.contains("truncated"),
            "{text}"
        );
    }

    #[test]
    fn rate_limit_wait_comes_from_ms_before_next() {
        let env = FakeEnv::new();
        env.route("GET /", 429, r#"{"errors":[{"type":"RequestError","message":"Too many requests","data":{"remainingPoints":0,"msBeforeNext":57647,"consumedPoints":21}}]}"#);
        let err = Api::new(&env, 200)
            .get::<serde_json::Value>("/")
            .unwrap_err();
        match err.kind {
            ApiErrorKind::Status {
                status: 429,
                retry_after_ms: Some(57647),
                ref message,
                ..
            } => {
                assert_eq!(message, "Too many requests")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
