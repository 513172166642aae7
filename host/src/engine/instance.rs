//! One live component instance with its own store, and its calls: each runs under the run's
//! CPU budget (epochs) and wall-time limit, and a call that traps or times out leaves the
//! instance unusable.

use super::TICK;
use super::contract::{
    AccountInfo, BatonConnector, ConnectorError, ConnectorMetadata, CreateAccountOutcome,
    DeleteOutcome, Entitlement, EntitlementPage, GrantOutcome, GrantPage, GrantRecord, Operation,
    PlannedRequest, Resource, ResourceId, ResourcePage, ResourceType, RevokeOutcome,
};
use super::host_state::HostState;
use super::limits::MEMORY_LIMIT_MESSAGE;
use crate::sandbox::RunNetwork;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{Store, Trap};

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
    pub(super) store: Store<HostState>,
    pub(super) bindings: BatonConnector,
    pub(super) wall: Duration,
    pub(super) broken: bool,
    /// The instance's pool slot, freed when it is dropped.
    pub(super) _slot: OwnedSemaphorePermit,
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
