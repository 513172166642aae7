//! The seam between the connector logic and the world around it.
//!
//! Inside the component, [`Env`] is bound to `wasi:http` and the host imports; in native unit
//! tests it is bound to an in-memory fake. The logic never knows which.

use std::ops::ControlFlow;

/// HTTP methods the Segment API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Whether repeating the request can change anything.
    pub fn is_read(self) -> bool {
        self == Method::Get
    }
}

/// A request to the Segment API. `path` is relative to the configured base URL and includes
/// the query string (already encoded).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: Method,
    pub path: String,
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    pub fn get(path: impl Into<String>) -> Self {
        HttpRequest {
            method: Method::Get,
            path: path.into(),
            body: None,
        }
    }

    pub fn with_json(method: Method, path: impl Into<String>, body: &serde_json::Value) -> Self {
        HttpRequest {
            method,
            path: path.into(),
            body: Some(body.to_string().into_bytes()),
        }
    }

    /// "GET /users" — how requests are named in messages (never includes the query's values).
    pub fn describe(&self) -> String {
        let path = self.path.split('?').next().unwrap_or("");
        format!("{} {}", self.method.as_str(), path)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportError {
    /// The host's sandbox refused the request (origin not allowed, budget spent, …).
    Denied(String),
    /// Timeouts, refused or reset connections, DNS: worth retrying later.
    Unavailable(String),
    /// The response could not be read (e.g. larger than the host allows).
    Failed(String),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Denied(m) => write!(f, "the host's sandbox denied the request: {m}"),
            TransportError::Unavailable(m) => write!(f, "no response: {m}"),
            TransportError::Failed(m) => write!(f, "the response could not be read: {m}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
}

/// What [`Env::send_with_spares`] hands each answer to: the request's index, its answer,
/// and where to name spare requests.
pub type SpareEach<'a> = dyn FnMut(usize, Result<HttpResponse, TransportError>, &mut Vec<HttpRequest>) -> ControlFlow<()>
    + 'a;

pub trait Env {
    /// Sends the requests, several at a time where the environment can, and returns one result
    /// per request in the same order.
    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>>;

    /// Sends the requests like [`Env::send_all`], but hands each result to `each` as soon as it
    /// is there (in any order), and the next request goes out as soon as one is answered: no
    /// batch waits for its slowest request. `each` returning `Break` stops: nothing more is
    /// sent, and requests still in flight are dropped.
    fn send_each(
        &self,
        requests: &[HttpRequest],
        each: &mut dyn FnMut(usize, Result<HttpResponse, TransportError>) -> ControlFlow<()>,
    ) {
        for (i, result) in self.send_all(requests).into_iter().enumerate() {
            if each(i, result).is_break() {
                return;
            }
        }
    }

    /// Sends `requests` like [`Env::send_each`], and `each` may name spare requests (pushed
    /// on its last argument) as it goes: they go out only into the window's slots that
    /// `requests` leave free before the last of them is answered (a page's last round of
    /// requests, say), and are answered through `each` too, numbered after `requests`. So a
    /// listing can fetch what its next page needs without leaving slots idle at the end of
    /// this one. An environment without a window of its own sends no spare request.
    fn send_with_spares(&self, requests: &[HttpRequest], each: &mut SpareEach<'_>) {
        self.send_each(requests, &mut |i, result| each(i, result, &mut Vec::new()))
    }

    fn session_get(&self, key: &str) -> Option<Vec<u8>>;
    fn session_set(&self, key: &str, value: &[u8]) -> Result<(), String>;
    fn session_get_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)>;

    fn log(&self, level: LogLevel, message: &str);

    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.send_all(std::slice::from_ref(request))
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(TransportError::Failed("no result for the request".into())))
    }
}

/// The entries of an in-memory session store whose keys start with `prefix`, in key order.
#[cfg(any(test, feature = "native"))]
pub(crate) fn entries_with_prefix(
    store: &std::collections::BTreeMap<String, Vec<u8>>,
    prefix: &str,
) -> Vec<(String, Vec<u8>)> {
    store
        .range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
