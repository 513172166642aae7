//! What the fake ConductorOne records: hellos, heartbeats, finished tasks, uploads and a
//! log of every request (RPCs and token requests).

use baton::c1::service::BatonServiceFinishTaskRequest;
use baton::c1::service::baton_service_finish_task_request::FinalState;
use prost_types::Any;

/// One `Heartbeat` call and the answer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedHeartbeat {
    /// The type of the task named (`sync_full`, `grant`…; empty for an unknown id).
    pub task_type: String,
    pub host_id: String,
    pub task_id: String,
    /// The batch form's ids.
    pub task_ids: Vec<String>,
    /// What the fake answered in `cancelled`.
    pub cancelled: bool,
}

/// How a task ended, as reported in `FinishTask`'s `final_state`.
#[derive(Debug, Clone, PartialEq)]
pub enum FinishOutcome {
    Success {
        annotations: Vec<Any>,
        response: Option<Any>,
    },
    Error {
        non_retryable: bool,
        annotations: Vec<Any>,
        response: Option<Any>,
    },
    /// No `final_state` was set.
    Unset,
}

/// One accepted `FinishTask` call.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedFinish {
    pub host_id: String,
    pub task_id: String,
    /// `status.code` (a gRPC code; 0 when `status` is absent).
    pub status_code: i32,
    pub status_message: String,
    pub status_details: Vec<Any>,
    /// Whether `status` was present at all.
    pub has_status: bool,
    pub outcome: FinishOutcome,
    /// The request as received.
    pub request: BatonServiceFinishTaskRequest,
}

impl RecordedFinish {
    pub(crate) fn from_request(req: BatonServiceFinishTaskRequest) -> Self {
        let status = req.status.clone();
        let outcome = match req.final_state.clone() {
            Some(FinalState::Success(s)) => FinishOutcome::Success {
                annotations: s.annotations,
                response: s.response,
            },
            Some(FinalState::Error(e)) => FinishOutcome::Error {
                non_retryable: e.non_retryable,
                annotations: e.annotations,
                response: e.response,
            },
            None => FinishOutcome::Unset,
        };
        RecordedFinish {
            host_id: req.host_id.clone(),
            task_id: req.task_id.clone(),
            status_code: status.as_ref().map_or(0, |s| s.code),
            status_message: status
                .as_ref()
                .map(|s| s.message.clone())
                .unwrap_or_default(),
            status_details: status.map(|s| s.details).unwrap_or_default(),
            has_status: req.status.is_some(),
            outcome,
            request: req,
        }
    }

    /// `final_state` is `success`.
    pub fn is_success(&self) -> bool {
        matches!(self.outcome, FinishOutcome::Success { .. })
    }

    /// `final_state` is `error` with `non_retryable` set.
    pub fn non_retryable(&self) -> bool {
        matches!(
            self.outcome,
            FinishOutcome::Error {
                non_retryable: true,
                ..
            }
        )
    }

    /// The `response` Any of either outcome.
    pub fn response(&self) -> Option<&Any> {
        match &self.outcome {
            FinishOutcome::Success { response, .. } | FinishOutcome::Error { response, .. } => {
                response.as_ref()
            }
            FinishOutcome::Unset => None,
        }
    }

    /// Decodes the `response` as `M` (checking the type URL).
    pub fn response_as<M: prost::Message + prost::Name + Default>(&self) -> Option<M> {
        self.response().and_then(|a| a.to_msg::<M>().ok())
    }
}

/// A complete upload: metadata, data chunks and an `eof` whose SHA-256 matched the data.
/// Only such uploads are recorded (every attempt, failed ones included, is in
/// [`UploadAttempt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedUpload {
    pub host_id: String,
    pub task_id: String,
    pub bytes: Vec<u8>,
    /// The `eof` checksum the client sent (the fake checked it against `bytes`).
    pub sha256: Vec<u8>,
    /// Size of each `data` message, in order.
    pub chunk_sizes: Vec<usize>,
}

/// How one `UploadAsset` stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Recorded in [`RecordedUpload`].
    Completed,
    /// Failed on purpose (`upload_failures`) with `Unavailable` after the first data chunk.
    ScriptedFailure,
    /// The `eof` checksum did not match the data (answered `InvalidArgument`).
    ChecksumMismatch,
    /// The stream broke the protocol (message order, sizes, unknown task…): the message.
    Rejected(String),
    /// The client went away (or the stream failed) before `eof`.
    Aborted(String),
    /// No valid bearer token.
    Unauthenticated,
}

/// One `UploadAsset` stream, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadAttempt {
    pub host_id: String,
    pub task_id: String,
    pub chunk_sizes: Vec<usize>,
    pub bytes_received: usize,
    pub outcome: UploadOutcome,
}

/// One request to the fake: an RPC (`method` = `Hello`, `GetTask`, `GetTasks`,
/// `Heartbeat`, `FinishTask`, `UploadAsset`, or the raw path of an unknown one) or a token
/// request (`method` = `token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub host_id: String,
    pub task_id: String,
    /// An `authorization` header/metadata entry was sent.
    pub authorization_present: bool,
    /// It named a token the fake issued and that had not expired.
    pub authorization_valid: bool,
    /// Every header / metadata entry received (binary values base64-encoded), in order.
    pub metadata: Vec<(String, String)>,
    /// The form fields of a token request (empty for RPCs).
    pub form: Vec<(String, String)>,
    /// The gRPC code answered (RPCs).
    pub grpc_code: Option<tonic::Code>,
    /// The HTTP status answered (token requests).
    pub http_status: Option<u16>,
    /// When the fake answered.
    pub at: std::time::Instant,
}

impl LoggedRequest {
    /// True if `needle` occurs in the request's host id, task id, any header or metadata
    /// entry, or any form field.
    pub fn contains(&self, needle: &str) -> bool {
        self.host_id.contains(needle)
            || self.task_id.contains(needle)
            || self
                .metadata
                .iter()
                .chain(self.form.iter())
                .any(|(k, v)| k.contains(needle) || v.contains(needle))
    }
}
