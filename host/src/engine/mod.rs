//! The wasmtime engine: one engine (async, epoch interruption with a ticker thread, pooling
//! allocator), each component compiled once with its imports checked and resolved once
//! (`InstancePre`), and a fresh store per instance with memory, CPU and wall-time limits.
//!
//! * [`contract`]: the generated bindings of `wit/connector.wit` and the bundled component.
//! * [`host_state`]: a store's data and the contract's host imports (log, config, session).
//! * [`instance`]: one live instance and its calls, each under the run's limits.
//! * [`imports`]: what the sandbox links, and the check that refuses anything more.
//! * [`limits`], [`session`], [`cache`]: memory limits, the per-run session store, the
//!   compiled-component cache.
//! * [`to_c1z`], [`from_c1z`]: the contract's records as Baton's messages and back.

pub mod cache;
pub mod contract;
pub mod from_c1z;
pub mod host_state;
pub mod imports;
pub mod instance;
pub mod limits;
pub mod session;
pub mod to_c1z;

use anyhow::Context as _;
use contract::BatonConnectorPre;
use host_state::{HostState, RunContext};
pub use instance::{CallError, CallResult, ConnectorInstance};
use limits::{GuestLimits, InstanceLimits};

/// `anyhow`'s `context` for wasmtime's own error type.
pub(crate) trait WasmtimeContext<T> {
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
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
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
            Some(dir) => cache::load_or_compile(dir, engine, wasm)?.0,
            None => Component::new(engine, wasm).wctx("compiling the connector component")?,
        };
        let refused = imports::ungranted(engine, &component);
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
        let linker = imports::linker(&engine).wctx("linking the sandbox interfaces")?;
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
        store.set_max_component_handles(host_state::MAX_RESOURCES * 2);
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
