//! What each task type does, and how its end is reported in `FinishTask`.
//!
//! As baton-sdk's task manager does it:
//!
//! | task | done by | reported |
//! |---|---|---|
//! | `sync_full` | a sync (of what the task's options and `--sync-*` flags ask) into a temporary `.c1z`, uploaded, then deleted; with `--skip-full-sync` an empty one | success, no response |
//! | `grant`, `revoke`, `create_account`, `delete_resource` | `provision::execute` (with `--provisioning` only) | success with the connector's response and its annotations, or the connector's error, `non_retryable` |
//! | `create_resource`, `rotate_credentials` | nothing (the connector has neither) | `UNIMPLEMENTED`, `non_retryable` |
//! | `hello` | `Hello` again, naming the task | not reported |
//! | `none` | nothing | not reported |
//! | anything else | nothing | `UNKNOWN` "unsupported task type", retryable |
//!
//! A success carries no `status`; a failure carries the status code and message.

use super::Ctx;
use super::hello;
use super::provisioning::{self, Request as Provisioning};
use super::upload;
use crate::commands::provision;
use crate::commands::sync::{self as app, SyncJob};
use crate::sync::scope::{SyncScope, Target};
use baton::c1::rpc;
use baton::c1::service::baton_service_finish_task_request::{
    Error as FinishError, FinalState, Success,
};
use baton::c1::service::{BatonServiceFinishTaskRequest, Task, task::TaskType};
use prost_types::Any;
use std::time::Duration;
use tonic::Code;

/// Why a provisioning task is refused without `--provisioning`.
pub const PROVISIONING_DISABLED: &str =
    "provisioning is not enabled (set --provisioning / BATON_PROVISIONING)";

/// The task type's name in the protocol (`sync_full`, `grant`, …), for logs.
pub fn kind(task: &Task) -> &'static str {
    match &task.task_type {
        None => "unknown",
        Some(t) => match t {
            TaskType::None(_) => "none",
            TaskType::Hello(_) => "hello",
            TaskType::SyncFull(_) => "sync_full",
            TaskType::Grant(_) => "grant",
            TaskType::Revoke(_) => "revoke",
            TaskType::CreateAccount(_) => "create_account",
            TaskType::CreateResource(_) => "create_resource",
            TaskType::DeleteResource(_) => "delete_resource",
            TaskType::RotateCredentials(_) => "rotate_credentials",
            TaskType::EventFeed(_) => "event_feed",
            TaskType::CreateTicketTask(_) => "create_ticket_task",
            TaskType::ListTicketSchemas(_) => "list_ticket_schemas",
            TaskType::GetTicket(_) => "get_ticket",
            TaskType::BulkCreateTickets(_) => "bulk_create_tickets",
            TaskType::BulkGetTickets(_) => "bulk_get_tickets",
            TaskType::ActionListSchemas(_) => "action_list_schemas",
            TaskType::ActionGetSchema(_) => "action_get_schema",
            TaskType::ActionInvoke(_) => "action_invoke",
            TaskType::ActionStatus(_) => "action_status",
            TaskType::CreateSyncDiff(_) => "create_sync_diff",
            TaskType::CompactSyncs(_) => "compact_syncs",
            TaskType::ListEventFeeds(_) => "list_event_feeds",
            TaskType::ListEvents(_) => "list_events",
            TaskType::IssueCredential(_) => "issue_credential",
        },
    }
}

/// True for a full sync (the only task baton-sdk heartbeats).
pub fn is_sync(task: &Task) -> bool {
    matches!(task.task_type, Some(TaskType::SyncFull(_)))
}

/// True for the "nothing to do" task.
pub fn is_none(task: &Task) -> bool {
    matches!(task.task_type, Some(TaskType::None(_)))
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Success {
        /// The connector's RPC response, for provisioning tasks.
        response: Option<Any>,
        /// The response's annotations (baton-sdk sends them in `success.annotations`).
        annotations: Vec<Any>,
        /// One line for the log.
        summary: String,
    },
    Failure {
        status: rpc::Status,
        non_retryable: bool,
    },
    /// Ended without a `FinishTask`: a hello task (answered with `Hello`), or a sync whose
    /// first heartbeat failed (ConductorOne hands it out again).
    Unreported(String),
}

impl Finish {
    pub fn failed(code: Code, message: impl Into<String>, non_retryable: bool) -> Finish {
        Finish::Failure {
            status: rpc::Status {
                code: code as i32,
                message: message.into(),
                details: vec![],
            },
            non_retryable,
        }
    }

    /// ConductorOne cancelled the task (a heartbeat said so).
    pub fn cancelled() -> Finish {
        Finish::failed(
            Code::Cancelled,
            "the task was cancelled by ConductorOne",
            false,
        )
    }

    /// Heartbeats kept failing: the task was given up.
    pub fn lost(last_error: &str) -> Finish {
        Finish::failed(
            Code::Aborted,
            format!(
                "the task was abandoned: heartbeats to ConductorOne kept failing ({last_error})"
            ),
            false,
        )
    }

    /// The daemon is stopping and the task did not end in time; another may take it.
    pub fn shutting_down() -> Finish {
        Finish::failed(
            Code::Unavailable,
            "baton-segment is shutting down; the task was stopped before it finished",
            false,
        )
    }

    /// A task type this connector does not handle, reported as baton-sdk reports one: an
    /// error (code `UNKNOWN`) another host or a later version may handle.
    pub fn unsupported(kind: &str) -> Finish {
        Finish::failed(
            Code::Unknown,
            format!(
                "unsupported task type: {kind} (baton-segment syncs, grants, revokes, creates accounts and deletes resources)"
            ),
            false,
        )
    }

    /// The `FinishTask` request reporting this end; `None` for an end that is not reported.
    /// Its error text is redacted: it may quote a server or the connector, and it leaves this
    /// host.
    pub fn request(&self, host_id: &str, task_id: &str) -> Option<BatonServiceFinishTaskRequest> {
        let (status, final_state) = match self {
            Finish::Success {
                response,
                annotations,
                ..
            } => (
                None,
                FinalState::Success(Success {
                    annotations: annotations.clone(),
                    response: response.clone(),
                }),
            ),
            Finish::Failure {
                status,
                non_retryable,
            } => (
                Some(rpc::Status {
                    code: status.code,
                    message: crate::sandbox::redact::redacted(&status.message),
                    details: vec![],
                }),
                FinalState::Error(FinishError {
                    non_retryable: *non_retryable,
                    annotations: vec![],
                    response: None,
                }),
            ),
            Finish::Unreported(_) => return None,
        };
        Some(BatonServiceFinishTaskRequest {
            host_id: host_id.to_string(),
            task_id: task_id.to_string(),
            status,
            final_state: Some(final_state),
        })
    }
}

/// Runs `task` to its end (heartbeats and cancellation are the caller's).
pub(crate) async fn execute(ctx: &Ctx, task: &Task) -> Finish {
    match &task.task_type {
        Some(TaskType::SyncFull(t)) => sync_full(ctx, &task.id, t).await,
        Some(TaskType::Grant(t)) => provision(ctx, Provisioning::Grant(t.clone())).await,
        Some(TaskType::Revoke(t)) => provision(ctx, Provisioning::Revoke(t.clone())).await,
        Some(TaskType::CreateAccount(t)) => {
            provision(ctx, Provisioning::CreateAccount(t.clone())).await
        }
        Some(TaskType::DeleteResource(t)) => provision(ctx, Provisioning::Delete(t.clone())).await,
        Some(TaskType::Hello(_)) => {
            let req = hello::request(&ctx.host_id, &task.id, &ctx.metadata);
            match ctx.client.hello(req).await {
                Ok(_) => Finish::Unreported("said hello".into()),
                Err(e) => Finish::Unreported(format!("Hello failed: {e}")),
            }
        }
        Some(TaskType::None(_)) => Finish::Unreported("nothing to do".into()),
        // Handled by baton-sdk, which asks the connector; this one has neither.
        Some(TaskType::CreateResource(_) | TaskType::RotateCredentials(_)) => Finish::failed(
            Code::Unimplemented,
            format!(
                "baton-segment does not support {} tasks (it syncs, grants, revokes, creates accounts and deletes resources)",
                kind(task)
            ),
            true,
        ),
        _ => Finish::unsupported(kind(task)),
    }
}

/// What a `sync_full` task covers: its own options first, then the `--sync-*` flags the
/// daemon was started with (the task's resource types win over the flags', as baton-sdk
/// prefers what ConductorOne asks).
pub fn task_scope(
    t: &baton::c1::service::task::SyncFullTask,
    flags: &SyncScope,
) -> Result<SyncScope, String> {
    let mut scope = flags.clone();
    if !t.sync_resource_type_ids.is_empty() {
        scope.resource_types = t
            .sync_resource_type_ids
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
    }
    for r in &t.targeted_sync_resources {
        let id =
            r.id.as_ref()
                .filter(|id| !id.resource_type.is_empty() && !id.resource.is_empty())
                .ok_or("a targeted resource has no id")?;
        scope.targets.push(Target {
            resource_type: id.resource_type.clone(),
            resource: id.resource.clone(),
            parent: r
                .parent_resource_id
                .as_ref()
                .filter(|p| !p.resource_type.is_empty())
                .map(|p| (p.resource_type.clone(), p.resource.clone())),
        });
    }
    scope.skip_entitlements_and_grants |= t.skip_entitlements_and_grants;
    scope.skip_grants |= t.skip_grants;
    scope.skip_expand_grants |= t.skip_expand_grants;
    Ok(scope)
}

async fn sync_full(ctx: &Ctx, task_id: &str, t: &baton::c1::service::task::SyncFullTask) -> Finish {
    let scope = match task_scope(t, &ctx.scope) {
        Ok(s) => s,
        Err(why) => return Finish::failed(Code::InvalidArgument, why, true),
    };
    if !t.storage_engine.is_empty() && !t.storage_engine.eq_ignore_ascii_case("sqlite") {
        tracing::info!(
            task_id,
            storage_engine = %t.storage_engine,
            "writing the .c1z in the SQLite (v1) format, the one baton-segment writes"
        );
    }
    if !scope.is_full() {
        tracing::info!(task_id, "partial sync: {}", scope.describe());
    }

    // The directory (and the file in it) goes away when this function ends or is dropped.
    let dir = match tempfile::Builder::new()
        .prefix("baton-segment-sync-")
        .tempdir_in(&ctx.temp_dir)
    {
        Ok(dir) => dir,
        Err(e) => {
            return Finish::failed(
                Code::Internal,
                format!(
                    "cannot create a temporary directory in {}: {e}",
                    ctx.temp_dir.display()
                ),
                false,
            );
        }
    };
    let path = dir.path().join("sync.c1z");
    let described = if ctx.skip_full_sync {
        // --skip-full-sync: an empty sync, as baton-sdk's syncer makes one, so ConductorOne
        // still gets its upload.
        match empty_sync(&path) {
            Ok(()) => "full syncs are off (--skip-full-sync): uploaded an empty sync".to_string(),
            Err(e) => {
                return Finish::failed(
                    Code::Internal,
                    format!("writing the empty sync: {e:#}"),
                    false,
                );
            }
        }
    } else {
        let job = SyncJob {
            scope,
            ..SyncJob::with(ctx.connection.clone(), path.clone())
        };
        match app::sync_on(&ctx.runtime, job).await {
            Ok(summary) => format!(
                "synced {} resources, {} entitlements, {} grants ({} warnings)",
                summary.resources(),
                summary.entitlements,
                summary.grants,
                summary.warnings.len(),
            ),
            Err(e) => {
                return Finish::failed(Code::Unknown, format!("the sync failed: {e:#}"), false);
            }
        }
    };
    let uploaded = match upload::upload(
        &ctx.client,
        &ctx.host_id,
        task_id,
        &path,
        ctx.timing.upload_attempts,
        ctx.timing.upload_backoff,
    )
    .await
    {
        Ok(u) => u,
        Err(status) => {
            return Finish::failed(status.code(), status.message().to_string(), false);
        }
    };
    if let Err(e) = dir.close() {
        tracing::warn!(task_id, "cannot remove the temporary sync file: {e}");
    }
    Finish::Success {
        response: None,
        annotations: vec![],
        summary: format!(
            "{described}; uploaded {} bytes in {} attempt(s)",
            uploaded.bytes, uploaded.attempts
        ),
    }
}

/// A `.c1z` with a sync run and nothing in it.
fn empty_sync(path: &std::path::Path) -> anyhow::Result<()> {
    let writer = baton::C1zWriter::create(path)?;
    let now = chrono::Local::now();
    writer.finish(now, now)?;
    Ok(())
}

async fn provision(ctx: &Ctx, request: Provisioning) -> Finish {
    if !ctx.provisioning {
        return Finish::failed(Code::FailedPrecondition, PROVISIONING_DISABLED, true);
    }
    let operation = match request.operation() {
        Ok(op) => op,
        Err(why) => return Finish::failed(Code::InvalidArgument, why, true),
    };
    let what = provision::describe_operation(&operation);
    match provision::execute(&ctx.runtime, &ctx.connection, &operation).await {
        Ok(outcome) => match request.response(&outcome) {
            Ok(answer) => Finish::Success {
                response: Some(answer.any),
                annotations: answer.annotations,
                summary: format!("{what}: {}", outcome.describe()),
            },
            Err(why) => Finish::failed(Code::Internal, format!("{what}: {why}"), true),
        },
        Err(e) => {
            let (status, non_retryable) = provisioning::failure(&e);
            Finish::Failure {
                status,
                non_retryable,
            }
        }
    }
}

/// Reports the end of a task, with a timeout per attempt; transient failures are tried again
/// (three attempts in all, a second apart).
pub(crate) async fn report(ctx: &Ctx, task_id: &str, finish: &Finish) -> bool {
    let Some(req) = finish.request(&ctx.host_id, task_id) else {
        return true;
    };
    let attempts = ctx.timing.finish_attempts.max(1);
    for attempt in 1..=attempts {
        match ctx
            .client
            .finish_task(req.clone(), ctx.timing.finish_timeout)
            .await
        {
            Ok(_) => return true,
            Err(e) => {
                let transient = matches!(
                    e.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Unknown
                        | Code::Unauthenticated
                        | Code::ResourceExhausted
                        | Code::Aborted
                ) && !e.is_refusal();
                if transient && attempt < attempts {
                    tracing::warn!(
                        task_id,
                        attempt,
                        "reporting the task's end failed: {e}; trying again"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                } else {
                    tracing::error!(
                        task_id,
                        "could not report the task's end to ConductorOne: {e}"
                    );
                    return false;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton::c1::service::task;

    #[test]
    fn finish_requests_as_baton_sdk_sends_them() {
        let response = baton::pb::GrantManagerServiceRevokeResponse {
            annotations: vec![baton::annotations::pack(&baton::pb::GrantAlreadyRevoked {})],
        };
        let ok = Finish::Success {
            response: Some(baton::annotations::pack(&response)),
            annotations: response.annotations.clone(),
            summary: String::new(),
        }
        .request("h", "t")
        .unwrap();
        // A success has no status, and the response's annotations.
        assert!(ok.status.is_none());
        match ok.final_state {
            Some(FinalState::Success(ref s)) => {
                assert!(s.response.is_some());
                assert_eq!(s.annotations, response.annotations);
            }
            ref other => panic!("{other:?}"),
        }
        let failed = Finish::failed(Code::Unimplemented, "no", true)
            .request("h", "t")
            .unwrap();
        assert_eq!(
            failed.status.as_ref().unwrap().code,
            Code::Unimplemented as i32
        );
        assert!(matches!(failed.final_state, Some(FinalState::Error(ref e)) if e.non_retryable));
        // An unknown task type: UNKNOWN and retryable, as baton-sdk reports it.
        let unknown = Finish::unsupported("action_invoke")
            .request("h", "t")
            .unwrap();
        assert_eq!(unknown.status.as_ref().unwrap().code, Code::Unknown as i32);
        assert!(matches!(unknown.final_state, Some(FinalState::Error(ref e)) if !e.non_retryable));
        // Hello tasks are not finished.
        assert!(
            Finish::Unreported("said hello".into())
                .request("h", "t")
                .is_none()
        );
    }

    #[test]
    fn a_sync_task_s_options_make_its_scope() {
        let flags = SyncScope::from_flags(&["user".into()], &[], false, false).unwrap();
        let t = task::SyncFullTask {
            sync_resource_type_ids: vec!["group".into()],
            skip_grants: true,
            skip_expand_grants: true,
            targeted_sync_resources: vec![baton::pb::Resource {
                id: Some(baton::pb::ResourceId {
                    resource_type: "group".into(),
                    resource: "grpEng".into(),
                    baton_resource: false,
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let scope = task_scope(&t, &flags).unwrap();
        // The task's resource types win over the flags'.
        assert_eq!(scope.resource_types.iter().collect::<Vec<_>>(), ["group"]);
        assert_eq!(scope.targets.len(), 1);
        assert!(scope.skip_grants && scope.skip_expand_grants);
        assert_eq!(scope.sync_type(), "partial");
        // No options: the flags' scope.
        assert_eq!(
            task_scope(&task::SyncFullTask::default(), &flags).unwrap(),
            flags
        );
        // A targeted resource without an id is refused.
        let bad = task::SyncFullTask {
            targeted_sync_resources: vec![baton::pb::Resource::default()],
            ..Default::default()
        };
        assert!(task_scope(&bad, &flags).is_err());
    }

    #[test]
    fn kinds() {
        let t = |tt| Task {
            id: "x".into(),
            status: 0,
            debug: false,
            task_type: tt,
        };
        assert_eq!(kind(&t(None)), "unknown");
        assert_eq!(
            kind(&t(Some(TaskType::SyncFull(task::SyncFullTask::default())))),
            "sync_full"
        );
        assert!(is_none(&t(Some(TaskType::None(task::NoneTask {})))));
    }
}
