//! A sync from start to finish: open the output (resuming an interrupted sync of it), run the
//! component in the sandbox under the sync's deadline, write the `.c1z` (atomically), and
//! summarise.

use super::connection::{Connection, segment_runtime};
use super::summary::SyncSummary;
use crate::engine::host_state::RunContext;
use crate::engine::{Program, Runtime};
use crate::sandbox::RunNetwork;
use crate::sync::checkpoint::Checkpoint;
use crate::sync::progress::Progress;
use crate::sync::scope::SyncScope;
use crate::sync::store::SyncStore;
use crate::sync::{SyncError, SyncOptions, Syncer};
use anyhow::anyhow;
use baton::c1z::{RESUME_WITHIN, WriterOptions};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The longest a sync runs by default (`--sync-deadline`): a 50k-user workspace at a few dozen
/// requests per second fits with room to spare.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct SyncJob {
    pub connection: Connection,
    pub output: PathBuf,
    /// Show a live progress line on stderr (when it is a terminal).
    pub show_progress: bool,
    /// Finished full syncs kept in the file, the new one included.
    pub keep_syncs: usize,
    /// Go on from an interrupted sync of the same file (same API and credential), if any.
    pub resume: bool,
    /// The longest the whole sync may take; an interrupted sync resumes from where this
    /// stopped it.
    pub deadline: Duration,
    /// What the sync covers (everything by default).
    pub scope: SyncScope,
}

impl SyncJob {
    /// A sync over `connection` into `output`, without progress on the terminal.
    pub fn with(connection: Connection, output: impl Into<PathBuf>) -> SyncJob {
        SyncJob {
            connection,
            output: output.into(),
            show_progress: false,
            keep_syncs: WriterOptions::default().keep_syncs,
            resume: true,
            deadline: DEFAULT_DEADLINE,
            scope: SyncScope::default(),
        }
    }

    fn writer_options(&self) -> WriterOptions {
        WriterOptions {
            keep_syncs: self.keep_syncs,
            resume_within: self.resume.then_some(RESUME_WITHIN),
            // Work of a sync that covered something else is not resumed.
            identity: format!("{} {:?}", self.connection.identity(), self.scope),
            sync_type: self.scope.sync_type(),
        }
    }
}

/// Runs a whole sync with a runtime of its own.
pub async fn sync(job: SyncJob) -> anyhow::Result<SyncSummary> {
    sync_until(job, std::future::pending()).await
}

/// [`sync`], stopped when `stop` completes (Ctrl-C, SIGTERM): the work done and the
/// connector's session store are kept for the next sync of the file to resume.
pub async fn sync_until(
    job: SyncJob,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<SyncSummary> {
    // The output is opened before the (slower) compile: a path that cannot be written fails
    // at once.
    let opened = SyncStore::open(&job.output, &job.writer_options())?;
    let runtime = segment_runtime(job.connection.concurrency as u32 + SPARE_INSTANCES as u32)?;
    let run = job.connection.run_context(job.connection.policy());
    sync_with(&runtime, job, opened, run, None, SPARE_INSTANCES, stop).await
}

/// Instances a sync with a runtime of its own (or a service-mode task, whose pool has them)
/// uses beyond its concurrency, for calls that need no request (see
/// [`SyncOptions::spare_instances`]).
pub const SPARE_INSTANCES: usize = 2;

/// Runs a sync on an existing runtime (tests and the multi-tenant host share one).
pub async fn sync_on(runtime: &Runtime, job: SyncJob) -> anyhow::Result<SyncSummary> {
    sync_on_until(runtime, job, std::future::pending()).await
}

/// [`sync_on`], stopped when `stop` completes (see [`sync_until`]).
pub async fn sync_on_until(
    runtime: &Runtime,
    job: SyncJob,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<SyncSummary> {
    let run = job.connection.run_context(job.connection.policy());
    let opened = SyncStore::open(&job.output, &job.writer_options())?;
    sync_with(runtime, job, opened, run, None, SPARE_INSTANCES, stop).await
}

/// A sync in a prepared run (its own limits and network) of `program`, or of the runtime's
/// component when `None`: how the multi-tenant host runs each tenant (within its share of the
/// pool: no spare instances).
pub async fn sync_in(
    runtime: &Runtime,
    job: SyncJob,
    run: Arc<RunContext>,
    program: Option<Arc<Program>>,
) -> anyhow::Result<SyncSummary> {
    let opened = SyncStore::open(&job.output, &job.writer_options())?;
    sync_with(
        runtime,
        job,
        opened,
        run,
        program,
        0,
        std::future::pending(),
    )
    .await
}

async fn sync_with(
    runtime: &Runtime,
    job: SyncJob,
    (store, checkpoint): (SyncStore, Option<Checkpoint>),
    run: Arc<RunContext>,
    program: Option<Arc<Program>>,
    spare_instances: usize,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<SyncSummary> {
    let network = run.network.clone();
    let progress = Arc::new(Progress::default());
    let reporter = spawn_reporter(progress.clone(), network.clone(), job.show_progress);
    let options = SyncOptions {
        concurrency: job.connection.concurrency.max(1),
        spare_instances,
        retry: network.policy.retry.clone(),
        scope: job.scope.clone(),
    };
    let work_dir = store.work_dir().to_path_buf();
    let mut syncer = Syncer::new(runtime, run.clone(), options, progress, store, checkpoint);
    if let Some(program) = program {
        syncer = syncer.with_program(program);
    }
    // A sync past its deadline or told to stop is dropped (its store keeps its work on disk).
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(job.deadline, syncer.run()) => outcome.map_err(|_| Stopped::Deadline),
        () = stop => Err(Stopped::Interrupted),
    };
    reporter.abort();
    let _ = reporter.await;
    if job.show_progress && std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
    let report = match outcome {
        Ok(Ok(report)) => report,
        Ok(Err((e, mut store))) => {
            // What was done is kept for the next sync to resume from, the connector's session
            // store with it.
            if let Err(kept) = store
                .keep_for_resume()
                .and_then(|()| run.session.spill_to(store.work_dir()))
            {
                tracing::warn!("the failed sync's work could not be kept for resuming: {kept:#}");
            }
            return Err(explain(e, &job, &network));
        }
        Err(stopped) => {
            // The dropped sync's store kept its work on disk (or removed it, with nothing to
            // resume): the connector's session store goes beside it.
            if work_dir.is_dir()
                && let Err(kept) = run.session.spill_to(&work_dir)
            {
                tracing::warn!(
                    "the stopped sync's session could not be kept for resuming: {kept:#}"
                );
            }
            let why = match stopped {
                Stopped::Deadline => format!(
                    "the sync did not finish within its deadline of {}",
                    humantime::format_duration(job.deadline)
                ),
                Stopped::Interrupted => "interrupted before the sync finished".to_string(),
            };
            return Err(anyhow!(
                "{why}; {} is unchanged, and the next sync of it resumes where this one stopped",
                job.output.display()
            ));
        }
    };

    let store = report.store;
    let sync_id = store.sync_id().to_string();
    let counts = store.counts()?;
    let workspace = store
        .first_of_type("workspace")?
        .map(|w| format!("\"{}\" ({})", w.display_name, w.id.resource));
    let started = store.started_at()?;
    let written = store.finish(started, chrono::Local::now())?;
    let mut warnings = report.warnings;
    if report.warning_count > warnings.len() as u64 {
        warnings.push(format!(
            "… and {} more warnings",
            report.warning_count - warnings.len() as u64
        ));
    }
    Ok(SyncSummary {
        workspace,
        output: written,
        sync_id,
        resources_by_type: counts.resources_by_type,
        entitlements: counts.entitlements,
        grants: counts.grants,
        expanded_grants: report.expanded_grants,
        warnings,
        net: network.stats.snapshot(),
        retried_calls: report.retried_calls,
        elapsed: report.elapsed,
        resumed: report.resumed,
    })
}

/// Why a sync was dropped before it ended.
enum Stopped {
    Deadline,
    Interrupted,
}

fn explain(e: SyncError, job: &SyncJob, network: &RunNetwork) -> anyhow::Error {
    let budget = network.spent_budget().map_or(String::new(), |budget| {
        format!(
            "\nThe sync used its whole request budget of {budget} requests (--request-budget, \
             BATON_REQUEST_BUDGET; 0 for none): the workspace needs more, or the server never \
             ends a listing."
        )
    });
    let hint = if e.is_auth() {
        format!(
            "\nNo .c1z was written; {} is unchanged.",
            job.output.display()
        )
    } else {
        format!("\nThe sync stopped; {} is unchanged.", job.output.display())
    };
    anyhow!("{e}{budget}{hint}")
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
