//! ConductorOne service credentials: `BATON_CLIENT_ID`, `BATON_CLIENT_SECRET` and the
//! Ed25519-signed JWT client assertion exchanged for an access token.
//!
//! * Client id: `<clientName>@<tokenHost>/<suffix>` ([`ClientId::parse`]).
//! * Client secret: `secret-token:conductorone.com:v1:<base64url-nopad(JWK JSON)>`, the JWK
//!   being a private Ed25519 key (`kty` `OKP`, `crv` `Ed25519`, `x`, `d`)
//!   ([`ClientSecret::parse`]). Nothing here ever prints the secret: its `Debug` is redacted
//!   and no error message carries any part of it.
//! * Token request: `POST https://<host>/auth/v1/token`, form-encoded
//!   ([`token_request_body`]), with a compact JWS ([`client_assertion`]) as
//!   `client_assertion`; answer [`TokenResponse`]. A fake server checks the assertion with
//!   [`verify_assertion`].
//!
//! `BATON_C1_API_HOST` (which may carry a port) overrides the token host for both the token
//! request and the gRPC endpoint ([`effective_host`]); the assertion's audience is that host
//! without its port.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::{Value, json};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use ed25519_dalek;

/// The token endpoint's path on the tenant host.
pub const TOKEN_PATH: &str = "/auth/v1/token";
/// `grant_type` of the token request.
pub const GRANT_TYPE: &str = "client_credentials";
/// `client_assertion_type` of the token request.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The JWS algorithm of the assertion.
pub const ALG: &str = "EdDSA";
/// How far before "now" the assertion's `nbf` lies, and how far after it its `exp`.
pub const ASSERTION_SKEW: Duration = Duration::from_secs(120);
/// Clock leeway [`verify_assertion`] allows on `nbf` and `exp`.
#[cfg(any(test, feature = "test-support"))]
pub const VERIFY_LEEWAY: Duration = Duration::from_secs(10);
/// The longest `exp − nbf` window [`verify_assertion`] accepts.
#[cfg(any(test, feature = "test-support"))]
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// The 3 fixed leading parts of a client secret.
#[cfg(any(test, feature = "test-support"))]
const SECRET_PREFIX: &str = "secret-token:conductorone.com:v1:";
/// How every client secret starts.
const SECRET_PREFIX_HEAD: &str = "secret-token:";

/// Why a client id or secret was rejected. Secret errors never include any part of the
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("client id is empty")]
    EmptyClientId,
    /// The secret given where the id belongs: never echoed.
    #[error(
        "client id looks like a client secret (it starts with \"secret-token:\"); the id is \
         <clientName>@<tokenHost>/<suffix> and the secret goes in the client secret"
    )]
    ClientIdIsASecret,
    #[error("client id {0:?} contains whitespace or control characters")]
    ClientIdBadCharacters(String),
    #[error("client id {0:?} has no '@' (expected <clientName>@<tokenHost>/<suffix>)")]
    ClientIdMissingAt(String),
    #[error("client id {0:?} has an empty client name before '@'")]
    ClientIdEmptyName(String),
    #[error(
        "client id {0:?} has no '/' after the token host (expected <clientName>@<tokenHost>/<suffix>)"
    )]
    ClientIdMissingSlash(String),
    #[error("client id {0:?} has an empty token host between '@' and '/'")]
    ClientIdEmptyHost(String),
    #[error("client id {0:?} has an empty suffix after '/'")]
    ClientIdEmptySuffix(String),
    #[error("client secret is empty")]
    EmptySecret,
    #[error(
        "client secret is malformed: expected secret-token:<issuer>:v1:<key> (4 parts separated by ':')"
    )]
    SecretMalformed,
    #[error("client secret does not start with \"secret-token:\"")]
    SecretBadPrefix,
    #[error("client secret has an unsupported version (only v1 is supported)")]
    SecretBadVersion,
    #[error("client secret key is not valid base64url")]
    SecretBadBase64,
    #[error("client secret key is not a JSON object (a JWK)")]
    SecretBadJson,
    #[error("client secret key is not an OKP key (JWK kty must be \"OKP\")")]
    SecretBadKeyType,
    #[error("client secret key is not an Ed25519 key (JWK crv must be \"Ed25519\")")]
    SecretBadCurve,
    #[error("client secret key has no private part (JWK member \"d\")")]
    SecretMissingPrivate,
    #[error("client secret key has no public part (JWK member \"x\")")]
    SecretMissingPublic,
    #[error("client secret key member {0:?} is not a 32-byte base64url value")]
    SecretBadKeyMaterial(&'static str),
    #[error("client secret key's public part does not match its private part")]
    SecretKeyMismatch,
}

/// A parsed `BATON_CLIENT_ID`: `<clientName>@<tokenHost>/<suffix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId {
    /// The whole id, as given (the assertion's `iss` and `sub`, the form's `client_id`).
    pub full: String,
    /// The part before the first `@` (used in the User-Agent).
    pub client_name: String,
    /// Between the first `@` and the next `/`: the ConductorOne tenant host (may carry a
    /// port).
    pub token_host: String,
}

impl ClientId {
    /// Splits at the first `@`, then the remainder at the first `/`. Every part must be
    /// non-empty and the id must not contain whitespace or control characters.
    pub fn parse(s: &str) -> Result<ClientId, CredentialError> {
        if s.is_empty() {
            return Err(CredentialError::EmptyClientId);
        }
        // The id is echoed in errors to help fix it; a secret pasted there must not be.
        if s.trim_start()
            .get(..SECRET_PREFIX_HEAD.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(SECRET_PREFIX_HEAD))
        {
            return Err(CredentialError::ClientIdIsASecret);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(CredentialError::ClientIdBadCharacters(s.to_string()));
        }
        let (name, rest) = s
            .split_once('@')
            .ok_or_else(|| CredentialError::ClientIdMissingAt(s.to_string()))?;
        if name.is_empty() {
            return Err(CredentialError::ClientIdEmptyName(s.to_string()));
        }
        let (host, suffix) = rest
            .split_once('/')
            .ok_or_else(|| CredentialError::ClientIdMissingSlash(s.to_string()))?;
        if host.is_empty() {
            return Err(CredentialError::ClientIdEmptyHost(s.to_string()));
        }
        if suffix.is_empty() {
            return Err(CredentialError::ClientIdEmptySuffix(s.to_string()));
        }
        Ok(ClientId {
            full: s.to_string(),
            client_name: name.to_string(),
            token_host: host.to_string(),
        })
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl std::str::FromStr for ClientId {
    type Err = CredentialError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientId::parse(s)
    }
}

/// A parsed `BATON_CLIENT_SECRET`: an Ed25519 private key. `Debug` prints no key material
/// and the type has no `Display`.
#[derive(Clone)]
pub struct ClientSecret {
    key: SigningKey,
    /// The JWK's `kid`, named in the assertion's header as go-jose does.
    kid: Option<String>,
}

impl ClientSecret {
    /// Parses `secret-token:<issuer>:v1:<base64url-nopad(JWK JSON)>` (split on `:` into at
    /// most 4 parts; the 3rd must be `v1`). The JWK must be an Ed25519 private key whose
    /// `x` matches `d`. Errors never contain any part of `s`.
    pub fn parse(s: &str) -> Result<ClientSecret, CredentialError> {
        if s.is_empty() {
            return Err(CredentialError::EmptySecret);
        }
        let parts: Vec<&str> = s.splitn(4, ':').collect();
        if parts.len() != 4 {
            return Err(CredentialError::SecretMalformed);
        }
        if parts[0] != "secret-token" {
            return Err(CredentialError::SecretBadPrefix);
        }
        if parts[2] != "v1" {
            return Err(CredentialError::SecretBadVersion);
        }
        let jwk = URL_SAFE_NO_PAD
            .decode(parts[3].trim_end_matches('='))
            .map_err(|_| CredentialError::SecretBadBase64)?;
        // serde_json's messages may quote input: never pass them on.
        let jwk: Value =
            serde_json::from_slice(&jwk).map_err(|_| CredentialError::SecretBadJson)?;
        let jwk = jwk.as_object().ok_or(CredentialError::SecretBadJson)?;
        if jwk.get("kty").and_then(Value::as_str) != Some("OKP") {
            return Err(CredentialError::SecretBadKeyType);
        }
        if jwk.get("crv").and_then(Value::as_str) != Some("Ed25519") {
            return Err(CredentialError::SecretBadCurve);
        }
        let d = jwk.get("d").ok_or(CredentialError::SecretMissingPrivate)?;
        let x = jwk.get("x").ok_or(CredentialError::SecretMissingPublic)?;
        let d = key_bytes(d, "d")?;
        let x = key_bytes(x, "x")?;
        let key = SigningKey::from_bytes(&d);
        if key.verifying_key().as_bytes() != &x {
            return Err(CredentialError::SecretKeyMismatch);
        }
        let kid = jwk
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        Ok(ClientSecret { key, kid })
    }

    /// Wraps a signing key (a JWK without `kid`).
    pub fn from_signing_key(key: SigningKey) -> ClientSecret {
        ClientSecret { key, kid: None }
    }

    /// The JWK's key id, if it has one.
    pub fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The Ed25519 public key (what ConductorOne verifies assertions with).
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The secret in its `BATON_CLIENT_SECRET` form.
    #[cfg(any(test, feature = "test-support"))]
    pub fn to_secret_string(&self) -> String {
        encode_client_secret_with_kid(&self.key, self.kid.as_deref())
    }

    fn sign(&self, msg: &[u8]) -> Signature {
        self.key.sign(msg)
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl std::str::FromStr for ClientSecret {
    type Err = CredentialError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientSecret::parse(s)
    }
}

fn key_bytes(v: &Value, member: &'static str) -> Result<[u8; 32], CredentialError> {
    let s = v
        .as_str()
        .ok_or(CredentialError::SecretBadKeyMaterial(member))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| CredentialError::SecretBadKeyMaterial(member))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| CredentialError::SecretBadKeyMaterial(member))
}

/// The `BATON_CLIENT_SECRET` form of a key:
/// `secret-token:conductorone.com:v1:<base64url-nopad({"kty":"OKP","crv":"Ed25519","x":…,"d":…})>`.
#[cfg(any(test, feature = "test-support"))]
pub fn encode_client_secret(key: &SigningKey) -> String {
    encode_client_secret_with_kid(key, None)
}

/// Like [`encode_client_secret`], the JWK carrying `kid` when given (as ConductorOne's do).
#[cfg(any(test, feature = "test-support"))]
pub fn encode_client_secret_with_kid(key: &SigningKey, kid: Option<&str>) -> String {
    let mut jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        "d": URL_SAFE_NO_PAD.encode(key.to_bytes()),
    });
    if let Some(kid) = kid {
        jwk["kid"] = Value::String(kid.to_string());
    }
    format!(
        "{SECRET_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(jwk.to_string().as_bytes())
    )
}

/// A fresh credential pair for tests and demos: `(client_id, client_secret, public_key)`,
/// the id being `<client_name>@<token_host>/fake`.
#[cfg(any(test, feature = "test-support"))]
pub fn generate_credentials(client_name: &str, token_host: &str) -> (String, String, VerifyingKey) {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let id = format!("{client_name}@{token_host}/fake");
    (id, encode_client_secret(&key), key.verifying_key())
}

/// The host requests go to: `BATON_C1_API_HOST` when set and non-empty, else the client
/// id's token host. Either may carry a port.
pub fn effective_host(id: &ClientId, api_host_override: Option<&str>) -> String {
    match api_host_override.map(str::trim) {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => id.token_host.clone(),
    }
}

/// `host` without a `:port` suffix (`[v6]:port` → `v6`; a bare IPv6 address is kept).
pub fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.split_once(':') {
        Some((h, port)) if !port.contains(':') => h,
        _ => host,
    }
}

/// `host` with `:default_port` appended unless it has a port (for the gRPC endpoint, 443).
pub fn with_default_port(host: &str, default_port: u16) -> String {
    let has_port = if host.starts_with('[') {
        host.contains("]:")
    } else {
        host.matches(':').count() == 1
    };
    if has_port {
        host.to_string()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{default_port}")
    } else {
        format!("{host}:{default_port}")
    }
}

/// `https://<host>/auth/v1/token`.
pub fn token_url(host: &str) -> String {
    format!("https://{host}{TOKEN_PATH}")
}

/// The `application/x-www-form-urlencoded` body of the token request.
pub fn token_request_body(client_id: &ClientId, assertion: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client_id.full)
        .append_pair("grant_type", GRANT_TYPE)
        .append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
        .append_pair("client_assertion", assertion)
        .finish()
}

/// The token endpoint's JSON answer. Tokens are reused until they expire; the
/// `authorization` metadata is `<token_type> <access_token>`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer` when absent (OAuth 2 makes it required; clients commonly default it).
    #[serde(default)]
    pub token_type: String,
    /// Lifetime in seconds; absent when the server does not say (OAuth 2 makes it optional).
    #[serde(default)]
    pub expires_in: Option<i64>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The client assertion for the token request, as baton-sdk makes it (go-jose): a compact
/// JWS with protected header `{"alg":"EdDSA","kid":<the JWK's kid, when it has one>,
/// "nonce":<16 random bytes, hex>}` and claims `iss` = `sub` = the full client id,
/// `aud` = `aud_host` without its port (one string), `iat` = now, `nbf` = now − 120 s,
/// `exp` = now + 120 s, signed with the secret's Ed25519 key. `aud_host` is the client id's
/// host even when `BATON_C1_API_HOST` sends the request elsewhere.
pub fn client_assertion(
    id: &ClientId,
    secret: &ClientSecret,
    aud_host: &str,
    now: SystemTime,
) -> String {
    let now = unix_seconds(now);
    let skew = ASSERTION_SKEW.as_secs() as i64;
    let mut header = json!({
        "alg": ALG,
        "nonce": hex(&rand::random::<[u8; 16]>()),
    });
    if let Some(kid) = secret.key_id() {
        header["kid"] = Value::String(kid.to_string());
    }
    let claims = json!({
        "iss": id.full,
        "sub": id.full,
        "aud": host_without_port(aud_host),
        "iat": now,
        "nbf": now - skew,
        "exp": now + skew,
    });
    sign_compact(secret, &header, &claims)
}

/// The compact JWS of `header` and `claims`, signed with `secret`.
fn sign_compact(secret: &ClientSecret, header: &Value, claims: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string().as_bytes()),
        URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
    );
    let sig = secret.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// The verified content of a client assertion.
#[cfg(any(test, feature = "test-support"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The protected header's `nonce`.
    pub nonce: String,
    /// `aud` was one string (as baton-sdk sends it), not an array.
    pub aud_is_string: bool,
    /// The protected header's `kid` and `typ`, when present.
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// Why [`verify_assertion`] rejected an assertion.
#[cfg(any(test, feature = "test-support"))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("not a compact JWS (three base64url parts separated by '.')")]
    Malformed,
    #[error("JWS header is not a base64url JSON object")]
    BadHeader,
    #[error("JWS claims are not a base64url JSON object")]
    BadClaims,
    #[error("unsupported JWS algorithm {0:?} (expected EdDSA)")]
    BadAlgorithm(String),
    #[error("JWS header has no nonce")]
    MissingNonce,
    #[error("JWS signature does not verify")]
    BadSignature,
    #[error("claim {0:?} is missing or has the wrong type")]
    MissingClaim(&'static str),
    #[error("issuer {0:?} is not the expected client id")]
    WrongIssuer(String),
    #[error("subject {0:?} is not the expected client id")]
    WrongSubject(String),
    #[error("audience {0:?} does not contain the expected host")]
    WrongAudience(Vec<String>),
    #[error("assertion is not valid yet")]
    NotYetValid,
    #[error("assertion has expired")]
    Expired,
    #[error("assertion lifetime is too long")]
    LifetimeTooLong,
}

#[cfg(any(test, feature = "test-support"))]
fn decode_json_part(part: &str) -> Option<serde_json::Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Verifies a client assertion the way ConductorOne's token endpoint would: algorithm
/// EdDSA, a `nonce` in the protected header, the signature under `public_key`,
/// `iss` = `sub` = `expected_client_id`, `aud` (a string or an array) containing
/// `expected_aud`, `iat` present, and `nbf` ≤ now < `exp` (each with [`VERIFY_LEEWAY`]),
/// with `exp − nbf` at most [`MAX_ASSERTION_LIFETIME`].
#[cfg(any(test, feature = "test-support"))]
pub fn verify_assertion(
    jws: &str,
    public_key: &VerifyingKey,
    expected_client_id: &str,
    expected_aud: &str,
    now: SystemTime,
) -> Result<Claims, AssertionError> {
    let mut parts = jws.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AssertionError::Malformed);
    };
    let header = decode_json_part(h).ok_or(AssertionError::BadHeader)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != ALG {
        return Err(AssertionError::BadAlgorithm(alg.to_string()));
    }
    let nonce = header
        .get("nonce")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or(AssertionError::MissingNonce)?
        .to_string();
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AssertionError::BadSignature)?;
    let sig = Signature::from_slice(&sig).map_err(|_| AssertionError::BadSignature)?;
    let signing_input = &jws[..h.len() + 1 + c.len()];
    public_key
        .verify_strict(signing_input.as_bytes(), &sig)
        .map_err(|_| AssertionError::BadSignature)?;

    let claims = decode_json_part(c).ok_or(AssertionError::BadClaims)?;
    let string = |k: &'static str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(AssertionError::MissingClaim(k))
    };
    let number = |k: &'static str| {
        claims
            .get(k)
            .and_then(Value::as_i64)
            .ok_or(AssertionError::MissingClaim(k))
    };
    let iss = string("iss")?;
    let sub = string("sub")?;
    let aud_is_string = matches!(claims.get("aud"), Some(Value::String(_)));
    let aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or(AssertionError::MissingClaim("aud"))?,
        _ => return Err(AssertionError::MissingClaim("aud")),
    };
    let iat = number("iat")?;
    let nbf = number("nbf")?;
    let exp = number("exp")?;

    if iss != expected_client_id {
        return Err(AssertionError::WrongIssuer(iss));
    }
    if sub != expected_client_id {
        return Err(AssertionError::WrongSubject(sub));
    }
    if !aud.iter().any(|a| a == expected_aud) {
        return Err(AssertionError::WrongAudience(aud));
    }
    let now = unix_seconds(now);
    let leeway = VERIFY_LEEWAY.as_secs() as i64;
    if now + leeway < nbf {
        return Err(AssertionError::NotYetValid);
    }
    if now - leeway >= exp {
        return Err(AssertionError::Expired);
    }
    if exp.saturating_sub(nbf) > MAX_ASSERTION_LIFETIME.as_secs() as i64 {
        return Err(AssertionError::LifetimeTooLong);
    }
    Ok(Claims {
        iss,
        sub,
        aud,
        iat,
        nbf,
        exp,
        nonce,
        aud_is_string,
        kid: header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string),
        typ: header
            .get("typ")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s.as_bytes())
    }

    fn secret_with_jwk(jwk: &str) -> String {
        format!("secret-token:conductorone.com:v1:{}", b64(jwk))
    }

    fn fresh() -> (ClientId, ClientSecret, VerifyingKey) {
        let (id, secret, pk) = generate_credentials("tester", "tenant.example.com");
        (
            ClientId::parse(&id).unwrap(),
            ClientSecret::parse(&secret).unwrap(),
            pk,
        )
    }

    #[test]
    fn client_id_parses_fields() {
        let id = ClientId::parse("my-connector@acme.conductor.one/pcc").unwrap();
        assert_eq!(id.full, "my-connector@acme.conductor.one/pcc");
        assert_eq!(id.client_name, "my-connector");
        assert_eq!(id.token_host, "acme.conductor.one");
        assert_eq!(id.to_string(), id.full);

        // First '@' and first '/' win; the suffix may hold more of both.
        let id = ClientId::parse("a@h:8443/x/y@z").unwrap();
        assert_eq!(id.client_name, "a");
        assert_eq!(id.token_host, "h:8443");
        let id: ClientId = "test@127.0.0.1:4443/lambda".parse().unwrap();
        assert_eq!(id.token_host, "127.0.0.1:4443");
    }

    #[test]
    fn client_id_malformed_cases() {
        use CredentialError::*;
        type Case = (&'static str, fn(String) -> CredentialError);
        let cases: &[Case] = &[
            ("acme.conductor.one/pcc", ClientIdMissingAt),
            ("@acme.conductor.one/pcc", ClientIdEmptyName),
            ("name@acme.conductor.one", ClientIdMissingSlash),
            ("name@/pcc", ClientIdEmptyHost),
            ("name@acme.conductor.one/", ClientIdEmptySuffix),
            ("name@acme conductor.one/pcc", ClientIdBadCharacters),
            ("name@acme.conductor.one/pcc\n", ClientIdBadCharacters),
        ];
        for (input, want) in cases {
            let err = ClientId::parse(input).unwrap_err();
            assert_eq!(err, want(input.to_string()), "input {input:?}");
            assert!(!err.to_string().is_empty());
        }
        assert_eq!(ClientId::parse(""), Err(EmptyClientId));
    }

    /// Ids and secrets swapped: the secret in the id's place is refused without echoing it.
    #[test]
    fn a_secret_given_as_the_client_id_is_never_echoed() {
        let secret = encode_client_secret(&SigningKey::from_bytes(&[9u8; 32]));
        for given in [secret.clone(), format!(" {secret}"), secret.to_uppercase()] {
            let err = ClientId::parse(&given).unwrap_err();
            assert_eq!(err, CredentialError::ClientIdIsASecret);
            let text = format!("{err} {err:?}");
            assert!(!text.contains(&secret[33..45]), "{text}");
            assert!(text.contains("looks like a client secret"), "{text}");
        }
    }

    #[test]
    fn secret_round_trip_and_public_key() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let s = encode_client_secret(&key);
        assert!(s.starts_with("secret-token:conductorone.com:v1:"));
        let parsed = ClientSecret::parse(&s).unwrap();
        assert_eq!(parsed.public_key(), key.verifying_key());
        assert_eq!(parsed.to_secret_string(), s);
        // Padding and extra JWK members are tolerated.
        let jwk = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","kid":"k1","use":"sig","x":"{}","d":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            URL_SAFE_NO_PAD.encode(key.to_bytes())
        );
        let padded = format!(
            "secret-token:conductorone.com:v1:{}",
            base64::engine::general_purpose::URL_SAFE.encode(jwk.as_bytes())
        );
        let parsed = ClientSecret::parse(&padded).unwrap();
        assert_eq!(parsed.public_key(), key.verifying_key());
        assert_eq!(parsed.key_id(), Some("k1"));
        assert!(
            ClientSecret::parse(&parsed.to_secret_string())
                .unwrap()
                .key_id()
                == Some("k1")
        );
    }

    /// Every malformed secret gives its own error, and no error text nor `Debug` output
    /// contains the secret or a recognisable part of it.
    #[test]
    fn secret_malformed_cases_never_leak() {
        use CredentialError::*;
        let key = SigningKey::from_bytes(&[42u8; 32]);
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let d = URL_SAFE_NO_PAD.encode(key.to_bytes());
        let other_x = URL_SAFE_NO_PAD.encode(
            SigningKey::from_bytes(&[1u8; 32])
                .verifying_key()
                .as_bytes(),
        );
        let good = encode_client_secret(&key);
        let payload = good.rsplit(':').next().unwrap().to_string();
        let cases: Vec<(String, CredentialError)> = vec![
            (String::new(), EmptySecret),
            ("secret-token:conductorone.com:v1".into(), SecretMalformed),
            (payload.clone(), SecretMalformed),
            (
                format!("secret-tokn:conductorone.com:v1:{payload}"),
                SecretBadPrefix,
            ),
            (
                format!("secret-token:conductorone.com:v2:{payload}"),
                SecretBadVersion,
            ),
            (
                format!("secret-token:conductorone.com:v1:{payload}$%!"),
                SecretBadBase64,
            ),
            (
                format!("secret-token:conductorone.com:v1:{}", b64("not json {")),
                SecretBadJson,
            ),
            (secret_with_jwk(&format!(r#"["{d}"]"#)), SecretBadJson),
            (
                secret_with_jwk(&format!(
                    r#"{{"kty":"EC","crv":"Ed25519","x":"{x}","d":"{d}"}}"#
                )),
                SecretBadKeyType,
            ),
            (
                secret_with_jwk(&format!(
                    r#"{{"kty":"OKP","crv":"X25519","x":"{x}","d":"{d}"}}"#
                )),
                SecretBadCurve,
            ),
            (
                secret_with_jwk(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#)),
                SecretMissingPrivate,
            ),
            (
                secret_with_jwk(&format!(r#"{{"kty":"OKP","crv":"Ed25519","d":"{d}"}}"#)),
                SecretMissingPublic,
            ),
            (
                secret_with_jwk(&format!(
                    r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","d":"{}"}}"#,
                    &d[..20]
                )),
                SecretBadKeyMaterial("d"),
            ),
            (
                secret_with_jwk(&format!(
                    r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","d":12345}}"#
                )),
                SecretBadKeyMaterial("d"),
            ),
            (
                secret_with_jwk(&format!(
                    r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}!!","d":"{d}"}}"#
                )),
                SecretBadKeyMaterial("x"),
            ),
            (
                secret_with_jwk(&format!(
                    r#"{{"kty":"OKP","crv":"Ed25519","x":"{other_x}","d":"{d}"}}"#
                )),
                SecretKeyMismatch,
            ),
        ];
        for (input, want) in &cases {
            let err = ClientSecret::parse(input).unwrap_err();
            assert_eq!(&err, want, "input {input:?}");
            let text = format!("{err} / {err:?} / {:#}", anyhow::Error::from(err.clone()));
            for needle in [d.as_str(), &d[..8], x.as_str(), &x[..8], &payload[..12]] {
                assert!(!text.contains(needle), "{text:?} leaks {needle:?}");
            }
            if input.len() > 16 {
                let tail = &input[input.len() - 12..];
                assert!(!text.contains(tail), "{text:?} leaks {tail:?}");
            }
        }
        let parsed = ClientSecret::parse(&good).unwrap();
        let dbg = format!("{parsed:?}");
        assert_eq!(dbg, "ClientSecret(<redacted>)");
        assert!(!dbg.contains(&d[..8]) && !dbg.contains(&payload[..12]));
    }

    #[test]
    fn host_helpers() {
        assert_eq!(host_without_port("127.0.0.1:8443"), "127.0.0.1");
        assert_eq!(
            host_without_port("acme.conductor.one"),
            "acme.conductor.one"
        );
        assert_eq!(host_without_port("[::1]:443"), "::1");
        assert_eq!(host_without_port("::1"), "::1");
        assert_eq!(
            with_default_port("acme.conductor.one", 443),
            "acme.conductor.one:443"
        );
        assert_eq!(with_default_port("127.0.0.1:9", 443), "127.0.0.1:9");
        assert_eq!(with_default_port("[::1]:9", 443), "[::1]:9");
        assert_eq!(with_default_port("::1", 443), "[::1]:443");
        let id = ClientId::parse("n@acme.conductor.one/x").unwrap();
        assert_eq!(effective_host(&id, None), "acme.conductor.one");
        assert_eq!(effective_host(&id, Some("")), "acme.conductor.one");
        assert_eq!(effective_host(&id, Some("127.0.0.1:7")), "127.0.0.1:7");
        assert_eq!(
            token_url("127.0.0.1:7"),
            "https://127.0.0.1:7/auth/v1/token"
        );
    }

    #[test]
    fn token_request_body_is_form_encoded() {
        let id = ClientId::parse("n+1@h/x").unwrap();
        let body = token_request_body(&id, "a.b.c");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("client_id".into(), "n+1@h/x".into()),
                ("grant_type".into(), GRANT_TYPE.into()),
                ("client_assertion_type".into(), CLIENT_ASSERTION_TYPE.into()),
                ("client_assertion".into(), "a.b.c".into()),
            ]
        );
        let t: TokenResponse = serde_json::from_str(
            r#"{"access_token":"tok","token_type":"Bearer","expires_in":3600}"#,
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(3600));
        // Only access_token is required.
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"tok"}"#).unwrap();
        assert_eq!((t.token_type.as_str(), t.expires_in), ("", None));
        assert!(!format!("{t:?}").contains("tok\""));
    }

    #[test]
    fn assertion_round_trip() {
        let (id, secret, pk) = fresh();
        let now = SystemTime::now();
        let jws = client_assertion(&id, &secret, "tenant.example.com:443", now);
        let claims = verify_assertion(&jws, &pk, &id.full, "tenant.example.com", now).unwrap();
        assert_eq!(claims.iss, id.full);
        assert_eq!(claims.sub, id.full);
        assert_eq!(claims.aud, vec!["tenant.example.com".to_string()]);
        assert_eq!(claims.nbf, claims.iat - 120);
        assert_eq!(claims.exp, claims.iat + 120);
        assert_eq!(claims.iat, unix_seconds(now));
        // baton-sdk's form: one string audience, a hex nonce of 16 bytes, no `typ`, and
        // no `kid` for a JWK without one.
        assert!(claims.aud_is_string);
        assert_eq!(claims.nonce.len(), 32);
        assert!(
            claims
                .nonce
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let header = decode_json_part(jws.split('.').next().unwrap()).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(claims.typ, None);
        assert_eq!(claims.kid, None);
        assert!(!header.contains_key("kid"));
        // A JWK with a `kid` names it in the header.
        let with_kid = ClientSecret::parse(&encode_client_secret_with_kid(
            &SigningKey::from_bytes(&[9u8; 32]),
            Some("key-7"),
        ))
        .unwrap();
        assert_eq!(with_kid.key_id(), Some("key-7"));
        let jws_kid = client_assertion(&id, &with_kid, "tenant.example.com", now);
        let c = verify_assertion(
            &jws_kid,
            &with_kid.public_key(),
            &id.full,
            "tenant.example.com",
            now,
        )
        .unwrap();
        assert_eq!(c.kid.as_deref(), Some("key-7"));
        // A fresh nonce every time.
        let again = client_assertion(&id, &secret, "tenant.example.com", now);
        let claims2 = verify_assertion(&again, &pk, &id.full, "tenant.example.com", now).unwrap();
        assert_ne!(claims.nonce, claims2.nonce);
        // Still valid within the window, with leeway.
        verify_assertion(
            &jws,
            &pk,
            &id.full,
            "tenant.example.com",
            now + Duration::from_secs(125),
        )
        .unwrap();
        verify_assertion(
            &jws,
            &pk,
            &id.full,
            "tenant.example.com",
            now - Duration::from_secs(125),
        )
        .unwrap();
    }

    fn tamper_claims(jws: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut parts: Vec<String> = jws.split('.').map(str::to_string).collect();
        let mut claims = decode_json_part(&parts[1]).unwrap();
        f(&mut claims);
        parts[1] = URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string().as_bytes());
        parts.join(".")
    }

    #[test]
    fn tampered_or_foreign_assertions_are_rejected() {
        let (id, secret, pk) = fresh();
        let now = SystemTime::now();
        let aud = "tenant.example.com";
        let jws = client_assertion(&id, &secret, aud, now);

        // Claims changed after signing.
        let forged = tamper_claims(&jws, |c| {
            c.insert("exp".into(), json!(unix_seconds(now) + 100_000));
        });
        assert_eq!(
            verify_assertion(&forged, &pk, &id.full, aud, now),
            Err(AssertionError::BadSignature)
        );
        // A flipped signature bit.
        let mut sig = URL_SAFE_NO_PAD
            .decode(jws.rsplit('.').next().unwrap())
            .unwrap();
        sig[5] ^= 1;
        let (input, _) = jws.rsplit_once('.').unwrap();
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(
            verify_assertion(&flipped, &pk, &id.full, aud, now),
            Err(AssertionError::BadSignature)
        );
        // Signed by another key.
        let (_, other, _) = fresh();
        let foreign = client_assertion(&id, &other, aud, now);
        assert_eq!(
            verify_assertion(&foreign, &pk, &id.full, aud, now),
            Err(AssertionError::BadSignature)
        );
        // Structure.
        assert_eq!(
            verify_assertion("a.b", &pk, &id.full, aud, now),
            Err(AssertionError::Malformed)
        );
        assert_eq!(
            verify_assertion(&format!("{jws}.x"), &pk, &id.full, aud, now),
            Err(AssertionError::Malformed)
        );
        assert_eq!(
            verify_assertion("!!.b.c", &pk, &id.full, aud, now),
            Err(AssertionError::BadHeader)
        );
        // alg "none" and a missing nonce, even when validly signed.
        let claims = json!({"iss": id.full, "sub": id.full, "aud": [aud],
            "iat": unix_seconds(now), "nbf": unix_seconds(now) - 120, "exp": unix_seconds(now) + 120});
        let none = sign_compact(&secret, &json!({"alg": "none", "nonce": "abc"}), &claims);
        assert_eq!(
            verify_assertion(&none, &pk, &id.full, aud, now),
            Err(AssertionError::BadAlgorithm("none".into()))
        );
        let no_nonce = sign_compact(&secret, &json!({"alg": "EdDSA", "typ": "JWT"}), &claims);
        assert_eq!(
            verify_assertion(&no_nonce, &pk, &id.full, aud, now),
            Err(AssertionError::MissingNonce)
        );
        let ok = sign_compact(&secret, &json!({"alg": "EdDSA", "nonce": "abc"}), &claims);
        verify_assertion(&ok, &pk, &id.full, aud, now).unwrap();
        // A string audience is accepted too.
        let mut c2 = claims.clone();
        c2["aud"] = json!(aud);
        let s = sign_compact(&secret, &json!({"alg": "EdDSA", "nonce": "abc"}), &c2);
        verify_assertion(&s, &pk, &id.full, aud, now).unwrap();
        // Missing claim.
        let mut c3 = claims.clone();
        c3.as_object_mut().unwrap().remove("exp");
        let s = sign_compact(&secret, &json!({"alg": "EdDSA", "nonce": "abc"}), &c3);
        assert_eq!(
            verify_assertion(&s, &pk, &id.full, aud, now),
            Err(AssertionError::MissingClaim("exp"))
        );
        // Too long a lifetime.
        let mut c4 = claims.clone();
        c4["exp"] = json!(unix_seconds(now) + 3600);
        let s = sign_compact(&secret, &json!({"alg": "EdDSA", "nonce": "abc"}), &c4);
        assert_eq!(
            verify_assertion(&s, &pk, &id.full, aud, now),
            Err(AssertionError::LifetimeTooLong)
        );
        // iss differs from sub.
        let mut c5 = claims.clone();
        c5["sub"] = json!("someone@else/x");
        let s = sign_compact(&secret, &json!({"alg": "EdDSA", "nonce": "abc"}), &c5);
        assert_eq!(
            verify_assertion(&s, &pk, &id.full, aud, now),
            Err(AssertionError::WrongSubject("someone@else/x".into()))
        );
    }

    #[test]
    fn wrong_identity_audience_or_time_is_rejected() {
        let (id, secret, pk) = fresh();
        let now = SystemTime::now();
        let jws = client_assertion(&id, &secret, "tenant.example.com", now);
        assert_eq!(
            verify_assertion(
                &jws,
                &pk,
                "other@tenant.example.com/fake",
                "tenant.example.com",
                now
            ),
            Err(AssertionError::WrongIssuer(id.full.clone()))
        );
        assert_eq!(
            verify_assertion(&jws, &pk, &id.full, "127.0.0.1", now),
            Err(AssertionError::WrongAudience(vec![
                "tenant.example.com".into()
            ]))
        );
        // The same assertion checked at another time.
        let at = |t| verify_assertion(&jws, &pk, &id.full, "tenant.example.com", t);
        // exp = now + 120 s; leeway 10 s.
        assert_eq!(
            at(now + Duration::from_secs(131)),
            Err(AssertionError::Expired)
        );
        assert_eq!(
            at(now + Duration::from_secs(3600)),
            Err(AssertionError::Expired)
        );
        // nbf = now − 120 s.
        assert_eq!(
            at(now - Duration::from_secs(131)),
            Err(AssertionError::NotYetValid)
        );
        // Clock skew within [nbf, exp) is fine, whatever `iat` says.
        at(now - Duration::from_secs(60)).unwrap();
    }
}
