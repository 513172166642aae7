//! The running fake: configuration, shared state, the TLS accept loop on loopback (HTTP/2 or
//! HTTP/1.1 by ALPN, one port for the token endpoint and the gRPC service) and the
//! in-process control API.

use super::model::{
    LoggedRequest, RecordedFinish, RecordedHeartbeat, RecordedUpload, UploadAttempt,
};
use super::{service, tls, token};
use crate::server::ServerHandle;
use anyhow::Context as _;
use baton::c1::credentials::{self, ed25519_dalek::VerifyingKey};
use baton::c1::service::{BatonServiceHelloRequest, Task, task};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// The tenant host of [`FakeC1Config::generated`] client ids (a reserved name that never
/// resolves, so nothing can reach it but through `BATON_C1_API_HOST` or a test proxy).
pub const TENANT_HOST: &str = "acme.conductorone.test";

/// How the fake behaves. [`FakeC1Config::new`] or [`FakeC1Config::generated`] fill in the
/// defaults; adjust fields afterwards.
#[derive(Debug, Clone)]
pub struct FakeC1Config {
    /// The only client id the token endpoint accepts (`iss`/`sub` of the assertion and the
    /// form's `client_id`).
    pub client_id: String,
    /// Verifies the client assertions.
    pub public_key: VerifyingKey,
    /// The assertion's `aud` must be this one string: the client id's host (baton-sdk's
    /// audience), whatever `BATON_C1_API_HOST` says.
    pub audience_host: String,
    /// The `kid` of the client secret's JWK; assertions must name it in their header
    /// (`None`: they must carry no `kid`).
    pub key_id: Option<String>,
    /// `token_type` of the token endpoint's answers (default `Bearer`); RPCs accept only
    /// `authorization: Bearer <token>`, as baton-sdk sends it whatever the case of the type.
    pub token_type: String,
    /// More DNS names the server certificate is valid for (besides `127.0.0.1`, `::1` and
    /// `localhost`), e.g. a name a test proxy resolves to loopback.
    pub server_names: Vec<String>,
    /// `expires_in` of issued tokens; they stop working afterwards (default 1 h).
    pub token_ttl: Duration,
    /// `next_poll` of GetTask answers (default 100 ms).
    pub next_poll: Duration,
    /// `next_heartbeat` of GetTask and Heartbeat answers (default 1 s).
    pub next_heartbeat: Duration,
    /// The first this-many token requests are answered 503 (default 0).
    pub token_endpoint_failures: u32,
    /// The first this-many uploads fail with `Unavailable` after their first data chunk
    /// (default 0).
    pub upload_failures: u32,
}

impl FakeC1Config {
    /// Defaults for the given credentials.
    pub fn new(client_id: impl Into<String>, public_key: VerifyingKey) -> Self {
        FakeC1Config {
            client_id: client_id.into(),
            public_key,
            audience_host: "127.0.0.1".into(),
            key_id: None,
            token_type: "Bearer".into(),
            server_names: Vec::new(),
            token_ttl: Duration::from_secs(3600),
            next_poll: Duration::from_millis(100),
            next_heartbeat: Duration::from_secs(1),
            token_endpoint_failures: 0,
            upload_failures: 0,
        }
    }

    /// Defaults with a freshly generated credential pair for
    /// `<client_name>@[TENANT_HOST]/fake` whose JWK has a `kid`, as ConductorOne issues them;
    /// returns the config and the matching `BATON_CLIENT_SECRET` value. The tenant host does
    /// not resolve: clients reach the fake through `BATON_C1_API_HOST` ([`FakeC1::host`]).
    pub fn generated(client_name: &str) -> (FakeC1Config, String) {
        let key = credentials::ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let kid = format!("fake-{:08x}", rand::random::<u32>());
        let secret = credentials::encode_client_secret_with_kid(&key, Some(&kid));
        let id = format!("{client_name}@{TENANT_HOST}/fake");
        let mut cfg = FakeC1Config::new(id, key.verifying_key());
        cfg.audience_host = TENANT_HOST.into();
        cfg.key_id = Some(kid);
        (cfg, secret)
    }
}

/// Mutable state behind one lock (never held across an await).
pub(crate) struct State {
    pub client_id: String,
    pub public_key: VerifyingKey,
    pub audience_host: String,
    pub key_id: Option<String>,
    pub token_type: String,
    pub token_ttl: Duration,
    pub next_poll: Duration,
    pub next_heartbeat: Duration,
    pub token_failures_left: u32,
    pub upload_failures_left: u32,
    /// Heartbeats still to refuse with `Unavailable` (see `fail_heartbeats`).
    pub heartbeat_failures_left: u32,

    /// Issued access tokens and when they expire.
    pub tokens: HashMap<String, Instant>,
    /// Assertion nonces seen (replays are refused).
    pub nonces: HashSet<String>,
    pub token_requests: u32,
    pub tokens_issued: u32,

    pub queue: VecDeque<Task>,
    pub handed_out: Vec<Task>,
    pub cancelled: HashSet<String>,

    pub hellos: Vec<BatonServiceHelloRequest>,
    pub heartbeats: Vec<RecordedHeartbeat>,
    pub finished: Vec<RecordedFinish>,
    pub uploads: Vec<RecordedUpload>,
    pub upload_attempts: Vec<UploadAttempt>,
    pub failed_uploads: u32,
    pub log: Vec<LoggedRequest>,
}

/// The oneof's name in the protocol.
pub fn task_type_name(t: Option<&baton::c1::service::task::TaskType>) -> &'static str {
    use baton::c1::service::task::TaskType as T;
    match t {
        None => "",
        Some(T::None(_)) => "none",
        Some(T::Hello(_)) => "hello",
        Some(T::SyncFull(_)) => "sync_full",
        Some(T::Grant(_)) => "grant",
        Some(T::Revoke(_)) => "revoke",
        Some(T::CreateAccount(_)) => "create_account",
        Some(T::CreateResource(_)) => "create_resource",
        Some(T::DeleteResource(_)) => "delete_resource",
        Some(T::RotateCredentials(_)) => "rotate_credentials",
        Some(T::EventFeed(_)) => "event_feed",
        Some(_) => "other",
    }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    Missing,
    Malformed,
    Unknown,
    Expired,
}

impl AuthError {
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "missing authorization metadata",
            AuthError::Malformed => "authorization must be 'Bearer <token>'",
            AuthError::Unknown => "unknown access token",
            AuthError::Expired => "access token expired",
        }
    }
}

impl State {
    /// Issues a fresh access token valid for `token_ttl`.
    pub fn issue_token(&mut self) -> String {
        let token = format!(
            "c1fake.{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                rand::random::<[u8; 32]>()
            )
        );
        self.tokens
            .insert(token.clone(), Instant::now() + self.token_ttl);
        self.tokens_issued += 1;
        token
    }

    /// Checks an `authorization` value: `Bearer <token>` naming an unexpired token this fake
    /// issued. The scheme is exactly `Bearer`: baton-sdk normalises the token type (Go's
    /// oauth2 `Token.Type()`), so nothing else ever reaches ConductorOne.
    pub fn check_bearer(&self, authorization: Option<&str>) -> Result<(), AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if scheme != "Bearer" || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        let expires = self.tokens.get(token.trim()).ok_or(AuthError::Unknown)?;
        if Instant::now() >= *expires {
            return Err(AuthError::Expired);
        }
        Ok(())
    }

    pub fn is_known_task(&self, id: &str) -> bool {
        self.handed_out.iter().any(|t| t.id == id)
    }

    /// The protocol name of a handed-out task's type (`sync_full`, `hello`, …).
    pub fn task_type(&self, id: &str) -> Option<&'static str> {
        self.handed_out
            .iter()
            .find(|t| t.id == id)
            .map(|t| task_type_name(t.task_type.as_ref()))
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Wakes everything waiting in [`FakeC1::wait_for_finished`] and friends.
    pub fn changed(&self) {
        self.changed.notify_waiters();
    }
}

/// A running fake ConductorOne on loopback. Dropping it stops the server.
pub struct FakeC1 {
    addr: SocketAddr,
    ca_pem: String,
    ca_der: Vec<u8>,
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl FakeC1 {
    /// Starts on `127.0.0.1:0` (a free port) with a freshly generated CA and server
    /// certificate.
    pub async fn start(cfg: FakeC1Config) -> anyhow::Result<FakeC1> {
        Self::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`.
    pub async fn start_on(cfg: FakeC1Config, addr: SocketAddr) -> anyhow::Result<FakeC1> {
        let material =
            tls::generate(&cfg.server_names).context("generating the fake's TLS certificates")?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr()?;
        let state = State {
            client_id: cfg.client_id,
            public_key: cfg.public_key,
            audience_host: cfg.audience_host,
            key_id: cfg.key_id,
            token_type: cfg.token_type,
            token_ttl: cfg.token_ttl,
            next_poll: cfg.next_poll,
            next_heartbeat: cfg.next_heartbeat,
            token_failures_left: cfg.token_endpoint_failures,
            upload_failures_left: cfg.upload_failures,
            heartbeat_failures_left: 0,
            tokens: HashMap::new(),
            nonces: HashSet::new(),
            token_requests: 0,
            tokens_issued: 0,
            queue: VecDeque::new(),
            handed_out: Vec::new(),
            cancelled: HashSet::new(),
            hellos: Vec::new(),
            heartbeats: Vec::new(),
            finished: Vec::new(),
            uploads: Vec::new(),
            upload_attempts: Vec::new(),
            failed_uploads: 0,
            log: Vec::new(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Notify::new(),
        });
        let router = service::routes(shared.clone()).route(
            credentials::TOKEN_PATH,
            axum::routing::any({
                let shared = shared.clone();
                move |req: axum::extract::Request| token::handle(shared.clone(), req)
            }),
        );
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let acceptor = TlsAcceptor::from(material.server_config);
        let task = tokio::spawn(accept_loop(listener, acceptor, router, shutdown_rx));
        tracing::debug!(%addr, "fake ConductorOne listening");
        Ok(FakeC1 {
            addr,
            ca_pem: material.ca_pem,
            ca_der: material.ca_der,
            shared,
            server: ServerHandle::new(shutdown_tx, task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`: the value for `BATON_C1_API_HOST`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `https://127.0.0.1:PORT` (the gRPC endpoint).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT/auth/v1/token`.
    pub fn token_url(&self) -> String {
        credentials::token_url(&self.host())
    }

    /// The PEM of the CA that signed the server certificate (SANs `127.0.0.1`, `::1`,
    /// `localhost`): the only root a client needs to trust.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The same CA certificate in DER.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca_der.clone()
    }

    /// Writes [`FakeC1::ca_pem`] to `path`.
    pub fn write_ca_pem(&self, path: &std::path::Path) -> anyhow::Result<()> {
        std::fs::write(path, &self.ca_pem).with_context(|| format!("writing {}", path.display()))
    }

    /// Queues a task for GetTask (handed out in push order). An empty id is replaced by a
    /// fresh 27-character KSUID. Returns the task id.
    pub fn push_task(&self, mut task: Task) -> String {
        if task.id.is_empty() {
            task.id = baton::c1z::ksuid::new();
        }
        let id = task.id.clone();
        self.shared.state().queue.push_back(task);
        self.shared.changed();
        id
    }

    /// Queues a full-sync task (all defaults). Returns its id.
    pub fn push_sync_task(&self) -> String {
        self.push_task(sync_full_task())
    }

    /// Marks a task cancelled: heartbeats for it answer `cancelled = true` from now on.
    pub fn cancel_task(&self, id: &str) {
        self.shared.state().cancelled.insert(id.to_string());
        self.shared.changed();
    }

    /// Tasks still queued (not handed out yet).
    pub fn pending_tasks(&self) -> Vec<Task> {
        self.shared.state().queue.iter().cloned().collect()
    }

    /// Tasks handed out by GetTask/GetTasks, oldest first.
    pub fn handed_out(&self) -> Vec<Task> {
        self.shared.state().handed_out.clone()
    }

    /// Every Hello request received with a valid token.
    pub fn hellos(&self) -> Vec<BatonServiceHelloRequest> {
        self.shared.state().hellos.clone()
    }

    pub fn heartbeats(&self) -> Vec<RecordedHeartbeat> {
        self.shared.state().heartbeats.clone()
    }

    /// Every accepted FinishTask, oldest first.
    pub fn finished(&self) -> Vec<RecordedFinish> {
        self.shared.state().finished.clone()
    }

    /// Complete uploads whose checksum matched, oldest first.
    pub fn uploads(&self) -> Vec<RecordedUpload> {
        self.shared.state().uploads.clone()
    }

    /// Every upload stream, whatever its outcome.
    pub fn upload_attempts(&self) -> Vec<UploadAttempt> {
        self.shared.state().upload_attempts.clone()
    }

    /// Upload streams that did not complete (scripted failures, checksum mismatches,
    /// protocol errors, aborted streams).
    pub fn failed_uploads(&self) -> u32 {
        self.shared.state().failed_uploads
    }

    /// Requests to the token endpoint (refused ones included).
    pub fn token_requests(&self) -> u32 {
        self.shared.state().token_requests
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> u32 {
        self.shared.state().tokens_issued
    }

    /// Every request, RPCs and token requests, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.state().log.clone()
    }

    /// True if `needle` occurs in anything a client sent: headers, metadata, token form
    /// fields, hello/heartbeat/finish messages (as debug text) or uploaded bytes.
    pub fn received_anywhere(&self, needle: &str) -> bool {
        let st = self.shared.state();
        st.log.iter().any(|r| r.contains(needle))
            || st.hellos.iter().any(|h| format!("{h:?}").contains(needle))
            || st
                .heartbeats
                .iter()
                .any(|h| format!("{h:?}").contains(needle))
            || st
                .finished
                .iter()
                .any(|f| format!("{f:?}").contains(needle))
            || st.uploads.iter().any(|u| {
                !needle.is_empty()
                    && u.bytes
                        .windows(needle.len())
                        .any(|w| w == needle.as_bytes())
            })
    }

    /// Issues an access token directly (as if a token request had succeeded).
    pub fn issue_token(&self) -> String {
        self.shared.state().issue_token()
    }

    /// Invalidates every issued token (clients must fetch a new one).
    pub fn revoke_tokens(&self) {
        self.shared.state().tokens.clear();
    }

    /// The next `n` token requests are answered 503.
    pub fn fail_token_requests(&self, n: u32) {
        self.shared.state().token_failures_left = n;
    }

    /// The next `n` heartbeats fail with `Unavailable` (other calls still work).
    pub fn fail_heartbeats(&self, n: u32) {
        self.shared.state().heartbeat_failures_left = n;
    }

    /// The next `n` uploads fail with `Unavailable` after their first data chunk.
    pub fn fail_uploads(&self, n: u32) {
        self.shared.state().upload_failures_left = n;
    }

    pub fn set_next_poll(&self, d: Duration) {
        self.shared.state().next_poll = d;
    }

    pub fn set_next_heartbeat(&self, d: Duration) {
        self.shared.state().next_heartbeat = d;
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_token_ttl(&self, d: Duration) {
        self.shared.state().token_ttl = d;
    }

    /// Waits until at least `n` tasks have finished; returns them all. Errors on timeout
    /// (with what was recorded so far).
    pub async fn wait_for_finished(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedFinish>> {
        self.wait_until(timeout, |st| st.finished.len() >= n)
            .await
            .with_context(|| format!("waiting for {n} finished task(s): {:?}", self.finished()))?;
        Ok(self.finished())
    }

    /// Waits until at least `n` uploads have completed; returns them all.
    pub async fn wait_for_uploads(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedUpload>> {
        self.wait_until(timeout, |st| st.uploads.len() >= n)
            .await
            .with_context(|| {
                format!(
                    "waiting for {n} upload(s); attempts so far: {:?}",
                    self.upload_attempts()
                        .iter()
                        .map(|a| &a.outcome)
                        .collect::<Vec<_>>()
                )
            })?;
        Ok(self.uploads())
    }

    /// Waits until at least `n` Hello requests have been accepted.
    pub async fn wait_for_hellos(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<BatonServiceHelloRequest>> {
        self.wait_until(timeout, |st| st.hellos.len() >= n)
            .await
            .with_context(|| format!("waiting for {n} hello(s)"))?;
        Ok(self.hellos())
    }

    /// Waits until at least `n` heartbeats have been answered.
    pub async fn wait_for_heartbeats(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedHeartbeat>> {
        self.wait_until(timeout, |st| st.heartbeats.len() >= n)
            .await
            .with_context(|| format!("waiting for {n} heartbeat(s)"))?;
        Ok(self.heartbeats())
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        cond: impl Fn(&State) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond(&self.shared.state()) {
                return Ok(());
            }
            // Also re-check periodically, in case a change raced the registration.
            let tick = tokio::time::sleep(Duration::from_millis(50));
            tokio::select! {
                _ = notified => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => {
                    if cond(&self.shared.state()) {
                        return Ok(());
                    }
                    anyhow::bail!("timed out after {timeout:?}");
                }
            }
        }
    }

    /// Stops accepting, closes every connection and waits for the server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

impl std::fmt::Debug for FakeC1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeC1").field("addr", &self.addr).finish()
    }
}

/// A full-sync task with no options (id left empty: [`FakeC1::push_task`] assigns one).
pub fn sync_full_task() -> Task {
    Task {
        id: String::new(),
        status: task::Status::Pending as i32,
        debug: false,
        task_type: Some(task::TaskType::SyncFull(task::SyncFullTask::default())),
    }
}

async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = wait_shutdown(&mut shutdown) => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let router = router.clone();
                let mut stop = shutdown.clone();
                conns.spawn(async move {
                    tokio::select! {
                        _ = serve_connection(stream, acceptor, router) => {}
                        // Dropping the connection closes the socket, even mid-request.
                        _ = wait_shutdown(&mut stop) => {}
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        }
    }
    drop(listener);
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// TLS handshake, then HTTP/2 if the client negotiated `h2` by ALPN, else HTTP/1.1.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    router: axum::Router,
) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let service = TowerToHyperService::new(router);
    let io = TokioIo::new(tls);
    let res = if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service)
            .await
    };
    if let Err(e) = res {
        tracing::debug!("connection ended: {e}");
    }
}
