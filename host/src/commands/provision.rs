//! Provisioning runs: one operation (grant, revoke, create account, delete resource) through a
//! fresh component instance, or its plan (a dry run, with a network that allows nothing). Used by
//! the one-shot command-line flags and by service mode's tasks.

use super::connection::Connection;
use crate::engine::contract::{
    AccountInfo, ConnectorError, CreateAccountOutcome, DeleteOperation, DeleteOutcome, Email,
    Entitlement, GrantOperation, GrantOutcome, GrantRecord, Operation, PlannedRequest,
    ProfileField, ProfileValue, Resource, ResourceId, RevokeOperation, RevokeOutcome,
};
use crate::engine::{CallError, Runtime};
use anyhow::{Context, anyhow};
use baton::C1zReader;
use std::path::Path;

/// What an operation did. (Made once per operation: the size of the account arm does not matter.)
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    Granted(Vec<GrantRecord>),
    AlreadyExists,
    Revoked,
    AlreadyRevoked,
    Account(CreateAccountOutcome),
    Deleted,
    AlreadyDeleted,
}

impl Outcome {
    pub fn describe(&self) -> String {
        match self {
            Outcome::Granted(grants) => {
                let ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
                if ids.is_empty() {
                    "granted".into()
                } else {
                    format!("granted ({})", ids.join(", "))
                }
            }
            Outcome::AlreadyExists => "already granted; nothing was changed".into(),
            Outcome::Revoked => "revoked".into(),
            Outcome::AlreadyRevoked => "already revoked; nothing was changed".into(),
            Outcome::Account(CreateAccountOutcome::Success(r)) => {
                format!("account created ({})", show(&r.id))
            }
            Outcome::Account(CreateAccountOutcome::ActionRequired(a)) => {
                format!("action required ({}): {}", show(&a.resource.id), a.message)
            }
            Outcome::Account(CreateAccountOutcome::AlreadyExists(r)) => match r {
                Some(r) => format!(
                    "an account already exists ({}); nothing was changed",
                    show(&r.id)
                ),
                None => "an account already exists; nothing was changed".into(),
            },
            Outcome::Deleted => "deleted".into(),
            Outcome::AlreadyDeleted => "already gone; nothing was changed".into(),
        }
    }
}

/// Why an operation failed: what the connector said (kept for service mode's status codes), or
/// what stopped the component.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{operation}: {message}")]
    Connector {
        operation: String,
        error: ConnectorError,
        message: String,
    },
    #[error("{operation}: {error}")]
    Component { operation: String, error: CallError },
    #[error("{0}")]
    Host(String),
}

fn show(id: &ResourceId) -> String {
    format!("{}:{}", id.resource_type, id.resource)
}

/// "grant source:srcWeb:source_admin to user:usrBob", for logs and messages.
pub fn describe_operation(op: &Operation) -> String {
    match op {
        Operation::Grant(g) => format!("grant {} to {}", g.entitlement.id, show(&g.principal.id)),
        Operation::Revoke(r) => format!("revoke {}", r.grant.id),
        Operation::CreateAccount(a) => {
            let who = a
                .emails
                .first()
                .map(|e| e.address.clone())
                .unwrap_or_else(|| a.login.clone());
            format!("create account {who}")
        }
        Operation::DeleteResource(d) => format!("delete {}", show(&d.id)),
    }
}

/// Runs `op` through a fresh instance of `runtime`, on `connection`'s network.
pub async fn execute(
    runtime: &Runtime,
    connection: &Connection,
    op: &Operation,
) -> Result<Outcome, ProvisionError> {
    let operation = describe_operation(op);
    let policy = connection.policy();
    let retry = policy.retry.clone();
    let run = connection.run_context(policy);
    // The one retry policy: rate-limited operations are tried again as the connector says,
    // unavailable ones a few times. Retrying is safe: every operation checks before it writes,
    // so a repeat finds the work done.
    let mut attempt = 0;
    loop {
        let mut instance = runtime
            .instantiate(run.clone())
            .await
            .map_err(|e| ProvisionError::Host(format!("{e:#}")))?;
        let result = match op {
            Operation::Grant(g) => instance.grant(&g.principal, &g.entitlement).await.map(|r| {
                r.map(|o| match o {
                    GrantOutcome::Granted(grants) => Outcome::Granted(grants),
                    GrantOutcome::AlreadyExists => Outcome::AlreadyExists,
                })
            }),
            Operation::Revoke(r) => instance.revoke(&r.grant, &r.principal).await.map(|r| {
                r.map(|o| match o {
                    RevokeOutcome::Revoked => Outcome::Revoked,
                    RevokeOutcome::AlreadyRevoked => Outcome::AlreadyRevoked,
                })
            }),
            Operation::CreateAccount(a) => instance
                .create_account(a)
                .await
                .map(|r| r.map(Outcome::Account)),
            Operation::DeleteResource(d) => instance
                .delete_resource(&d.id, d.parent.as_ref())
                .await
                .map(|r| {
                    r.map(|o| match o {
                        DeleteOutcome::Deleted => Outcome::Deleted,
                        DeleteOutcome::AlreadyDeleted => Outcome::AlreadyDeleted,
                    })
                }),
        };
        match result {
            Ok(Ok(outcome)) => {
                tracing::info!(target: "baton_segment::commands::provision", "{operation}: {}", outcome.describe());
                return Ok(outcome);
            }
            Ok(Err(error)) => {
                let wait = error
                    .retryable()
                    .and_then(|failure| retry.call_wait(failure, attempt));
                attempt += 1;
                match wait {
                    Some(wait) => {
                        tracing::info!(
                            "{operation}: {}; trying again in {:.1} s",
                            error.message(),
                            wait.as_secs_f64()
                        );
                        tokio::time::sleep(wait).await;
                    }
                    _ => {
                        let message = error.message();
                        tracing::warn!(target: "baton_segment::commands::provision", "{operation}: failed: {message}");
                        return Err(ProvisionError::Connector {
                            operation,
                            error,
                            message,
                        });
                    }
                }
            }
            Err(error) => return Err(ProvisionError::Component { operation, error }),
        }
    }
}

/// What `op` would send, from the component's own plan. The network allows nothing: a dry run
/// cannot reach Segment even by mistake.
pub async fn plan(
    runtime: &Runtime,
    connection: &Connection,
    op: &Operation,
) -> anyhow::Result<Vec<PlannedRequest>> {
    let mut policy = connection.policy();
    policy.allowed.clear();
    policy.credential = None;
    let run = connection.run_context(policy);
    let mut instance = runtime.instantiate(run).await?;
    match instance.plan(op).await {
        Ok(Ok(steps)) => Ok(steps),
        Ok(Err(e)) => Err(anyhow!("{}: {}", describe_operation(op), e.message())),
        Err(e) => Err(anyhow!("{}: {e}", describe_operation(op))),
    }
}

pub fn render_plan(op: &Operation, steps: &[PlannedRequest]) -> String {
    let mut out = format!(
        "Dry run: {} would make these requests (none was sent):\n",
        describe_operation(op)
    );
    for (i, s) in steps.iter().enumerate() {
        out.push_str(&format!("  {}. {} {}\n", i + 1, s.method, s.path));
        if let Some(body) = &s.body {
            out.push_str(&format!("     body: {body}\n"));
        }
        out.push_str(&format!("     {}\n", s.note));
    }
    if steps.is_empty() {
        out.push_str("  (none: nothing would change)\n");
    }
    out.trim_end().to_string()
}

/// Operations named by ids, looked up in a synced `.c1z` (sync first), as Baton connectors do.
pub struct Lookup {
    reader: C1zReader,
    sync_id: String,
    path: String,
}

impl Lookup {
    pub fn open(path: &Path) -> anyhow::Result<Lookup> {
        let reader = C1zReader::open(path).with_context(|| {
            format!(
                "provisioning looks ids up in {}: sync first",
                path.display()
            )
        })?;
        let sync_id = reader.latest_sync()?.sync_id;
        Ok(Lookup {
            reader,
            sync_id,
            path: path.display().to_string(),
        })
    }

    fn resource(&self, resource_type: &str, id: &str) -> anyhow::Result<Resource> {
        let found = self.reader.resources(&self.sync_id)?.into_iter().find(|r| {
            r.id.as_ref()
                .is_some_and(|i| i.resource_type == resource_type && i.resource == id)
        });
        let found = found.ok_or_else(|| {
            anyhow!(
                "there is no {resource_type} {id:?} in {} (check the id and type, or sync again)",
                self.path
            )
        })?;
        Resource::try_from(&found).map_err(|e| anyhow!("{}: {e}", self.path))
    }

    pub fn grant(
        &self,
        entitlement_id: &str,
        principal_id: &str,
        principal_type: &str,
    ) -> anyhow::Result<Operation> {
        let entitlement = self
            .reader
            .entitlements(&self.sync_id)?
            .into_iter()
            .find(|e| e.id == entitlement_id)
            .ok_or_else(|| anyhow!("there is no entitlement {entitlement_id:?} in {} (check the id, or sync again)", self.path))?;
        let principal = self.resource(principal_type, principal_id)?;
        Ok(Operation::Grant(GrantOperation {
            principal,
            entitlement: Entitlement::try_from(&entitlement)
                .map_err(|e| anyhow!("{}: {e}", self.path))?,
        }))
    }

    pub fn revoke(&self, grant_id: &str) -> anyhow::Result<Operation> {
        let stored = self
            .reader
            .grants(&self.sync_id)?
            .into_iter()
            .find(|g| g.grant.id == grant_id)
            .ok_or_else(|| {
                anyhow!(
                    "there is no grant {grant_id:?} in {} (check the id, or sync again)",
                    self.path
                )
            })?;
        if baton::annotations::contains::<baton::pb::GrantImmutable>(&stored.grant.annotations) {
            let via: Vec<String> = stored
                .grant
                .sources
                .map(|s| s.sources.into_keys().collect())
                .unwrap_or_default();
            return Err(anyhow!(
                "grant {grant_id} is held through {}; revoke that instead (this one cannot be revoked on its own)",
                via.join(", ")
            ));
        }
        let grant =
            GrantRecord::try_from(&stored.grant).map_err(|e| anyhow!("{}: {e}", self.path))?;
        let principal = self.resource(&grant.principal.resource_type, &grant.principal.resource)?;
        Ok(Operation::Revoke(RevokeOperation { grant, principal }))
    }

    pub fn delete(&self, id: &str, resource_type: &str) -> anyhow::Result<Operation> {
        let resource = self.resource(resource_type, id)?;
        Ok(Operation::DeleteResource(DeleteOperation {
            id: resource.id,
            parent: resource.parent,
        }))
    }
}

/// Account creation needs no lookup: the person does not exist yet.
pub fn create_account(
    email: Option<&str>,
    login: Option<&str>,
    profile: Option<&str>,
) -> anyhow::Result<Operation> {
    let mut fields = vec![];
    if let Some(json) = profile {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| anyhow!("--create-account-profile is not JSON: {e}"))?;
        let object = value
            .as_object()
            .ok_or_else(|| anyhow!("--create-account-profile must be a JSON object"))?;
        for (key, v) in object {
            let value = match v {
                serde_json::Value::Null => ProfileValue::Empty,
                serde_json::Value::Bool(b) => ProfileValue::Boolean(*b),
                serde_json::Value::Number(n) => {
                    ProfileValue::Number(n.as_f64().unwrap_or_default())
                }
                serde_json::Value::String(s) => ProfileValue::Text(s.clone()),
                other => ProfileValue::Text(other.to_string()),
            };
            fields.push(ProfileField {
                key: key.clone(),
                value,
            });
        }
    }
    Ok(Operation::CreateAccount(AccountInfo {
        emails: email
            .map(|e| {
                vec![Email {
                    address: e.to_string(),
                    is_primary: true,
                }]
            })
            .unwrap_or_default(),
        login: login.unwrap_or_default().to_string(),
        profile: fields,
        resource_type: String::new(),
    }))
}
