//! `POST /auth/v1/token`: the OAuth client-credentials grant with a JWT client assertion
//! (`private_key_jwt`, Ed25519), as ConductorOne's tenant host serves it.
//!
//! Order: count → scripted 503 → method (405) → form checks → assertion (baton-sdk's form:
//! a string `aud` of the client id's host, a hex nonce, the JWK's `kid`) → nonce replay →
//! token. Every refusal is `401` with a JSON body `{"error", "error_description"}` (405 and
//! 503 aside).

use super::model::LoggedRequest;
use super::server::Shared;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use baton::c1::credentials;
use serde_json::json;
use std::sync::Arc;
use std::time::SystemTime;

const MAX_BODY: usize = 64 * 1024;

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn refuse(error: &str, description: &str) -> (StatusCode, serde_json::Value) {
    (
        StatusCode::UNAUTHORIZED,
        json!({"error": error, "error_description": description}),
    )
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let metadata: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = axum::body::to_bytes(body, MAX_BODY).await;
    let form: Vec<(String, String)> = match &body {
        Ok(b) => form_urlencoded::parse(b).into_owned().collect(),
        Err(_) => Vec::new(),
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    let mut st = shared.state();
    st.token_requests += 1;
    let (status, json) = 'answer: {
        if st.token_failures_left > 0 {
            st.token_failures_left -= 1;
            break 'answer (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "temporarily_unavailable", "error_description": "token service unavailable (scripted)"}),
            );
        }
        if parts.method != Method::POST {
            break 'answer (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "invalid_request", "error_description": "use POST"}),
            );
        }
        if body.is_err() {
            break 'answer refuse("invalid_request", "request body too large or unreadable");
        }
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
        {
            break 'answer refuse(
                "invalid_request",
                "content type must be application/x-www-form-urlencoded",
            );
        }
        if field("grant_type") != Some(credentials::GRANT_TYPE) {
            break 'answer refuse(
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            );
        }
        if field("client_assertion_type") != Some(credentials::CLIENT_ASSERTION_TYPE) {
            break 'answer refuse(
                "invalid_request",
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            );
        }
        if field("client_id") != Some(st.client_id.as_str()) {
            break 'answer refuse("invalid_client", "unknown client_id");
        }
        let Some(assertion) = field("client_assertion") else {
            break 'answer refuse("invalid_request", "client_assertion is missing");
        };
        let claims = match credentials::verify_assertion(
            assertion,
            &st.public_key,
            &st.client_id,
            &st.audience_host,
            SystemTime::now(),
        ) {
            Ok(c) => c,
            Err(e) => break 'answer refuse("invalid_client", &format!("client assertion: {e}")),
        };
        // What baton-sdk's go-jose signer sends, and so all ConductorOne sees: one string
        // audience, a hex nonce of 16 random bytes, the JWK's kid.
        if !claims.aud_is_string {
            break 'answer refuse(
                "invalid_client",
                "client assertion: aud must be a single string (the client id's host)",
            );
        }
        if claims.nonce.len() != 32 || !claims.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            break 'answer refuse(
                "invalid_client",
                "client assertion: nonce must be 16 random bytes in hex",
            );
        }
        if claims.kid != st.key_id {
            break 'answer refuse(
                "invalid_client",
                "client assertion: kid does not name the client secret's key",
            );
        }
        if !st.nonces.insert(claims.nonce) {
            break 'answer refuse(
                "invalid_client",
                "client assertion replayed (nonce seen before)",
            );
        }
        let token = st.issue_token();
        (
            StatusCode::OK,
            json!({
                "access_token": token,
                "token_type": st.token_type,
                "expires_in": st.token_ttl.as_secs(),
            }),
        )
    };
    st.log.push(LoggedRequest {
        method: "token".into(),
        host_id: String::new(),
        task_id: String::new(),
        authorization_present: parts.headers.contains_key(header::AUTHORIZATION),
        authorization_valid: false,
        metadata,
        form,
        grpc_code: None,
        http_status: Some(status.as_u16()),
        at: std::time::Instant::now(),
    });
    drop(st);
    shared.changed();
    reply(status, json)
}
