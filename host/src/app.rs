//! A sync from start to finish: check the settings, open the output, run the component in the
//! sandbox, write the `.c1z` (atomically), and summarise.

use crate::component::{InstanceLimits, RunContext, SEGMENT_CONNECTOR_WASM};
use crate::convert;
use crate::runtime::{Program, Runtime, RuntimeLimits};
use crate::sandbox::{HttpPolicy, Origin, RunNetwork, Secret};
use crate::session::SessionStore;
use crate::summary::SyncSummary;
use crate::sync::progress::Progress;
use crate::sync::{SyncError, SyncOptions, Syncer};
use anyhow::{Context, anyhow};
use baton::C1zWriter;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Session store size per run: enough for the permissions of tens of thousands of users.
pub const SESSION_BYTES: usize = 256 << 20;

/// How the component reaches Segment: the API, the token the host adds, and the limits.
#[derive(Debug, Clone)]
pub struct Connection {
    pub base_url: String,
    pub token: Secret,
    pub concurrency: usize,
    pub http_timeout: Duration,
    /// Names the run in logs.
    pub label: String,
    /// More settings for the component (`config` in the contract); never secrets.
    pub settings: BTreeMap<String, String>,
    /// The run's session store (host memory the component fills): its size limit.
    pub session_bytes: usize,
}

impl Connection {
    pub fn new(base_url: impl Into<String>, token: Secret) -> Connection {
        Connection {
            base_url: base_url.into(),
            token,
            concurrency: 4,
            http_timeout: Duration::from_secs(300),
            label: "segment".into(),
            settings: BTreeMap::new(),
            session_bytes: SESSION_BYTES,
        }
    }

    /// The network a run may use: the base URL's origin, nothing else.
    pub fn policy(&self) -> anyhow::Result<HttpPolicy> {
        let mut policy = HttpPolicy::for_base_url(&self.base_url, Some(self.token.clone()))
            .map_err(|e| anyhow!("invalid base URL: {e}"))?;
        policy.max_in_flight = self.concurrency.max(1);
        policy.first_byte_timeout = self.http_timeout;
        Ok(policy)
    }

    /// The shared context of one run's instances, on `policy`'s network.
    pub fn run_context(&self, policy: HttpPolicy) -> Arc<RunContext> {
        self.run_context_with(policy, None)
    }

    /// Like [`Connection::run_context`], with limits for each instance of the run.
    pub fn run_context_with(
        &self,
        policy: HttpPolicy,
        limits: Option<InstanceLimits>,
    ) -> Arc<RunContext> {
        Arc::new(RunContext {
            label: self.label.clone(),
            config: {
                let mut config = self.settings.clone();
                config.insert(
                    "base-url".to_string(),
                    self.base_url.trim_end_matches('/').to_string(),
                );
                config.insert("max-in-flight".to_string(), self.concurrency.to_string());
                config
            },
            session: SessionStore::new(self.session_bytes),
            network: RunNetwork::new(policy),
            limits,
            meter: Default::default(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct SyncJob {
    pub connection: Connection,
    pub output: PathBuf,
    /// Show a live progress line on stderr (when it is a terminal).
    pub show_progress: bool,
    /// Attempts of a call the connector reports as rate limited or unavailable.
    pub max_attempts: u32,
    /// What the sync covers (everything by default).
    pub scope: crate::sync::scope::SyncScope,
}

impl SyncJob {
    pub fn new(base_url: impl Into<String>, token: Secret, output: impl Into<PathBuf>) -> SyncJob {
        SyncJob::with(Connection::new(base_url, token), output)
    }

    /// A sync over `connection` into `output`, without progress on the terminal.
    pub fn with(connection: Connection, output: impl Into<PathBuf>) -> SyncJob {
        SyncJob {
            connection,
            output: output.into(),
            show_progress: false,
            max_attempts: SyncOptions::default().max_attempts,
            scope: Default::default(),
        }
    }
}

/// The runtime for the bundled Segment component.
pub fn segment_runtime(max_instances: u32) -> anyhow::Result<Runtime> {
    Runtime::new(
        SEGMENT_CONNECTOR_WASM,
        RuntimeLimits {
            max_instances,
            ..RuntimeLimits::default()
        },
    )
}

/// Runs a whole sync with a runtime of its own.
pub async fn sync(job: SyncJob) -> anyhow::Result<SyncSummary> {
    // Settings and the output path are checked before the (slower) compile.
    job.connection.policy()?;
    let writer = open_output(&job)?;
    let runtime = segment_runtime(job.connection.concurrency as u32 + 2)?;
    let run = job.connection.run_context(job.connection.policy()?);
    sync_with(&runtime, job, writer, run, None).await
}

fn open_output(job: &SyncJob) -> anyhow::Result<C1zWriter> {
    C1zWriter::create(&job.output)
        .with_context(|| format!("cannot write the output file {}", job.output.display()))
}

/// Runs a sync on an existing runtime (tests and the multi-tenant host share one).
pub async fn sync_on(runtime: &Runtime, job: SyncJob) -> anyhow::Result<SyncSummary> {
    let run = job.connection.run_context(job.connection.policy()?);
    sync_in(runtime, job, run, None).await
}

/// A sync in a prepared run (its own limits and network) of `program`, or of the runtime's
/// component when `None`: how the multi-tenant host runs each tenant.
pub async fn sync_in(
    runtime: &Runtime,
    job: SyncJob,
    run: Arc<RunContext>,
    program: Option<Arc<Program>>,
) -> anyhow::Result<SyncSummary> {
    let writer = open_output(&job)?;
    sync_with(runtime, job, writer, run, program).await
}

async fn sync_with(
    runtime: &Runtime,
    job: SyncJob,
    writer: C1zWriter,
    run: Arc<RunContext>,
    program: Option<Arc<Program>>,
) -> anyhow::Result<SyncSummary> {
    let network = run.network.clone();
    let progress = Arc::new(Progress::default());
    let reporter = spawn_reporter(progress.clone(), network.clone(), job.show_progress);
    let options = SyncOptions {
        concurrency: job.connection.concurrency.max(1),
        max_attempts: job.max_attempts.max(1),
        scope: job.scope.clone(), // scope:
        ..SyncOptions::default()
    };
    let mut syncer = Syncer::new(runtime, run, options, progress);
    if let Some(program) = program {
        syncer = syncer.with_program(program);
    }
    let outcome = syncer.run().await;
    reporter.abort();
    let _ = reporter.await;
    if job.show_progress && std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
    let report = outcome.map_err(|e| explain(e, &job))?;

    let converted = convert::sync_data(&report.data);
    let sync_id = writer.sync_id().to_string();
    let mut writer = writer;
    writer.set_sync_type(job.scope.sync_type()); // scope:
    writer.put_resource_types(&converted.resource_types)?;
    writer.put_resources(&converted.resources)?;
    writer.put_entitlements(&converted.entitlements)?;
    writer.put_grants(&converted.grants)?;
    let written = writer
        .finish(report.started, chrono::Local::now())
        .with_context(|| format!("writing {}", job.output.display()))?;

    let workspace = report
        .data
        .resources()
        .iter()
        .find(|r| r.id.resource_type == "workspace")
        .map(|w| format!("\"{}\" ({})", w.display_name, w.id.resource));
    Ok(SyncSummary {
        workspace,
        output: written,
        sync_id,
        resources_by_type: report.data.resource_counts(),
        entitlements: report.data.entitlements().len(),
        grants: report.data.grants().len(),
        expanded_grants: report.expanded_grants,
        warnings: report.data.warnings.clone(),
        net: network.stats.snapshot(),
        retried_calls: report.retried_calls,
        elapsed: report.elapsed,
    })
}

fn explain(e: SyncError, job: &SyncJob) -> anyhow::Error {
    let hint = if e.is_auth() {
        format!(
            "\nNo .c1z was written; {} is unchanged.",
            job.output.display()
        )
    } else {
        format!("\nThe sync stopped; {} is unchanged.", job.output.display())
    };
    anyhow!("{e}{hint}")
}

/// A progress line on a terminal (redrawn), or a log line every 15 s otherwise.
fn spawn_reporter(
    progress: Arc<Progress>,
    network: Arc<RunNetwork>,
    show: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !show {
            return;
        }
        let tty = std::io::stderr().is_terminal();
        let every = if tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(15)
        };
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let line = progress.line(network.stats.snapshot().requests);
            if tty {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{line}");
                let _ = err.flush();
            } else {
                tracing::info!("progress: {line}");
            }
        }
    })
}

/// Checks a base URL the way the sandbox will use it.
pub fn check_base_url(url: &str) -> anyhow::Result<Origin> {
    let origin = Origin::parse(url).map_err(|e| anyhow!("invalid base URL: {e}"))?;
    origin
        .check_can_carry_token()
        .map_err(|e| anyhow!("base URL refused: {e}"))?;
    Ok(origin)
}
