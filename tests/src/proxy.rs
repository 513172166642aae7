//! A small HTTP `CONNECT` proxy on loopback, as an enterprise network puts between a
//! connector and the internet: it tunnels to `host:port` (resolving the names it was given
//! itself, so a test can use names that resolve nowhere else), can require
//! `Proxy-Authorization`, refuses anything but `CONNECT` with `405`, and records every tunnel
//! asked for.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use fakes::proxy::ConnectProxy;
//! let proxy = ConnectProxy::start().await?;
//! proxy.map_host("segment.example.test", "127.0.0.1");
//! // HTTPS_PROXY=proxy.url()
//! assert!(proxy.tunnels().is_empty());
//! # Ok(()) }
//! ```

use crate::server::ServerHandle;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One `CONNECT` the proxy was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// `host:port` as asked.
    pub authority: String,
    /// The `Proxy-Authorization` header, if any.
    pub proxy_authorization: Option<String>,
    /// The status answered (200 when the tunnel opened).
    pub status: u16,
}

#[derive(Default)]
struct State {
    hosts: HashMap<String, String>,
    tunnels: Vec<Tunnel>,
    /// `Basic …` the proxy requires, if any.
    required_auth: Option<String>,
    /// Requests that were not CONNECT (method and target).
    refused: Vec<String>,
}

/// A running proxy. Dropping it stops it.
pub struct ConnectProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _server: ServerHandle,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ConnectProxy {
    /// Starts on `127.0.0.1:0`.
    pub async fn start() -> anyhow::Result<ConnectProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, state.clone(), rx));
        Ok(ConnectProxy {
            addr,
            state,
            _server: ServerHandle::new(tx, task),
        })
    }

    /// `http://127.0.0.1:PORT`: the value for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resolves `name` to `ip` (for this proxy only).
    pub fn map_host(&self, name: &str, ip: &str) {
        lock(&self.state)
            .hosts
            .insert(name.to_ascii_lowercase(), ip.to_string());
    }

    /// Requires `Proxy-Authorization: Basic base64(user:password)`; others get `407`.
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        lock(&self.state).required_auth = Some(format!("Basic {token}"));
    }

    /// Every `CONNECT` so far.
    pub fn tunnels(&self) -> Vec<Tunnel> {
        lock(&self.state).tunnels.clone()
    }

    /// Requests that were not `CONNECT`.
    pub fn refused(&self) -> Vec<String> {
        lock(&self.state).refused.clone()
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = handle(socket, state).await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

async fn handle(mut client: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let auth = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_string());
    if method != "CONNECT" {
        lock(&state).refused.push(format!("{method} {target}"));
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let answer = |status: u16| {
        lock(&state).tunnels.push(Tunnel {
            authority: target.clone(),
            proxy_authorization: auth.clone(),
            status,
        });
    };
    let required = lock(&state).required_auth.clone();
    if required.is_some() && required != auth {
        answer(407);
        client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
            )
            .await?;
        return Ok(());
    }
    let Some((host, port)) = target.rsplit_once(':') else {
        answer(400);
        client
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
    let resolved = lock(&state).hosts.get(&host).cloned().unwrap_or(host);
    let upstream = match TcpStream::connect(format!("{resolved}:{port}")).await {
        Ok(s) => s,
        Err(_) => {
            answer(502);
            client
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await?;
            return Ok(());
        }
    };
    answer(200);
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    let mut upstream = upstream;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}
