//! How a run reaches Segment: the origin (parsed and checked once, where the settings are
//! read), the token the host adds, and the run's limits. Every mode (one-shot sync and
//! provisioning, service mode, each `serve` tenant) builds its runs from a [`Connection`].

use crate::engine::contract::SEGMENT_CONNECTOR_WASM;
use crate::engine::host_state::RunContext;
use crate::engine::limits::InstanceLimits;
use crate::engine::session::SessionStore;
use crate::engine::{Runtime, RuntimeLimits};
use crate::sandbox::{HttpPolicy, Origin, Pacer, RunNetwork, Secret};
use anyhow::anyhow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Session store size per run: enough for the permissions of tens of thousands of users.
pub const SESSION_BYTES: usize = 256 << 20;

#[derive(Debug, Clone)]
pub struct Connection {
    /// The Segment API's origin; the token goes there and nowhere else.
    pub origin: Origin,
    pub token: Secret,
    pub concurrency: usize,
    pub http_timeout: Duration,
    /// Names the run in logs.
    pub label: String,
    /// More settings for the component (`config` in the contract); never secrets.
    pub settings: BTreeMap<String, String>,
    /// The run's session store (host memory the component fills): its size limit.
    pub session_bytes: usize,
    /// Requests a run may make in all; `None` for no limit.
    pub request_budget: Option<u64>,
    /// The API's pace for this origin and token, shared by every run made with it.
    pub pacer: Arc<Pacer>,
}

/// Requests a sync or task may make by default (`--request-budget`): a 50k-user workspace needs
/// well under a tenth of it; a server that never ends a listing is stopped by it.
pub const DEFAULT_REQUEST_BUDGET: u64 = 1_000_000;

impl Connection {
    pub fn new(origin: Origin, token: Secret) -> Connection {
        let pacer = Pacer::shared(&identity(&origin, &token));
        Connection {
            origin,
            token,
            concurrency: 4,
            http_timeout: Duration::from_secs(300),
            label: "segment".into(),
            settings: BTreeMap::new(),
            session_bytes: SESSION_BYTES,
            request_budget: Some(DEFAULT_REQUEST_BUDGET),
            pacer,
        }
    }

    /// A connection to the API at `base_url`, which must be able to carry the token (https, or
    /// plain http to this machine only).
    pub fn to(base_url: &str, token: Secret) -> anyhow::Result<Connection> {
        let origin = Origin::parse(base_url).map_err(|e| anyhow!("invalid base URL: {e}"))?;
        origin
            .check_can_carry_token()
            .map_err(|e| anyhow!("base URL refused: {e}"))?;
        Ok(Connection::new(origin, token))
    }

    /// Who a sync is made by, for telling an interrupted sync of the same API and credential
    /// (which may be resumed) from another's: the origin and a digest of the token (never the
    /// token).
    pub fn identity(&self) -> String {
        identity(&self.origin, &self.token)
    }

    /// The network a run may use: the origin, nothing else.
    pub fn policy(&self) -> HttpPolicy {
        let mut policy = HttpPolicy::for_origin(self.origin.clone(), Some(self.token.clone()));
        policy.max_in_flight = self.concurrency.max(1);
        policy.first_byte_timeout = self.http_timeout;
        policy.request_budget = self.request_budget;
        policy
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
                config.insert("base-url".to_string(), self.origin.base_url());
                config.insert("max-in-flight".to_string(), self.concurrency.to_string());
                config
            },
            session: SessionStore::new(self.session_bytes),
            network: RunNetwork::paced(policy, self.pacer.clone()),
            limits,
            meter: Default::default(),
        })
    }
}

fn identity(origin: &Origin, token: &Secret) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token.expose().as_bytes());
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{origin} {short} baton-segment/{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The runtime for the bundled Segment component, compiled once and then loaded from the
/// compiled-component cache (`BATON_CACHE_DIR`, else `$XDG_CACHE_HOME/baton-segment` or
/// `~/.cache/baton-segment`): compiling takes about half a second at every start otherwise. A
/// cache that cannot be used only costs that compile.
pub fn segment_runtime(max_instances: u32) -> anyhow::Result<Runtime> {
    let cache_dir = std::env::var_os("BATON_CACHE_DIR")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(crate::engine::cache::default_dir);
    Runtime::with_cache(
        SEGMENT_CONNECTOR_WASM,
        RuntimeLimits {
            max_instances,
            ..RuntimeLimits::default()
        },
        cache_dir.as_deref(),
    )
}
