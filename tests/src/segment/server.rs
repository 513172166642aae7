//! The running fake: configuration, shared state, the HTTP/1.1 accept loop on loopback and
//! the in-process control API (request log, fault injection, state access).

use super::bucket::ReadRate;
use super::delay::Delays;
use super::faults::{FaultQueue, RateLimiter};
use super::index::UserIndex;
use super::model::{FUNCTION_TYPES, Fault, LoggedRequest, Plan, Workspace};
use super::wire::SplitHead;
use super::{handlers, ids};
use crate::server::ServerHandle;
use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How the fake behaves. Build with [`FakeConfig::demo`] or [`FakeConfig::new`], then adjust fields.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The only bearer token accepted.
    pub token: String,
    pub workspace: Workspace,
    pub plan: Plan,
    /// Values `GET /functions?resourceType=` accepts (default: the five current ones).
    pub accepted_function_types: Vec<String>,
    /// Whether `GET /users` items carry `permissions` (default off, like the official example).
    pub list_users_includes_permissions: bool,
    /// Added to every response.
    pub latency: Duration,
    /// Writes allowed per `write_window` per token and write operation (default 60 per 60 s, as
    /// Segment documents for each write endpoint).
    pub write_limit: u32,
    pub write_window: Duration,
    /// Optional read limit per fixed window (default none).
    pub read_limit: Option<(u32, Duration)>,
    /// Optional token-bucket read limit, the shape of Segment's (replaces `read_limit`).
    pub read_rate: Option<ReadRate>,
    /// Keep connections open between requests, as Segment does (default). Off: every answer
    /// says `Connection: close` and the connection is closed after it.
    pub keep_alive: bool,
    /// Disable Nagle's algorithm (default). Off: the server behaves like many plain HTTP/1.1
    /// servers, with Nagle on and the head and body of each answer in separate writes; the
    /// body then waits for the client's ACK of the head, which a delayed ACK holds back.
    pub nodelay: bool,
}

impl FakeConfig {
    /// Token `demo-token`, the demo workspace, defaults.
    pub fn demo() -> Self {
        Self::new("demo-token", Workspace::demo())
    }

    pub fn new(token: &str, workspace: Workspace) -> Self {
        FakeConfig {
            token: token.to_string(),
            workspace,
            plan: Plan::default(),
            accepted_function_types: FUNCTION_TYPES.iter().map(|s| s.to_string()).collect(),
            list_users_includes_permissions: false,
            latency: Duration::ZERO,
            write_limit: 60,
            write_window: Duration::from_secs(60),
            read_limit: None,
            read_rate: None,
            keep_alive: true,
            nodelay: true,
        }
    }
}

/// Mutable state behind one lock (never held across an await).
pub(crate) struct State {
    pub token: String,
    pub plan: Plan,
    pub accepted_function_types: Vec<String>,
    pub list_users_includes_permissions: bool,
    pub latency: Duration,
    pub ws: Workspace,
    pub faults: FaultQueue,
    pub limiter: RateLimiter,
    pub index: UserIndex,
    rng: StdRng,
}

impl State {
    /// A fresh 22-character id not used by any user or group.
    pub fn new_id(&mut self) -> String {
        loop {
            let id = ids::segment_id(&mut self.rng);
            if self.ws.user(&id).is_none() && self.ws.group(&id).is_none() {
                return id;
            }
        }
    }
}

/// A logged request, and when it arrived and was answered.
struct Entry {
    seq: u64,
    request: LoggedRequest,
    arrived: Instant,
    answered: Option<Instant>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Precise waits for the latency.
    pub delays: Delays,
    log: Mutex<Vec<Entry>>,
    started: Instant,
    seq: AtomicU64,
    /// Requests arrived and not yet answered, and the most there ever were at once.
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Records an arriving request; returns its sequence number for [`Shared::finish`].
    pub fn record(&self, req: LoggedRequest) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        lock(&self.log).push(Entry {
            seq,
            request: req,
            arrived: Instant::now(),
            answered: None,
        });
        seq
    }

    /// Stores the answered status of a recorded request.
    pub fn finish(&self, seq: u64, status: u16) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut log = lock(&self.log);
        if let Some(e) = log.iter_mut().rev().find(|e| e.seq == seq) {
            e.request.status = status;
            e.answered = Some(Instant::now());
        }
    }
}

/// A running fake Segment Public API on loopback. Dropping it stops the server.
pub struct FakeSegment {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl FakeSegment {
    /// Starts on `127.0.0.1:0` (a free port).
    pub async fn start(cfg: FakeConfig) -> anyhow::Result<FakeSegment> {
        Self::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`.
    pub async fn start_on(cfg: FakeConfig, addr: SocketAddr) -> anyhow::Result<FakeSegment> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let seed = cfg.workspace.id.bytes().fold(0x5e9u64, |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        });
        let state = State {
            limiter: RateLimiter::new(cfg.write_limit, cfg.write_window, cfg.read_limit)
                .with_read_rate(cfg.read_rate),
            token: cfg.token,
            plan: cfg.plan,
            accepted_function_types: cfg.accepted_function_types,
            list_users_includes_permissions: cfg.list_users_includes_permissions,
            latency: cfg.latency,
            ws: cfg.workspace,
            faults: FaultQueue::default(),
            index: UserIndex::default(),
            rng: StdRng::seed_from_u64(seed),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            delays: Delays::new(),
            log: Mutex::new(Vec::new()),
            started: Instant::now(),
            seq: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
        });
        let router = handlers::router(shared.clone());
        let wire = Wire {
            keep_alive: cfg.keep_alive,
            nodelay: cfg.nodelay,
        };
        let task = tokio::spawn(accept_loop(listener, router, wire, shutdown_rx));
        tracing::debug!(%addr, "fake Segment API listening");
        Ok(FakeSegment {
            addr,
            shared,
            server: ServerHandle::new(shutdown_tx, task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log)
            .iter()
            .map(|e| e.request.clone())
            .collect()
    }

    /// When each request of [`FakeSegment::requests`] arrived and was answered (`None` while
    /// unanswered), measured from the start of the fake.
    pub fn timings(&self) -> Vec<(Duration, Option<Duration>)> {
        let started = self.shared.started;
        lock(&self.shared.log)
            .iter()
            .map(|e| (e.arrived - started, e.answered.map(|a| a - started)))
            .collect()
    }

    /// The most requests the fake was handling at once (arrived, not yet answered; an
    /// injected latency counts as handling).
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Queues a fault; faults are matched in injection order before normal handling.
    pub fn inject(&self, f: Fault) {
        self.shared.state().faults.push(f);
    }

    /// Faults not yet (fully) consumed.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.state().faults.pending()
    }

    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    /// A snapshot of the current workspace state.
    pub fn workspace(&self) -> Workspace {
        self.shared.state().ws.clone()
    }

    pub fn update_workspace(&self, f: impl FnOnce(&mut Workspace)) {
        f(&mut self.shared.state().ws);
    }

    pub fn set_plan(&self, p: Plan) {
        self.shared.state().plan = p;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.state().latency = latency;
    }

    pub fn set_list_users_includes_permissions(&self, on: bool) {
        self.shared.state().list_users_includes_permissions = on;
    }

    pub fn set_accepted_function_types(&self, types: Vec<String>) {
        self.shared.state().accepted_function_types = types;
    }

    /// Replaces the rate limits (and resets their counters); a token-bucket read limit stays.
    pub fn set_rate_limits(
        &self,
        write_limit: u32,
        write_window: Duration,
        read_limit: Option<(u32, Duration)>,
    ) {
        let mut st = self.shared.state();
        let rate = st.limiter.read_rate.as_ref().map(|r| r.rate());
        st.limiter = RateLimiter::new(write_limit, write_window, read_limit).with_read_rate(rate);
    }

    /// Sets (or removes) the token-bucket read limit, with a full bucket.
    pub fn set_read_rate(&self, rate: Option<ReadRate>) {
        let mut st = self.shared.state();
        st.limiter = st.limiter.clone().with_read_rate(rate);
    }

    /// Simulates a pending invitee accepting: the invite becomes a user with a fresh id.
    /// Returns the new user id, or `None` if there is no such invite.
    pub fn accept_invite(&self, email: &str, name: &str) -> Option<String> {
        let mut st = self.shared.state();
        let id = st.new_id();
        st.ws.accept_invite(email, name, &id)
    }

    /// Stops accepting, closes every connection (hanging ones included) and waits for the
    /// server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

impl std::fmt::Debug for FakeSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSegment")
            .field("addr", &self.addr)
            .finish()
    }
}

async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    // A closed channel (sender dropped) also means shutdown.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// How the fake's connections behave on the wire.
#[derive(Debug, Clone, Copy)]
struct Wire {
    keep_alive: bool,
    nodelay: bool,
}

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    wire: Wire,
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
                let _ = stream.set_nodelay(wire.nodelay);
                let service = TowerToHyperService::new(router.clone());
                let mut stop = shutdown.clone();
                conns.spawn(async move {
                    // Without TCP_NODELAY the head goes out in a write of its own (see
                    // `SplitHead`); hyper's single vectored write would hide Nagle's cost.
                    let io = SplitHead::new(stream, !wire.nodelay);
                    let mut http = hyper::server::conn::http1::Builder::new();
                    http.keep_alive(wire.keep_alive);
                    if !wire.nodelay {
                        // One flat buffer per answer, which `SplitHead` cuts after the head.
                        http.writev(false);
                    }
                    let conn = http.serve_connection(TokioIo::new(io), service);
                    tokio::select! {
                        res = conn => {
                            if let Err(e) = res {
                                tracing::debug!("connection ended: {e}");
                            }
                        }
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
