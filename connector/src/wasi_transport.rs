//! The [`Env`](crate::env::Env)'s HTTP half inside the component: requests to the Segment API
//! over `wasi:http/outgoing-handler`, several in flight at once. The host adds the token and
//! enforces its limits; this side builds requests and reads answers.

use crate::env::{HttpRequest, HttpResponse, Method, SpareEach, TransportError};
use std::collections::VecDeque;
use std::ops::ControlFlow;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method as WasiMethod,
    OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

const READ_CHUNK: u64 = 64 * 1024;
const WRITE_CHUNK: usize = 4096;

/// Where requests go, and how many at once.
pub(crate) struct WasiTransport {
    scheme: Scheme,
    authority: String,
    /// Path prefix of the base URL, without a trailing slash.
    prefix: String,
    /// Only for hosts that cannot inject credentials; ours never passes it.
    token: Option<String>,
    max_in_flight: usize,
}

impl WasiTransport {
    pub(crate) fn new(
        base: &str,
        token: Option<String>,
        max_in_flight: usize,
    ) -> Result<WasiTransport, String> {
        let (scheme, rest) = if let Some(rest) = base.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = base.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(format!(
                "base-url {base:?} must start with https:// (or http:// for a local test server)"
            ));
        };
        let (authority, prefix) = rest
            .split_once('/')
            .map(|(a, p)| (a, format!("/{p}")))
            .unwrap_or((rest, String::new()));
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("base-url {base:?} has no usable host"));
        }
        Ok(WasiTransport {
            scheme,
            authority: authority.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
            token,
            max_in_flight,
        })
    }

    /// Starts one request; the response is awaited separately so several can be in flight.
    fn start(&self, request: &HttpRequest) -> Result<FutureIncomingResponse, TransportError> {
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            ("accept".into(), b"application/json".to_vec()),
            (
                "user-agent".into(),
                concat!("baton-segment-connector/", env!("CARGO_PKG_VERSION"))
                    .as_bytes()
                    .to_vec(),
            ),
        ];
        if let Some(body) = &request.body {
            headers.push(("content-type".into(), b"application/json".to_vec()));
            // Always stated: a host that would otherwise send the body chunked may reach a
            // server that ignores chunked bodies, and the write would be lost.
            headers.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        if let Some(token) = &self.token {
            headers.push((
                "authorization".into(),
                format!("Bearer {token}").into_bytes(),
            ));
        }
        let fields = Fields::from_list(&headers)
            .map_err(|e| TransportError::Denied(format!("a request header was refused ({e:?})")))?;
        let outgoing = OutgoingRequest::new(fields);
        let method = match request.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
        };
        let path = format!("{}{}", self.prefix, request.path);
        let invalid = |what: &str| TransportError::Failed(format!("invalid request {what}"));
        outgoing
            .set_method(&method)
            .map_err(|_| invalid("method"))?;
        outgoing
            .set_scheme(Some(&self.scheme))
            .map_err(|_| invalid("scheme"))?;
        outgoing
            .set_authority(Some(&self.authority))
            .map_err(|_| invalid("authority"))?;
        outgoing
            .set_path_with_query(Some(&path))
            .map_err(|_| invalid("path"))?;
        let body = outgoing.body().map_err(|_| invalid("body"))?;
        // No request options: the host sets the timeouts. (wasmtime-wasi-http 48 also keeps
        // every `request-options` handed to `handle` in the instance's resource table until
        // the instance ends, so sending them would use up the table over a long sync.)
        let future = outgoing_handler::handle(outgoing, None).map_err(transport_error)?;
        if let Some(bytes) = &request.body {
            let stream = body.write().map_err(|_| invalid("body stream"))?;
            for chunk in bytes.chunks(WRITE_CHUNK) {
                stream.blocking_write_and_flush(chunk).map_err(|e| {
                    TransportError::Failed(format!("writing the request body failed ({e:?})"))
                })?;
            }
            drop(stream);
        }
        OutgoingBody::finish(body, None).map_err(transport_error)?;
        Ok(future)
    }

    /// Sends the requests, up to `max-in-flight` at once, and returns one result per request
    /// in the same order.
    pub(crate) fn send_all(
        &self,
        requests: &[HttpRequest],
    ) -> Vec<Result<HttpResponse, TransportError>> {
        let mut results: Vec<Option<Result<HttpResponse, TransportError>>> =
            requests.iter().map(|_| None).collect();
        self.send_with_spares(requests, &mut |i, result, _| {
            results[i] = Some(result);
            ControlFlow::Continue(())
        });
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(TransportError::Failed("request was not sent".into())))
            })
            .collect()
    }

    /// Up to `max-in-flight` requests at once; a slot freed by an answer is filled before the
    /// answer is worked on, so the host always has as many as it allows. Between two answers
    /// worked on, the ones that came meanwhile are read and their slots filled too: a burst of
    /// answers does not leave slots empty while the first of them is worked on. Spare
    /// requests (see [`Env::send_with_spares`](crate::env::Env::send_with_spares)) fill slots
    /// only while a request of `requests` is unanswered.
    pub(crate) fn send_with_spares(&self, requests: &[HttpRequest], each: &mut SpareEach<'_>) {
        let mut in_flight: Vec<(usize, FutureIncomingResponse)> = Vec::new();
        let mut answered: VecDeque<(usize, Result<HttpResponse, TransportError>)> = VecDeque::new();
        let mut spares: Vec<HttpRequest> = Vec::new();
        let (mut next, mut next_spare) = (0, 0);
        // Requests of `requests` not answered yet (spares go out only while there are some).
        let mut unanswered = requests.len();
        loop {
            // Read what came (which frees the host's slots), without waiting.
            let mut i = 0;
            while i < in_flight.len() {
                match take_if_ready(&in_flight[i].1) {
                    Some(result) => {
                        let (index, _) = in_flight.swap_remove(i);
                        unanswered -= usize::from(index < requests.len());
                        answered.push_back((index, result));
                    }
                    None => i += 1,
                }
            }
            // Send the next requests; a request that cannot start is answered at once.
            while in_flight.len() < self.max_in_flight {
                let (index, request) = if next < requests.len() {
                    next += 1;
                    (next - 1, &requests[next - 1])
                } else if unanswered > 0 && next_spare < spares.len() {
                    next_spare += 1;
                    (requests.len() + next_spare - 1, &spares[next_spare - 1])
                } else {
                    break;
                };
                match self.start(request) {
                    Ok(future) => in_flight.push((index, future)),
                    Err(e) => {
                        unanswered -= usize::from(index < requests.len());
                        answered.push_back((index, Err(e)));
                    }
                }
            }
            // Then work on one answer, or wait for one.
            if let Some((index, result)) = answered.pop_front() {
                let mut named = Vec::new();
                if each(index, result, &mut named).is_break() {
                    return;
                }
                spares.extend(named);
            } else if in_flight.is_empty() {
                return;
            } else {
                let pollables: Vec<_> = in_flight.iter().map(|(_, f)| f.subscribe()).collect();
                let refs: Vec<_> = pollables.iter().collect();
                wasip2::io::poll::poll(&refs);
            }
        }
    }
}

/// The answer of `future` with its body, if it has come; `None` without waiting if not.
fn take_if_ready(future: &FutureIncomingResponse) -> Option<Result<HttpResponse, TransportError>> {
    let response = match future.get()? {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return Some(Err(transport_error(code))),
        Err(()) => {
            return Some(Err(TransportError::Failed(
                "the response was already taken".into(),
            )));
        }
    };
    Some(read_response(response))
}

/// The most a body buffer is sized for up front from `Content-Length` (it grows past that if
/// more arrives): a host that does not cap responses could announce any size.
const MAX_PRESIZE: usize = 64 << 20;

fn read_response(response: IncomingResponse) -> Result<HttpResponse, TransportError> {
    let status = response.status();
    let headers: Vec<(String, String)> = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    // One buffer of the announced size: growing by doubling would need up to three times the
    // body in linear memory at the last reallocation (and linear memory never shrinks).
    let announced = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let body = response
        .consume()
        .map_err(|_| TransportError::Failed("the body was already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|_| TransportError::Failed("the body stream was already taken".into()))?;
    let mut bytes = Vec::with_capacity(announced.min(MAX_PRESIZE));
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                // The host's text may carry a backtrace: its first line says what happened.
                let detail = e
                    .to_debug_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                // Over the host's size cap: asking again will not help. A connection cut off
                // mid-body might go better next time.
                return Err(if detail.contains("body size") {
                    TransportError::Failed(format!("reading the body failed: {detail}"))
                } else {
                    TransportError::Unavailable(format!(
                        "the connection failed while reading the body: {detail}"
                    ))
                });
            }
        }
    }
    drop(stream);
    Ok(HttpResponse {
        status,
        headers,
        body: bytes,
    })
}

fn transport_error(code: ErrorCode) -> TransportError {
    match code {
        ErrorCode::HttpRequestDenied => {
            TransportError::Denied("the destination is not allowed (HttpRequestDenied)".into())
        }
        ErrorCode::ConnectionLimitReached => TransportError::Denied(
            "the host's request limit for this run is reached (ConnectionLimitReached)".into(),
        ),
        ErrorCode::HttpResponseBodySize(limit) => TransportError::Failed(format!(
            "the response is larger than the host allows ({limit:?} bytes)"
        )),
        // Asking again gets the same answer: not retried.
        ErrorCode::HttpResponseHeaderSectionSize(limit) => TransportError::Failed(format!(
            "the response headers are larger than the host allows ({limit:?} bytes)"
        )),
        ErrorCode::HttpResponseHeaderSize(_) => {
            TransportError::Failed("a response header is larger than the host allows".into())
        }
        ErrorCode::DestinationIpProhibited => TransportError::Denied(
            "the destination resolves to an address the host does not allow (DestinationIpProhibited)"
                .into(),
        ),
        ErrorCode::HttpRequestMethodInvalid => TransportError::Denied(
            "the host does not allow this HTTP method (HttpRequestMethodInvalid)".into(),
        ),
        ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationNotFound
        | ErrorCode::HttpResponseIncomplete => TransportError::Unavailable(format!("{code:?}")),
        other => TransportError::Failed(format!("{other:?}")),
    }
}
