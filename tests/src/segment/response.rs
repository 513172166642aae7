//! Response envelopes: success `{"data":{…}}`, failure `{"errors":[{type,message,field?,data?}]}`
//! (never both), always `application/json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// One `RequestError` with the HTTP status it is sent with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    /// The `type` field (`input-validation`, `not-found`, `bad-request`, `RequestError`, …).
    pub kind: String,
    pub message: String,
    pub field: Option<String>,
    pub data: Option<Value>,
}

impl ApiError {
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind: kind.to_string(),
            message: message.into(),
            field: None,
            data: None,
        }
    }

    /// 422 `input-validation`, optionally naming the offending field.
    pub fn validation(message: impl Into<String>, field: Option<&str>) -> Self {
        let mut e = Self::new(422, "input-validation", message);
        e.field = field.map(str::to_string);
        e
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not-found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad-request", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// The Segment 429 body (rate-limiter-flexible's fields).
    pub fn too_many_requests(ms_before_next: u64, consumed: u32) -> Self {
        let mut e = Self::new(429, "RequestError", "Too many requests");
        e.data = Some(
            json!({"remainingPoints": 0, "msBeforeNext": ms_before_next, "consumedPoints": consumed}),
        );
        e
    }

    pub fn body(&self) -> Value {
        let mut err = Map::new();
        err.insert("type".into(), json!(self.kind));
        err.insert("message".into(), json!(self.message));
        if let Some(f) = &self.field {
            err.insert("field".into(), json!(f));
        }
        if let Some(d) = &self.data {
            err.insert("data".into(), d.clone());
        }
        json!({ "errors": [Value::Object(err)] })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, self.body().to_string())
    }
}

/// A response with this status and a JSON text body.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// 200 `{"data": data}`.
pub fn ok(data: Value) -> Response {
    json_response(StatusCode::OK, json!({ "data": data }).to_string())
}

/// 201 `{"data": data}`.
pub fn created(data: Value) -> Response {
    json_response(StatusCode::CREATED, json!({ "data": data }).to_string())
}

/// Handlers return either a success response or an error envelope.
pub type ApiResult = Result<Response, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shapes() {
        let e = ApiError::validation("bad", Some("pagination.count"));
        assert_eq!(
            e.body(),
            json!({"errors":[{"type":"input-validation","message":"bad","field":"pagination.count"}]})
        );
        let e = ApiError::too_many_requests(1500, 61);
        assert_eq!(
            e.body(),
            json!({"errors":[{"type":"RequestError","message":"Too many requests","data":{"remainingPoints":0,"msBeforeNext":1500,"consumedPoints":61}}]})
        );
        assert_eq!(
            ApiError::not_found("x").into_response().status(),
            StatusCode::NOT_FOUND
        );
    }
}
