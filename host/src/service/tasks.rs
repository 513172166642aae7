//! What each task type does, and how its end is reported in `FinishTask`.
//!
//! | task | done by | reported |
//! |---|---|---|
//! | `sync_full` | a sync into a temporary `.c1z`, uploaded, then deleted | success, no response |
//! | `grant`, `revoke`, `create_account`, `delete_resource` | `provision::execute` (with `--provisioning` only) | success with the connector's response, or the connector's error, `non_retryable` |
//! | `hello` | `Hello` again | success |
//! | `none` | nothing | not reported |
//! | anything else | nothing | `UNIMPLEMENTED`, `non_retryable` |

use super::Ctx;
use super::hello;
use super::provisioning::{self, Request as Provisioning};
use super::upload;
use crate::commands::provision;
use crate::commands::sync::{self as app, SyncJob};
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
        /// One line for the log.
        summary: String,
    },
    Failure {
        status: rpc::Status,
        non_retryable: bool,
    },
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

    /// The `FinishTask` request reporting this end. Its error text is redacted: it may quote
    /// a server or the connector, and it leaves this host.
    pub fn request(&self, host_id: &str, task_id: &str) -> BatonServiceFinishTaskRequest {
        let (status, final_state) = match self {
            Finish::Success { response, .. } => (
                rpc::Status {
                    code: Code::Ok as i32,
                    message: String::new(),
                    details: vec![],
                },
                FinalState::Success(Success {
                    annotations: vec![],
                    response: response.clone(),
                }),
            ),
            Finish::Failure {
                status,
                non_retryable,
            } => (
                rpc::Status {
                    message: crate::sandbox::redact::redacted(&status.message),
                    ..status.clone()
                },
                FinalState::Error(FinishError {
                    non_retryable: *non_retryable,
                    annotations: vec![],
                    response: None,
                }),
            ),
        };
        BatonServiceFinishTaskRequest {
            host_id: host_id.to_string(),
            task_id: task_id.to_string(),
            status: Some(status),
            final_state: Some(final_state),
        }
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
                Ok(_) => Finish::Success {
                    response: None,
                    summary: "said hello".into(),
                },
                Err(e) => Finish::failed(e.code(), format!("Hello failed: {e}"), false),
            }
        }
        Some(TaskType::None(_)) => Finish::Success {
            response: None,
            summary: "nothing to do".into(),
        },
        None => Finish::failed(
            Code::Unimplemented,
            "baton-segment does not know this task type (a newer protocol?)",
            true,
        ),
        Some(_) => Finish::failed(
            Code::Unimplemented,
            format!(
                "baton-segment does not support {} tasks (it syncs, grants, revokes, creates accounts and deletes resources)",
                kind(task)
            ),
            true,
        ),
    }
}

async fn sync_full(ctx: &Ctx, task_id: &str, t: &baton::c1::service::task::SyncFullTask) -> Finish {
    if !t.targeted_sync_resources.is_empty() {
        return Finish::failed(
            Code::Unimplemented,
            "targeted syncs are not supported: baton-segment syncs whole workspaces",
            true,
        );
    }
    let mut ignored = vec![];
    if t.skip_expand_grants {
        ignored.push("skip_expand_grants");
    }
    if t.skip_entitlements_and_grants {
        ignored.push("skip_entitlements_and_grants");
    }
    if t.skip_grants {
        ignored.push("skip_grants");
    }
    if !t.sync_resource_type_ids.is_empty() {
        ignored.push("sync_resource_type_ids");
    }
    if !t.storage_engine.is_empty() && t.storage_engine != "sqlite" {
        ignored.push("storage_engine");
    }
    if !ignored.is_empty() {
        tracing::info!(
            task_id,
            "sync options {} are not supported and were ignored: syncing the whole workspace into a SQLite (v1) .c1z",
            ignored.join(", ")
        );
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
    let job = SyncJob::with(ctx.connection.clone(), path.clone());
    let summary = match app::sync_on(&ctx.runtime, job).await {
        Ok(s) => s,
        Err(e) => return Finish::failed(Code::Unknown, format!("the sync failed: {e:#}"), false),
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
        summary: format!(
            "synced {} resources, {} entitlements, {} grants ({} warnings); uploaded {} bytes in {} attempt(s)",
            summary.resources(),
            summary.entitlements,
            summary.grants,
            summary.warnings.len(),
            uploaded.bytes,
            uploaded.attempts
        ),
    }
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
            Ok(response) => Finish::Success {
                response: Some(response),
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
    let req = finish.request(&ctx.host_id, task_id);
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
    fn finish_requests() {
        let ok = Finish::Success {
            response: Some(baton::annotations::pack(
                &baton::pb::GrantManagerServiceRevokeResponse::default(),
            )),
            summary: String::new(),
        }
        .request("h", "t");
        assert_eq!(ok.status.as_ref().unwrap().code, 0);
        assert!(matches!(ok.final_state, Some(FinalState::Success(ref s)) if s.response.is_some()));
        let failed = Finish::failed(Code::Unimplemented, "no", true).request("h", "t");
        assert_eq!(
            failed.status.as_ref().unwrap().code,
            Code::Unimplemented as i32
        );
        assert!(matches!(failed.final_state, Some(FinalState::Error(ref e)) if e.non_retryable));
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
