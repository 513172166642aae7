//! What happens to every request before and after its handler, in order:
//! request log → global latency → injected fault → bearer check → rate limit → plan gating
//! → handler → envelope normalisation (no route / wrong method → 404 `not-found`) →
//! `X-RateLimit-*` headers → (truncation fault) → log the answered status.

use super::faults::{RateInfo, http_date};
use super::model::{FaultKind, LoggedRequest, Plan};
use super::response::{ApiError, json_response};
use super::server::Shared;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Largest request body read (bigger → 413).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The body a `MalformedJson` fault answers with.
pub const MALFORMED_BODY: &str = r#"{"data": {"users": ["#;

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The axum middleware wrapping every route (and the fallback).
pub(crate) async fn pipeline(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    // The latency counts from here, so the time spent reading the request is part of it.
    let arrived = Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let authorization = header_text(req.headers(), header::AUTHORIZATION);
    let content_type = header_text(req.headers(), header::CONTENT_TYPE);
    let (parts, body) = req.into_parts();
    let (bytes, too_large) = match to_bytes(body, MAX_BODY).await {
        Ok(b) => (b, false),
        Err(_) => (Bytes::new(), true),
    };
    let seq = shared.record(LoggedRequest {
        method: method.clone(),
        path: path.clone(),
        query,
        authorization: authorization.clone(),
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        status: 0,
    });
    let resp = if too_large {
        ApiError::new(413, "payload-too-large", "Request body is too large").into_response()
    } else {
        let req = Request::from_parts(parts, Body::from(bytes));
        let call = Call {
            method: &method,
            path: &path,
            authorization: authorization.as_deref(),
            arrived,
        };
        process(&shared, req, next, call).await
    };
    shared.finish(seq, resp.status().as_u16());
    resp
}

/// What `process` needs to know about a request besides the request itself.
struct Call<'a> {
    method: &'a str,
    path: &'a str,
    authorization: Option<&'a str>,
    arrived: Instant,
}

async fn process(shared: &Shared, req: Request, next: Next, call: Call<'_>) -> Response {
    let Call {
        method,
        path,
        authorization,
        arrived,
    } = call;
    let (latency, fault) = {
        let mut st = shared.state();
        (st.latency, st.faults.take(method, path))
    };
    if !latency.is_zero() {
        shared.delays.until(arrived + latency).await;
    }

    let mut truncate = false;
    let mut loop_to = None;
    let mut endless = false;
    match fault {
        None => {}
        Some(kind @ (FaultKind::RateLimited { .. } | FaultKind::RateLimitedHeaderOnly { .. })) => {
            let token = bearer(authorization).unwrap_or_default();
            let mut info =
                shared
                    .state()
                    .limiter
                    .peek(method, path, token, Instant::now(), SystemTime::now());
            let (ms, error) = match kind {
                FaultKind::RateLimited { ms_before_next } => (
                    ms_before_next,
                    ApiError::too_many_requests(ms_before_next, info.consumed.saturating_add(1)),
                ),
                FaultKind::RateLimitedHeaderOnly { reset_after_ms } => (
                    reset_after_ms,
                    ApiError::new(429, "RequestError", "Too many requests"),
                ),
                _ => unreachable!("matched above"),
            };
            info.consumed = info.consumed.saturating_add(1);
            info.remaining = 0;
            info.ms_before_next = ms;
            info.reset_at = SystemTime::now() + Duration::from_millis(ms);
            return with_rate_headers(error.into_response(), &info);
        }
        Some(FaultKind::Status { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return json_response(status, body);
        }
        Some(FaultKind::MalformedJson) => {
            return json_response(StatusCode::OK, MALFORMED_BODY.to_string());
        }
        Some(FaultKind::Hang) => {
            // Never answer. The accept loop drops the connection (and this future) on shutdown.
            std::future::pending::<()>().await;
        }
        Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::TruncatedJson) => truncate = true,
        Some(FaultKind::LastPageLoopsTo(cursor)) => loop_to = Some(cursor),
        Some(FaultKind::EndlessCursor) => endless = true,
    }

    // Bearer token.
    let token = {
        let expected = shared.state().token.clone();
        match bearer(authorization) {
            Some(t) if t == expected => t.to_string(),
            Some(_) => {
                return ApiError::unauthorized(
                    "The token provided is not valid for this workspace.",
                )
                .into_response();
            }
            None => {
                return ApiError::unauthorized(
                    "Missing bearer token: send an 'Authorization: Bearer <token>' header.",
                )
                .into_response();
            }
        }
    };

    // Rate limit (a refused request changes no state: the handler is not called).
    let (info, plan) = {
        let mut st = shared.state();
        let info = st
            .limiter
            .consume(method, path, &token, Instant::now(), SystemTime::now());
        (info, st.plan)
    };
    if !info.allowed {
        let mut info = info;
        info.remaining = 0;
        return with_rate_headers(
            ApiError::too_many_requests(info.ms_before_next, info.consumed).into_response(),
            &info,
        );
    }

    let resp = match gate(plan, path) {
        Some(err) => err.into_response(),
        None => normalise(next.run(req).await).await,
    };
    let mut resp = with_rate_headers(resp, &info);
    if let Some(cursor) = loop_to {
        resp = loop_last_page(resp, &cursor).await;
    }
    if endless {
        // Offsets past the end of any list: each a valid cursor, each new.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1 << 30);
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        resp = with_next_page(resp, &super::query::encode_cursor(offset)).await;
    }
    if truncate {
        truncated(resp).await
    } else {
        resp
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The answer of a lower plan for a feature that is switched off.
pub fn gate(plan: Plan, path: &str) -> Option<ApiError> {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    let user_groups = {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        segs.len() == 3 && segs[0] == "users" && segs[2] == "groups"
    };
    if !plan.groups && (under("/groups") || under("/group") || user_groups) {
        return Some(ApiError::bad_request(
            "Your plan does not include User Groups. Upgrade to the Business tier to use this feature.",
        ));
    }
    if !plan.warehouses && under("/warehouses") {
        return Some(ApiError::forbidden(
            "Your plan does not include Warehouses.",
        ));
    }
    if !plan.functions && under("/functions") {
        return Some(ApiError::forbidden(
            "This workspace does not have the Functions feature enabled.",
        ));
    }
    if !plan.spaces && under("/spaces") {
        return Some(ApiError::not_found(
            "This workspace does not have the Spaces feature enabled.",
        ));
    }
    None
}

/// Keeps every error in the JSON envelope: axum's own answers (405 for a method a path
/// does not have, plain-text extractor rejections) become `errors[]` bodies; a method
/// the API does not have on a path is a 404 like any unknown route.
async fn normalise(resp: Response) -> Response {
    let status = resp.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return ApiError::not_found("The requested route does not exist.").into_response();
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.is_success() || is_json {
        return resp;
    }
    let text = match to_bytes(resp.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let kind = match status.as_u16() {
        404 => "not-found",
        401 => "unauthorized",
        403 => "forbidden",
        422 | 400 => "input-validation",
        _ => "RequestError",
    };
    let status = if status == StatusCode::BAD_REQUEST {
        422
    } else {
        status.as_u16()
    };
    ApiError::new(
        status,
        kind,
        if text.is_empty() {
            "Request failed".to_string()
        } else {
            text
        },
    )
    .into_response()
}

fn with_rate_headers(mut resp: Response, info: &RateInfo) -> Response {
    let h = resp.headers_mut();
    let put = |h: &mut HeaderMap, name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put(h, "x-ratelimit-consumed", info.consumed.to_string());
    put(h, "x-ratelimit-remaining", info.remaining.to_string());
    put(h, "x-ratelimit-reset", http_date(info.reset_at));
    if let Some(limit) = info.limit_header {
        put(h, "x-ratelimit-limit", limit.to_string());
    }
    resp
}

/// Points a last page's `data.pagination.next` at `cursor`.
/// `resp` (a page of a list) saying that `cursor` reads the next page.
async fn with_next_page(resp: Response, cursor: &str) -> Response {
    edit_pagination(resp, |pagination| {
        pagination.insert("next".into(), cursor.into());
    })
    .await
}

/// `resp`, its last page (one without `next`) pointing back to `cursor`.
async fn loop_last_page(resp: Response, cursor: &str) -> Response {
    edit_pagination(resp, |pagination| {
        if pagination.get("next").is_none_or(|n| n.is_null()) {
            pagination.insert("next".into(), cursor.into());
        }
    })
    .await
}

/// `resp` with `edit` applied to its `data.pagination` (unchanged if it has none).
async fn edit_pagination(
    resp: Response,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    if let Some(pagination) = json
        .pointer_mut("/data/pagination")
        .and_then(|p| p.as_object_mut())
    {
        edit(pagination);
    }
    let body = serde_json::to_vec(&json).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Sends the first half of the body under the full body's `Content-Length`, then aborts,
/// which makes hyper close the connection mid-body.
async fn truncated(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let full = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let half = full.slice(..full.len() / 2);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
    let (mut tx, channel) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(1);
    let _ = tx.try_send(hyper::body::Frame::data(half));
    // Abort only once hyper has taken the half and had time to flush it (an error right
    // behind the data would make hyper drop the unflushed headers too).
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        while tx.capacity() < tx.max_capacity() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.abort(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "truncated by fault injection",
        ));
    });
    Response::from_parts(parts, Body::new(channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("abc")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn gating() {
        let all = Plan::default();
        assert!(gate(all, "/groups").is_none());
        let none = Plan {
            groups: false,
            spaces: false,
            warehouses: false,
            functions: false,
        };
        for p in [
            "/groups",
            "/groups/x/users",
            "/group/x/users",
            "/users/u/groups",
        ] {
            let e = gate(none, p).unwrap();
            assert_eq!((e.status, e.kind.as_str()), (400, "bad-request"), "{p}");
        }
        assert!(gate(none, "/groupsx").is_none());
        assert!(gate(none, "/users/u").is_none());
        assert!(gate(none, "/users").is_none());
        assert_eq!(gate(none, "/warehouses").unwrap().status, 403);
        assert_eq!(
            gate(none, "/functions").unwrap().message,
            "This workspace does not have the Functions feature enabled."
        );
        let e = gate(none, "/spaces/spcProd").unwrap();
        assert_eq!((e.status, e.kind.as_str()), (404, "not-found"));
    }
}
