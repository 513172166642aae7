//! A server that hands every request back to its sender, as some real servers do in their
//! errors: the request line, every header (the `Authorization` the host added among them) and
//! the body, in the answer's body and in `x-echo-*` headers. It sits on the origin the sandbox
//! allows (with the token), in front of a fake Segment API:
//!
//! * [`EchoMode::Ok`]: requests are passed to the fake and its 200 answers come back with the
//!   echo inside (as the name of the workspace and of every user), so a sync completes and
//!   carries the echo into what it writes;
//! * [`EchoMode::Status`]: every request is answered with that status and the echo as Segment's
//!   JSON error envelope (`message`, and `field` for 422) or as raw text.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoMode {
    /// Proxied to the fake Segment; 200 answers carry the echo in names.
    Ok,
    /// Every request answered with this status and the echo.
    Status(u16, EchoFormat),
}

pub struct EchoServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    mode: EchoMode,
    upstream: String,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    seen: Arc<Mutex<Vec<String>>>,
}

impl EchoServer {
    /// Listens on 127.0.0.1; `upstream` is the fake Segment's base URL (for [`EchoMode::Ok`]).
    pub async fn start(upstream: &str, mode: EchoMode) -> anyhow::Result<EchoServer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the echo server")?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            mode,
            upstream: upstream.trim_end_matches('/').to_string(),
            client: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
            seen: seen.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(EchoServer { addr, seen, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request as echoed, oldest first.
    pub fn echoed(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The request as text: request line, headers, blank line, body.
fn echo_of(parts: &http::request::Parts, body: &[u8]) -> String {
    let mut text = format!(
        "{} {} HTTP/1.1\r\n",
        parts.method,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    for (name, value) in &parts.headers {
        text.push_str(&format!(
            "{name}: {}\r\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str("\r\n");
    text.push_str(&String::from_utf8_lossy(body));
    text
}

async fn answer(shared: &Shared, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echo = echo_of(&parts, &body);
    shared
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(echo.clone());
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let request_line = echo.lines().next().unwrap_or_default().to_string();
    let (status, content_type, text) = match shared.mode {
        EchoMode::Status(status, EchoFormat::Text) => (status, "text/plain", echo),
        EchoMode::Status(status, EchoFormat::Json) => {
            let mut error = serde_json::json!({"type": "echo", "message": echo});
            if status == 422 {
                error["field"] = serde_json::Value::String(echo.clone());
            }
            (
                status,
                "application/json",
                serde_json::json!({ "errors": [error] }).to_string(),
            )
        }
        EchoMode::Ok => match proxy(shared, parts, body).await {
            Ok((status, json)) => (status, "application/json", with_echo(json, &echo)),
            Err(e) => (502, "text/plain", format!("echo proxy: {e:#}")),
        },
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    for (name, value) in [
        ("x-echo-authorization", authorization.as_str()),
        ("x-echo-request-line", request_line.as_str()),
    ] {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    response
}

/// The fake Segment's answer to the same request.
async fn proxy(
    shared: &Shared,
    parts: http::request::Parts,
    body: Bytes,
) -> anyhow::Result<(u16, String)> {
    let uri = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut request = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            request = request.header(name, value);
        }
    }
    let response = shared
        .client
        .request(request.body(Full::new(body))?)
        .await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// A Segment answer with the echo as the workspace's and every user's name.
fn with_echo(json: String, echo: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&json) else {
        return json;
    };
    let name = serde_json::Value::String(echo.to_string());
    if let Some(data) = value.get_mut("data") {
        if let Some(ws) = data.get_mut("workspace").and_then(|w| w.as_object_mut()) {
            ws.insert("name".into(), name.clone());
        }
        if let Some(user) = data.get_mut("user").and_then(|u| u.as_object_mut()) {
            user.insert("name".into(), name.clone());
        }
        if let Some(users) = data.get_mut("users").and_then(|u| u.as_array_mut()) {
            for user in users.iter_mut().filter_map(|u| u.as_object_mut()) {
                user.insert("name".into(), name.clone());
            }
        }
    }
    value.to_string()
}
