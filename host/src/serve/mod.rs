//! `baton-segment serve`: many tenants' connectors in one process, on one engine, each in its
//! own sandbox with its own token, network, memory, CPU, time and request limits, so that a
//! buggy, slow or hostile one cannot read another's data, exhaust the host, or stop the others.

pub mod config;
pub mod metrics;

use crate::app::{self, Connection, SyncJob};
use crate::component::{InstanceLimits, SEGMENT_CONNECTOR_WASM};
use crate::runtime::{Program, Runtime, RuntimeLimits};
use config::Tenant;
use metrics::{Metrics, RunReport};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

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
    let runtime = Arc::new(runtime_for(&opts.tenants, &default_wasm, cache)?);
    // Each distinct component is compiled (and its imports checked) once, before anything runs.
    let mut programs: HashMap<PathBuf, Arc<Program>> = HashMap::new();
    for tenant in &opts.tenants {
        if let Some(path) = &tenant.connector
            && !programs.contains_key(path)
        {
            let wasm = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("tenant {}: cannot read {}: {e}", tenant.id, path.display())
            })?;
            let program = runtime
                .load(&wasm, cache)
                .map_err(|e| anyhow::anyhow!("tenant {}: {}: {e:#}", tenant.id, path.display()))?;
            programs.insert(path.clone(), program);
        }
    }
    let metrics = Arc::new(Metrics::default());
    for tenant in &opts.tenants {
        metrics.register(&tenant.id);
    }
    let health = match opts.health {
        Some(addr) => {
            let m = metrics.clone();
            let (bound, task) =
                crate::health::serve(addr, Some(Arc::new(move || m.render()))).await?;
            tracing::info!("health checks and metrics on http://{bound}/metrics");
            Some(task)
        }
        None => None,
    };

    let mut tasks = tokio::task::JoinSet::new();
    for tenant in opts.tenants {
        let program = tenant
            .connector
            .as_ref()
            .and_then(|p| programs.get(p))
            .cloned()
            .unwrap_or_else(|| runtime.program().clone());
        let (runtime, metrics, once) = (runtime.clone(), metrics.clone(), opts.once);
        tasks.spawn(async move {
            loop {
                let report = run_tenant(&runtime, &program, &tenant).await;
                let failure = report.error.clone();
                metrics.record(&tenant.id, report);
                match tenant.interval {
                    Some(every) if !once => tokio::time::sleep(every).await,
                    _ => return (tenant.id, failure),
                }
            }
        });
    }
    let mut failures = vec![];
    let all = async {
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((id, Some(error))) => failures.push((id, error)),
                Ok((_, None)) => {}
                Err(e) => failures.push(("?".into(), format!("a tenant task failed: {e}"))),
            }
        }
    };
    tokio::select! {
        _ = all => {}
        _ = shutdown => tracing::info!("shutting down"),
    }
    if let Some(task) = health {
        task.abort();
    }
    failures.sort();
    Ok(ServeReport { failures, metrics })
}

/// One sync of one tenant, contained: whatever its connector does, the outcome is a report.
pub async fn run_tenant(runtime: &Runtime, program: &Arc<Program>, tenant: &Tenant) -> RunReport {
    let started = Instant::now();
    let limits = &tenant.limits;
    let token = match tenant.token.read() {
        Ok(t) => t,
        Err(e) => return failed(&tenant.id, format!("no token: {e}"), started),
    };
    let mut connection = Connection::new(&tenant.base_url, token);
    connection.concurrency = limits.concurrent_requests;
    connection.label = tenant.id.clone();
    connection.settings = tenant.settings.clone();
    connection.session_bytes = limits.session_bytes;
    let mut policy = match connection.policy() {
        Ok(p) => p,
        Err(e) => return failed(&tenant.id, format!("{e:#}"), started),
    };
    policy.allowed = limits.allowed_origins.clone();
    policy.max_response_bytes = limits.response_max_bytes;
    policy.request_budget = limits.request_budget;
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
            tracing::info!(
                tenant = %tenant.id,
                "synced {} resources, {} entitlements, {} grants into {} ({} requests, {:.2} s, CPU {:.2} s, peak memory {} KiB)",
                report.resources, report.entitlements, report.grants, tenant.output.display(),
                report.net.requests, report.wall.as_secs_f64(), report.cpu.as_secs_f64(), report.peak_memory_bytes >> 10
            );
        }
        Err(e) => {
            let message = format!("{e:#}");
            tracing::warn!(tenant = %tenant.id, "sync failed: {message}");
            report.error = Some(message);
        }
    }
    report
}

fn failed(tenant: &str, message: String, started: Instant) -> RunReport {
    tracing::warn!(tenant = %tenant, "sync failed: {message}");
    RunReport {
        error: Some(message),
        wall: started.elapsed(),
        ..RunReport::default()
    }
}
