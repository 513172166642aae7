//! Sending one admitted request, in four steps: wait for an in-flight slot, [`prepare`] it
//! (read its body, put the host's credential in), [`exchange`] it with the server (retrying as
//! the policy allows), and [`deliver`] the response with a capped body that holds the slot until
//! it is read, the token masked in its headers and body, and the headers charged to the
//! instance's memory.

use super::body::CappedBody;
use super::client;
use super::headers;
use super::network::RunNetwork;
use super::origin::Origin;
use super::pacing::{Lane, LimitHeaders};
use super::scrub::ScrubbedBody;
use super::stats::NetStats;
use crate::engine::limits::MemoryAccount;
use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

pub(super) type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

/// Used when a request has no first-byte or between-bytes timeout (the policy always sets
/// them; the guest's may only be shorter).
const FIRST_BYTE_CAP: Duration = Duration::from_secs(300);

/// A request ready to go out: the guest's head with the host's credential, and its body read.
struct Prepared {
    parts: http::request::Parts,
    body: Bytes,
    /// Safe to send again after a failure the server may have seen (reads only).
    idempotent: bool,
    /// "GET /users", for logs (never the query, which may carry e-mail addresses).
    what: String,
}

/// Sends one guest request and returns the response with a capped body.
pub(super) async fn send(
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
    let prepared = prepare(&net, request, &origin).await?;
    let response = exchange(&net, &alive_flag, &prepared, &options).await?;
    deliver(&net, &memory, response, permit, &options)
}

/// Whether the instance that made a request still exists.
pub(super) fn alive(flag: &AtomicBool) -> Result<(), Error> {
    if flag.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(Error::ConnectionTerminated)
    }
}

/// Reads the guest's body (up to the policy's cap) and replaces whatever credentials the guest
/// managed to put in with the host's own, for the credential's origin only.
async fn prepare(
    net: &RunNetwork,
    request: Request<WasiBody>,
    origin: &Origin,
) -> Result<Prepared, Error> {
    let (mut parts, body) = request.into_parts();
    let limit = net.policy.max_request_bytes;
    let body: Bytes = Limited::new(body, limit as usize)
        .collect()
        .await
        .map_err(|_| Error::HttpRequestBodySize(Some(limit)))?
        .to_bytes();
    parts.headers.remove(http::header::AUTHORIZATION);
    parts.headers.remove(http::header::PROXY_AUTHORIZATION);
    if let Some(credential) = net
        .policy
        .credential
        .as_ref()
        .filter(|c| &c.origin == origin)
    {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", credential.bearer_token.expose()))
                .map_err(|_| Error::ConfigurationError)?;
        value.set_sensitive(true);
        parts.headers.insert(http::header::AUTHORIZATION, value);
    }
    Ok(Prepared {
        idempotent: matches!(parts.method, Method::GET | Method::HEAD),
        what: format!("{} {}", parts.method, parts.uri.path()),
        parts,
        body,
    })
}

/// A response body as the host holds it before handing it over.
type HostBody = UnsyncBoxBody<Bytes, Error>;

/// What to do with one attempt's outcome.
enum Verdict {
    Deliver(http::Response<HostBody>),
    /// Send again after this wait.
    Retry(Duration),
    Fail(Error),
}

/// Where a request stands in its retries.
struct Attempts {
    /// Attempts so far that failed for a transient reason.
    transient: u32,
    /// Time waited on 429s so far.
    rate_limited: Duration,
    /// When the current attempt was sent.
    sent: Instant,
}

/// Sends `prepared` until the server gives an answer to hand over, or the retries run out.
/// Each attempt waits for its turn with the pacer first.
async fn exchange(
    net: &RunNetwork,
    alive_flag: &AtomicBool,
    prepared: &Prepared,
    options: &RequestOptions,
) -> Result<http::Response<HostBody>, Error> {
    let lane = Lane::of(&prepared.parts.method);
    let mut attempts = Attempts {
        transient: 0,
        rate_limited: Duration::ZERO,
        sent: Instant::now(),
    };
    loop {
        net.pacer.admit(lane).await;
        alive(alive_flag)?;
        attempts.sent = Instant::now();
        let outcome = attempt_once(net, prepared, options).await;
        match judge(net, prepared, outcome, &mut attempts).await {
            Verdict::Deliver(response) => return Ok(response),
            Verdict::Fail(e) => return Err(e),
            Verdict::Retry(wait) => {
                NetStats::add(&net.stats.retries, 1);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One attempt: the request on the run's connections, up to the first byte of the answer.
async fn attempt_once(
    net: &RunNetwork,
    prepared: &Prepared,
    options: &RequestOptions,
) -> Result<http::Response<Incoming>, Error> {
    let request = Request::from_parts(prepared.parts.clone(), Full::new(prepared.body.clone()));
    match tokio::time::timeout(
        options.first_byte_timeout.unwrap_or(FIRST_BYTE_CAP),
        net.client.request(request),
    )
    .await
    {
        Ok(Ok(response)) => client::accept_head(response),
        Ok(Err(e)) => Err(client::error(e)),
        Err(_) => Err(Error::ConnectionReadTimeout),
    }
}

/// Decides, from the retry policy, whether an attempt's outcome goes to the guest or is
/// retried, and tells the pacer what the server said about its limit.
async fn judge(
    net: &RunNetwork,
    prepared: &Prepared,
    outcome: Result<http::Response<Incoming>, Error>,
    attempts: &mut Attempts,
) -> Verdict {
    let policy = &net.policy.retry;
    let what = &prepared.what;
    let lane = Lane::of(&prepared.parts.method);
    let response = match outcome {
        Ok(response) => response,
        Err(e)
            if (prepared.idempotent || matches!(e, Error::Connect(_)))
                && is_transient(&e)
                && attempts.transient < policy.transient_retries =>
        {
            let wait = policy.backoff(attempts.transient);
            attempts.transient += 1;
            tracing::info!(target: "sandbox", "{what}: {e}; retrying in {:.1} s", wait.as_secs_f64());
            return Verdict::Retry(wait);
        }
        Err(e) => return Verdict::Fail(e),
    };
    let status = response.status();
    crate::telemetry::record_status(status.as_u16());
    let limit = LimitHeaders::read(response.headers(), SystemTime::now());
    if status.as_u16() == 429 {
        // Back-pressure: the request was not carried out, so any method is sent again.
        NetStats::add(&net.stats.rate_limited, 1);
        let wait = net.pacer.rejected(lane, limit, attempts.sent);
        if attempts.rate_limited + wait < policy.max_rate_limit_wait {
            attempts.rate_limited += wait;
            NetStats::add(&net.stats.rate_limit_wait_ms, wait.as_millis() as u64);
            tracing::debug!(target: "sandbox", "{what}: rate limited; sending again in {:.3} s", wait.as_secs_f64());
            drop(response);
            return Verdict::Retry(wait);
        }
        // Waited as long as the policy allows: the 429 goes to the component (with its body).
        tracing::warn!(target: "sandbox", "{what}: still rate limited after {:.0} s of waiting", attempts.rate_limited.as_secs_f64());
        let (head, body) = response.into_parts();
        let body = Full::new(read_small(body).await).map_err(|never| match never {});
        return Verdict::Deliver(http::Response::from_parts(head, body.boxed_unsync()));
    }
    net.pacer.succeeded(lane, limit);
    if status.is_server_error() {
        NetStats::add(&net.stats.server_errors, 1);
        if prepared.idempotent && attempts.transient < policy.transient_retries {
            let wait = policy.backoff(attempts.transient);
            attempts.transient += 1;
            tracing::info!(target: "sandbox", "{what}: the server answered {status}; retrying in {:.1} s", wait.as_secs_f64());
            return Verdict::Retry(wait);
        }
    }
    Verdict::Deliver(response.map(|b| b.map_err(Error::Hyper).boxed_unsync()))
}

/// Hands the response to the guest: refused at once when it announces a body over the cap,
/// otherwise with the token masked in its headers and body, its headers charged to the
/// instance's memory (until the guest drops them), and a body that counts, caps and times its
/// bytes and frees the slot at its end.
fn deliver(
    net: &RunNetwork,
    memory: &Arc<MemoryAccount>,
    response: http::Response<HostBody>,
    permit: OwnedSemaphorePermit,
    options: &RequestOptions,
) -> Sent {
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
    let between_bytes = options.between_bytes_timeout.unwrap_or(FIRST_BYTE_CAP);
    let (mut head, body) = response.into_parts();
    head.headers = headers::for_guest(&head.headers, net.scrubber.as_deref(), memory)?;
    let body = ScrubbedBody::new(body, net.scrubber.as_ref());
    let body = CappedBody::new(body, limit, net.stats.clone(), permit, between_bytes);
    Ok((
        http::Response::from_parts(head, body.boxed_unsync()),
        Box::new(async { Ok(()) }),
    ))
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
