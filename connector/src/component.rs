//! The component's exports, and the [`Env`] bound to `wasi:http` and the host imports.

use crate::bindings::baton::connector::host;
use crate::bindings::*;
use crate::connector::{Connector, Settings};
use crate::env::{Env, HttpRequest, HttpResponse, LogLevel, Method, TransportError};
use std::sync::OnceLock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method as WasiMethod,
    OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

struct Component;

crate::bindings::export!(Component with_types_in crate::bindings);

/// What the component learns from the host's configuration, once per instance.
struct WasiEnv {
    scheme: Scheme,
    authority: String,
    /// Path prefix of the base URL, without a trailing slash.
    prefix: String,
    /// Only for hosts that cannot inject credentials; ours never passes it.
    token: Option<String>,
    max_in_flight: usize,
    settings: Settings,
}

static ENV: OnceLock<Result<WasiEnv, String>> = OnceLock::new();

fn env() -> Result<&'static WasiEnv, ConnectorError> {
    ENV.get_or_init(WasiEnv::from_host_config)
        .as_ref()
        .map_err(|e| ConnectorError::InvalidArgument(e.clone()))
}

/// Panics print their message and nothing else. Rust's default hook reads `RUST_BACKTRACE`
/// from the environment, and this component reads no environment at all (hosts may pass their
/// own, secrets included).
fn quiet_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
}

fn with_connector<T>(
    f: impl FnOnce(&Connector<'_, WasiEnv>) -> Result<T, ConnectorError>,
) -> Result<T, ConnectorError> {
    quiet_panics();
    let env = env()?;
    f(&Connector::new(env, &env.settings))
}

impl Guest for Component {
    fn metadata() -> ConnectorMetadata {
        Connector::<WasiEnv>::metadata()
    }

    fn validate() -> Result<(), ConnectorError> {
        with_connector(|c| c.validate())
    }

    fn resource_types() -> Result<Vec<ResourceType>, ConnectorError> {
        Ok(crate::resources::resource_types())
    }

    fn list_resources(
        resource_type: String,
        parent: Option<ResourceId>,
        page_token: String,
    ) -> Result<ResourcePage, ConnectorError> {
        with_connector(|c| c.list_resources(&resource_type, parent.as_ref(), &page_token))
    }

    fn list_entitlements(
        resource: Resource,
        page_token: String,
    ) -> Result<EntitlementPage, ConnectorError> {
        with_connector(|c| c.list_entitlements(&resource, &page_token))
    }

    fn list_grants(resource: Resource, page_token: String) -> Result<GrantPage, ConnectorError> {
        with_connector(|c| c.list_grants(&resource, &page_token))
    }

    fn grant(
        principal: Resource,
        entitlement: Entitlement,
    ) -> Result<GrantOutcome, ConnectorError> {
        with_connector(|c| c.grant(&principal, &entitlement))
    }

    fn revoke(grant: Grant, principal: Resource) -> Result<RevokeOutcome, ConnectorError> {
        with_connector(|c| c.revoke(&grant, &principal))
    }

    fn plan(operation: Operation) -> Result<Vec<PlannedRequest>, ConnectorError> {
        with_connector(|c| c.plan(&operation))
    }

    fn create_account(account: AccountInfo) -> Result<CreateAccountOutcome, ConnectorError> {
        with_connector(|c| c.create_account(&account))
    }

    fn delete_resource(
        id: ResourceId,
        parent: Option<ResourceId>,
    ) -> Result<DeleteOutcome, ConnectorError> {
        with_connector(|c| c.delete_resource(&id, parent.as_ref()))
    }
}

const DEFAULT_BASE_URL: &str = "https://api.segmentapis.com";
const READ_CHUNK: u64 = 64 * 1024;
const WRITE_CHUNK: usize = 4096;

impl WasiEnv {
    fn from_host_config() -> Result<WasiEnv, String> {
        let base = host::config("base-url")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.into());
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
        let number = |key: &str, default: u32| {
            host::config(key)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(default)
        };
        Ok(WasiEnv {
            scheme,
            authority: authority.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
            token: host::config("token").filter(|t| !t.is_empty()),
            max_in_flight: number("max-in-flight", 8).clamp(1, 64) as usize,
            settings: Settings {
                page_size: number("page-size", crate::segment::api::DEFAULT_PAGE_SIZE),
            },
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

    fn finish(future: FutureIncomingResponse) -> Result<HttpResponse, TransportError> {
        let response = loop {
            match future.get() {
                Some(Ok(Ok(response))) => break response,
                Some(Ok(Err(code))) => return Err(transport_error(code)),
                Some(Err(())) => {
                    return Err(TransportError::Failed(
                        "the response was already taken".into(),
                    ));
                }
                None => future.subscribe().block(),
            }
        };
        read_response(response)
    }
}

/// The most a body buffer is sized for up front from `Content-Length` (it grows past that if
/// more arrives): a host that does not cap responses could announce any size.
const MAX_PRESIZE: usize = 64 << 20;

fn read_response(response: IncomingResponse) -> Result<HttpResponse, TransportError> {
    let status = response.status();
    let headers: Vec<(String, String)> = {
        // The header fields resource is dropped here: the host keeps them (and counts them
        // against this instance's memory) only while it lives.
        let fields = response.headers();
        fields
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect()
    };
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

impl Env for WasiEnv {
    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
        let mut results: Vec<Option<Result<HttpResponse, TransportError>>> =
            requests.iter().map(|_| None).collect();
        let mut in_flight: Vec<(usize, FutureIncomingResponse)> = Vec::new();
        let mut next = 0;
        while next < requests.len() || !in_flight.is_empty() {
            while next < requests.len() && in_flight.len() < self.max_in_flight {
                match self.start(&requests[next]) {
                    Ok(future) => in_flight.push((next, future)),
                    Err(e) => results[next] = Some(Err(e)),
                }
                next += 1;
            }
            if in_flight.is_empty() {
                continue;
            }
            // Wait for any response, then read every one that is ready.
            let ready: Vec<u32> = {
                let pollables: Vec<_> = in_flight.iter().map(|(_, f)| f.subscribe()).collect();
                let refs: Vec<_> = pollables.iter().collect();
                wasip2::io::poll::poll(&refs)
            };
            let mut ready: Vec<usize> = ready.into_iter().map(|i| i as usize).collect();
            ready.sort_unstable_by(|a, b| b.cmp(a));
            for i in ready {
                let (index, future) = in_flight.swap_remove(i);
                results[index] = Some(WasiEnv::finish(future));
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(TransportError::Failed("request was not sent".into())))
            })
            .collect()
    }

    fn session_get(&self, key: &str) -> Option<Vec<u8>> {
        host::session_get(key)
    }

    fn session_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        host::session_set(key, value)
    }

    fn session_get_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        host::session_get_prefix(prefix)
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => host::LogLevel::Debug,
            LogLevel::Info => host::LogLevel::Info,
            LogLevel::Warn => host::LogLevel::Warn,
        };
        host::log(level, message);
    }
}
