//! Service (daemon) mode: the connector as ConductorOne runs it. It connects with the client
//! credentials, says `Hello`, then polls for tasks and works on them — full syncs (uploaded as
//! `.c1z` files) and, with `--provisioning`, grants, revokes, account creation and deletion —
//! sending heartbeats while a task runs and reporting each task's end with `FinishTask`.
//!
//! * [`auth`]: client id and secret, the JWT client assertion, the access-token cache.
//! * [`client`]: TLS trust (`BATON_C1_CA_CERT`) and the `BatonService` client.
//! * [`hello`]: host id, build and OS information, the connector's metadata.
//! * [`tasks`]: what each task type does and how its end is reported.
//! * [`provisioning`]: provisioning tasks ↔ the contract's operations and Baton's responses.
//! * [`upload`]: the chunked `.c1z` upload.
//! * [`heartbeat`]: heartbeats and cancellation.
//!
//! Behaviour, as baton-sdk's task manager (see docs/service-mode.md): polls honour
//! `next_poll` (held to 0–5 min; at once when absent); a failed poll waits `n²` seconds after
//! the n-th failure in a row (at most 60 s); full syncs send a first heartbeat at once, then
//! every `next_heartbeat` of the last answer (1 s–5 min, 30 s when absent), and are given up
//! after 10 failed heartbeats; other tasks send none; hello tasks are answered with `Hello`
//! and not finished; up to `task_concurrency` tasks run at once; on shutdown no new task is
//! taken, running tasks get `shutdown_grace` to end, and any still running are reported
//! `UNAVAILABLE` (retryable) so another host can take them.

pub mod auth;
pub mod client;
pub mod heartbeat;
pub mod hello;
pub mod provisioning;
pub mod tasks;
pub mod upload;

use crate::commands::connection::{Connection, segment_runtime};
use crate::engine::Runtime;
use crate::health::{Health, State};
use crate::sandbox::Secret;
use crate::sync::scope::SyncScope;
use anyhow::{Context as _, anyhow};
use auth::{Credentials, TokenSource};
use baton::c1::service::{BatonServiceGetTaskRequest, Task};
use baton::pb;
use client::{C1Client, CallError, Trust};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasks::Finish;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tonic::Code;

/// Overrides the ConductorOne host of the client id (token endpoint and gRPC); may carry a port.
pub const API_HOST_ENV: &str = "BATON_C1_API_HOST";
/// The host id reported to ConductorOne.
pub const HOST_ID_ENV: &str = "BATON_HOST_ID";
/// The longest wait between polls.
pub const MAX_POLL: Duration = Duration::from_secs(300);

/// Timings and attempt counts. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Attempts at the token endpoint and at `Hello` when starting.
    pub startup_attempts: u32,
    /// First wait between startup attempts (doubling each time).
    pub startup_backoff: Duration,
    /// The longest wait between startup attempts.
    pub max_backoff: Duration,
    /// Poll interval when GetTask gives no `next_poll` (baton-sdk: none, poll again at once).
    pub default_poll: Duration,
    /// The shortest wait between polls that found no task (baton-sdk: none).
    pub min_poll: Duration,
    /// After the n-th failed poll in a row, the next waits n² of this (baton-sdk: 1 s)…
    pub poll_error_unit: Duration,
    /// …and at most this long (baton-sdk: 60 s).
    pub max_poll_error_wait: Duration,
    /// Deadline of Hello, GetTask and Heartbeat calls.
    pub rpc_timeout: Duration,
    /// Deadline of each FinishTask attempt.
    pub finish_timeout: Duration,
    pub finish_attempts: u32,
    /// UploadAsset attempts in all, and the backoff step (waits 0, 1×, 2× … the step).
    pub upload_attempts: u32,
    pub upload_backoff: Duration,
    /// Consecutive failed heartbeats after which a task is abandoned.
    pub heartbeat_failures: u32,
    /// How long running tasks may go on after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            startup_attempts: 8,
            startup_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            default_poll: Duration::ZERO,
            min_poll: Duration::ZERO,
            poll_error_unit: Duration::from_secs(1),
            max_poll_error_wait: Duration::from_secs(60),
            rpc_timeout: Duration::from_secs(60),
            finish_timeout: Duration::from_secs(30),
            finish_attempts: 3,
            upload_attempts: 3,
            upload_backoff: Duration::from_secs(1),
            heartbeat_failures: heartbeat::MAX_FAILURES,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Everything service mode needs.
#[derive(Clone)]
pub struct ServiceOptions {
    /// `BATON_CLIENT_ID`: `<clientName>@<tokenHost>/<suffix>`.
    pub client_id: String,
    /// `BATON_CLIENT_SECRET`.
    pub client_secret: Secret,
    /// `BATON_C1_API_HOST`: overrides the client id's host (may carry a port).
    pub api_host: Option<String>,
    /// `BATON_C1_CA_CERT`: a PEM file of extra CAs to trust for ConductorOne.
    pub ca_cert: Option<PathBuf>,
    /// `--host-id` / `BATON_HOST_ID`; else the host name, else `baton-sdk`.
    pub host_id: Option<String>,
    /// Segment: base URL, token and limits.
    pub connection: Connection,
    /// Carry out grant, revoke, create-account and delete-resource tasks.
    pub provisioning: bool,
    /// Where sync files are written before upload (`--c1z-temp-dir`; default: the OS temp
    /// directory).
    pub temp_dir: Option<PathBuf>,
    /// What full-sync tasks cover besides their own options (`--sync-*` flags).
    pub scope: SyncScope,
    /// `--skip-full-sync`: answer full-sync tasks with an empty sync (provisioning only).
    pub skip_full_sync: bool,
    /// Tasks worked on at once.
    pub task_concurrency: usize,
    /// A compiled runtime to share (tests); by default one is compiled at startup.
    pub runtime: Option<Arc<Runtime>>,
    /// Where the service reports how it is doing (what `/ready` and `/health` answer).
    pub health: Health,
    pub timing: Timing,
}

impl std::fmt::Debug for ServiceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceOptions")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("api_host", &self.api_host)
            .field("ca_cert", &self.ca_cert)
            .field("host_id", &self.host_id)
            .field("connection", &self.connection)
            .field("provisioning", &self.provisioning)
            .field("temp_dir", &self.temp_dir)
            .field("scope", &self.scope)
            .field("skip_full_sync", &self.skip_full_sync)
            .field("task_concurrency", &self.task_concurrency)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl ServiceOptions {
    pub fn new(
        client_id: impl Into<String>,
        client_secret: Secret,
        connection: Connection,
    ) -> ServiceOptions {
        ServiceOptions {
            client_id: client_id.into(),
            client_secret,
            api_host: None,
            ca_cert: None,
            host_id: None,
            connection,
            provisioning: false,
            temp_dir: None,
            scope: SyncScope::default(),
            skip_full_sync: false,
            task_concurrency: 1,
            runtime: None,
            health: Health::new(),
            timing: Timing::default(),
        }
    }

    /// Fills in what is still unset from `BATON_C1_API_HOST`, `BATON_C1_CA_CERT` and
    /// `BATON_HOST_ID`.
    pub fn with_environment(mut self) -> ServiceOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if self.api_host.is_none() {
            self.api_host = var(API_HOST_ENV);
        }
        if self.ca_cert.is_none() {
            self.ca_cert = var(client::CA_CERT_ENV).map(PathBuf::from);
        }
        if self.host_id.is_none() {
            self.host_id = var(HOST_ID_ENV);
        }
        self
    }
}

/// What the task workers share.
pub(crate) struct Ctx {
    pub client: C1Client,
    pub host_id: String,
    pub runtime: Arc<Runtime>,
    pub connection: Connection,
    pub provisioning: bool,
    pub temp_dir: PathBuf,
    pub scope: SyncScope,
    pub skip_full_sync: bool,
    pub metadata: pb::ConnectorMetadata,
    pub health: Health,
    pub timing: Timing,
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM (what Kubernetes sends to stop a pod).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch for SIGTERM ({e}); only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
}

/// Consecutive failed polls after which the host reports itself not ready.
const UNREADY_AFTER_FAILED_POLLS: u32 = 3;

/// The wait before the next poll for a `next_poll` value: held to 0–5 min, then at least
/// `floor`; `default` when absent.
pub fn poll_interval(
    next_poll: Option<&prost_types::Duration>,
    default: Duration,
    floor: Duration,
) -> Duration {
    let d = match next_poll {
        None => default,
        // Negative durations are zero.
        Some(d) => Duration::try_from(*d).unwrap_or(Duration::ZERO),
    };
    d.min(MAX_POLL).max(floor)
}

/// The wait after the `failures`-th failed poll in a row: `failures²` units, capped.
pub fn poll_error_wait(failures: u32, timing: &Timing) -> Duration {
    let n = failures.min(1_000);
    timing
        .poll_error_unit
        .saturating_mul(n * n)
        .min(timing.max_poll_error_wait)
}

/// Runs service mode until `shutdown` resolves (then stops cleanly) or a fatal error: invalid
/// settings, ConductorOne unreachable at startup after the attempts, or the credentials
/// refused.
pub async fn run(opts: ServiceOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let health = opts.health.clone();
    let result = start_and_serve(opts, shutdown).await;
    health.set(match &result {
        Ok(()) => State::Stopping,
        Err(e) => State::Degraded(format!("{e:#}")),
    });
    result
}

async fn start_and_serve(
    opts: ServiceOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let timing = opts.timing.clone();
    let health = opts.health.clone();
    let creds = Credentials::parse(
        &opts.client_id,
        opts.client_secret.expose(),
        opts.api_host.as_deref(),
    )?;
    let trust = match &opts.ca_cert {
        Some(path) => Trust::with_ca_file(path)?,
        None => Trust::system(),
    };
    let temp_dir = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    if !temp_dir.is_dir() {
        return Err(anyhow!(
            "the temporary directory {} does not exist (set TMPDIR, or mount a writable volume there)",
            temp_dir.display()
        ));
    }
    let host_id = hello::resolve_host_id(opts.host_id.as_deref());
    let user_agent = format!(
        "{} baton-segment/{}",
        creds.id.client_name,
        env!("CARGO_PKG_VERSION")
    );
    let c1_url = creds.grpc_url();
    let tokens = Arc::new(TokenSource::new(creds, &trust, &user_agent)?);
    let client = C1Client::new(tokens, &trust, &user_agent, timing.rpc_timeout)?;
    let task_concurrency = opts.task_concurrency.max(1);

    tokio::pin!(shutdown);
    tracing::info!(
        host_id = %host_id,
        conductorone = %c1_url,
        segment = %opts.connection.origin,
        provisioning = opts.provisioning,
        task_concurrency,
        "starting service mode"
    );

    // The credentials first: a refusal is reported before the (slower) compile.
    health.starting("getting an access token from ConductorOne");
    tokio::select! {
        got = client.tokens().startup(
            timing.startup_attempts,
            timing.startup_backoff,
            timing.max_backoff,
        ) => got?,
        _ = &mut shutdown => {
            tracing::info!("stopped before ConductorOne was reached");
            return Ok(());
        }
    }

    health.starting("compiling the connector component");
    let runtime = match opts.runtime.clone() {
        Some(r) => r,
        None => {
            // Each task's sync has its spare instances (`sync_on`).
            let per_task = opts.connection.concurrency + crate::commands::sync::SPARE_INSTANCES;
            let instances = (task_concurrency * per_task + 2) as u32;
            let compiled = tokio::task::spawn_blocking(move || segment_runtime(instances));
            Arc::new(
                compiled
                    .await
                    .context("compiling the connector component")??,
            )
        }
    };
    let metadata = hello::load_metadata(&runtime, &opts.connection).await?;

    health.starting("saying Hello to ConductorOne");
    tokio::select! {
        said = say_hello(&client, &host_id, &metadata, &timing, &c1_url) => said?,
        _ = &mut shutdown => {
            tracing::info!("stopped before ConductorOne was reached");
            return Ok(());
        }
    }

    let ctx = Arc::new(Ctx {
        client,
        host_id,
        runtime,
        connection: opts.connection.clone(),
        provisioning: opts.provisioning,
        temp_dir,
        scope: opts.scope.clone(),
        skip_full_sync: opts.skip_full_sync,
        metadata,
        health: health.clone(),
        timing,
    });
    health.set(State::Ready);
    serve(ctx, task_concurrency, shutdown).await
}

/// The waits between attempts at a call: the first given, then each twice the last, up to a
/// ceiling.
struct Backoff {
    wait: Duration,
    max: Duration,
}

impl Backoff {
    fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { wait: first, max }
    }

    /// Says that `attempt` (of `attempts`) failed, then waits before the next.
    async fn retry(&mut self, attempt: u32, attempts: u32, failure: String) {
        tracing::warn!(
            attempt,
            attempts,
            "{failure}; trying again in {:.1} s",
            self.wait.as_secs_f64()
        );
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(self.max);
    }
}

/// `Hello`, with retries of transient failures.
async fn say_hello(
    client: &C1Client,
    host_id: &str,
    metadata: &pb::ConnectorMetadata,
    timing: &Timing,
    url: &str,
) -> anyhow::Result<()> {
    let attempts = timing.startup_attempts.max(1);
    let mut backoff = Backoff::new(timing.startup_backoff, timing.max_backoff);
    for attempt in 1..=attempts {
        match client.hello(hello::request(host_id, "", metadata)).await {
            Ok(_) => {
                tracing::info!(host_id, "connected to ConductorOne at {url}");
                return Ok(());
            }
            Err(e) if e.is_refusal() => return Err(e.into()),
            Err(CallError::Rpc(s))
                if matches!(
                    s.code(),
                    Code::Unauthenticated
                        | Code::PermissionDenied
                        | Code::InvalidArgument
                        | Code::FailedPrecondition
                        | Code::Unimplemented
                ) =>
            {
                return Err(anyhow!(
                    "ConductorOne at {url} refused the connector's Hello: {}",
                    client::status_text(&s)
                ));
            }
            Err(e) if attempt == attempts => {
                return Err(anyhow!(
                    "cannot reach ConductorOne at {url}: {e}; gave up after {attempts} attempts"
                ));
            }
            Err(e) => {
                let failure = format!("Hello to ConductorOne failed: {e}");
                backoff.retry(attempt, attempts, failure).await;
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// The poll loop.
async fn serve(
    ctx: Arc<Ctx>,
    task_concurrency: usize,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(task_concurrency));
    let mut running = JoinSet::new();
    let mut failures = 0u32;
    let result = loop {
        while running.try_join_next().is_some() {}
        let mut permit = Some(tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break Ok(()),
        });
        let request = BatonServiceGetTaskRequest {
            host_id: ctx.host_id.clone(),
        };
        let polled = tokio::select! {
            r = ctx.client.get_task(request) => r,
            _ = &mut shutdown => break Ok(()),
        };
        let wait = match polled {
            Ok(resp) => {
                if failures > 0 {
                    tracing::info!("polling ConductorOne works again");
                    ctx.health.set(State::Ready);
                }
                failures = 0;
                let next_poll = poll_interval(
                    resp.next_poll.as_ref(),
                    ctx.timing.default_poll,
                    ctx.timing.min_poll,
                );
                match resp.task {
                    Some(task) if !tasks::is_none(&task) && !task.id.is_empty() => {
                        let permit = permit.take().expect("taken once");
                        running.spawn(work(ctx.clone(), task, stop_rx.clone(), permit));
                        // ConductorOne paces the polls, after a task as well as after none.
                        next_poll
                    }
                    Some(task) if !tasks::is_none(&task) => {
                        tracing::warn!(
                            task_type = tasks::kind(&task),
                            "ignoring a task without an id"
                        );
                        next_poll
                    }
                    _ => next_poll,
                }
            }
            // As baton-sdk: every failure (a refused token too) is waited out and polled
            // again; /health says what is wrong meanwhile.
            Err(e) => {
                failures += 1;
                let backoff = poll_error_wait(failures, &ctx.timing);
                tracing::warn!(
                    failures,
                    "polling ConductorOne for tasks failed: {e}; trying again in {:.1} s",
                    backoff.as_secs_f64()
                );
                if failures >= UNREADY_AFTER_FAILED_POLLS {
                    ctx.health.set(State::Degraded(format!(
                        "polling ConductorOne for tasks failed {failures} times in a row: {e}"
                    )));
                }
                backoff
            }
        };
        drop(permit);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => break Ok(()),
        }
    };

    // Stopping: no new tasks; running ones get the grace period, then are reported.
    ctx.health.set(State::Stopping);
    let _ = stop_tx.send(true);
    if !running.is_empty() {
        tracing::info!(
            tasks = running.len(),
            "shutting down: waiting up to {:.0} s for running tasks",
            ctx.timing.shutdown_grace.as_secs_f64()
        );
    }
    let limit = ctx.timing.shutdown_grace
        + ctx.timing.finish_timeout * ctx.timing.finish_attempts.max(1)
        + Duration::from_secs(5);
    let drained = tokio::time::timeout(limit, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("tasks did not stop in time; abandoning them");
        running.abort_all();
    }
    match &result {
        Ok(()) => tracing::info!("service mode stopped"),
        Err(e) => tracing::error!("service mode stopped: {e:#}"),
    }
    result
}

/// One task: the work, raced against shutdown (and, for full syncs, heartbeats and their
/// cancellation); then its report.
async fn work(
    ctx: Arc<Ctx>,
    task: Task,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let task_id = task.id.clone();
    let kind = tasks::kind(&task);
    tracing::info!(task_id = %task_id, task_type = kind, "task started");
    let started = Instant::now();
    let grace = ctx.timing.shutdown_grace;
    // baton-sdk heartbeats full syncs only: a first one at once, before any work; the task
    // is dropped (not finished) when it fails or says the task is cancelled.
    let first_beat = if tasks::is_sync(&task) {
        Some(heartbeat::first(&ctx.client, &ctx.host_id, &task_id).await)
    } else {
        None
    };
    let finish = match first_beat {
        Some(Err(heartbeat::Stop::Cancelled)) => {
            Finish::Unreported("cancelled by ConductorOne before it started".into())
        }
        Some(Err(heartbeat::Stop::Lost(e))) => Finish::Unreported(format!(
            "dropped: the first heartbeat failed ({e}); ConductorOne hands the task out again"
        )),
        first => {
            let job = tasks::execute(&ctx, &task);
            let beats = async {
                match first {
                    Some(Ok(every)) => {
                        heartbeat::run(
                            &ctx.client,
                            &ctx.host_id,
                            &task_id,
                            every,
                            ctx.timing.heartbeat_failures,
                        )
                        .await
                    }
                    _ => std::future::pending().await,
                }
            };
            let stopping = async move {
                if stop.wait_for(|s| *s).await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                f = job => f,
                stopped = beats => match stopped {
                    heartbeat::Stop::Cancelled => Finish::cancelled(),
                    heartbeat::Stop::Lost(e) => Finish::lost(&e),
                },
                _ = stopping => Finish::shutting_down(),
            }
        }
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &finish {
        Finish::Success { summary, .. } => tracing::info!(
            task_id = %task_id,
            task_type = kind,
            result = "success",
            elapsed_ms,
            "task finished: {summary}"
        ),
        Finish::Unreported(summary) => tracing::info!(
            task_id = %task_id,
            task_type = kind,
            elapsed_ms,
            "task ended: {summary}"
        ),
        Finish::Failure {
            status,
            non_retryable,
        } => tracing::warn!(
            task_id = %task_id,
            task_type = kind,
            result = "error",
            code = ?Code::from_i32(status.code),
            non_retryable = *non_retryable,
            elapsed_ms,
            "task failed: {}",
            status.message
        ),
    }
    tasks::report(&ctx, &task_id, &finish).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_polls_back_off_quadratically_to_a_minute() {
        let t = Timing::default();
        let waits: Vec<u64> = (1..=9).map(|n| poll_error_wait(n, &t).as_secs()).collect();
        assert_eq!(waits, [1, 4, 9, 16, 25, 36, 49, 60, 60]);
        assert_eq!(poll_error_wait(u32::MAX, &t), Duration::from_secs(60));
        // Without next_poll, baton-sdk polls again at once.
        assert_eq!(
            poll_interval(None, t.default_poll, t.min_poll),
            Duration::ZERO
        );
    }

    #[test]
    fn poll_intervals() {
        let d = |s: i64, n: i32| prost_types::Duration {
            seconds: s,
            nanos: n,
        };
        let def = Duration::from_secs(1);
        let floor = Duration::from_millis(100);
        assert_eq!(poll_interval(None, def, floor), def);
        assert_eq!(poll_interval(Some(&d(0, 0)), def, floor), floor);
        assert_eq!(poll_interval(Some(&d(-3, 0)), def, floor), floor);
        assert_eq!(
            poll_interval(Some(&d(2, 500_000_000)), def, floor),
            Duration::from_millis(2500)
        );
        assert_eq!(poll_interval(Some(&d(86_400, 0)), def, floor), MAX_POLL);
    }
}
