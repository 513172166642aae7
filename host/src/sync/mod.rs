//! The generic sync engine: Baton's phase order (validate → resource types → resources,
//! following child types → entitlements → grants → grant expansion), every page, several
//! component instances working at once, and retries of calls the connector reports as rate
//! limited or unavailable, waiting as long as it says.

pub mod data;
pub mod expand;
pub mod progress;
pub mod scope;

use crate::component::{ConnectorError, Resource, ResourceId, RunContext, SyncHints};
use crate::runtime::{CallError, CallResult, ConnectorInstance, Program, Runtime};
use data::{SyncData, show};
use progress::Progress;
use scope::SyncScope;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::Instrument as _;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Component instances working at once.
    pub concurrency: usize,
    /// Attempts of one call the connector reports as rate limited or unavailable.
    pub max_attempts: u32,
    /// The longest wait for a rate-limited call before it counts as failed.
    pub max_retry_wait: Duration,
    /// What the sync covers (everything by default).
    pub scope: SyncScope,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            concurrency: 4,
            max_attempts: 6,
            max_retry_wait: Duration::from_secs(300),
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

/// What the connector said, as text.
pub fn describe(error: &ConnectorError) -> String {
    match error {
        ConnectorError::Unauthenticated(m)
        | ConnectorError::PermissionDenied(m)
        | ConnectorError::NotFound(m)
        | ConnectorError::InvalidArgument(m)
        | ConnectorError::AlreadyExists(m)
        | ConnectorError::FailedPrecondition(m)
        | ConnectorError::Unavailable(m)
        | ConnectorError::Unimplemented(m)
        | ConnectorError::Internal(m) => m.clone(),
        ConnectorError::RateLimited(info) => {
            format!("{} (retry after {} ms)", info.message, info.retry_after_ms)
        }
    }
}

pub struct SyncReport {
    pub data: SyncData,
    pub expanded_grants: usize,
    pub started: chrono::DateTime<chrono::Local>,
    pub elapsed: Duration,
    pub retried_calls: u64,
}

#[derive(Debug, Clone)]
enum Call {
    Resources {
        resource_type: String,
        parent: Option<ResourceId>,
    },
    Entitlements {
        resource: Box<Resource>,
    },
    Grants {
        resource: Box<Resource>,
    },
}

#[derive(Debug, Clone)]
struct Task {
    call: Call,
    token: String,
    attempt: u32,
    delay: Duration,
}

impl Task {
    fn new(call: Call) -> Task {
        Task {
            call,
            token: String::new(),
            attempt: 0,
            delay: Duration::ZERO,
        }
    }

    /// The listing the task pages through (its name without the page).
    fn listing(&self) -> String {
        Task {
            token: String::new(),
            ..self.clone()
        }
        .name()
    }

    fn name(&self) -> String {
        let page = if self.token.is_empty() {
            String::new()
        } else {
            " (next page)".into()
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
            Call::Entitlements { resource } => {
                format!("list-entitlements({}){page}", show(&resource.id))
            }
            Call::Grants { resource } => format!("list-grants({}){page}", show(&resource.id)),
        }
    }
}

/// A finished call: the instance (to reuse unless it broke), the task, and what came of it.
type Done = (
    ConnectorInstance,
    Task,
    Result<Result<Answer, ConnectorError>, CallError>,
);

enum Answer {
    Resources(crate::component::ResourcePage),
    Entitlements(crate::component::EntitlementPage),
    Grants(crate::component::GrantPage),
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
        Call::Entitlements { resource } => instance
            .list_entitlements(resource, &task.token)
            .await?
            .map(Answer::Entitlements),
        Call::Grants { resource } => instance
            .list_grants(resource, &task.token)
            .await?
            .map(Answer::Grants),
    })
}

/// One sync run: the component instances of `run`, created from `runtime` as needed.
pub struct Syncer<'r> {
    runtime: &'r Runtime,
    /// The component to run (the runtime's own unless `with_program` says otherwise).
    program: Arc<Program>,
    run: Arc<RunContext>,
    options: SyncOptions,
    progress: Arc<Progress>,
    idle: Vec<ConnectorInstance>,
    retried_calls: u64,
    /// Page tokens handed out so far, per listing: a listing that hands one out twice would
    /// loop forever.
    tokens: HashMap<String, HashSet<String>>,
    /// scope: resources outside the scope that were walked through (to list their children).
    walked: HashSet<(String, String)>,
}

impl<'r> Syncer<'r> {
    pub fn new(
        runtime: &'r Runtime,
        run: Arc<RunContext>,
        options: SyncOptions,
        progress: Arc<Progress>,
    ) -> Self {
        Syncer {
            runtime,
            program: runtime.program().clone(),
            run,
            options,
            progress,
            idle: vec![],
            retried_calls: 0,
            tokens: HashMap::new(),
            walked: HashSet::new(),
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

    pub async fn run(mut self) -> Result<SyncReport, SyncError> {
        let started = chrono::Local::now();
        let clock = Instant::now();
        let mut data = SyncData::default();

        let scope = self.options.scope.clone(); // scope:
        self.progress.set_phase(0);
        self.once("validate", |mut i| async move {
            let r = i.validate().await;
            (i, r)
        })
        .instrument(crate::telemetry::phase_span("validate")) // telemetry:
        .await?;

        self.progress.set_phase(1);
        data.resource_types = self
            .once("resource-types", |mut i| async move {
                let r = i.resource_types().await;
                (i, r)
            })
            .instrument(crate::telemetry::phase_span("resource-types")) // telemetry:
            .await?;

        self.progress.set_phase(2);
        let type_ids: Vec<String> = data.resource_types.iter().map(|t| t.id.clone()).collect();
        let tasks = scope // scope: the first listings
            .first_listings(&type_ids)
            .into_iter()
            .map(|(resource_type, parent)| {
                Task::new(Call::Resources {
                    resource_type,
                    parent,
                })
            })
            .collect();
        self.phase(&mut data, tasks)
            .instrument(crate::telemetry::phase_span("resources")) // telemetry:
            .await?;
        data.order_resources();

        self.progress.set_phase(3);
        let tasks = data
            .resources()
            .iter()
            .filter(|r| !data.skips(r, SyncHints::SKIP_ENTITLEMENTS))
            .filter(|r| scope.lists_entitlements(&r.id)) // scope:
            .map(|r| {
                Task::new(Call::Entitlements {
                    resource: Box::new(r.clone()),
                })
            })
            .collect();
        self.phase(&mut data, tasks)
            .instrument(crate::telemetry::phase_span("entitlements")) // telemetry:
            .await?;
        data.order_entitlements();

        self.progress.set_phase(4);
        let tasks = data
            .resources()
            .iter()
            .filter(|r| !data.skips(r, SyncHints::SKIP_GRANTS))
            .filter(|r| scope.lists_grants(&r.id)) // scope:
            .map(|r| {
                Task::new(Call::Grants {
                    resource: Box::new(r.clone()),
                })
            })
            .collect();
        self.phase(&mut data, tasks)
            .instrument(crate::telemetry::phase_span("grants")) // telemetry:
            .await?;
        data.order_grants();
        data.drop_dangling_grants();

        self.progress.set_phase(5);
        let expanded_grants = if scope.expands_grants() {
            // scope:
            let _phase = crate::telemetry::phase_span("expand-grants").entered(); // telemetry:
            expand::expand(&mut data)
        } else {
            0
        };
        data.resource_types.retain(|t| scope.keeps_type(&t.id)); // scope:
        self.progress.set_phase(PHASE_DONE);
        Ok(SyncReport {
            data,
            expanded_grants,
            started,
            elapsed: clock.elapsed(),
            retried_calls: self.retried_calls,
        })
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
            let wait = match error {
                ConnectorError::RateLimited(_) => self.retry_wait(&error, attempt),
                _ => None,
            };
            let Some(wait) = wait else {
                return Err(SyncError::Connector {
                    call: name.into(),
                    message: describe(&error),
                    error,
                });
            };
            tracing::info!(
                "{name}: {}; retrying in {:.1} s",
                describe(&error),
                wait.as_secs_f64()
            );
            self.retried_calls += 1;
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// How long to wait before calling again after `error` on attempt `attempt` (from 0);
    /// `None` when the call is not to be retried.
    fn retry_wait(&self, error: &ConnectorError, attempt: u32) -> Option<Duration> {
        let wait = match error {
            ConnectorError::RateLimited(info) => Duration::from_millis(info.retry_after_ms),
            ConnectorError::Unavailable(_) => Duration::from_secs(1u64 << attempt.min(5)),
            _ => return None,
        };
        (attempt + 1 < self.options.max_attempts && wait <= self.options.max_retry_wait)
            .then_some(wait)
    }

    /// Runs a phase's calls (and the calls their answers lead to) until none is left.
    async fn phase(&mut self, data: &mut SyncData, tasks: VecDeque<Task>) -> Result<(), SyncError> {
        let mut queue = tasks;
        let mut running: JoinSet<Done> = JoinSet::new();
        loop {
            while running.len() < self.options.concurrency.max(1) {
                let Some(task) = queue.pop_front() else { break };
                // With instances of its own at work, a run does not wait for a pool slot (other
                // runs may be waiting for this run's); it waits for one of its own to finish.
                let instance = match self.idle.pop() {
                    Some(i) => Some(Ok(i)),
                    None if running.is_empty() => Some(self.instance().await),
                    None => self
                        .runtime
                        .try_instantiate(&self.program, self.run.clone())
                        .await
                        .map_err(host_error)
                        .transpose(),
                };
                let mut instance = match instance {
                    Some(Ok(i)) => i,
                    Some(Err(e)) => {
                        running.abort_all();
                        return Err(e);
                    }
                    None => {
                        queue.push_front(task);
                        break;
                    }
                };
                running.spawn(
                    async move {
                        let outcome = execute(&mut instance, &task).await;
                        (instance, task, outcome)
                    }
                    .in_current_span(), // telemetry: requests belong to their phase
                );
            }
            let Some(joined) = running.join_next().await else {
                return Ok(());
            };
            let (instance, task, outcome) = match joined {
                Ok(done) => done,
                Err(e) => {
                    running.abort_all();
                    return Err(SyncError::Host(format!("a sync task failed: {e}")));
                }
            };
            // A failed instance is dropped with its store; the next call gets a fresh one.
            if !instance.is_broken() {
                self.idle.push(instance);
            }
            Progress::add(&self.progress.calls, 1);
            let result = match outcome {
                Ok(Ok(answer)) => self.accept(data, &task, answer, &mut queue),
                Ok(Err(error)) => self.retry_or_fail(data, task, error, &mut queue),
                Err(error) => Err(SyncError::Component {
                    call: task.name(),
                    error,
                }),
            };
            if let Err(e) = result {
                running.abort_all();
                return Err(e);
            }
        }
    }

    fn retry_or_fail(
        &mut self,
        data: &mut SyncData,
        task: Task,
        error: ConnectorError,
        queue: &mut VecDeque<Task>,
    ) -> Result<(), SyncError> {
        // As Baton does: something that vanished while listing is a warning, not a failure.
        if let ConnectorError::NotFound(m) = &error
            && !matches!(task.call, Call::Resources { .. })
        {
            data.warnings.push(format!("{}: {m}; skipped", task.name()));
            return Ok(());
        }
        match self.retry_wait(&error, task.attempt) {
            Some(wait) => {
                tracing::info!(
                    "{}: {}; retrying in {:.1} s",
                    task.name(),
                    describe(&error),
                    wait.as_secs_f64()
                );
                self.retried_calls += 1;
                queue.push_back(Task {
                    attempt: task.attempt + 1,
                    delay: wait,
                    ..task
                });
                Ok(())
            }
            _ => Err(SyncError::Connector {
                call: task.name(),
                message: describe(&error),
                error,
            }),
        }
    }

    fn accept(
        &mut self,
        data: &mut SyncData,
        task: &Task,
        answer: Answer,
        queue: &mut VecDeque<Task>,
    ) -> Result<(), SyncError> {
        let invalid = |message: String| SyncError::InvalidOutput {
            call: task.name(),
            message,
        };
        for w in answer.warnings() {
            tracing::warn!("{w}");
            data.warnings.push(w.clone());
        }
        let next = answer.next_token().to_string();
        match answer {
            Answer::Resources(page) => {
                let Call::Resources { resource_type, .. } = &task.call else {
                    unreachable!("answers match their calls")
                };
                let mut added = 0;
                for resource in page.items {
                    if &resource.id.resource_type != resource_type {
                        return Err(invalid(format!(
                            "asked for {resource_type}, got resource {}",
                            show(&resource.id)
                        )));
                    }
                    let children: Vec<String> = resource.child_resource_types.clone();
                    let id = resource.id.clone();
                    // scope: a resource out of scope is walked through, not kept
                    let new = if self.options.scope.keeps(&id) {
                        let put = data.put_resource(resource).map_err(invalid)?;
                        added += usize::from(put);
                        put
                    } else {
                        self.walked
                            .insert((id.resource_type.clone(), id.resource.clone()))
                    };
                    if new {
                        for child in children
                            .into_iter()
                            .filter(|c| self.options.scope.lists_children(c))
                        // scope:
                        {
                            if data.resource_type(&child).is_none() {
                                return Err(invalid(format!(
                                    "resource {} names undeclared child type {child:?}",
                                    show(&id)
                                )));
                            }
                            queue.push_back(Task::new(Call::Resources {
                                resource_type: child,
                                parent: Some(id.clone()),
                            }));
                        }
                    }
                }
                Progress::add(&self.progress.resources, added);
            }
            Answer::Entitlements(page) => {
                Progress::add(&self.progress.entitlements, page.items.len());
                for e in page.items {
                    data.put_entitlement(e).map_err(invalid)?;
                }
            }
            Answer::Grants(page) => {
                let Call::Grants { resource } = &task.call else {
                    unreachable!("answers match their calls")
                };
                Progress::add(&self.progress.grants, page.items.len());
                for g in page.items {
                    data.put_grant(g, &resource.id);
                }
            }
        }
        if !next.is_empty() {
            // Baton's rule, a page may not hand back the token it was asked with, extended to
            // every token of the listing: a cycle of pages would never end either.
            if !self
                .tokens
                .entry(task.listing())
                .or_default()
                .insert(next.clone())
            {
                return Err(invalid(format!(
                    "it returned the page token {next:?} a second time; stopping to avoid an endless loop"
                )));
            }
            queue.push_back(Task {
                token: next,
                attempt: 0,
                delay: Duration::ZERO,
                ..task.clone()
            });
        }
        Ok(())
    }
}

const PHASE_DONE: usize = usize::MAX;

fn host_error(e: anyhow::Error) -> SyncError {
    SyncError::Host(format!("{e:#}"))
}
