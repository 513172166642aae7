//! The built-in demo workspace for `--demo`: the Segment API's answers for a small fixed
//! workspace ([`RESPONSES`], recorded from the fake Segment API in `tests/`, which checks that
//! the recording still matches it), served read-only on loopback. Nothing of the test fakes is
//! compiled into the product.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The demo workspace's recorded answers: `"GET /path?query"` → status and body.
pub const RESPONSES: &str = include_str!("responses.json");

/// The only token the demo accepts.
pub const TOKEN: &str = "demo-token";

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Recorded {
    pub status: u16,
    pub body: Value,
}

/// The recording: request (`"GET /users?pagination.count=200"`) → answer.
pub type Recording = HashMap<String, Recorded>;

/// The key of a request in the recording.
pub fn key(method: &str, path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{method} {path}?{q}"),
        _ => format!("{method} {path}"),
    }
}

/// The demo API, serving on 127.0.0.1 until [`DemoSegment::shutdown`] or drop.
pub struct DemoSegment {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DemoSegment {
    pub async fn start() -> anyhow::Result<DemoSegment> {
        let recording: Arc<Recording> = Arc::new(serde_json::from_str(RESPONSES)?);
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let recording = recording.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let answer = answer(&recording, &req);
                        async move { Ok::<_, std::convert::Infallible>(answer) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(DemoSegment { addr, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn shutdown(mut self) {
        self.task.abort();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for DemoSegment {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Segment's answer to `req`: the recorded one, or an error in Segment's envelope.
fn answer(recording: &Recording, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {TOKEN}")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized: the demo workspace's token is demo-token",
        );
    }
    if req.method() != Method::GET {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the demo workspace is read-only: provisioning needs a real Segment workspace",
        );
    }
    let uri = req.uri();
    match recording.get(&key("GET", uri.path(), uri.query())) {
        Some(r) => respond(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK),
            &r.body,
        ),
        None => error(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("{} is not part of the demo workspace", uri.path()),
        ),
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        &json!({"errors": [{"type": kind, "message": message}]}),
    )
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
