//! `baton-segment serve`: many tenants' connectors in one process, on one engine, each in its
//! own sandbox with its own token, network, memory, CPU, time and request limits, so that a
//! buggy, slow or hostile one cannot read another's data, exhaust the host, or stop the others.

pub mod config;
pub mod metrics;
pub mod policy;

use crate::commands::connection::Connection;
use crate::commands::sync::{self as app, SyncJob};
use crate::engine::contract::SEGMENT_CONNECTOR_WASM;
use crate::engine::limits::InstanceLimits;
use crate::engine::{Program, Runtime, RuntimeLimits};
use crate::health::{Health, State};
use config::Tenant;
use metrics::{Metrics, RunReport};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct ServeOptions {
    pub tenants: Vec<Tenant>,
    /// One round: every tenant syncs once, then `run` returns.
    pub once: bool,
    /// The component tenants run unless they name their own; the bundled connector if `None`.
    pub connector: Option<PathBuf>,
    /// Where compiled components are cached; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
    /// Serve `/health`, `/ready`, `/live` and `/metrics` here.
    pub health: Option<SocketAddr>,
    /// How long a tenant's own component may take to compile before that tenant fails.
    pub compile_timeout: Duration,
}

/// The default of [`ServeOptions::compile_timeout`]: the bundled component compiles in well
/// under a second; a component that takes a minute is an attack on the host's CPU.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

impl ServeOptions {
    /// One round of `tenants` with the bundled connector, no cache and no health port.
    pub fn once(tenants: Vec<Tenant>) -> ServeOptions {
        ServeOptions {
            tenants,
            once: true,
            connector: None,
            cache_dir: None,
            health: None,
            compile_timeout: COMPILE_TIMEOUT,
        }
    }
}

/// How a round went: the tenants that failed, with why.
#[derive(Debug, Default)]
pub struct ServeReport {
    pub failures: Vec<(String, String)>,
    pub metrics: Arc<Metrics>,
}

/// The largest pool the host reserves (instances alive at once, over all tenants).
const MAX_POOL: u32 = 1000;

/// The runtime for `tenants`: the pool holds every tenant's instances at once, each slot as
/// large as the largest tenant memory limit.
pub fn runtime_for(
    tenants: &[Tenant],
    wasm: &[u8],
    cache_dir: Option<&std::path::Path>,
) -> anyhow::Result<Runtime> {
    let instances: usize = tenants
        .iter()
        .map(|t| t.limits.concurrent_requests + 1)
        .sum();
    let memory = tenants
        .iter()
        .map(|t| t.limits.memory_bytes)
        .max()
        .unwrap_or(config::DEFAULT_MEMORY_MIB as usize);
    let limits = RuntimeLimits {
        max_instances: (instances as u32).clamp(1, MAX_POOL),
        memory_bytes: memory,
        ..RuntimeLimits::default()
    };
    Runtime::with_cache(wasm, limits, cache_dir)
}

/// Runs every tenant (once with `--once`, else on its interval) until `shutdown` resolves.
pub async fn run(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<ServeReport> {
    let default_wasm = match &opts.connector {
        Some(path) => std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read the connector {}: {e}", path.display()))?,
        None => SEGMENT_CONNECTOR_WASM.to_vec(),
    };
    let cache = opts.cache_dir.as_deref();
    // The host's own component failing to load stops everything; a tenant's own component
    // failing to load (unreadable, not a component, importing more than the sandbox grants,
    // compiling for too long) fails that tenant alone.
    let runtime = Arc::new(runtime_for(&opts.tenants, &default_wasm, cache)?);
    // Each distinct component of a tenant's is compiled once, by the first of its tenants to
    // need it, in the background: the other tenants start at once.
    let mut programs: HashMap<PathBuf, Arc<Compiled>> = HashMap::new();
    for tenant in &opts.tenants {
        if let Some(path) = &tenant.connector {
            programs.entry(path.clone()).or_default();
        }
    }
    let compiling = Arc::new(tokio::sync::Semaphore::new(COMPILES_AT_ONCE));
    let metrics = Arc::new(Metrics::default());
    for tenant in &opts.tenants {
        metrics.register(&tenant.id);
    }
    // Ready once the host's component is compiled: from here on tenants sync (those with a
    // component of their own once it is compiled).
    let state = Health::new();
    state.set(State::Ready);
    let health = match opts.health {
        Some(addr) => {
            let m = metrics.clone();
            let (bound, task) =
                crate::health::serve(addr, state.clone(), Some(Arc::new(move || m.render())))
                    .await?;
            tracing::info!("health checks and metrics on http://{bound}/metrics");
            Some(task)
        }
        None => None,
    };

    let mut tasks = tokio::task::JoinSet::new();
    let mut unfinished: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut failures = vec![];
    for tenant in opts.tenants {
        unfinished.insert(tenant.id.clone());
        let (runtime, metrics, once) = (runtime.clone(), metrics.clone(), opts.once);
        let own = tenant.connector.as_ref().map(|path| {
            let compile = Compile {
                runtime: runtime.clone(),
                path: path.clone(),
                cache: opts.cache_dir.clone(),
                timeout: opts.compile_timeout,
                slots: compiling.clone(),
            };
            (programs[path].clone(), compile)
        });
        tasks.spawn(async move {
            let program = match own {
                None => runtime.program().clone(),
                Some((cell, compile)) => match cell.get_or_init(|| compile.run()).await {
                    Ok(program) => program.clone(),
                    Err(e) => {
                        tracing::error!(tenant = %tenant.id, "{e}; the tenant will not run");
                        metrics.record(
                            &tenant.id,
                            RunReport {
                                error: Some(e.clone()),
                                ..RunReport::default()
                            },
                        );
                        return (tenant.id, Some(e.clone()));
                    }
                },
            };
            loop {
                let started = Instant::now();
                let report = run_tenant(&runtime, &program, &tenant).await;
                let failure = report.error.clone();
                metrics.record(&tenant.id, report);
                if once {
                    return (tenant.id, failure);
                }
                // Start to start; a sync longer than the interval is followed at once.
                tokio::time::sleep(tenant.interval.saturating_sub(started.elapsed())).await;
            }
        });
    }
    let all = async {
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((id, failure)) => {
                    unfinished.remove(&id);
                    if let Some(error) = failure {
                        failures.push((id, error));
                    }
                }
                Err(e) => failures.push(("?".into(), format!("a tenant task failed: {e}"))),
            }
        }
    };
    let interrupted = tokio::select! {
        _ = all => false,
        _ = shutdown => true,
    };
    state.set(State::Stopping);
    if interrupted {
        tracing::info!("shutting down");
        // Dropping the tasks stops their syncs; outputs are replaced only by finished ones.
        tasks.abort_all();
        // In a single round, a tenant that did not get to finish did not sync.
        if opts.once {
            for id in unfinished {
                failures.push((id, "stopped by a shutdown before its sync finished".into()));
            }
        }
    }
    if let Some(task) = health {
        task.abort();
    }
    failures.sort();
    Ok(ServeReport { failures, metrics })
}

/// A tenant's own component, once compiled (or why it is not).
type Compiled = tokio::sync::OnceCell<Result<Arc<Program>, String>>;

/// Tenants' own components compiled at once (each compile uses every core wasmtime finds).
const COMPILES_AT_ONCE: usize = 1;

/// The compile of one tenant's own component.
struct Compile {
    runtime: Arc<Runtime>,
    path: PathBuf,
    cache: Option<PathBuf>,
    timeout: Duration,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Compile {
    /// Reads (a regular file, size-capped) and compiles the component on blocking threads.
    /// Past the timeout the tenant fails; the compile itself cannot be interrupted and finishes
    /// in the background, its result dropped.
    async fn run(self) -> Result<Arc<Program>, String> {
        let _slot = self
            .slots
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        // The file is checked and read first, outside the timeout: a file that is refused
        // (not a regular one, too large) is reported as such, however short the timeout.
        let path = self.path.clone();
        let wasm = tokio::task::spawn_blocking(move || {
            policy::read_regular(&path, policy::MAX_COMPONENT_FILE, "connector")
        })
        .await
        .map_err(|e| format!("reading the connector {} failed: {e}", self.path.display()))?
        .map_err(|e| format!("the connector {}: {e:#}", self.path.display()))?;
        let (runtime, cache) = (self.runtime, self.cache);
        let compile = tokio::task::spawn_blocking(move || runtime.load(&wasm, cache.as_deref()));
        match tokio::time::timeout(self.timeout, compile).await {
            Ok(Ok(Ok(program))) => Ok(program),
            Ok(Ok(Err(e))) => Err(format!("the connector {}: {e:#}", self.path.display())),
            Ok(Err(e)) => Err(format!(
                "compiling the connector {} failed: {e}",
                self.path.display()
            )),
            Err(_) => Err(format!(
                "the connector {} did not compile within {}",
                self.path.display(),
                humantime::format_duration(self.timeout)
            )),
        }
    }
}

/// One sync of one tenant, contained: whatever its connector does, the outcome is a report.
pub async fn run_tenant(runtime: &Runtime, program: &Arc<Program>, tenant: &Tenant) -> RunReport {
    let started = Instant::now();
    let limits = &tenant.limits;
    let token = match tenant.token.read() {
        Ok(t) => t,
        Err(e) => return failed(&tenant.id, format!("no token: {e}"), started),
    };
    let mut connection = Connection::new(tenant.origin.clone(), token);
    connection.concurrency = limits.concurrent_requests;
    connection.label = tenant.id.clone();
    connection.settings = tenant.settings.clone();
    connection.session_bytes = limits.session_bytes;
    let mut policy = connection.policy();
    policy.allowed = limits.allowed_origins.clone();
    policy.addresses = limits.addresses.clone();
    policy.max_response_bytes = limits.response_max_bytes;
    policy.request_budget = limits.request_budget.or(connection.request_budget);
    let instance = InstanceLimits {
        memory_bytes: limits.memory_bytes,
        cpu_per_call: limits.cpu_per_call,
        wall_per_call: limits.wall_per_call,
    };
    let run = connection.run_context_with(policy, Some(instance));
    let job = SyncJob::with(connection, tenant.output.clone());
    let sync = app::sync_in(runtime, job, run.clone(), Some(program.clone()));
    // Dropping the sync on timeout drops its instances and stores: nothing of it keeps running.
    let outcome = match tokio::time::timeout(limits.wall_per_sync, sync).await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!(
            "the sync took longer than its wall-time budget of {}; {} is unchanged",
            humantime::format_duration(limits.wall_per_sync),
            tenant.output.display()
        )),
    };
    let mut report = RunReport {
        net: run.network.stats.snapshot(),
        wall: started.elapsed(),
        cpu: run.meter.cpu(),
        peak_memory_bytes: run.meter.peak_memory_bytes(),
        ..RunReport::default()
    };
    match outcome {
        Ok(summary) => {
            report.success = true;
            report.resources = summary.resources();
            report.entitlements = summary.entitlements;
            report.grants = summary.grants;
            report.warnings = summary.warnings.len();
        }
        // Redacted while the run's token is at hand: the text is kept, shown and logged later.
        Err(e) => report.error = Some(crate::sandbox::redact::redacted(format!("{e:#}"))),
    }
    log_run(tenant, &report);
    report
}

/// One log line per run, with its figures as fields (for log pipelines) and in words.
fn log_run(tenant: &Tenant, r: &RunReport) {
    macro_rules! run_event {
        ($level:expr, $($message:tt)+) => {
            tracing::event!(
                $level,
                tenant = %tenant.id,
                result = if r.success { "success" } else { "error" },
                resources = r.resources,
                entitlements = r.entitlements,
                grants = r.grants,
                warnings = r.warnings,
                requests = r.net.requests,
                retries = r.net.retries,
                rate_limited = r.net.rate_limited,
                denied = r.net.denied,
                bytes = r.net.bytes_received,
                wall_ms = r.wall.as_millis() as u64,
                cpu_ms = r.cpu.as_millis() as u64,
                peak_memory_kib = r.peak_memory_bytes >> 10,
                $($message)+
            )
        };
    }
    match &r.error {
        None => run_event!(
            tracing::Level::INFO,
            "synced {} resources, {} entitlements, {} grants into {}",
            r.resources,
            r.entitlements,
            r.grants,
            tenant.output.display()
        ),
        Some(message) => run_event!(tracing::Level::WARN, "sync failed: {message}"),
    }
}

fn failed(tenant: &str, message: String, started: Instant) -> RunReport {
    let message = crate::sandbox::redact::redacted(message);
    tracing::warn!(tenant = %tenant, "sync failed: {message}");
    RunReport {
        error: Some(message),
        wall: started.elapsed(),
        ..RunReport::default()
    }
}
