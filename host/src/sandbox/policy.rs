//! What a run may do on the network: the origins it may reach, the credential the host adds
//! (and to which origin), size caps, timeouts, requests in flight and the request budget.

use super::origin::Origin;
use super::pacing::RetryPolicy;
use crate::net::addresses::AddressPolicy;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::RequestOptions;

/// A secret that never shows up in `Debug` output or logs: it is registered with
/// [`super::redact`], which cuts it out of every string the host emits.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        let secret: Arc<str> = Arc::from(value.into());
        super::redact::register(&secret);
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
        let origin = match token {
            Some(_) => Origin::for_token(base_url)?,
            None => Origin::parse(base_url)?,
        };
        Ok(HttpPolicy::for_origin(origin, token))
    }

    /// Only `origin` is reachable, and the token goes there. (The caller has checked that the
    /// origin may carry it: [`Origin::for_token`].)
    pub fn for_origin(origin: Origin, token: Option<Secret>) -> HttpPolicy {
        HttpPolicy {
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
        }
    }

    pub fn allows(&self, origin: &Origin) -> bool {
        self.allowed.iter().any(|o| o == origin)
    }

    /// The guest's timeouts, never above the host's. (Connections are pooled per run and
    /// opened with the host's connect timeout; a guest's shorter one is not applied.)
    pub(super) fn clamp(&self, guest: Option<RequestOptions>) -> RequestOptions {
        let guest = guest.unwrap_or_default();
        let min = |g: Option<Duration>, cap: Duration| Some(g.map_or(cap, |g| g.min(cap)));
        RequestOptions {
            connect_timeout: min(guest.connect_timeout, self.connect_timeout),
            first_byte_timeout: min(guest.first_byte_timeout, self.first_byte_timeout),
            between_bytes_timeout: min(guest.between_bytes_timeout, self.between_bytes_timeout),
        }
    }
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
