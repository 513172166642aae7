//! The requests an operation makes, made or listed. An operation is written once, as the reads
//! and writes it takes through [`Steps`]: a real run sends them, and a dry run (`plan`) lists
//! them, sends nothing, and goes on as if the operation had work to do, so that its plan shows
//! every request up to the write.

use super::target::Subject;
use crate::bindings::{ConnectorError, PlannedRequest};
use crate::catalog::RoleCatalog;
use crate::connector::Connector;
use crate::env::{Env, HttpRequest, LogLevel, Method};
use crate::errors::to_connector_error;
use crate::resources::path_segment;
use crate::segment::api::encode_array;
use crate::segment::model::{
    EmailsPage, GroupData, InvitesPage, ListPage, Permission, User, UserData, UsersPage, Workspace,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// What a read found. A dry run reads nothing, so it has no answer; an operation goes on from
/// `Planned` as it would from an answer that leaves work to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer<T> {
    Known(T),
    Planned,
}

impl<T> Answer<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Answer::Known(t) => Answer::Known(f(t)),
            Answer::Planned => Answer::Planned,
        }
    }

    pub(crate) fn known(self) -> Option<T> {
        match self {
            Answer::Known(t) => Some(t),
            Answer::Planned => None,
        }
    }

    /// Whether the answer is known and `test` holds for it: never in a dry run.
    pub(crate) fn shows(&self, test: impl FnOnce(&T) -> bool) -> bool {
        matches!(self, Answer::Known(t) if test(t))
    }

    /// The answer, or what a plan shows in its place.
    pub(crate) fn or_stand_in(self, stand_in: impl FnOnce() -> T) -> T {
        self.known().unwrap_or_else(stand_in)
    }
}

/// Every write this connector makes. Paths and bodies are built here and nowhere else, so that
/// a dry run shows exactly what a real run sends.
#[derive(Debug, Clone)]
pub(crate) enum Write<'a> {
    AddGroupMember {
        group: &'a str,
        email: &'a str,
    },
    RemoveGroupMember {
        group: &'a str,
        email: &'a str,
    },
    AddPermission {
        subject: Subject<'a>,
        role_id: &'a str,
        kind: &'a str,
        resource_id: &'a str,
    },
    /// Writes back every permission but the revoked one. Which those are depends on the read
    /// before it: a plan says how they are derived, in place of the body (not JSON, so a
    /// server would refuse it, should it ever be sent).
    ReplacePermissions {
        subject: Subject<'a>,
        kept: Answer<Vec<Value>>,
        removed: String,
    },
    Invite {
        email: &'a str,
    },
    DeleteUser {
        id: &'a str,
    },
    DeleteInvite {
        email: &'a str,
    },
}

impl Write<'_> {
    fn request(&self) -> HttpRequest {
        match self {
            Write::AddGroupMember { group, email } => HttpRequest::with_json(
                Method::Post,
                format!("/groups/{}/users", path_segment(group)),
                &json!({ "emails": [email] }),
            ),
            // Segment's removal path is singular: /group/{id}/users.
            Write::RemoveGroupMember { group, email } => HttpRequest {
                method: Method::Delete,
                path: format!(
                    "/group/{}/users?{}",
                    path_segment(group),
                    encode_array("emails", &[email])
                ),
                body: None,
            },
            Write::AddPermission {
                subject,
                role_id,
                kind,
                resource_id,
            } => HttpRequest::with_json(
                Method::Post,
                format!("{}/permissions", subject.path()),
                &json!({ "permissions": [{ "roleId": role_id, "resources": [{ "id": resource_id, "type": kind }] }] }),
            ),
            Write::ReplacePermissions { subject, kept, .. } => {
                let path = format!("{}/permissions", subject.path());
                match kept {
                    Answer::Known(kept) => HttpRequest::with_json(
                        Method::Put,
                        path,
                        &json!({ "permissions": kept }),
                    ),
                    Answer::Planned => HttpRequest {
                        method: Method::Put,
                        path,
                        body: Some(
                            b"{\"permissions\": <every permission read above, exactly as read (labels included), without the revoked one>}"
                                .to_vec(),
                        ),
                    },
                }
            }
            Write::Invite { email } => HttpRequest::with_json(
                Method::Post,
                "/invites",
                &json!({ "invites": [{ "email": email }] }),
            ),
            Write::DeleteUser { id } => HttpRequest {
                method: Method::Delete,
                path: format!("/users?{}", encode_array("userIds", &[id])),
                body: None,
            },
            Write::DeleteInvite { email } => HttpRequest {
                method: Method::Delete,
                path: format!("/invites?{}", encode_array("emails", &[email])),
                body: None,
            },
        }
    }

    /// What the write does, for logs and dry runs.
    fn note(&self) -> String {
        match self {
            Write::AddGroupMember { group, email } => format!("add {email} to user group {group}"),
            Write::RemoveGroupMember { group, email } => {
                format!("remove {email} from user group {group}")
            }
            Write::AddPermission {
                subject,
                role_id,
                kind,
                resource_id,
            } => {
                format!(
                    "give {} role {role_id} on {kind} {resource_id}",
                    subject.describe()
                )
            }
            Write::ReplacePermissions {
                subject, removed, ..
            } => format!(
                "rewrite the permissions of {} without {removed}; every other permission and its labels as they were",
                subject.describe()
            ),
            Write::Invite { email } => format!("invite {email} to the workspace"),
            Write::DeleteUser { id } => format!("remove user {id} from the workspace"),
            Write::DeleteInvite { email } => format!("withdraw the invitation of {email}"),
        }
    }
}

fn planned(request: HttpRequest, note: String) -> PlannedRequest {
    PlannedRequest {
        method: request.method.as_str().into(),
        path: request.path,
        body: request
            .body
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        note,
    }
}

/// A read of every page of a list endpoint, as a plan shows it: its first page.
fn listing<E: Env>(c: &Connector<'_, E>, path: &str, note: &str) -> PlannedRequest {
    let first = HttpRequest::get(c.api.page_url(path, "", None));
    planned(first, format!("{note} (every page)"))
}

/// An operation's way to Segment: sends its requests in a real run, lists them in a dry run.
pub(crate) struct Steps<'c, 'e, E: Env> {
    connector: &'c Connector<'e, E>,
    /// A dry run's requests so far; `None` in a real run.
    plan: Option<Vec<PlannedRequest>>,
}

impl<'c, 'e, E: Env> Steps<'c, 'e, E> {
    pub(crate) fn run(connector: &'c Connector<'e, E>) -> Self {
        Steps {
            connector,
            plan: None,
        }
    }

    pub(crate) fn dry_run(connector: &'c Connector<'e, E>) -> Self {
        Steps {
            connector,
            plan: Some(vec![]),
        }
    }

    /// The requests a dry run listed, in order.
    pub(crate) fn into_plan(self) -> Vec<PlannedRequest> {
        self.plan.unwrap_or_default()
    }

    /// A read: made in a real run (`fetch`); listed as `request` in a dry run.
    fn read<T>(
        &mut self,
        request: impl FnOnce(&Connector<'e, E>) -> PlannedRequest,
        fetch: impl FnOnce(&Connector<'e, E>) -> Result<T, ConnectorError>,
    ) -> Result<Answer<T>, ConnectorError> {
        match &mut self.plan {
            Some(plan) => {
                plan.push(request(self.connector));
                Ok(Answer::Planned)
            }
            None => fetch(self.connector).map(Answer::Known),
        }
    }

    /// `GET path`, decoded; `None` when Segment does not have it (404).
    fn get<T: DeserializeOwned>(
        &mut self,
        path: String,
        note: &str,
    ) -> Result<Answer<Option<T>>, ConnectorError> {
        let listed = planned(HttpRequest::get(path.as_str()), note.into());
        self.read(
            |_| listed,
            |c| match c.api.get::<T>(&path) {
                Ok(data) => Ok(Some(data)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(to_connector_error(&e)),
            },
        )
    }

    /// Every page of a list endpoint (a plan shows the first).
    fn every_page<P: ListPage + DeserializeOwned>(
        &mut self,
        path: &str,
        note: &str,
    ) -> Result<Answer<Vec<P::Item>>, ConnectorError> {
        self.read(
            |c| listing(c, path, note),
            |c| c.api.all::<P>(path, "").map_err(|e| to_connector_error(&e)),
        )
    }

    /// A user (`GET /users/{id}`), `None` once they are gone.
    pub(crate) fn user(
        &mut self,
        id: &str,
        note: &str,
    ) -> Result<Answer<Option<User>>, ConnectorError> {
        let path = format!("/users/{}", path_segment(id));
        Ok(self.get::<UserData>(path, note)?.map(|d| d.map(|d| d.user)))
    }

    /// A user's or group's permissions, `None` once it is gone.
    pub(crate) fn permissions(
        &mut self,
        subject: Subject<'_>,
        note: &str,
    ) -> Result<Answer<Option<Vec<Permission>>>, ConnectorError> {
        let answer = match subject {
            Subject::User(id) => self.user(id, note)?.map(|u| u.map(|u| u.permissions)),
            Subject::Group(_) => self
                .get::<GroupData>(subject.path(), note)?
                .map(|d| d.map(|d| d.user_group.permissions)),
        };
        Ok(answer.map(|p| p.map(Option::unwrap_or_default)))
    }

    /// The addresses of a group's user members, or of its pending invitations.
    pub(crate) fn group_members(
        &mut self,
        group: &str,
        invitations: bool,
        note: &str,
    ) -> Result<Answer<Vec<String>>, ConnectorError> {
        let id = path_segment(group);
        if invitations {
            self.every_page::<EmailsPage>(&format!("/groups/{id}/invites"), note)
        } else {
            let users = self.every_page::<UsersPage>(&format!("/groups/{id}/users"), note)?;
            Ok(users.map(|users| users.into_iter().map(|u| u.email).collect()))
        }
    }

    /// The workspace's pending invitations.
    pub(crate) fn invites(&mut self, note: &str) -> Result<Answer<Vec<String>>, ConnectorError> {
        self.every_page::<InvitesPage>("/invites", note)
    }

    /// The workspace's users.
    pub(crate) fn users(&mut self, note: &str) -> Result<Answer<Vec<User>>, ConnectorError> {
        self.every_page::<UsersPage>("/users", note)
    }

    /// The workspace's roles (fetched once per session).
    pub(crate) fn roles(&mut self, note: &str) -> Result<Answer<RoleCatalog>, ConnectorError> {
        self.read(|c| listing(c, "/roles", note), |c| c.role_catalog())
    }

    /// The workspace (fetched once per session).
    pub(crate) fn workspace(&mut self, note: &str) -> Result<Answer<Workspace>, ConnectorError> {
        self.read(
            |_| planned(HttpRequest::get("/"), note.into()),
            |c| c.workspace(),
        )
    }

    /// Sends a write and logs it (a dry run lists it).
    pub(crate) fn write(&mut self, write: &Write<'_>) -> Result<Answer<Value>, ConnectorError> {
        self.send(write, None)
    }

    /// A write that depends on reads whose notes do not say so: a plan's note adds `condition`.
    pub(crate) fn write_if(
        &mut self,
        write: &Write<'_>,
        condition: &str,
    ) -> Result<Answer<Value>, ConnectorError> {
        self.send(write, Some(condition))
    }

    fn send(
        &mut self,
        write: &Write<'_>,
        condition: Option<&str>,
    ) -> Result<Answer<Value>, ConnectorError> {
        let request = write.request();
        if let Some(plan) = &mut self.plan {
            let mut note = write.note();
            if let Some(condition) = condition {
                note.push_str(&format!(" ({condition})"));
            }
            plan.push(planned(request, note));
            return Ok(Answer::Planned);
        }
        let what = format!("{} ({})", write.note(), request.describe());
        match self.connector.api.call::<Value>(&request) {
            Ok(v) => {
                self.connector.log(LogLevel::Info, &format!("{what}: done"));
                Ok(Answer::Known(v))
            }
            Err(e) => {
                self.connector
                    .log(LogLevel::Warn, &format!("{what}: failed: {e}"));
                Err(to_connector_error(&e))
            }
        }
    }

    /// Logs what a real run did beyond its requests (a dry run has nothing to say).
    pub(crate) fn log(&self, level: LogLevel, message: &str) {
        if self.plan.is_none() {
            self.connector.log(level, message);
        }
    }
}
