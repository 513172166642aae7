//! The HTTP sandbox: the only network a component has.
//!
//! * Deny by default: a request goes out only if its origin (scheme, host, port) is on the
//!   run's allowlist; anything else gets `HttpRequestDenied` and nothing leaves the host.
//! * Credentials stay on the host: `Authorization` is a forbidden header for the guest, and the
//!   host adds the token to requests bound for the credential's origin, after the guest's
//!   request was built. A server that echoes requests does not hand it back: the token is
//!   masked in every response header and body before the guest sees them (`scrub`).
//! * Only the methods a REST API needs (`methods`); runs with a restricted address policy
//!   connect to public addresses only (`addresses`, checked again at connect time).
//! * Limits: clamped timeouts, a response size cap, requests in flight per run, an optional
//!   request budget per run.
//! * Segment's rate limits are honoured here: a 429 is answered by waiting as Segment says and
//!   sending again; reads that fail with a 5xx or a lost connection are retried with backoff.

pub mod addresses;
mod body;
mod client;
mod headers;
pub mod methods;
pub mod origin;
mod resolve;
pub mod retry;
pub mod scrub;
pub mod stats;

use crate::limits::MemoryAccount;
pub use addresses::{AddressClass, AddressPolicy};
use body::CappedBody;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
pub use origin::Origin;
use retry::{RateGate, RetryPolicy, rate_limit_wait};
use scrub::{ScrubbedBody, Scrubber};
pub use stats::{NetSnapshot, NetStats};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

/// A secret that never shows up in `Debug` output or logs: it is registered with
/// [`crate::redact`], which cuts it out of every string the host emits.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        let secret: Arc<str> = Arc::from(value.into());
        crate::redact::register(&secret);
        Secret(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A credential the host adds to requests bound for one origin.
#[derive(Debug, Clone)]
pub struct Credential {
    pub origin: Origin,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Secret,
}

#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub allowed: Vec<Origin>,
    pub credential: Option<Credential>,
    pub max_response_bytes: u64,
    pub max_request_bytes: u64,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Duration,
    /// Requests of the run in flight at once (over all its instances).
    pub max_in_flight: usize,
    /// Requests the run may make in total; `None` for no limit.
    pub request_budget: Option<u64>,
    pub retry: RetryPolicy,
    /// Which addresses the run may connect to (checked on the resolved addresses).
    pub addresses: AddressPolicy,
}

impl HttpPolicy {
    /// Only `base_url`'s origin is reachable, and the token goes there.
    pub fn for_base_url(base_url: &str, token: Option<Secret>) -> Result<HttpPolicy, String> {
        let origin = Origin::parse(base_url)?;
        if token.is_some() {
            origin.check_can_carry_token()?;
        }
        Ok(HttpPolicy {
            allowed: vec![origin.clone()],
            credential: token.map(|bearer_token| Credential {
                origin,
                bearer_token,
            }),
            max_response_bytes: 32 * 1024 * 1024,
            // Segment's request bodies are small (a few permissions or e-mail addresses).
            max_request_bytes: 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            between_bytes_timeout: Duration::from_secs(30),
            max_in_flight: 8,
            request_budget: None,
            retry: RetryPolicy::default(),
            addresses: AddressPolicy::any(),
        })
    }

    pub fn allows(&self, origin: &Origin) -> bool {
        self.allowed.iter().any(|o| o == origin)
    }

    /// The guest's timeouts, never above the host's. (Connections are pooled per run and
    /// opened with the host's connect timeout; a guest's shorter one is not applied.)
    fn clamp(&self, guest: Option<RequestOptions>) -> RequestOptions {
        let guest = guest.unwrap_or_default();
        let min = |g: Option<Duration>, cap: Duration| Some(g.map_or(cap, |g| g.min(cap)));
        RequestOptions {
            connect_timeout: min(guest.connect_timeout, self.connect_timeout),
            first_byte_timeout: min(guest.first_byte_timeout, self.first_byte_timeout),
            between_bytes_timeout: min(guest.between_bytes_timeout, self.between_bytes_timeout),
        }
    }
}

/// The network of one run (a sync or a task), shared by all its component instances.
pub struct RunNetwork {
    pub policy: HttpPolicy,
    pub stats: Arc<NetStats>,
    slots: Arc<Semaphore>,
    gate: RateGate,
    started: AtomicU64,
    /// This run's connections (never shared with another run or tenant).
    client: client::PooledClient,
    /// Masks the run's token in what servers answer.
    scrubber: Option<Arc<Scrubber>>,
}

impl std::fmt::Debug for RunNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunNetwork")
            .field("policy", &self.policy)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RunNetwork {
    /// How long the run's requests have been held back in all because Segment asked for a
    /// pause (429): time that per-call wall limits do not count.
    pub fn rate_limit_pause(&self) -> Duration {
        self.gate.held()
    }

    pub fn new(policy: HttpPolicy) -> Arc<RunNetwork> {
        Arc::new(RunNetwork {
            client: client::pooled(
                policy.connect_timeout,
                policy.max_in_flight.max(1),
                policy.addresses.clone(),
            ),
            scrubber: policy
                .credential
                .as_ref()
                .and_then(|c| Scrubber::new(c.bearer_token.expose()))
                .map(Arc::new),
            slots: Arc::new(Semaphore::new(policy.max_in_flight.max(1))),
            policy,
            stats: Arc::new(NetStats::default()),
            gate: RateGate::default(),
            started: AtomicU64::new(0),
        })
    }
}

/// Used when a request has no first-byte or between-bytes timeout (the policy always sets
/// them; the guest's may only be shorter).
const FIRST_BYTE_CAP: Duration = Duration::from_secs(300);

/// The `wasi:http` hooks of one store.
pub struct SandboxHooks {
    net: Arc<RunNetwork>,
    alive: Arc<AtomicBool>,
    /// The instance's memory, which the response headers it keeps are charged to.
    memory: Arc<MemoryAccount>,
}

impl SandboxHooks {
    pub fn new(net: Arc<RunNetwork>, memory: Arc<MemoryAccount>) -> SandboxHooks {
        SandboxHooks {
            net,
            alive: Arc::new(AtomicBool::new(true)),
            memory,
        }
    }
}

impl SandboxHooks {
    /// The instance is going away: nothing it asked for may be sent from now on, even a request
    /// still queued for an in-flight slot that the teardown is about to free. Call this before
    /// the instance's resources (which hold those slots) are dropped.
    pub fn close(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}

impl Drop for SandboxHooks {
    fn drop(&mut self) {
        self.close();
    }
}

/// Whether the instance that made a request still exists.
fn alive(flag: &AtomicBool) -> Result<(), Error> {
    if flag.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(Error::ConnectionTerminated)
    }
}

fn forbidden(name: &HeaderName) -> bool {
    *name == http::header::AUTHORIZATION
        || *name == http::header::PROXY_AUTHORIZATION
        || DEFAULT_FORBIDDEN_HEADERS.contains(name)
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for SandboxHooks {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        forbidden(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(forbidden)
    }

    /// The guest must say which scheme it wants; nothing is assumed.
    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        None
    }

    /// Each outgoing body buffers one write on the host; keeping writes small bounds what
    /// bodies of requests waiting for a slot can make the host hold.
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        64 * 1024
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let net = self.net.clone();
        // Decided here, synchronously: a denied request never reaches the network.
        if !methods::allowed(request.method()) {
            NetStats::add(&net.stats.denied, 1);
            tracing::warn!(target: "sandbox", "denied a {} request: only {} are allowed", request.method(), methods::ALLOWED.map(|m| m.to_string()).join(", "));
            return Box::new(async { Err(Error::HttpRequestMethodInvalid) });
        }
        let origin = match Origin::of_uri(request.uri()) {
            Some(origin) if net.policy.allows(&origin) => origin,
            other => {
                NetStats::add(&net.stats.denied, 1);
                let target = other.map_or_else(
                    || "a URL without a usable origin".to_string(),
                    |o| o.to_string(),
                );
                tracing::warn!(target: "sandbox", "denied a request to {target}: not on the allowlist");
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        // Names are checked when they are resolved; an IP literal is never resolved.
        if let Err((ip, class)) = net.policy.addresses.check_literal(&origin.host) {
            NetStats::add(&net.stats.denied, 1);
            tracing::warn!(target: "sandbox", "denied a request to {origin}: {ip} is a {class} address, which this run may not reach");
            return Box::new(async { Err(Error::DestinationIpProhibited) });
        }
        let n = net.started.fetch_add(1, Ordering::Relaxed) + 1;
        if net.policy.request_budget.is_some_and(|budget| n > budget) {
            NetStats::add(&net.stats.denied, 1);
            tracing::warn!(target: "sandbox", "denied a request: the run's budget of {} requests is spent", net.policy.request_budget.unwrap_or(0));
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        }
        NetStats::add(&net.stats.requests, 1);
        let options = net.policy.clamp(options);
        Box::new(send(
            net,
            self.alive.clone(),
            self.memory.clone(),
            request,
            origin,
            options,
        ))
    }
}

/// Sends one guest request, retrying as the policy allows, and returns the response with a
/// capped body.
async fn send(
    net: Arc<RunNetwork>,
    alive_flag: Arc<AtomicBool>,
    memory: Arc<MemoryAccount>,
    request: Request<WasiBody>,
    origin: Origin,
    options: RequestOptions,
) -> Sent {
    // The slot is taken before the body is read: requests waiting for a slot hold no body on
    // the host, so a guest cannot park memory here past its in-flight limit.
    let permit = net
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Error::InternalError(Some("run closed".into())))?;
    alive(&alive_flag)?;
    let (mut parts, body) = request.into_parts();
    let limit = net.policy.max_request_bytes;
    let body: Bytes = Limited::new(body, limit as usize)
        .collect()
        .await
        .map_err(|_| Error::HttpRequestBodySize(Some(limit)))?
        .to_bytes();
    // Whatever the guest managed to put there, credentials come from the host only.
    parts.headers.remove(http::header::AUTHORIZATION);
    parts.headers.remove(http::header::PROXY_AUTHORIZATION);
    if let Some(credential) = net
        .policy
        .credential
        .as_ref()
        .filter(|c| c.origin == origin)
    {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", credential.bearer_token.expose()))
                .map_err(|_| Error::ConfigurationError)?;
        value.set_sensitive(true);
        parts.headers.insert(http::header::AUTHORIZATION, value);
    }
    let idempotent = matches!(parts.method, Method::GET | Method::HEAD);
    let what = format!("{} {}", parts.method, parts.uri.path());
    let policy = &net.policy.retry;
    let mut attempt: u32 = 0;
    loop {
        net.gate.wait().await;
        alive(&alive_flag)?;
        let mut request = Request::from_parts(parts.clone(), Full::new(body.clone()));
        *request.uri_mut() = parts.uri.clone();
        let answer = match tokio::time::timeout(
            options.first_byte_timeout.unwrap_or(FIRST_BYTE_CAP),
            net.client.request(request),
        )
        .await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(client::error(e)),
            Err(_) => Err(Error::ConnectionReadTimeout),
        };
        match answer {
            Ok(response) => {
                let status = response.status();
                let between_bytes = options.between_bytes_timeout.unwrap_or(FIRST_BYTE_CAP);
                if status.as_u16() == 429 {
                    NetStats::add(&net.stats.rate_limited, 1);
                    if attempt < policy.rate_limited_retries {
                        let (head, body) = response.into_parts();
                        let bytes = read_small(body).await;
                        let wait = rate_limit_wait(&head.headers, &bytes, SystemTime::now())
                            .unwrap_or_else(|| policy.backoff(attempt));
                        if wait <= policy.max_rate_limit_wait {
                            tracing::info!(target: "sandbox", "{what}: Segment rate limit reached; waiting {:.1} s as it asks", wait.as_secs_f64());
                            NetStats::add(&net.stats.rate_limit_wait_ms, wait.as_millis() as u64);
                            NetStats::add(&net.stats.retries, 1);
                            net.gate.hold_for(wait).await;
                            attempt += 1;
                            continue;
                        }
                        // Too long to wait here: hand the 429 to the component (with its body).
                        let body = Full::new(bytes).map_err(|never| match never {});
                        let body = CappedBody::new(
                            for_guest_body(&net, body),
                            net.policy.max_response_bytes,
                            net.stats.clone(),
                            permit,
                            between_bytes,
                        );
                        let head = for_guest_head(&net, &memory, head)?;
                        return Ok((
                            http::Response::from_parts(head, body.boxed_unsync()),
                            io_done(),
                        ));
                    }
                } else if status.is_server_error() {
                    NetStats::add(&net.stats.server_errors, 1);
                    if idempotent && attempt < policy.transient_retries {
                        let wait = policy.backoff(attempt);
                        tracing::info!(target: "sandbox", "{what}: Segment answered {status}; retrying in {:.1} s", wait.as_secs_f64());
                        drop(response);
                        NetStats::add(&net.stats.retries, 1);
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                }
                let limit = net.policy.max_response_bytes;
                if response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|n| n > limit)
                {
                    return Err(Error::HttpResponseBodySize(Some(limit)));
                }
                // The request stays in flight until its body is read to the end or dropped.
                let (head, body) = response.into_parts();
                let head = for_guest_head(&net, &memory, head)?;
                let body = for_guest_body(&net, body.map_err(Error::Hyper));
                let body = CappedBody::new(body, limit, net.stats.clone(), permit, between_bytes);
                return Ok((
                    http::Response::from_parts(head, body.boxed_unsync()),
                    io_done(),
                ));
            }
            Err(e)
                if (idempotent || matches!(e, Error::Connect(_)))
                    && is_transient(&e)
                    && attempt < policy.transient_retries =>
            {
                let wait = policy.backoff(attempt);
                tracing::info!(target: "sandbox", "{what}: {e}; retrying in {:.1} s", wait.as_secs_f64());
                NetStats::add(&net.stats.retries, 1);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A response head as the guest may see it: the token masked, the headers it keeps charged to
/// its memory.
fn for_guest_head(
    net: &RunNetwork,
    memory: &Arc<MemoryAccount>,
    mut head: http::response::Parts,
) -> Result<http::response::Parts, Error> {
    head.headers = headers::for_guest(&head.headers, net.scrubber.as_deref(), memory)?;
    Ok(head)
}

/// A response body as the guest may see it: the token masked.
fn for_guest_body<B>(net: &RunNetwork, body: B) -> ScrubbedBody<B> {
    ScrubbedBody::new(body, net.scrubber.as_ref())
}

fn is_transient(e: &Error) -> bool {
    matches!(
        e,
        Error::Connect(_)
            | Error::ConnectionRefused
            | Error::ConnectionTerminated
            | Error::ConnectionTimeout
            | Error::ConnectionReadTimeout
            | Error::HttpResponseIncomplete
            | Error::Hyper(_)
    )
}

/// Reads a small error body (a 429's), at most 64 KiB and 10 s.
async fn read_small<B: http_body::Body<Data = Bytes>>(body: B) -> Bytes
where
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limited = Limited::new(body, 64 * 1024).collect();
    match tokio::time::timeout(Duration::from_secs(10), limited).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    }
}

fn io_done() -> Box<dyn Future<Output = Result<(), Error>> + Send> {
    Box::new(async { Ok(()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_may_shorten_timeouts_but_never_lengthen_them() {
        let policy = HttpPolicy::for_base_url("https://api.segmentapis.com", None).unwrap();
        let asked = RequestOptions {
            connect_timeout: Some(Duration::from_secs(3600)),
            first_byte_timeout: Some(Duration::from_secs(1)),
            between_bytes_timeout: Some(Duration::from_secs(3600)),
        };
        let got = policy.clamp(Some(asked));
        assert_eq!(got.connect_timeout, Some(policy.connect_timeout));
        assert_eq!(got.first_byte_timeout, Some(Duration::from_secs(1)));
        assert_eq!(
            got.between_bytes_timeout,
            Some(policy.between_bytes_timeout)
        );
        let none = policy.clamp(None);
        assert_eq!(none.first_byte_timeout, Some(policy.first_byte_timeout));
    }
}
