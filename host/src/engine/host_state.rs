//! A store's data (one component instance): WASI and HTTP contexts with the sandbox's hooks,
//! the guest's limits and meters, and the contract's host imports (log, config, session).

use super::contract::baton::connector::host::LogLevel;
use super::contract::baton::connector::{host, types};
use super::limits::{GuestLimits, InstanceLimits};
use super::session::SessionStore;
use crate::sandbox::{RunNetwork, SandboxHooks};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What the instances of one run share: their configuration, session store, network, limits
/// and meter.
#[derive(Debug)]
pub struct RunContext {
    /// Names the run in logs (a tenant id, or "sync").
    pub label: String,
    /// Settings the component reads with `config` (never secrets).
    pub config: BTreeMap<String, String>,
    pub session: SessionStore,
    pub network: Arc<RunNetwork>,
    /// Limits of each instance of the run; `None` for the runtime's defaults.
    pub limits: Option<InstanceLimits>,
    pub meter: RunMeter,
}

/// What a run's instances used: guest CPU time and the largest linear memory.
#[derive(Debug, Default)]
pub struct RunMeter {
    cpu_ticks: AtomicU64,
    peak_memory: AtomicUsize,
    environment_reads: AtomicU64,
}

impl RunMeter {
    /// How often the run's instances asked for their environment, arguments or working
    /// directory (the bundled connector never does; a host gives it nothing anyway).
    pub fn environment_reads(&self) -> u64 {
        self.environment_reads.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, cpu_ticks: u64, memory_bytes: usize) {
        self.cpu_ticks.fetch_add(cpu_ticks, Ordering::Relaxed);
        self.peak_memory.fetch_max(memory_bytes, Ordering::Relaxed);
    }

    /// Guest execution time, in epoch ticks (of `runtime::TICK`).
    pub fn cpu(&self) -> Duration {
        super::TICK * self.cpu_ticks.load(Ordering::Relaxed) as u32
    }

    pub fn peak_memory_bytes(&self) -> usize {
        self.peak_memory.load(Ordering::Relaxed)
    }
}

/// The data of one store (one component instance).
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: SandboxHooks,
    pub(crate) limits: GuestLimits,
    pub(crate) run: Arc<RunContext>,
    /// What the guest wrote to stderr (a panic message, say), kept for error reports.
    pub(crate) stderr: MemoryOutputPipe,
    /// Epoch ticks of guest execution in the current call, against `cpu_budget_ticks`.
    pub(crate) cpu_ticks: u64,
    pub(crate) cpu_budget_ticks: u64,
}

/// Longest log line a component may write; the rest is cut.
const MAX_LOG_LINE: usize = 4096;

/// Resources (requests, header maps, streams, …) one instance may hold at once. The host keeps
/// them outside the guest's linear memory, so they need their own bound; a connector with 64
/// requests in flight uses well under a thousand.
pub const MAX_RESOURCES: usize = 2048;

/// Size of one header map the guest builds or receives (Segment's headers are about 1 KiB).
/// With `MAX_RESOURCES`, this bounds what header maps can make the host hold for one instance
/// (32 MiB).
pub const MAX_FIELDS_BYTES: usize = 16 * 1024;

impl HostState {
    pub fn new(run: Arc<RunContext>, limits: GuestLimits, cpu_budget_ticks: u64) -> HostState {
        let stderr = MemoryOutputPipe::new(16 * 1024);
        // No preopens, no environment, no arguments, no sockets: stdout/stderr are captured.
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .build();
        HostState {
            wasi,
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_RESOURCES);
                table
            },
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(MAX_FIELDS_BYTES);
                http
            },
            hooks: SandboxHooks::new(run.network.clone(), limits.account()),
            limits,
            run,
            stderr,
            cpu_ticks: 0,
            cpu_budget_ticks,
        }
    }

    /// Counts one look at the environment.
    fn environment_read(&self) {
        self.run
            .meter
            .environment_reads
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn random(&mut self) -> &mut wasmtime_wasi::random::WasiRandomCtx {
        self.wasi.random()
    }

    /// The last thing the guest wrote to stderr, for an error message.
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let start = text.char_indices().rev().nth(600).map_or(0, |(i, _)| i);
        text[start..].to_string()
    }
}

impl Drop for HostState {
    /// Runs before the fields drop: the resource table (dropped first) holds in-flight slots,
    /// and freeing them must not let this instance's queued requests out.
    fn drop(&mut self) {
        self.hooks.close();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// The guest's `wasi:cli/environment`: no variables, no arguments, no working directory, and
/// every call counted, so tests can show that a connector does not look.
impl wasmtime_wasi::p2::bindings::cli::environment::Host for HostState {
    fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        self.environment_read();
        Ok(vec![])
    }

    fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        self.environment_read();
        Ok(vec![])
    }

    fn initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
        self.environment_read();
        Ok(None)
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let cut = (0..=MAX_LOG_LINE)
                .rev()
                .find(|&i| message.is_char_boundary(i))
                .unwrap_or(0);
            message.truncate(cut);
            message.push_str(" …");
        }
        let run = &self.run.label;
        match level {
            LogLevel::Trace => tracing::trace!(target: "connector", run = %run, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "connector", run = %run, "{message}"),
            LogLevel::Info => tracing::info!(target: "connector", run = %run, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "connector", run = %run, "{message}"),
            LogLevel::Error => tracing::error!(target: "connector", run = %run, "{message}"),
        }
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.run.config.get(&key).cloned()
    }

    fn session_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.run.session.get(&key)
    }

    fn session_set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        self.run.session.set(key, value)
    }

    fn session_get_prefix(&mut self, prefix: String) -> Vec<(String, Vec<u8>)> {
        self.run.session.get_prefix(&prefix)
    }
}
