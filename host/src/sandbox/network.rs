//! The network of one run (a sync or a task): its policy, counters, in-flight slots, pacer
//! and connections, shared by all the run's component instances.

use super::client;
use super::pacing::Pacer;
use super::policy::HttpPolicy;
use super::scrub::Scrubber;
use super::stats::NetStats;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The network of one run (a sync or a task), shared by all its component instances.
pub struct RunNetwork {
    pub policy: HttpPolicy,
    pub stats: Arc<NetStats>,
    pub(super) slots: Arc<Semaphore>,
    /// The API's pace, shared with every other run on the same origin and credential.
    pub(super) pacer: Arc<Pacer>,
    pub(super) started: AtomicU64,
    /// This run's connections (never shared with another run or tenant).
    pub(super) client: client::PooledClient,
    /// Masks the run's token in what servers answer.
    pub(super) scrubber: Option<Arc<Scrubber>>,
}

impl std::fmt::Debug for RunNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunNetwork")
            .field("policy", &self.policy)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl RunNetwork {
    /// A run with a pacer of its own.
    pub fn new(policy: HttpPolicy) -> Arc<RunNetwork> {
        RunNetwork::paced(policy, Arc::default())
    }

    /// A run paced by `pacer` (shared by the runs that use the same API and credential).
    pub fn paced(policy: HttpPolicy, pacer: Arc<Pacer>) -> Arc<RunNetwork> {
        Arc::new(RunNetwork {
            client: client::pooled(
                policy.connect_timeout,
                policy.max_in_flight.max(1),
                policy.addresses.clone(),
            ),
            scrubber: policy
                .credential
                .as_ref()
                .and_then(|c| Scrubber::new(c.bearer_token.expose()))
                .map(Arc::new),
            slots: Arc::new(Semaphore::new(policy.max_in_flight.max(1))),
            policy,
            stats: Arc::new(NetStats::default()),
            pacer,
            started: AtomicU64::new(0),
        })
    }

    /// How long the run's requests have been held back in all because the server asked for a
    /// pause: time that per-call wall limits do not count.
    pub fn rate_limit_pause(&self) -> Duration {
        self.pacer.held()
    }

    pub fn pacer(&self) -> &Arc<Pacer> {
        &self.pacer
    }

    /// The run's request budget, once a request has been refused for it.
    pub fn spent_budget(&self) -> Option<u64> {
        let budget = self.policy.request_budget?;
        (self.started.load(std::sync::atomic::Ordering::Relaxed) > budget).then_some(budget)
    }
}
