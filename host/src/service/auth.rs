//! ConductorOne credentials and access tokens.
//!
//! * [`Credentials::parse`] checks `BATON_CLIENT_ID` / `BATON_CLIENT_SECRET` (and
//!   `BATON_C1_API_HOST`) up front. Its errors name the variable and what is wrong with it, and
//!   never contain any part of the secret.
//! * [`TokenSource`] exchanges an Ed25519-signed JWT client assertion for an access token at
//!   `https://<host>/auth/v1/token`, and reuses the token until shortly before it expires.
//!   [`TokenSource::startup`] retries an unreachable endpoint with backoff; a refusal (HTTP
//!   400, 401 or 403) is final at once: retrying the same credentials cannot help.

use crate::net::proxy::Proxies;
use crate::net::trust::Trust;
use anyhow::anyhow;
use baton::c1::credentials::{self, ClientId, ClientSecret, TokenResponse};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// A parsed client id and secret, and the host both the token request and the gRPC service go
/// to. `Debug` shows no key material.
#[derive(Clone)]
pub struct Credentials {
    pub id: ClientId,
    secret: ClientSecret,
    /// The tenant host (`BATON_C1_API_HOST` when set, else the client id's), maybe with a port.
    pub host: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id.full)
            .field("secret", &"<redacted>")
            .field("host", &self.host)
            .finish()
    }
}

impl Credentials {
    /// Parses the client id (`<clientName>@<tokenHost>/<suffix>`) and the client secret
    /// (`secret-token:conductorone.com:v1:<key>`); `api_host` overrides the id's token host.
    pub fn parse(
        client_id: &str,
        client_secret: &str,
        api_host: Option<&str>,
    ) -> anyhow::Result<Credentials> {
        let id = ClientId::parse(client_id.trim()).map_err(|e| {
            anyhow!("the ConductorOne client id (--client-id / BATON_CLIENT_ID) is invalid: {e}")
        })?;
        // The error values never carry the input; only their messages are used.
        let secret = ClientSecret::parse(client_secret.trim()).map_err(|e| {
            anyhow!(
                "the ConductorOne client secret (--client-secret / BATON_CLIENT_SECRET) is invalid: {e} \
                 (copy it again from ConductorOne: it starts with \"secret-token:conductorone.com:v1:\")"
            )
        })?;
        let host = credentials::effective_host(&id, api_host);
        if host.contains('/') || host.contains('@') || host.chars().any(char::is_whitespace) {
            return Err(anyhow!(
                "the ConductorOne host {host:?} (BATON_C1_API_HOST or the client id's host) is not a host name \
                 (expected e.g. acme.conductor.one or 127.0.0.1:8443)"
            ));
        }
        Ok(Credentials { id, secret, host })
    }

    /// `https://<host>/auth/v1/token`.
    pub fn token_url(&self) -> String {
        credentials::token_url(&self.host)
    }

    /// The gRPC endpoint: `https://<host>:443` unless the host names a port.
    pub fn grpc_url(&self) -> String {
        format!(
            "https://{}",
            credentials::with_default_port(&self.host, 443)
        )
    }
}

/// An HTTPS client builder for the token endpoint: these roots, the environment's proxy.
fn reqwest_builder(trust: &Trust) -> anyhow::Result<reqwest::ClientBuilder> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(trust.client_config()?)
        .proxy(Proxies::global().reqwest_proxy()))
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The endpoint answered 400, 401 or 403: the credentials are wrong, revoked or for
    /// another tenant. Not retried.
    #[error(
        "ConductorOne refused the client credentials (Unauthenticated: HTTP {status}{reason}); check BATON_CLIENT_ID and \
         BATON_CLIENT_SECRET (and BATON_C1_API_HOST, if set)"
    )]
    Refused { status: u16, reason: String },
    /// The endpoint could not be reached or answered an error that may pass (5xx, 429, …).
    #[error("cannot get an access token from {url}: {message}")]
    Unavailable { url: String, message: String },
}

impl TokenError {
    pub fn is_refusal(&self) -> bool {
        matches!(self, TokenError::Refused { .. })
    }
}

/// A token and when to stop using it. `Debug` is redacted.
#[derive(Clone)]
struct Cached {
    /// `<token_type> <access_token>`: the value of the `authorization` metadata.
    authorization: String,
    refresh_at: Instant,
}

/// How long a token whose answer gave no `expires_in` is used.
const UNSTATED_LIFETIME: Duration = Duration::from_secs(3600);

/// How long before its expiry a token is replaced: a minute, or half its lifetime if shorter.
pub fn refresh_after(expires_in: Duration) -> Duration {
    expires_in.saturating_sub((expires_in / 2).min(Duration::from_secs(60)))
}

/// Fetches access tokens and caches the current one.
pub struct TokenSource {
    creds: Credentials,
    http: reqwest::Client,
    url: String,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The longest error text of the endpoint's that is quoted in a message.
const MAX_REASON: usize = 200;

impl TokenSource {
    pub fn new(creds: Credentials, trust: &Trust, user_agent: &str) -> anyhow::Result<TokenSource> {
        let http = reqwest_builder(trust)?
            .user_agent(user_agent)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .https_only(true)
            // A redirect would resend the signed client assertion to wherever the answer
            // points; ConductorOne's token endpoint never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow!("cannot set up the HTTPS client for ConductorOne: {e}"))?;
        let url = creds.token_url();
        Ok(TokenSource {
            creds,
            http,
            url,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The `authorization` value for a call: the cached token, or a fresh one (one attempt).
    /// Concurrent callers wait for a single request.
    pub async fn authorization(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.authorization.clone());
        }
        let fresh = self.fetch().await?;
        let value = fresh.authorization.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Forgets the cached token (after ConductorOne answered `Unauthenticated` to it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// Gets a first token, retrying an unreachable endpoint `attempts` times with exponential
    /// backoff from `backoff` up to `max_backoff`. A refusal ends it at once.
    pub async fn startup(
        &self,
        attempts: u32,
        backoff: Duration,
        max_backoff: Duration,
    ) -> anyhow::Result<()> {
        let attempts = attempts.max(1);
        let mut backoff = super::Backoff::new(backoff, max_backoff);
        for attempt in 1..=attempts {
            match self.authorization().await {
                Ok(_) => {
                    if attempt > 1 {
                        tracing::info!(attempt, "got an access token from ConductorOne");
                    }
                    return Ok(());
                }
                Err(e) if e.is_refusal() => return Err(e.into()),
                Err(e) if attempt == attempts => {
                    return Err(anyhow!(
                        "{e}; gave up after {attempts} attempts (is the ConductorOne host reachable from here?)"
                    ));
                }
                Err(e) => backoff.retry(attempt, attempts, e.to_string()).await,
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    async fn fetch(&self) -> Result<Cached, TokenError> {
        let unavailable = |message: String| TokenError::Unavailable {
            url: self.url.clone(),
            message,
        };
        // The audience is the client id's own host, even when BATON_C1_API_HOST sends the
        // request elsewhere (as baton-sdk does it).
        let assertion = credentials::client_assertion(
            &self.creds.id,
            &self.creds.secret,
            &self.creds.id.token_host,
            SystemTime::now(),
        );
        let body = credentials::token_request_body(&self.creds.id, &assertion);
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(error_chain(&e)))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unavailable(error_chain(&e)))?;
        if matches!(status, 400 | 401 | 403) {
            return Err(TokenError::Refused {
                status,
                reason: refusal_reason(&bytes),
            });
        }
        if (300..400).contains(&status) {
            return Err(unavailable(format!(
                "HTTP {status}: the token endpoint redirects, and redirects are not followed (the signed \
                 client assertion goes to {} only); check BATON_C1_API_HOST",
                self.url
            )));
        }
        if status != 200 {
            return Err(unavailable(format!(
                "HTTP {status}{}",
                refusal_reason(&bytes)
            )));
        }
        let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
            unavailable("the answer is not a token response (JSON with access_token)".into())
        })?;
        if token.access_token.is_empty() {
            return Err(unavailable("the answer has an empty access_token".into()));
        }
        let authorization = format!("{} {}", token_type(&token.token_type), token.access_token);
        if tonic::metadata::MetadataValue::<tonic::metadata::Ascii>::try_from(&authorization)
            .is_err()
        {
            return Err(unavailable(
                "the access token is not valid in a header".into(),
            ));
        }
        // Without a lifetime the token is used for an hour, or until ConductorOne refuses it.
        let lifetime = token
            .expires_in
            .map_or(UNSTATED_LIFETIME, |s| Duration::from_secs(s.max(0) as u64));
        tracing::debug!(
            expires_in_s = lifetime.as_secs(),
            "got an access token from ConductorOne"
        );
        Ok(Cached {
            authorization,
            refresh_at: Instant::now() + refresh_after(lifetime),
        })
    }
}

/// The scheme of the `authorization` metadata for a token of type `raw`, normalised as Go's
/// oauth2 `Token.Type()` does: empty or any case of `bearer` is `Bearer`, likewise `MAC` and
/// `Basic`; anything else as given.
pub fn token_type(raw: &str) -> String {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("bearer") {
        "Bearer".into()
    } else if raw.eq_ignore_ascii_case("mac") {
        "MAC".into()
    } else if raw.eq_ignore_ascii_case("basic") {
        "Basic".into()
    } else {
        raw.into()
    }
}

/// ` error: error_description` from an OAuth error body, shortened; empty when there is none.
fn refusal_reason(body: &[u8]) -> String {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let text = |k: &str| {
        json.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (error, description) = (text("error"), text("error_description"));
    let mut reason = match (error.is_empty(), description.is_empty()) {
        (true, true) => return String::new(),
        (false, true) => error,
        (true, false) => description,
        (false, false) => format!("{error}: {description}"),
    };
    if reason.chars().count() > MAX_REASON {
        reason = reason.chars().take(MAX_REASON).collect::<String>() + "…";
    }
    format!(", {reason}")
}

/// An error and its sources, `a: b: c`.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let message = s.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_types_are_normalised_as_oauth2_does() {
        for (raw, sent) in [
            ("bearer", "Bearer"),
            ("BEARER", "Bearer"),
            ("", "Bearer"),
            (" Bearer ", "Bearer"),
            ("mac", "MAC"),
            ("basic", "Basic"),
            ("DPoP", "DPoP"),
        ] {
            assert_eq!(token_type(raw), sent, "{raw:?}");
        }
    }

    #[test]
    fn refresh_margin() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3540)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn malformed_credentials_are_clear_and_never_leak_the_secret() {
        let (id, secret, _) = credentials::generate_credentials("svc", "acme.conductor.one");
        let ok = Credentials::parse(&id, &secret, None).unwrap();
        assert_eq!(ok.host, "acme.conductor.one");
        assert_eq!(ok.grpc_url(), "https://acme.conductor.one:443");
        assert_eq!(ok.token_url(), "https://acme.conductor.one/auth/v1/token");
        assert!(!format!("{ok:?}").contains(&secret[34..50]));
        let local = Credentials::parse(&id, &secret, Some("127.0.0.1:9443")).unwrap();
        assert_eq!(local.grpc_url(), "https://127.0.0.1:9443");

        let err = Credentials::parse("no-at-sign", &secret, None).unwrap_err();
        assert!(err.to_string().contains("BATON_CLIENT_ID"), "{err}");
        // A secret with a corrupted key part: the message names the variable, not the value.
        let bad = format!("{}!!{}", &secret[..40], &secret[42..]);
        let err = format!("{:#}", Credentials::parse(&id, &bad, None).unwrap_err());
        assert!(err.contains("BATON_CLIENT_SECRET"), "{err}");
        assert!(!err.contains(&bad[34..60]), "{err}");
        let err = format!(
            "{:#}",
            Credentials::parse(&id, "hunter2-not-a-secret", None).unwrap_err()
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    /// A TLS server on loopback answering every request with `answer`; its certificate's PEM,
    /// its port, and how many connections it got.
    async fn tls_server(
        answer: String,
    ) -> (String, u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (cert, config) = crate::test_support::self_signed_server(&["127.0.0.1"]);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, answer) = (acceptor.clone(), answer.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let mut buf = vec![0u8; 16 * 1024];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (cert.pem(), port, connections)
    }

    #[tokio::test]
    async fn the_token_endpoint_is_not_followed_through_a_redirect() {
        use std::sync::atomic::Ordering;
        // Where a redirect would send the signed client assertion.
        let (elsewhere_pem, elsewhere, followed) = tls_server(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into(),
        )
        .await;
        let (pem, port, _) = tls_server(format!(
            "HTTP/1.1 302 Found\r\nlocation: https://127.0.0.1:{elsewhere}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ))
        .await;
        let (id, secret, _) = credentials::generate_credentials("svc", "acme.conductor.one");
        let creds = Credentials::parse(&id, &secret, Some(&format!("127.0.0.1:{port}"))).unwrap();
        let trust = Trust::with_ca_pem(format!("{pem}{elsewhere_pem}")).unwrap();
        let tokens = TokenSource::new(creds, &trust, "test").unwrap();
        let err = tokens.authorization().await.unwrap_err();
        assert!(
            matches!(&err, TokenError::Unavailable { message, .. } if message.contains("HTTP 302") && message.contains("not followed")),
            "{err}"
        );
        assert_eq!(
            followed.load(Ordering::SeqCst),
            0,
            "the redirect was not followed"
        );
    }

    #[test]
    fn refusal_reasons_are_quoted_short() {
        assert_eq!(
            refusal_reason(br#"{"error":"invalid_client","error_description":"bad key"}"#),
            ", invalid_client: bad key"
        );
        assert_eq!(refusal_reason(b"<html>"), "");
        let long = format!(r#"{{"error":"{}"}}"#, "x".repeat(500));
        assert!(refusal_reason(long.as_bytes()).chars().count() < 210);
    }
}
