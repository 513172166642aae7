//! The generic sync engine: Baton's phase order (validate → resource types → resources,
//! following child types → entitlements → grants → grant expansion), every page, several
//! component instances working at once, and retries of calls the connector reports as rate
//! limited or unavailable, waiting as long as it says.
//!
//! Every page goes to the `.c1z`'s database as it arrives ([`store`]), with a checkpoint
//! ([`checkpoint`]) in the same transaction. A phase walks the stored resources (in row order
//! in the resources phase; each resource type in a lane of its own in the entitlements and
//! grants phases, see [`Lanes`]) and keeps only the listings in flight in memory, so memory
//! does not grow with the workspace, and a sync that was interrupted resumes from its
//! checkpoint without requesting a stored page again.

pub mod checkpoint;
pub mod progress;
pub mod scope;
pub mod store;

use crate::engine::contract::{
    ConnectorError, EntitlementPage, GrantPage, Resource, ResourceId, ResourcePage, SyncHints,
};
use crate::engine::host_state::RunContext;
use crate::engine::{CallError, CallResult, ConnectorInstance, Program, Runtime};
use crate::sandbox::RetryPolicy;
use crate::sandbox::pacing::CallFailure;
use checkpoint::{Checkpoint, OpenListing, Phase};
use progress::Progress;
use scope::SyncScope;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{StoreError, SyncStore, show};
use tokio::task::JoinSet;
use tracing::Instrument as _;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Component instances working at once (and the most of one resource type's listings).
    pub concurrency: usize,
    /// Instances beyond `concurrency` for another resource type's listings while one type's
    /// hold `concurrency` (waiting on the network, say): calls the connector answers from
    /// what it recorded then use the CPU meanwhile. Requests in flight stay within the
    /// network's own limit.
    pub spare_instances: usize,
    /// What is retried, and how long to wait.
    pub retry: RetryPolicy,
    /// What the sync covers (everything by default).
    pub scope: SyncScope,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            concurrency: 4,
            spare_instances: 0,
            retry: RetryPolicy::default(),
            scope: SyncScope::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{call}: {message}")]
    Connector {
        call: String,
        error: ConnectorError,
        message: String,
    },
    #[error("{call}: {error}")]
    Component { call: String, error: CallError },
    #[error("{call}: the connector's answer is not valid: {message}")]
    InvalidOutput { call: String, message: String },
    #[error("{0}")]
    Host(String),
}

impl SyncError {
    /// The connector's `error` answering `call`.
    fn connector(call: String, error: ConnectorError) -> Self {
        SyncError::Connector {
            call,
            message: error.message(),
            error,
        }
    }

    /// Whether the failure is a credential problem (wrong or insufficient token).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            SyncError::Connector {
                error: ConnectorError::Unauthenticated(_) | ConnectorError::PermissionDenied(_),
                ..
            }
        )
    }
}

pub struct SyncReport {
    pub store: SyncStore,
    pub expanded_grants: usize,
    pub warnings: Vec<String>,
    pub warning_count: u64,
    pub elapsed: Duration,
    pub retried_calls: u64,
    /// Whether the sync went on from an interrupted one.
    pub resumed: bool,
}

/// One listing call: which listing (the resource row it belongs to and the type it lists),
/// its page, and its retries.
#[derive(Debug, Clone)]
struct Task {
    row: i64,
    kind: String,
    call: Call,
    token: String,
    attempt: u32,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum Call {
    Resources {
        resource_type: String,
        parent: Option<ResourceId>,
    },
    Entitlements(Box<Resource>),
    Grants(Box<Resource>),
}

impl Task {
    /// The resource type whose listings this one is walked with (entitlements and grants
    /// phases).
    fn resource_type(&self) -> &str {
        match &self.call {
            Call::Resources { resource_type, .. } => resource_type,
            Call::Entitlements(r) | Call::Grants(r) => &r.id.resource_type,
        }
    }

    fn name(&self) -> String {
        let page = if self.token.is_empty() {
            ""
        } else {
            " (next page)"
        };
        match &self.call {
            Call::Resources {
                resource_type,
                parent: Some(p),
            } => format!("list-resources({resource_type}, under {}){page}", show(p)),
            Call::Resources {
                resource_type,
                parent: None,
            } => format!("list-resources({resource_type}){page}"),
            Call::Entitlements(r) => format!("list-entitlements({}){page}", show(&r.id)),
            Call::Grants(r) => format!("list-grants({}){page}", show(&r.id)),
        }
    }
}

enum Answer {
    Resources(ResourcePage),
    Entitlements(EntitlementPage),
    Grants(GrantPage),
}

impl Answer {
    fn next_token(&self) -> &str {
        match self {
            Answer::Resources(p) => &p.next_page_token,
            Answer::Entitlements(p) => &p.next_page_token,
            Answer::Grants(p) => &p.next_page_token,
        }
    }

    fn warnings(&self) -> &[String] {
        match self {
            Answer::Resources(p) => &p.warnings,
            Answer::Entitlements(p) => &p.warnings,
            Answer::Grants(p) => &p.warnings,
        }
    }
}

/// A finished call: the instance (to reuse unless it broke), the task, and what came of it.
type Done = (
    ConnectorInstance,
    Task,
    Result<Result<Answer, ConnectorError>, CallError>,
);

async fn execute(
    instance: &mut ConnectorInstance,
    task: &Task,
) -> Result<Result<Answer, ConnectorError>, CallError> {
    if !task.delay.is_zero() {
        tokio::time::sleep(task.delay).await;
    }
    Ok(match &task.call {
        Call::Resources {
            resource_type,
            parent,
        } => instance
            .list_resources(resource_type, parent.as_ref(), &task.token)
            .await?
            .map(Answer::Resources),
        Call::Entitlements(resource) => instance
            .list_entitlements(resource, &task.token)
            .await?
            .map(Answer::Entitlements),
        Call::Grants(resource) => instance
            .list_grants(resource, &task.token)
            .await?
            .map(Answer::Grants),
    })
}

/// Stored resources a phase reads at once to start their listings.
const ROWS_AT_ONCE: usize = 64;

/// Pages one listing may hand out (2 million items at Segment's page size): a server that hands
/// out new page tokens forever is stopped here, with a clear error.
pub const MAX_PAGES_PER_LISTING: usize = 10_000;

/// One sync run: the component instances of `run`, created from `runtime` as needed, writing
/// into `store`.
pub struct Syncer<'r> {
    runtime: &'r Runtime,
    /// The component to run (the runtime's own unless `with_program` says otherwise).
    program: Arc<Program>,
    run: Arc<RunContext>,
    options: SyncOptions,
    progress: Arc<Progress>,
    idle: Vec<ConnectorInstance>,
    store: SyncStore,
    /// Where the sync stands; written with every page.
    state: Checkpoint,
    resumed: bool,
    /// Whether the session store has followed the sync's work to disk.
    session_on_disk: bool,
    /// Page tokens each open listing has handed out: a listing that hands one out twice would
    /// loop forever. (Dropped when the listing ends.)
    tokens: HashMap<(i64, String), HashSet<String>>,
}

impl<'r> Syncer<'r> {
    /// A sync into `store`, from its checkpoint when it resumes an interrupted one.
    pub fn new(
        runtime: &'r Runtime,
        run: Arc<RunContext>,
        options: SyncOptions,
        progress: Arc<Progress>,
        store: SyncStore,
        resume_from: Option<Checkpoint>,
    ) -> Self {
        let resumed = resume_from.is_some();
        Syncer {
            runtime,
            program: runtime.program().clone(),
            run,
            options,
            progress,
            idle: vec![],
            store,
            state: resume_from.unwrap_or_else(|| Checkpoint::at(Phase::Resources, vec![])),
            resumed,
            session_on_disk: false,
            tokens: HashMap::new(),
        }
    }

    /// Runs `program` instead of the runtime's own component.
    pub fn with_program(mut self, program: Arc<Program>) -> Self {
        self.program = program;
        self
    }

    async fn instance(&mut self) -> Result<ConnectorInstance, SyncError> {
        match self.idle.pop() {
            Some(i) => Ok(i),
            None => self
                .runtime
                .instantiate_program(&self.program, self.run.clone())
                .await
                .map_err(host_error),
        }
    }

    pub async fn run(mut self) -> Result<SyncReport, (SyncError, SyncStore)> {
        let clock = Instant::now();
        match self.phases().await {
            Ok(expanded_grants) => Ok(SyncReport {
                expanded_grants,
                warnings: self.state.warnings.clone(),
                warning_count: self.state.warning_count,
                elapsed: clock.elapsed(),
                retried_calls: self.state.retried_calls,
                resumed: self.resumed,
                store: self.store,
            }),
            Err(e) => Err((e, self.store)),
        }
    }

    async fn phases(&mut self) -> Result<usize, SyncError> {
        self.follow_store_to_disk()?;
        self.progress.set_phase(0);
        self.once("validate", |mut i| async move {
            let r = i.validate().await;
            (i, r)
        })
        .instrument(crate::telemetry::phase_span("validate"))
        .await?;

        self.progress.set_phase(1);
        if !self.resumed {
            let types = self
                .once("resource-types", |mut i| async move {
                    let r = i.resource_types().await;
                    (i, r)
                })
                .instrument(crate::telemetry::phase_span("resource-types"))
                .await?;
            // Every type is listed without a parent (child types answer empty, at no cost),
            // as Baton's syncer does; a targeted sync whose targets name their parents lists
            // just those.
            let ids: Vec<String> = types.iter().map(|t| t.id.clone()).collect();
            self.state.open = self
                .options
                .scope
                .first_listings(&ids)
                .into_iter()
                .map(|(kind, parent)| OpenListing {
                    row: 0,
                    under: parent.map(|p| (p.resource_type, p.resource)),
                    kind,
                    token: String::new(),
                })
                .collect();
            self.follow_store_to_disk()?;
            self.store
                .set_resource_types(types, &self.state)
                .map_err(host_error)?;
        } else {
            tracing::info!(
                "resuming the interrupted sync {} ({:?} phase)",
                self.store.sync_id(),
                self.state.phase
            );
        }

        while self.state.phase != Phase::Expand {
            let (index, name) = match self.state.phase {
                Phase::Resources => (2, "resources"),
                Phase::Entitlements => (3, "entitlements"),
                _ => (4, "grants"),
            };
            self.progress.set_phase(index);
            let started = std::time::Instant::now();
            self.phase()
                .instrument(crate::telemetry::phase_span(name))
                .await?;
            log_phase(name, started);
            self.state.advance(vec![]);
            self.follow_store_to_disk()?;
            self.store.checkpoint(&self.state).map_err(host_error)?;
        }

        self.progress.set_phase(5);
        if let Some(w) = self.store.dangling_warning() {
            tracing::warn!("{w}");
            self.state.warn(w);
        }
        let scope = &self.options.scope;
        // Resources walked through to reach the ones in scope are not kept.
        if !scope.is_full() {
            self.store
                .retain(|id| scope.keeps(id), |t| scope.keeps_type(t))
                .map_err(host_error)?;
        }
        let expanded = if scope.expands_grants() {
            let _phase = crate::telemetry::phase_span("expand-grants").entered();
            let started = std::time::Instant::now();
            let expanded = self.store.expand().map_err(host_error)?;
            log_phase("expand-grants", started);
            expanded
        } else {
            0
        };
        self.progress.set_phase(PHASE_DONE);
        Ok(expanded)
    }

    /// A call made once per sync (validate, resource types), called again when the connector
    /// reports it rate limited. Not when unavailable: the sandbox has already retried its
    /// requests with backoff, and an unreachable or failing Segment at the first contact is
    /// better reported at once than after minutes of retries.
    async fn once<T, F, Fut>(&mut self, name: &str, call: F) -> Result<T, SyncError>
    where
        F: Fn(ConnectorInstance) -> Fut,
        Fut: Future<Output = (ConnectorInstance, CallResult<T>)>,
    {
        let mut attempt = 0;
        loop {
            let instance = self.instance().await?;
            let (instance, result) = call(instance).await;
            if !instance.is_broken() {
                self.idle.push(instance);
            }
            Progress::add(&self.progress.calls, 1);
            let error = match result {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
                Err(error) => {
                    return Err(SyncError::Component {
                        call: name.into(),
                        error,
                    });
                }
            };
            let wait = match error.retryable() {
                Some(f @ CallFailure::RateLimited(_)) => self.options.retry.call_wait(f, attempt),
                _ => None,
            };
            let Some(wait) = wait else {
                return Err(SyncError::connector(name.into(), error));
            };
            self.note_retry(name, &error, wait);
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// The lanes of the current phase, holding its open listings (started, or resumed from
    /// the checkpoint) as tasks.
    fn lanes(&self) -> Result<Lanes, SyncError> {
        let mut lanes = Lanes::default();
        let skip = match self.state.phase {
            Phase::Entitlements => Some(SyncHints::SKIP_ENTITLEMENTS),
            Phase::Grants => Some(SyncHints::SKIP_GRANTS),
            _ => None,
        };
        if let Some(skip) = skip {
            // A type that skips the phase as a whole is not walked.
            for t in self.store.resource_types() {
                if !t.hints.contains(skip) {
                    lanes.index(&t.id);
                }
            }
        }
        for listing in &self.state.open {
            let mut task = if listing.row == 0 {
                let parent = listing.under.clone().map(|(t, r)| ResourceId {
                    resource_type: t,
                    resource: r,
                });
                self.listing_under(&listing.kind, parent)
            } else {
                let resource = self.store.resource_row(listing.row).map_err(host_error)?;
                self.task(listing.row, &listing.kind, Some(resource))
            };
            task.token = listing.token.clone();
            lanes.push_back(self.state.phase, task);
        }
        Ok(lanes)
    }

    /// A top-level listing of `kind` (under `parent` when a targeted sync names it).
    fn listing_under(&self, kind: &str, parent: Option<ResourceId>) -> Task {
        Task {
            row: 0,
            kind: kind.to_string(),
            call: Call::Resources {
                resource_type: kind.to_string(),
                parent,
            },
            token: String::new(),
            attempt: 0,
            delay: Duration::ZERO,
        }
    }

    fn task(&self, row: i64, kind: &str, resource: Option<Resource>) -> Task {
        let call = match (self.state.phase, resource) {
            (Phase::Resources, parent) => Call::Resources {
                resource_type: kind.to_string(),
                parent: parent.map(|p| p.id),
            },
            (Phase::Entitlements, Some(r)) => Call::Entitlements(Box::new(r)),
            (_, Some(r)) => Call::Grants(Box::new(r)),
            (_, None) => unreachable!("only resource listings are made without a resource"),
        };
        Task {
            row,
            kind: kind.to_string(),
            call,
            token: String::new(),
            attempt: 0,
            delay: Duration::ZERO,
        }
    }

    /// The listings the next stored resources start in this phase (marked open and the
    /// cursor moved past them): of any type in the resources phase, else of type `kind`;
    /// empty when the phase has walked every such stored resource.
    fn next_rows(&mut self, kind: &str) -> Result<VecDeque<Task>, SyncError> {
        let mut tasks = VecDeque::new();
        let by_type = self.state.phase != Phase::Resources;
        while tasks.is_empty() {
            let (after, of_type) = if by_type {
                (self.state.cursor_of(kind), Some(kind))
            } else {
                (self.state.cursor, None)
            };
            let rows = self
                .store
                .resources_after(after, ROWS_AT_ONCE, of_type)
                .map_err(host_error)?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            if by_type {
                self.state.cursors.insert(kind.to_string(), *last);
            } else {
                self.state.cursor = *last;
            }
            let scope = &self.options.scope;
            for (row, resource) in rows {
                let kinds: Vec<String> = match self.state.phase {
                    Phase::Resources => resource
                        .child_resource_types
                        .iter()
                        .filter(|c| scope.lists_children(c))
                        .cloned()
                        .collect(),
                    Phase::Entitlements
                        if !self.store.skips(&resource, SyncHints::SKIP_ENTITLEMENTS)
                            && scope.lists_entitlements(&resource.id) =>
                    {
                        vec![String::new()]
                    }
                    Phase::Grants
                        if !self.store.skips(&resource, SyncHints::SKIP_GRANTS)
                            && scope.lists_grants(&resource.id) =>
                    {
                        vec![String::new()]
                    }
                    _ => vec![],
                };
                for kind in kinds {
                    self.state.open.push(OpenListing {
                        row,
                        under: None,
                        kind: kind.clone(),
                        token: String::new(),
                    });
                    tasks.push_back(self.task(row, &kind, Some(resource.clone())));
                }
            }
        }
        Ok(tasks)
    }

    /// Runs the current phase's listings (and the pages and child listings they lead to)
    /// until none is left.
    async fn phase(&mut self) -> Result<(), SyncError> {
        let mut lanes = self.lanes()?;
        let mut running: JoinSet<Done> = JoinSet::new();
        let outcome = self.run_lanes(&mut lanes, &mut running).await;
        if outcome.is_err() {
            running.abort_all();
        }
        outcome
    }

    async fn run_lanes(
        &mut self,
        lanes: &mut Lanes,
        running: &mut JoinSet<Done>,
    ) -> Result<(), SyncError> {
        loop {
            self.start_tasks(lanes, running).await?;
            let Some(joined) = running.join_next().await else {
                if lanes.done() {
                    return Ok(());
                }
                // Rows stored by the answers just handled may start more listings.
                lanes.walk_again();
                continue;
            };
            let (instance, task, outcome) =
                joined.map_err(|e| SyncError::Host(format!("a sync task failed: {e}")))?;
            lanes.finished(self.state.phase, &task);
            // A failed instance is dropped with its store; the next call gets a fresh one.
            if !instance.is_broken() {
                self.idle.push(instance);
            }
            Progress::add(&self.progress.calls, 1);
            match outcome {
                Ok(Ok(answer)) => {
                    // The listing's next page goes out before this one is stored: the store's
                    // work overlaps the call instead of delaying it.
                    if let Some(next) = self.next_page(&task, &answer)? {
                        lanes.push_front(self.state.phase, next);
                        self.start_tasks(lanes, running).await?;
                    }
                    self.store_page(&task, answer)?;
                }
                Ok(Err(error)) => self.retry_or_fail(task, error, lanes)?,
                Err(error) => {
                    return Err(SyncError::Component {
                        call: task.name(),
                        error,
                    });
                }
            }
            // A stored page may have added resources: the walk goes on from the cursor.
            if self.state.phase == Phase::Resources {
                lanes.walk_again();
            }
        }
    }

    /// Starts waiting listings (walking on for more) while the limits allow: `concurrency`
    /// per lane, and the spare instances beyond it for the other lanes.
    async fn start_tasks(
        &mut self,
        lanes: &mut Lanes,
        running: &mut JoinSet<Done>,
    ) -> Result<(), SyncError> {
        let per_lane = self.options.concurrency.max(1);
        let total = per_lane + self.options.spare_instances;
        while running.len() < total {
            let Some(lane) = lanes.pick(per_lane, |kind| self.next_rows(kind))? else {
                break;
            };
            // With instances of its own at work, a run does not wait for a pool slot (other
            // runs may be waiting for this run's); it waits for one of its own to finish.
            let instance = match self.idle.pop() {
                Some(i) => Some(i),
                None if running.is_empty() => Some(self.instance().await?),
                None => self
                    .runtime
                    .try_instantiate(&self.program, self.run.clone())
                    .await
                    .map_err(host_error)?,
            };
            let Some(mut instance) = instance else {
                break;
            };
            let task = lanes.start(lane);
            // The call's requests are traced inside the phase that made them.
            running.spawn(
                async move {
                    let outcome = execute(&mut instance, &task).await;
                    (instance, task, outcome)
                }
                .in_current_span(),
            );
        }
        Ok(())
    }

    /// Logs and counts a retry of `call` after `error`, due in `wait`.
    fn note_retry(&mut self, call: &str, error: &ConnectorError, wait: Duration) {
        tracing::info!(
            "{call}: {}; retrying in {:.1} s",
            error.message(),
            wait.as_secs_f64()
        );
        self.state.retried_calls += 1;
    }

    fn retry_or_fail(
        &mut self,
        task: Task,
        error: ConnectorError,
        lanes: &mut Lanes,
    ) -> Result<(), SyncError> {
        // As Baton does: something that vanished while listing is a warning, not a failure.
        if let ConnectorError::NotFound(m) = &error
            && !matches!(task.call, Call::Resources { .. })
        {
            let warning = format!("{}: {m}; skipped", task.name());
            tracing::warn!("{warning}");
            self.state.warn(warning);
            self.finish_listing(&task);
            self.follow_store_to_disk()?;
            return self.store.checkpoint(&self.state).map_err(host_error);
        }
        let wait = error
            .retryable()
            .and_then(|f| self.options.retry.call_wait(f, task.attempt));
        let Some(wait) = wait else {
            return Err(SyncError::connector(task.name(), error));
        };
        self.note_retry(&task.name(), &error, wait);
        lanes.push_back(
            self.state.phase,
            Task {
                attempt: task.attempt + 1,
                delay: wait,
                ..task
            },
        );
        Ok(())
    }

    /// When the sync's work is on disk or about to move there, what the connector keeps for
    /// later phases goes there first (a resumed sync finds both; the work is resumable only
    /// once the store has moved, so never without the session).
    fn follow_store_to_disk(&mut self) -> Result<(), SyncError> {
        if self.session_on_disk {
            return Ok(());
        }
        if self.store.on_disk() || self.store.due_for_disk().map_err(host_error)? {
            self.run
                .session
                .spill_to(self.store.work_dir())
                .map_err(|e| host_error(e.context("opening the session store")))?;
            self.session_on_disk = true;
        }
        Ok(())
    }

    fn finish_listing(&mut self, task: &Task) {
        self.state.close(task.row, &task.kind);
        self.tokens.remove(&(task.row, task.kind.clone()));
    }

    /// Records where the listing goes on (or that it ended) and returns the task for its next
    /// page, if any: refused when the listing hands out a token it already had, or pages
    /// without end.
    fn next_page(&mut self, task: &Task, answer: &Answer) -> Result<Option<Task>, SyncError> {
        let next = answer.next_token();
        if next.is_empty() {
            self.finish_listing(task);
            return Ok(None);
        }
        let invalid = |message: String| SyncError::InvalidOutput {
            call: task.name(),
            message,
        };
        // Baton's rule, a page may not hand back the token it was asked with, extended to
        // every token of the listing: a cycle of pages would never end either.
        let seen = self
            .tokens
            .entry((task.row, task.kind.clone()))
            .or_default();
        if !seen.insert(next.to_string()) || next == task.token {
            return Err(invalid(format!(
                "it returned the page token {next:?} a second time; stopping to avoid an endless loop"
            )));
        }
        if seen.len() >= MAX_PAGES_PER_LISTING {
            return Err(invalid(format!(
                "it handed out more than {MAX_PAGES_PER_LISTING} pages for one listing; \
                 stopping (a server that never ends a listing would keep the sync going forever)"
            )));
        }
        match self.state.listing(task.row, &task.kind) {
            Some(open) => open.token = next.to_string(),
            None => return Err(SyncError::Host(format!("{}: not open", task.name()))),
        }
        Ok(Some(Task {
            token: next.to_string(),
            attempt: 0,
            delay: Duration::ZERO,
            ..task.clone()
        }))
    }

    /// Stores a page with the checkpoint that records it.
    fn store_page(&mut self, task: &Task, answer: Answer) -> Result<(), SyncError> {
        for w in answer.warnings() {
            tracing::warn!("{w}");
            self.state.warn(w.clone());
        }
        self.follow_store_to_disk()?;
        let stored = match answer {
            Answer::Resources(page) => {
                let Call::Resources { resource_type, .. } = &task.call else {
                    unreachable!("answers match their calls")
                };
                self.store
                    .put_resources(resource_type, page.items, &self.state)
                    .map(|n| Progress::add(&self.progress.resources, n))
            }
            Answer::Entitlements(page) => {
                Progress::add(&self.progress.entitlements, page.items.len());
                self.store.put_entitlements(page.items, &self.state)
            }
            Answer::Grants(page) => {
                Progress::add(&self.progress.grants, page.items.len());
                self.store.put_grants(page.items, &self.state)
            }
        };
        match stored {
            Ok(()) => Ok(()),
            Err(StoreError::Invalid(message)) => Err(SyncError::InvalidOutput {
                call: task.name(),
                message,
            }),
            Err(StoreError::Io(e)) => Err(host_error(e)),
        }
    }
}

/// The listings waiting to start, in lanes: one in the resources phase (which walks the
/// stored rows in order, finding child listings as it goes); one per resource type in the
/// entitlements and grants phases, so that one type's listings waiting on the network (a
/// group's members, say) do not keep another type's from starting (a user's grants, which
/// the connector answers from what it recorded).
#[derive(Default)]
struct Lanes {
    lanes: Vec<Lane>,
    /// Where the next pick starts (round robin).
    next: usize,
}

#[derive(Default)]
struct Lane {
    /// The resource type walked ("" for the resources phase's one lane).
    kind: String,
    waiting: VecDeque<Task>,
    running: usize,
    /// Whether the walk found no more stored rows for the lane (until rows are added).
    walked: bool,
}

impl Lanes {
    fn index(&mut self, kind: &str) -> usize {
        match self.lanes.iter().position(|l| l.kind == kind) {
            Some(i) => i,
            None => {
                self.lanes.push(Lane {
                    kind: kind.to_string(),
                    ..Lane::default()
                });
                self.lanes.len() - 1
            }
        }
    }

    fn lane_of(&mut self, phase: Phase, task: &Task) -> usize {
        match phase {
            Phase::Resources => self.index(""),
            _ => self.index(task.resource_type()),
        }
    }

    fn push_back(&mut self, phase: Phase, task: Task) {
        let i = self.lane_of(phase, &task);
        self.lanes[i].waiting.push_back(task);
    }

    fn push_front(&mut self, phase: Phase, task: Task) {
        let i = self.lane_of(phase, &task);
        self.lanes[i].waiting.push_front(task);
    }

    fn finished(&mut self, phase: Phase, task: &Task) {
        let i = self.lane_of(phase, task);
        self.lanes[i].running -= 1;
    }

    /// The next lane (round robin) with fewer than `per_lane` running and a task waiting,
    /// walking on with `walk` for a lane that has none waiting.
    fn pick(
        &mut self,
        per_lane: usize,
        mut walk: impl FnMut(&str) -> Result<VecDeque<Task>, SyncError>,
    ) -> Result<Option<usize>, SyncError> {
        if self.lanes.is_empty() {
            self.index("");
        }
        let n = self.lanes.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let lane = &mut self.lanes[i];
            if lane.running >= per_lane {
                continue;
            }
            if lane.waiting.is_empty() && !lane.walked {
                lane.waiting = walk(&lane.kind)?;
                lane.walked = lane.waiting.is_empty();
            }
            if !lane.waiting.is_empty() {
                self.next = i + 1;
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Takes lane `i`'s next task to run.
    fn start(&mut self, i: usize) -> Task {
        let lane = &mut self.lanes[i];
        lane.running += 1;
        lane.waiting.pop_front().expect("picked lanes have a task")
    }

    /// Whether every lane has walked all its rows and has nothing waiting.
    fn done(&self) -> bool {
        self.lanes.iter().all(|l| l.walked && l.waiting.is_empty())
    }

    fn walk_again(&mut self) {
        for l in &mut self.lanes {
            l.walked = false;
        }
    }
}

const PHASE_DONE: usize = usize::MAX;

/// Where the time of a sync went, for `--log-level debug`.
fn log_phase(name: &str, started: std::time::Instant) {
    tracing::debug!(
        phase = name,
        seconds = started.elapsed().as_secs_f64(),
        "sync phase done"
    );
}

fn host_error(e: anyhow::Error) -> SyncError {
    SyncError::Host(format!("{e:#}"))
}
