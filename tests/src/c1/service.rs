//! The fake's `c1.connectorapi.baton.v1.BatonService`.
//!
//! Every RPC first checks `authorization: Bearer <token>` (a token the fake issued that has
//! not expired; else `Unauthenticated`), then validates the request like the published
//! rules (host id 1..256 characters, task ids of tasks the fake handed out — else
//! `NotFound`, chunk sizes 1 byte..1 MiB, a 32-byte checksum), then records it.

use super::model::{
    LoggedRequest, RecordedFinish, RecordedHeartbeat, RecordedUpload, UploadAttempt, UploadOutcome,
};
use super::server::{Shared, State};
use baton::c1::service::baton_service_hello_request::OsInfo;
use baton::c1::service::baton_service_server::{BatonService, BatonServiceServer};
use baton::c1::service::baton_service_upload_asset_request::Msg;
use baton::c1::service::{
    BatonServiceFinishTaskRequest, BatonServiceFinishTaskResponse, BatonServiceGetTaskRequest,
    BatonServiceGetTaskResponse, BatonServiceGetTasksRequest, BatonServiceGetTasksResponse,
    BatonServiceHeartbeatRequest, BatonServiceHeartbeatResponse, BatonServiceHelloRequest,
    BatonServiceHelloResponse, BatonServiceUploadAssetRequest, BatonServiceUploadAssetResponse,
    Task, task,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

/// Largest accepted `data` chunk.
pub const MAX_CHUNK: usize = 1024 * 1024;
/// Most annotations a Hello or Heartbeat may carry.
const MAX_ANNOTATIONS: usize = 16;

pub(crate) fn routes(shared: Arc<Shared>) -> axum::Router {
    tonic::service::Routes::new(BatonServiceServer::new(Service { shared })).into_axum_router()
}

struct Service {
    shared: Arc<Shared>,
}

fn metadata_pairs(meta: &MetadataMap) -> Vec<(String, String)> {
    meta.clone()
        .into_headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn authorization(meta: &MetadataMap) -> Option<String> {
    meta.get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_encoded_bytes()).into_owned())
}

fn duration(d: Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

fn check_host_id(host_id: &str) -> Result<(), Status> {
    let n = host_id.chars().count();
    if n == 0 || n > 256 {
        return Err(Status::invalid_argument(format!(
            "host_id must be 1..256 characters (got {n})"
        )));
    }
    Ok(())
}

fn is_task_id(id: &str) -> bool {
    id.len() == baton::c1z::ksuid::STRING_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn check_known_task(st: &State, task_id: &str) -> Result<(), Status> {
    if !is_task_id(task_id) {
        return Err(Status::invalid_argument(format!(
            "task_id {task_id:?} is not 27 alphanumeric characters"
        )));
    }
    if !st.is_known_task(task_id) {
        return Err(Status::not_found(format!(
            "no task {task_id:?} was handed out"
        )));
    }
    Ok(())
}

/// ConductorOne fails to register a connector whose Hello has an empty `OSInfo` field
/// (baton-sdk fills every one for that reason: `virtualization_system` with "none").
fn check_os_info(info: Option<&OsInfo>) -> Result<(), Status> {
    let info = info.ok_or_else(|| Status::invalid_argument("os_info is required"))?;
    for (name, value) in [
        ("hostname", &info.hostname),
        ("os", &info.os),
        ("platform", &info.platform),
        ("platform_version", &info.platform_version),
        ("platform_family", &info.platform_family),
        ("kernel_version", &info.kernel_version),
        ("kernel_arch", &info.kernel_arch),
        ("virtualization_system", &info.virtualization_system),
    ] {
        if value.trim().is_empty() {
            return Err(Status::invalid_argument(format!(
                "os_info.{name} is empty: the connector cannot be registered"
            )));
        }
    }
    Ok(())
}

/// What GetTask answers when the queue is empty.
fn none_task() -> Task {
    Task {
        id: String::new(),
        status: task::Status::Unspecified as i32,
        debug: false,
        task_type: Some(task::TaskType::None(task::NoneTask {})),
    }
}

impl Service {
    /// Authenticates, runs `f` under the state lock (it may change the task id logged), logs
    /// the call and wakes waiters.
    fn unary<T>(
        &self,
        method: &str,
        meta: &MetadataMap,
        host_id: &str,
        task_id: &str,
        f: impl FnOnce(&mut State, &mut String) -> Result<T, Status>,
    ) -> Result<Response<T>, Status> {
        let auth = authorization(meta);
        let mut st = self.shared.state();
        let checked = st.check_bearer(auth.as_deref());
        let mut logged_task_id = task_id.to_string();
        let result = match checked {
            Err(e) => Err(Status::unauthenticated(e.message())),
            Ok(()) => f(&mut st, &mut logged_task_id),
        };
        st.log.push(LoggedRequest {
            method: method.to_string(),
            host_id: host_id.to_string(),
            task_id: logged_task_id,
            authorization_present: auth.is_some(),
            authorization_valid: checked.is_ok(),
            metadata: metadata_pairs(meta),
            form: Vec::new(),
            grpc_code: Some(match &result {
                Ok(_) => tonic::Code::Ok,
                Err(s) => s.code(),
            }),
            http_status: None,
            at: std::time::Instant::now(),
        });
        drop(st);
        self.shared.changed();
        result.map(Response::new)
    }

    /// Reads one upload stream into `data`, filling in `attempt` as it goes; the `eof`
    /// checksum, once it matched the data.
    async fn receive_upload(
        &self,
        stream: &mut Streaming<BatonServiceUploadAssetRequest>,
        attempt: &mut UploadAttempt,
        data: &mut Vec<u8>,
    ) -> Result<Vec<u8>, (UploadOutcome, Status)> {
        fn reject(msg: impl Into<String>) -> (UploadOutcome, Status) {
            let msg = msg.into();
            (
                UploadOutcome::Rejected(msg.clone()),
                Status::invalid_argument(msg),
            )
        }
        async fn next(
            stream: &mut Streaming<BatonServiceUploadAssetRequest>,
        ) -> Result<Option<BatonServiceUploadAssetRequest>, (UploadOutcome, Status)> {
            stream.message().await.map_err(|s| {
                (
                    UploadOutcome::Aborted(format!("{:?}: {}", s.code(), s.message())),
                    Status::new(s.code(), s.message().to_string()),
                )
            })
        }

        let Some(first) = next(stream).await? else {
            return Err(reject("stream ended before the metadata message"));
        };
        let Some(Msg::Metadata(md)) = first.msg else {
            return Err(reject("the first message must be metadata"));
        };
        attempt.host_id = md.host_id;
        attempt.task_id = md.task_id;
        check_host_id(&attempt.host_id)
            .map_err(|s| (UploadOutcome::Rejected(s.message().to_string()), s))?;
        let scripted = {
            let mut st = self.shared.state();
            check_known_task(&st, &attempt.task_id)
                .map_err(|s| (UploadOutcome::Rejected(s.message().to_string()), s))?;
            if st.upload_failures_left > 0 {
                st.upload_failures_left -= 1;
                true
            } else {
                false
            }
        };
        let scripted_failure = || {
            (
                UploadOutcome::ScriptedFailure,
                Status::unavailable("upload failed (scripted by the fake)"),
            )
        };
        let mut hasher = Sha256::new();
        loop {
            let Some(msg) = next(stream).await? else {
                return Err(reject("stream ended without an eof message"));
            };
            match msg.msg {
                None => return Err(reject("empty upload message")),
                Some(Msg::Metadata(_)) => return Err(reject("metadata sent twice")),
                Some(Msg::Data(d)) => {
                    if d.data.is_empty() || d.data.len() > MAX_CHUNK {
                        return Err(reject(format!(
                            "data chunk of {} bytes (must be 1..={MAX_CHUNK})",
                            d.data.len()
                        )));
                    }
                    attempt.chunk_sizes.push(d.data.len());
                    hasher.update(&d.data);
                    data.extend_from_slice(&d.data);
                    attempt.bytes_received = data.len();
                    if scripted {
                        return Err(scripted_failure());
                    }
                }
                Some(Msg::Eof(eof)) => {
                    if scripted {
                        return Err(scripted_failure());
                    }
                    if eof.sha256_checksum.len() != 32 {
                        return Err(reject(format!(
                            "sha256_checksum must be 32 bytes (got {})",
                            eof.sha256_checksum.len()
                        )));
                    }
                    let digest = hasher.finalize();
                    if digest.as_slice() != eof.sha256_checksum.as_slice() {
                        return Err((
                            UploadOutcome::ChecksumMismatch,
                            Status::invalid_argument(
                                "sha256_checksum does not match the uploaded data",
                            ),
                        ));
                    }
                    if next(stream).await?.is_some() {
                        return Err(reject("message after eof"));
                    }
                    return Ok(eof.sha256_checksum);
                }
            }
        }
    }
}

#[tonic::async_trait]
impl BatonService for Service {
    async fn hello(
        &self,
        request: Request<BatonServiceHelloRequest>,
    ) -> Result<Response<BatonServiceHelloResponse>, Status> {
        let (meta, _, msg) = request.into_parts();
        let (host_id, task_id) = (msg.host_id.clone(), msg.task_id.clone());
        self.unary("Hello", &meta, &host_id, &task_id, |st, _| {
            check_host_id(&msg.host_id)?;
            if !msg.task_id.is_empty() && !is_task_id(&msg.task_id) {
                return Err(Status::invalid_argument(
                    "task_id must be empty or 27 alphanumeric characters",
                ));
            }
            check_os_info(msg.os_info.as_ref())?;
            if msg.connector_metadata.is_none() {
                return Err(Status::invalid_argument("connector_metadata is required"));
            }
            if msg.annotations.len() > MAX_ANNOTATIONS {
                return Err(Status::invalid_argument("at most 16 annotations"));
            }
            st.hellos.push(msg);
            Ok(BatonServiceHelloResponse::default())
        })
    }

    async fn get_task(
        &self,
        request: Request<BatonServiceGetTaskRequest>,
    ) -> Result<Response<BatonServiceGetTaskResponse>, Status> {
        let (meta, _, msg) = request.into_parts();
        self.unary("GetTask", &meta, &msg.host_id, "", |st, logged_task_id| {
            check_host_id(&msg.host_id)?;
            let task = match st.queue.pop_front() {
                Some(t) => {
                    st.handed_out.push(t.clone());
                    logged_task_id.clone_from(&t.id);
                    t
                }
                None => none_task(),
            };
            Ok(BatonServiceGetTaskResponse {
                task: Some(task),
                next_poll: duration(st.next_poll),
                next_heartbeat: duration(st.next_heartbeat),
                annotations: vec![],
            })
        })
    }

    async fn get_tasks(
        &self,
        request: Request<BatonServiceGetTasksRequest>,
    ) -> Result<Response<BatonServiceGetTasksResponse>, Status> {
        let (meta, _, msg) = request.into_parts();
        self.unary("GetTasks", &meta, &msg.host_id, "", |st, _| {
            check_host_id(&msg.host_id)?;
            if !(1..=100).contains(&msg.page_size) {
                return Err(Status::invalid_argument("page_size must be 1..100"));
            }
            let mut tasks = Vec::new();
            while tasks.len() < msg.page_size as usize {
                let Some(t) = st.queue.pop_front() else { break };
                st.handed_out.push(t.clone());
                tasks.push(t);
            }
            Ok(BatonServiceGetTasksResponse {
                tasks,
                next_poll: duration(st.next_poll),
                next_heartbeat: duration(st.next_heartbeat),
                annotations: vec![],
            })
        })
    }

    async fn heartbeat(
        &self,
        request: Request<BatonServiceHeartbeatRequest>,
    ) -> Result<Response<BatonServiceHeartbeatResponse>, Status> {
        let (meta, _, msg) = request.into_parts();
        let (host_id, task_id) = (msg.host_id.clone(), msg.task_id.clone());
        self.unary("Heartbeat", &meta, &host_id, &task_id, |st, _| {
            if st.heartbeat_failures_left > 0 {
                st.heartbeat_failures_left -= 1;
                return Err(Status::unavailable("scripted heartbeat failure"));
            }
            check_host_id(&msg.host_id)?;
            if msg.task_id.is_empty() && msg.task_ids.is_empty() {
                return Err(Status::invalid_argument("task_id or task_ids is required"));
            }
            if msg.annotations.len() > MAX_ANNOTATIONS {
                return Err(Status::invalid_argument("at most 16 annotations"));
            }
            if !msg.task_id.is_empty() {
                check_known_task(st, &msg.task_id)?;
            }
            for id in &msg.task_ids {
                check_known_task(st, id)?;
            }
            let cancelled = !msg.task_id.is_empty() && st.cancelled.contains(&msg.task_id);
            let cancelled_task_ids: Vec<String> = msg
                .task_ids
                .iter()
                .filter(|id| st.cancelled.contains(*id))
                .cloned()
                .collect();
            let task_type = st.task_type(&msg.task_id).unwrap_or_default().to_string();
            st.heartbeats.push(RecordedHeartbeat {
                task_type,
                host_id: msg.host_id,
                task_id: msg.task_id,
                task_ids: msg.task_ids,
                cancelled,
            });
            Ok(BatonServiceHeartbeatResponse {
                next_heartbeat: duration(st.next_heartbeat),
                cancelled,
                annotations: vec![],
                cancelled_task_ids,
            })
        })
    }

    async fn finish_task(
        &self,
        request: Request<BatonServiceFinishTaskRequest>,
    ) -> Result<Response<BatonServiceFinishTaskResponse>, Status> {
        let (meta, _, msg) = request.into_parts();
        let (host_id, task_id) = (msg.host_id.clone(), msg.task_id.clone());
        self.unary("FinishTask", &meta, &host_id, &task_id, |st, _| {
            check_host_id(&msg.host_id)?;
            check_known_task(st, &msg.task_id)?;
            // What baton-sdk never sends: a Hello task is answered with Hello alone, and a
            // success carries no status.
            if st.task_type(&msg.task_id) == Some("hello") {
                return Err(Status::failed_precondition(
                    "hello tasks are answered with Hello, not finished",
                ));
            }
            if matches!(
                msg.final_state,
                Some(baton::c1::service::baton_service_finish_task_request::FinalState::Success(_))
            ) && msg.status.is_some()
            {
                return Err(Status::invalid_argument(
                    "a successful FinishTask carries no status",
                ));
            }
            st.finished.push(RecordedFinish::from_request(msg));
            Ok(BatonServiceFinishTaskResponse::default())
        })
    }

    async fn upload_asset(
        &self,
        request: Request<Streaming<BatonServiceUploadAssetRequest>>,
    ) -> Result<Response<BatonServiceUploadAssetResponse>, Status> {
        let (meta, _, mut stream) = request.into_parts();
        let auth = authorization(&meta);
        let checked = self.shared.state().check_bearer(auth.as_deref());
        let mut attempt = UploadAttempt {
            host_id: String::new(),
            task_id: String::new(),
            chunk_sizes: Vec::new(),
            bytes_received: 0,
            outcome: UploadOutcome::Completed,
        };
        let mut data = Vec::new();
        let result = match checked {
            Err(e) => Err((
                UploadOutcome::Unauthenticated,
                Status::unauthenticated(e.message()),
            )),
            Ok(()) => {
                self.receive_upload(&mut stream, &mut attempt, &mut data)
                    .await
            }
        };
        let mut st = self.shared.state();
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err((_, s)) => s.code(),
        };
        st.log.push(LoggedRequest {
            method: "UploadAsset".into(),
            host_id: attempt.host_id.clone(),
            task_id: attempt.task_id.clone(),
            authorization_present: auth.is_some(),
            authorization_valid: checked.is_ok(),
            metadata: metadata_pairs(&meta),
            form: Vec::new(),
            grpc_code: Some(code),
            http_status: None,
            at: std::time::Instant::now(),
        });
        let out = match result {
            Ok(sha256) => {
                st.uploads.push(RecordedUpload {
                    host_id: attempt.host_id.clone(),
                    task_id: attempt.task_id.clone(),
                    bytes: data,
                    sha256,
                    chunk_sizes: attempt.chunk_sizes.clone(),
                });
                Ok(Response::new(BatonServiceUploadAssetResponse::default()))
            }
            Err((outcome, status)) => {
                attempt.outcome = outcome;
                st.failed_uploads += 1;
                Err(status)
            }
        };
        st.upload_attempts.push(attempt);
        drop(st);
        self.shared.changed();
        out
    }
}
