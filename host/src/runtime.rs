//! The wasmtime side: one engine (async, epoch interruption with a ticker thread, pooling
//! allocator), the component compiled once with its imports resolved once (`InstancePre`), and
//! a fresh store per instance with memory, CPU and wall-time limits.

use crate::component::{
    AccountInfo, BatonConnector, BatonConnectorPre, ConnectorError, ConnectorMetadata,
    CreateAccountOutcome, DeleteOutcome, Entitlement, EntitlementPage, GrantOutcome, GrantPage,
    GrantRecord, HostState, InstanceLimits, Operation, PlannedRequest, Resource, ResourceId,
    ResourcePage, ResourceType, RevokeOutcome, RunContext,
};
use crate::limits::{GuestLimits, MEMORY_LIMIT_MESSAGE};
use crate::sandbox::RunNetwork;
use anyhow::Context as _;

/// `anyhow`'s `context` for wasmtime's own error type.
trait WasmtimeContext<T> {
    fn wctx(self, what: &'static str) -> anyhow::Result<T>;
}

impl<T> WasmtimeContext<T> for wasmtime::Result<T> {
    fn wctx(self, what: &'static str) -> anyhow::Result<T> {
        self.map_err(anyhow::Error::from).context(what)
    }
}
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};

/// How often the epoch advances: the granularity of CPU limits and of yielding to other work.
pub const TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct RuntimeLimits {
    /// Instances alive at once (the size of the pool).
    pub max_instances: u32,
    /// Linear memory per instance, over all its memories.
    pub memory_bytes: usize,
    /// Guest execution time per call (not counting time waiting on the host).
    pub cpu_per_call: Duration,
    /// Time per call, including waiting for HTTP (but not the pauses Segment asks for).
    pub wall_per_call: Duration,
}

impl RuntimeLimits {
    /// The per-instance limits of a run that sets none.
    pub fn instance(&self) -> InstanceLimits {
        InstanceLimits {
            memory_bytes: self.memory_bytes,
            cpu_per_call: self.cpu_per_call,
            wall_per_call: self.wall_per_call,
        }
    }
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        RuntimeLimits {
            max_instances: 32,
            memory_bytes: 256 << 20,
            cpu_per_call: Duration::from_secs(30),
            wall_per_call: Duration::from_secs(600),
        }
    }
}

/// A component compiled for the runtime's engine, its imports checked against what the
/// sandbox grants and resolved once.
pub struct Program {
    pre: BatonConnectorPre<HostState>,
}

impl Program {
    fn compile(
        engine: &Engine,
        linker: &Linker<HostState>,
        wasm: &[u8],
        cache_dir: Option<&Path>,
    ) -> anyhow::Result<Program> {
        let component = match cache_dir {
            Some(dir) => crate::cache::load_or_compile(dir, engine, wasm)?.0,
            None => Component::new(engine, wasm).wctx("compiling the connector component")?,
        };
        let refused = ungranted_imports(engine, &component);
        if !refused.is_empty() {
            anyhow::bail!(
                "the component imports what this sandbox does not grant: {}. A connector may use only WASI io, \
                 clocks, random, cli and outgoing HTTP, and the baton:connector host interface.",
                refused.join(", ")
            );
        }
        let pre = linker
            .instantiate_pre(&component)
            .wctx("the component needs imports this host does not grant")?;
        let pre = BatonConnectorPre::new(pre)
            .wctx("the component does not implement the baton:connector world")?;
        Ok(Program { pre })
    }
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    /// The component instances run unless a run names another.
    program: Arc<Program>,
    limits: RuntimeLimits,
    /// One permit per pool slot: instances beyond the pool wait instead of failing.
    slots: Arc<Semaphore>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn engine_config(limits: &RuntimeLimits) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Fiber stacks are reused across instances: zero them so nothing of one run's stack is
    // visible to the next.
    config.async_stack_zeroing(true);
    config.max_wasm_stack(512 << 10);
    config.async_stack_size(2 << 20);
    let mut pool = PoolingAllocationConfig::default();
    let n = limits.max_instances.max(1);
    pool.total_component_instances(n)
        .total_core_instances(n * 16)
        .total_memories(n * 2)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_memories_per_component(2)
        .max_memory_size(limits.memory_bytes);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Links the interfaces the sandbox grants and nothing else: WASI io, clocks, random and cli
/// (whose stdio is captured), `wasi:http` through the sandbox's hooks, and the contract's host
/// interface. No filesystem, no sockets.
fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::cli::WasiCliView;
    use wasmtime_wasi::p2::bindings::{cli, random};
    use wasmtime_wasi::random::WasiRandom;

    let mut l = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(&mut l)?;
    cli::exit::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    // An empty environment whose every look is counted (see `HostState`'s implementation).
    cli::environment::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)?;
    cli::terminal_input::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    random::insecure::add_to_linker::<HostState, WasiRandom>(&mut l, HostState::random)?;
    random::insecure_seed::add_to_linker::<HostState, WasiRandom>(&mut l, HostState::random)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut l)?;
    BatonConnector::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)?;
    Ok(l)
}

impl Runtime {
    /// Compiles `wasm` (a component implementing `wit/connector.wit`) and resolves its imports.
    pub fn new(wasm: &[u8], limits: RuntimeLimits) -> anyhow::Result<Runtime> {
        Runtime::with_cache(wasm, limits, None)
    }

    /// Like [`Runtime::new`], with the compiled component cached in `cache_dir`.
    pub fn with_cache(
        wasm: &[u8],
        limits: RuntimeLimits,
        cache_dir: Option<&Path>,
    ) -> anyhow::Result<Runtime> {
        let engine = Engine::new(&engine_config(&limits)).wctx("creating the wasmtime engine")?;
        let linker = linker(&engine).wctx("linking the sandbox interfaces")?;
        let program = Arc::new(Program::compile(&engine, &linker, wasm, cache_dir)?);
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(&engine, ticker_stop.clone())?;
        let slots = Arc::new(Semaphore::new(limits.max_instances.max(1) as usize));
        Ok(Runtime {
            engine,
            linker,
            program,
            limits,
            slots,
            ticker_stop,
        })
    }

    /// Another component on the same engine (and pool), e.g. one tenant's own connector.
    pub fn load(&self, wasm: &[u8], cache_dir: Option<&Path>) -> anyhow::Result<Arc<Program>> {
        Ok(Arc::new(Program::compile(
            &self.engine,
            &self.linker,
            wasm,
            cache_dir,
        )?))
    }

    /// The component the runtime was created with.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    /// A fresh instance for `run`.
    pub async fn instantiate(&self, run: Arc<RunContext>) -> anyhow::Result<ConnectorInstance> {
        self.instantiate_program(&self.program.clone(), run).await
    }

    /// A fresh instance of `program` for `run`, waiting for a pool slot if all are taken.
    pub async fn instantiate_program(
        &self,
        program: &Program,
        run: Arc<RunContext>,
    ) -> anyhow::Result<ConnectorInstance> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| anyhow::anyhow!("the runtime is shutting down"))?;
        self.instantiate_in(program, run, slot).await
    }

    /// Like [`Runtime::instantiate_program`], but `None` at once when every pool slot is taken.
    pub async fn try_instantiate(
        &self,
        program: &Program,
        run: Arc<RunContext>,
    ) -> anyhow::Result<Option<ConnectorInstance>> {
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => self.instantiate_in(program, run, slot).await.map(Some),
            Err(_) => Ok(None),
        }
    }

    async fn instantiate_in(
        &self,
        program: &Program,
        run: Arc<RunContext>,
        slot: OwnedSemaphorePermit,
    ) -> anyhow::Result<ConnectorInstance> {
        let limits = run.limits.clone().unwrap_or_else(|| self.limits.instance());
        // The pool's slots are sized for the runtime's memory limit: a run cannot exceed it.
        let memory = limits.memory_bytes.min(self.limits.memory_bytes);
        let cpu_ticks = (limits.cpu_per_call.as_millis() / TICK.as_millis()).max(1) as u64;
        let mut store = Store::new(
            &self.engine,
            HostState::new(run, GuestLimits::new(memory), cpu_ticks),
        );
        store.limiter(|s| &mut s.limits);
        store.set_max_component_handles(crate::component::MAX_RESOURCES * 2);
        store.epoch_deadline_callback(|mut cx| {
            let state = cx.data_mut();
            state.cpu_ticks += 1;
            if state.cpu_ticks > state.cpu_budget_ticks {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        let bindings = program
            .pre
            .instantiate_async(&mut store)
            .await
            .wctx("instantiating the connector component")?;
        Ok(ConnectorInstance {
            store,
            bindings,
            wall: limits.wall_per_call,
            broken: false,
            _slot: slot,
        })
    }
}

/// The thread that advances the epoch every tick: what CPU budgets and yielding rely on.
fn spawn_ticker(engine: &Engine, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .context("starting the epoch ticker thread")?;
    Ok(())
}

/// Why a call did not return: the instance is unusable afterwards.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    Trapped { call: &'static str, reason: String },
    TimedOut { call: &'static str, after: Duration },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Trapped { call, reason } => {
                write!(f, "the connector component stopped during {call}: {reason}")
            }
            CallError::TimedOut { call, after } => {
                write!(
                    f,
                    "the connector component did not finish {call} within {} s",
                    after.as_secs()
                )
            }
        }
    }
}

impl std::error::Error for CallError {}

pub type CallResult<T> = Result<Result<T, ConnectorError>, CallError>;

/// One live component instance with its own store.
pub struct ConnectorInstance {
    store: Store<HostState>,
    bindings: BatonConnector,
    wall: Duration,
    broken: bool,
    /// The instance's pool slot, freed when it is dropped.
    _slot: OwnedSemaphorePermit,
}

macro_rules! call {
    ($self:ident, $name:literal, $method:ident ( $($arg:expr),* )) => {{
        if $self.broken {
            return Err(CallError::Trapped { call: $name, reason: "the instance already failed".into() });
        }
        $self.store.data_mut().cpu_ticks = 0;
        $self.store.set_epoch_deadline(1);
        let network = $self.store.data().run.network.clone();
        let exports = $self.bindings.baton_connector_connector();
        let outcome = within_wall($self.wall, &network, exports.$method(&mut $self.store $(, $arg)*)).await;
        $self.settle($name, outcome)
    }};
}

/// Runs `call` for at most `wall`, not counting the pauses Segment asks the run's requests to
/// make (429s the sandbox waits out): a call is not cut off for waiting as it was told to.
/// `None` when the time ran out.
async fn within_wall<F: Future>(
    wall: Duration,
    network: &RunNetwork,
    call: F,
) -> Option<F::Output> {
    let paused_before = network.rate_limit_pause();
    let mut deadline = tokio::time::Instant::now() + wall;
    let mut credited = Duration::ZERO;
    tokio::pin!(call);
    loop {
        if let Ok(output) = tokio::time::timeout_at(deadline, &mut call).await {
            return Some(output);
        }
        let paused = network.rate_limit_pause().saturating_sub(paused_before);
        if paused <= credited {
            return None;
        }
        deadline += paused - credited;
        credited = paused;
    }
}

impl ConnectorInstance {
    fn settle<T>(
        &mut self,
        call: &'static str,
        outcome: Option<wasmtime::Result<T>>,
    ) -> Result<T, CallError> {
        let state = self.store.data();
        state
            .run
            .meter
            .record(state.cpu_ticks, state.limits.peak_bytes());
        match outcome {
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => {
                self.broken = true;
                Err(CallError::Trapped {
                    call,
                    reason: self.describe(&error),
                })
            }
            None => {
                self.broken = true;
                Err(CallError::TimedOut {
                    call,
                    after: self.wall,
                })
            }
        }
    }

    fn describe(&self, error: &wasmtime::Error) -> String {
        let state = self.store.data();
        let text = format!("{error:#}");
        let mut reason = if text.contains(MEMORY_LIMIT_MESSAGE) {
            error.root_cause().to_string()
        } else {
            match error.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) if state.cpu_ticks > state.cpu_budget_ticks => format!(
                    "it used more than its CPU budget of {:.2} s for one call",
                    (state.cpu_budget_ticks * TICK.as_millis() as u64) as f64 / 1000.0
                ),
                Some(Trap::StackOverflow) => "it overflowed its call stack".into(),
                Some(Trap::MemoryOutOfBounds) => {
                    "it accessed memory out of bounds (often a stack overflow inside the component)"
                        .into()
                }
                Some(Trap::UnreachableCodeReached) => "it panicked or aborted".into(),
                Some(trap) => format!("it trapped ({trap})"),
                // Not a trap code: the causes say what happened (wasmtime's outer context is
                // only "error while executing").
                None => error
                    .chain()
                    .map(|c| c.to_string())
                    .filter(|c| !c.starts_with("error while executing"))
                    .collect::<Vec<_>>()
                    .join(": "),
            }
        };
        let stderr = state.stderr_tail();
        if !stderr.is_empty() {
            reason.push_str(&format!("; it printed: {stderr}"));
        }
        reason
    }

    /// Whether the instance failed and must be dropped.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    pub fn peak_memory_bytes(&self) -> usize {
        self.store.data().limits.peak_bytes()
    }

    pub async fn metadata(&mut self) -> Result<ConnectorMetadata, CallError> {
        call!(self, "metadata", call_metadata())
    }

    pub async fn validate(&mut self) -> CallResult<()> {
        call!(self, "validate", call_validate())
    }

    pub async fn resource_types(&mut self) -> CallResult<Vec<ResourceType>> {
        call!(self, "resource-types", call_resource_types())
    }

    pub async fn list_resources(
        &mut self,
        resource_type: &str,
        parent: Option<&ResourceId>,
        token: &str,
    ) -> CallResult<ResourcePage> {
        call!(
            self,
            "list-resources",
            call_list_resources(resource_type, parent, token)
        )
    }

    pub async fn list_entitlements(
        &mut self,
        resource: &Resource,
        token: &str,
    ) -> CallResult<EntitlementPage> {
        call!(
            self,
            "list-entitlements",
            call_list_entitlements(resource, token)
        )
    }

    pub async fn list_grants(&mut self, resource: &Resource, token: &str) -> CallResult<GrantPage> {
        call!(self, "list-grants", call_list_grants(resource, token))
    }

    pub async fn grant(
        &mut self,
        principal: &Resource,
        entitlement: &Entitlement,
    ) -> CallResult<GrantOutcome> {
        call!(self, "grant", call_grant(principal, entitlement))
    }

    pub async fn revoke(
        &mut self,
        grant: &GrantRecord,
        principal: &Resource,
    ) -> CallResult<RevokeOutcome> {
        call!(self, "revoke", call_revoke(grant, principal))
    }

    pub async fn plan(&mut self, operation: &Operation) -> CallResult<Vec<PlannedRequest>> {
        call!(self, "plan", call_plan(operation))
    }

    pub async fn create_account(
        &mut self,
        account: &AccountInfo,
    ) -> CallResult<CreateAccountOutcome> {
        call!(self, "create-account", call_create_account(account))
    }

    pub async fn delete_resource(
        &mut self,
        id: &ResourceId,
        parent: Option<&ResourceId>,
    ) -> CallResult<DeleteOutcome> {
        call!(self, "delete-resource", call_delete_resource(id, parent))
    }
}

/// Interfaces the sandbox links: WASI io, clocks, random and cli, outgoing HTTP, and the
/// contract's own interfaces. A component that imports anything else (a filesystem, sockets, …)
/// is refused before it runs.
const GRANTED_IMPORTS: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
    "baton:connector/types",
    "baton:connector/host",
];

/// The imports of `component` that the sandbox does not grant (versions ignored: wasmtime links
/// semver-compatible versions).
pub fn ungranted_imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| {
            let unversioned = name.split('@').next().unwrap_or(name);
            !GRANTED_IMPORTS.contains(&unversioned)
        })
        .collect()
}
