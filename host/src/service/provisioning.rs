//! Provisioning tasks as ConductorOne sends them (Baton protobuf messages) turned into the
//! contract's operations, and the outcomes turned back into the connector RPC responses
//! ConductorOne expects in `FinishTask`:
//!
//! | task | response | "nothing to do" annotation |
//! |---|---|---|
//! | grant | `GrantManagerServiceGrantResponse` (the grants) | `GrantAlreadyExists` |
//! | revoke | `GrantManagerServiceRevokeResponse` | `GrantAlreadyRevoked` |
//! | create_account | `CreateAccountResponse` (success / action_required / already_exists) | — |
//! | delete_resource | `DeleteResourceResponse` | `ResourceDoesNotExist` |

use crate::commands::provision::{Outcome, ProvisionError};
use crate::engine::contract::{
    ConnectorError, CreateAccountOutcome, DeleteOperation, Entitlement, GrantOperation,
    GrantRecord, Operation, Resource, ResourceId, RevokeOperation,
};
use crate::engine::from_c1z;
use baton::annotations::pack;
use baton::c1::rpc;
use baton::c1::service::task;
use baton::pb;
use prost_types::Any;
use std::time::{Duration, SystemTime};
use tonic::Code;

/// A provisioning task and the operation it asks for.
#[derive(Debug, Clone)]
pub enum Request {
    Grant(task::GrantTask),
    Revoke(task::RevokeTask),
    CreateAccount(task::CreateAccountTask),
    Delete(task::DeleteResourceTask),
}

fn resource_id(id: &pb::ResourceId) -> ResourceId {
    ResourceId {
        resource_type: id.resource_type.clone(),
        resource: id.resource.clone(),
    }
}

fn valid_id(id: Option<&pb::ResourceId>) -> Option<&pb::ResourceId> {
    id.filter(|i| !i.resource_type.is_empty() && !i.resource.is_empty())
}

impl Request {
    /// The operation, or why the task is malformed (a required field is missing).
    pub fn operation(&self) -> Result<Operation, String> {
        match self {
            Request::Grant(t) => {
                let entitlement = t
                    .entitlement
                    .as_ref()
                    .filter(|e| !e.id.is_empty())
                    .ok_or("the grant task has no entitlement")?;
                let principal = t
                    .principal
                    .as_ref()
                    .filter(|p| valid_id(p.id.as_ref()).is_some())
                    .ok_or("the grant task has no principal (with a resource id)")?;
                Ok(Operation::Grant(GrantOperation {
                    principal: Resource::try_from(principal).map_err(|e| e.to_string())?,
                    entitlement: Entitlement::try_from(entitlement).map_err(|e| e.to_string())?,
                }))
            }
            Request::Revoke(t) => {
                let grant = t.grant.as_ref().ok_or("the revoke task has no grant")?;
                let principal = grant
                    .principal
                    .as_ref()
                    .filter(|p| valid_id(p.id.as_ref()).is_some())
                    .ok_or("the revoke task's grant has no principal (with a resource id)")?;
                if grant.entitlement.as_ref().is_none_or(|e| e.id.is_empty()) {
                    return Err("the revoke task's grant has no entitlement".into());
                }
                Ok(Operation::Revoke(RevokeOperation {
                    grant: GrantRecord::try_from(grant).map_err(|e| e.to_string())?,
                    principal: Resource::try_from(principal).map_err(|e| e.to_string())?,
                }))
            }
            Request::CreateAccount(t) => {
                let info = t
                    .account_info
                    .as_ref()
                    .ok_or("the create-account task has no account_info")?;
                Ok(Operation::CreateAccount(from_c1z::account_info(
                    info,
                    &t.resource_type_id,
                )))
            }
            Request::Delete(t) => {
                let id = valid_id(t.resource_id.as_ref())
                    .ok_or("the delete-resource task has no resource_id")?;
                Ok(Operation::DeleteResource(DeleteOperation {
                    id: resource_id(id),
                    parent: valid_id(t.parent_resource_id.as_ref()).map(resource_id),
                }))
            }
        }
    }

    /// The connector RPC response for `outcome`, packed for `FinishTask`.
    pub fn response(&self, outcome: &Outcome) -> Result<Response, String> {
        let mismatch = || {
            Err(format!(
                "unexpected outcome for this task: {}",
                outcome.describe()
            ))
        };
        // Each kind of response, with what it carries; an operation already done carries a
        // marker annotation.
        let granted = |grants, annotations| {
            let m = pb::GrantManagerServiceGrantResponse {
                annotations,
                grants,
            };
            Response::of(&m, &m.annotations)
        };
        let revoked = |annotations| {
            let m = pb::GrantManagerServiceRevokeResponse { annotations };
            Response::of(&m, &m.annotations)
        };
        let deleted = |annotations| {
            let m = pb::DeleteResourceResponse { annotations };
            Response::of(&m, &m.annotations)
        };
        Ok(match (self, outcome) {
            (Request::Grant(t), Outcome::Granted(grants)) => {
                granted(grants.iter().map(|g| grant(t, g)).collect(), vec![])
            }
            (Request::Grant(_), Outcome::AlreadyExists) => {
                granted(vec![], vec![pack(&pb::GrantAlreadyExists {})])
            }
            (Request::Revoke(_), Outcome::Revoked) => revoked(vec![]),
            (Request::Revoke(_), Outcome::AlreadyRevoked) => {
                revoked(vec![pack(&pb::GrantAlreadyRevoked {})])
            }
            (Request::CreateAccount(_), Outcome::Account(a)) => {
                let m = account_response(a);
                Response::of(&m, &m.annotations)
            }
            (Request::Delete(_), Outcome::Deleted) => deleted(vec![]),
            (Request::Delete(_), Outcome::AlreadyDeleted) => {
                deleted(vec![pack(&pb::ResourceDoesNotExist {})])
            }
            _ => return mismatch(),
        })
    }
}

/// A provisioning task's answer: the connector's response, and its annotations, which
/// baton-sdk also puts in `FinishTask`'s `success.annotations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub any: Any,
    pub annotations: Vec<Any>,
}

impl Response {
    fn of<M: prost::Message + prost::Name>(message: &M, annotations: &[Any]) -> Response {
        Response {
            any: pack(message),
            annotations: annotations.to_vec(),
        }
    }
}

/// A granted record as a Baton grant: the task's own entitlement and principal messages where
/// the record names them, else just their ids.
fn grant(t: &task::GrantTask, g: &GrantRecord) -> pb::Grant {
    let same = |a: &ResourceId, b: Option<&pb::ResourceId>| {
        b.is_some_and(|b| b.resource_type == a.resource_type && b.resource == a.resource)
    };
    let entitlement = match &t.entitlement {
        Some(e) if e.id == g.entitlement_id => e.clone(),
        _ => pb::Entitlement {
            id: g.entitlement_id.clone(),
            resource: Some(pb::Resource {
                id: Some(pb_id(&g.entitlement_resource)),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    let principal = match &t.principal {
        Some(p) if same(&g.principal, p.id.as_ref()) => p.clone(),
        _ => pb::Resource {
            id: Some(pb_id(&g.principal)),
            ..Default::default()
        },
    };
    let annotations = g
        .expandable
        .as_ref()
        .map(|e| {
            vec![pack(&pb::GrantExpandable {
                entitlement_ids: e.entitlement_ids.clone(),
                shallow: e.shallow,
                resource_type_ids: e.resource_type_ids.clone(),
            })]
        })
        .unwrap_or_default();
    pb::Grant {
        entitlement: Some(entitlement),
        principal: Some(principal),
        id: g.id.clone(),
        annotations,
        sources: None,
    }
}

fn pb_id(id: &ResourceId) -> pb::ResourceId {
    pb::ResourceId {
        resource_type: id.resource_type.clone(),
        resource: id.resource.clone(),
        baton_resource: false,
    }
}

fn account_response(outcome: &CreateAccountOutcome) -> pb::CreateAccountResponse {
    use pb::create_account_response::{
        ActionRequiredResult, AlreadyExistsResult, Result as R, SuccessResult,
    };
    let result = match outcome {
        CreateAccountOutcome::Success(r) => R::Success(SuccessResult {
            resource: Some(r.into()),
            is_create_account_result: true,
            invitation_expires_at: None,
        }),
        CreateAccountOutcome::ActionRequired(a) => R::ActionRequired(ActionRequiredResult {
            resource: Some((&a.resource).into()),
            message: a.message.clone(),
            is_create_account_result: true,
        }),
        CreateAccountOutcome::AlreadyExists(r) => R::AlreadyExists(AlreadyExistsResult {
            resource: r.as_ref().map(Into::into),
            is_create_account_result: true,
        }),
    };
    pb::CreateAccountResponse {
        result: Some(result),
        ..Default::default()
    }
}

/// The gRPC code Baton uses for a connector error (rate limits are `Unavailable`, as the Go
/// SDK's HTTP mapping makes them).
pub fn code(error: &ConnectorError) -> Code {
    match error {
        ConnectorError::Unauthenticated(_) => Code::Unauthenticated,
        ConnectorError::PermissionDenied(_) => Code::PermissionDenied,
        ConnectorError::NotFound(_) => Code::NotFound,
        ConnectorError::InvalidArgument(_) => Code::InvalidArgument,
        ConnectorError::AlreadyExists(_) => Code::AlreadyExists,
        ConnectorError::FailedPrecondition(_) => Code::FailedPrecondition,
        ConnectorError::RateLimited(_) | ConnectorError::Unavailable(_) => Code::Unavailable,
        ConnectorError::Unimplemented(_) => Code::Unimplemented,
        ConnectorError::Internal(_) => Code::Internal,
    }
}

/// The `FinishTask` status of a failed operation, and whether it is `non_retryable`: what the
/// connector answered, or what stopped the component, is final (as in the Go SDK); a failure of
/// the host itself (e.g. no free instance) may pass.
pub fn failure(error: &ProvisionError) -> (rpc::Status, bool) {
    match error {
        ProvisionError::Connector { error: e, .. } => {
            let mut details = vec![];
            if let ConnectorError::RateLimited(info) = e {
                let reset = SystemTime::now() + Duration::from_millis(info.retry_after_ms);
                details.push(pack(&pb::RateLimitDescription {
                    status: pb::rate_limit_description::Status::Overlimit as i32,
                    limit: 0,
                    remaining: 0,
                    reset_at: Some(prost_types::Timestamp::from(reset)),
                }));
            }
            (
                rpc::Status {
                    code: code(e) as i32,
                    message: error.to_string(),
                    details,
                },
                true,
            )
        }
        ProvisionError::Component { .. } => (
            rpc::Status {
                code: Code::Internal as i32,
                message: error.to_string(),
                details: vec![],
            },
            true,
        ),
        ProvisionError::Host(_) => (
            rpc::Status {
                code: Code::Unavailable as i32,
                message: error.to_string(),
                details: vec![],
            },
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::contract::RateLimitedInfo;

    #[test]
    fn malformed_tasks_are_named() {
        let err = Request::Grant(task::GrantTask::default())
            .operation()
            .unwrap_err();
        assert!(err.contains("no entitlement"), "{err}");
        let err = Request::Revoke(task::RevokeTask::default())
            .operation()
            .unwrap_err();
        assert!(err.contains("no grant"), "{err}");
        let err = Request::Delete(task::DeleteResourceTask::default())
            .operation()
            .unwrap_err();
        assert!(err.contains("resource_id"), "{err}");
    }

    #[test]
    fn delete_and_already_annotations() {
        let req = Request::Delete(task::DeleteResourceTask {
            resource_id: Some(pb_id(&ResourceId {
                resource_type: "user".into(),
                resource: "usrFrank".into(),
            })),
            parent_resource_id: None,
        });
        assert!(matches!(
            req.operation().unwrap(),
            Operation::DeleteResource(DeleteOperation { ref id, parent: None }) if id.resource == "usrFrank"
        ));
        let answer = req.response(&Outcome::AlreadyDeleted).unwrap();
        let resp: pb::DeleteResourceResponse = answer.any.to_msg().unwrap();
        assert!(baton::annotations::contains::<pb::ResourceDoesNotExist>(
            &resp.annotations
        ));
        // FinishTask's success annotations are the response's own.
        assert_eq!(answer.annotations, resp.annotations);
        assert!(req.response(&Outcome::Revoked).is_err());
    }

    #[test]
    fn rate_limits_are_unavailable_with_a_description() {
        let e = ProvisionError::Connector {
            operation: "grant x to user:y".into(),
            error: ConnectorError::RateLimited(RateLimitedInfo {
                message: "slow down".into(),
                retry_after_ms: 5000,
            }),
            message: "slow down".into(),
        };
        let (status, non_retryable) = failure(&e);
        assert_eq!(status.code, Code::Unavailable as i32);
        assert!(non_retryable);
        assert!(baton::annotations::contains::<pb::RateLimitDescription>(
            &status.details
        ));
        assert_eq!(code(&ConnectorError::NotFound("x".into())), Code::NotFound);
    }
}
