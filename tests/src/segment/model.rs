//! Data types of the fake workspace (the mutable state the server serves) and the small
//! state operations the handlers share (lookups by id/email, membership bookkeeping).
//!
//! Field names serialise in the API's camelCase spelling so a `Workspace` can be dumped
//! to or loaded from JSON that looks like the Public API's objects.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The resource types a permission can name (complete list; unchanged since 2022).
pub const RESOURCE_TYPES: [&str; 5] = ["WORKSPACE", "SOURCE", "WAREHOUSE", "FUNCTION", "SPACE"];

/// Function types accepted by `GET /functions?resourceType=` in the current API (73.2.0).
pub const FUNCTION_TYPES: [&str; 5] = [
    "SOURCE",
    "DESTINATION",
    "INSERT_DESTINATION",
    "INSERT_SOURCE",
    "INSERT_TRANSFORMATION",
];

/// A whole Segment workspace: everything one token can see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub slug: String,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub invites: Vec<Invite>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub warehouses: Vec<Warehouse>,
    #[serde(default)]
    pub functions: Vec<Function>,
    #[serde(default)]
    pub spaces: Vec<Space>,
}

/// An accepted workspace member (`UserV1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    /// May be the empty string, as in real workspaces.
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// A permission (policy) = one role on one or more resources (`PermissionV1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    pub role_id: String,
    pub role_name: String,
    #[serde(default)]
    pub resources: Vec<PermissionResource>,
    /// Permission-level labels (always rendered, `[]` when none).
    #[serde(default)]
    pub labels: Vec<Label>,
}

/// A resource inside a permission (`PermissionResourceV1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionResource {
    pub id: String,
    /// One of [`RESOURCE_TYPES`]; serialised as `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Labels refine a WORKSPACE-level grant ("all sources labelled env=prod").
    #[serde(default)]
    pub labels: Vec<Label>,
}

/// `AllowedLabelBeta` / `LabelV1`: key, value, optional description.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A user group (`UserGroupV1`). Membership is by email: accepted users and pending invites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub name: String,
    /// Emails of accepted users that are members.
    #[serde(default)]
    pub member_emails: Vec<String>,
    /// Emails of pending invites that are members.
    #[serde(default)]
    pub invite_emails: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// A pending invitation (`InviteV1`); only the email is visible through `GET /invites`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    pub email: String,
    /// Permissions the invitee gets on acceptance (invite shape: resources without labels,
    /// labels at permission level).
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// `RoleV1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub description: String,
}

/// Catalog metadata of a source or warehouse (the integration it is an instance of).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogMetadata {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
}

/// `SourceV1` (the fields the fake keeps; the rest are rendered with fixed defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub id: String,
    pub slug: String,
    /// May be the empty string.
    pub name: String,
    pub enabled: bool,
    #[serde(default)]
    pub write_keys: Vec<String>,
    #[serde(default)]
    pub labels: Vec<Label>,
    pub metadata: CatalogMetadata,
}

/// `WarehouseV1`; has no name of its own (display name comes from `metadata.name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warehouse {
    pub id: String,
    pub enabled: bool,
    #[serde(default = "empty_object")]
    pub settings: serde_json::Value,
    pub metadata: CatalogMetadata,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// `ListFunctionItemV1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// One of [`FUNCTION_TYPES`].
    pub resource_type: String,
    pub logo_url: String,
    pub catalog_id: String,
    pub created_at: String,
    pub created_by: String,
}

/// `Space` (Unify/Engage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    pub id: String,
    pub slug: String,
    pub name: String,
}

/// Features of the workspace's plan. A feature switched off answers the way a lower plan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// User groups (Business tier).
    pub groups: bool,
    /// Unify/Engage spaces.
    pub spaces: bool,
    pub warehouses: bool,
    pub functions: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            groups: true,
            spaces: true,
            warehouses: true,
            functions: true,
        }
    }
}

impl Plan {
    /// A Team-tier workspace: no user groups and no spaces.
    pub fn team() -> Self {
        Plan {
            groups: false,
            spaces: false,
            warehouses: true,
            functions: true,
        }
    }
}

/// Sizes for [`Workspace::generate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenSpec {
    pub users: usize,
    pub groups: usize,
    pub invites: usize,
    pub sources: usize,
    pub warehouses: usize,
    pub functions: usize,
    pub spaces: usize,
}

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            users: 100,
            groups: 10,
            invites: 10,
            sources: 20,
            warehouses: 3,
            functions: 10,
            spaces: 2,
        }
    }
}

/// One request as the server received it, with the status it answered
/// (`0` while no answer has been sent, e.g. for a hanging request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// Path as received (still percent-encoded).
    pub path: String,
    /// Raw query string (without `?`), `None` when the URL had none.
    pub query: Option<String>,
    /// `Authorization` header value exactly as received.
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// Request body (lossy UTF-8).
    pub body: String,
    pub status: u16,
}

impl LoggedRequest {
    /// Decoded query pairs (`%5B` → `[`, `+` → space).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default()
    }
}

/// Which request paths a [`Fault`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// Exactly this path (no query string).
    Exact(String),
    /// Paths starting with this prefix.
    Prefix(String),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// What an injected fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 with the Segment rate-limit body and `msBeforeNext` = this value
    /// (`X-RateLimit-Reset` = now + this value). No state change.
    RateLimited { ms_before_next: u64 },
    /// 429 whose body carries no `msBeforeNext`: only the `X-RateLimit-Reset` header (an
    /// RFC 5322 date, whole seconds) says when to come back, `reset_after_ms` from now.
    RateLimitedHeaderOnly { reset_after_ms: u64 },
    /// Answer with this status and this body (sent as `application/json`, verbatim).
    Status { status: u16, body: String },
    /// 200 with a body that is not JSON (`{"data": {"users": [`). No state change.
    MalformedJson,
    /// The request is handled normally (a write takes effect), then the response is sent
    /// with the `Content-Length` of the full body but only its first half, and the
    /// connection is closed: the client sees a premature end of the body.
    TruncatedJson,
    /// Never answer; the connection stays open until the server shuts down.
    Hang,
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// The request is handled normally, but a last page (an answer whose `data.pagination`
    /// has no `next`) points back to this cursor: a buggy API whose pages form a cycle.
    LastPageLoopsTo(String),
    /// The request is handled normally, but the answer's `data.pagination.next` is a cursor
    /// never handed out before (past the end of the list): a server whose listing never ends.
    EndlessCursor,
}

/// A fault to inject: matches method (case-insensitive; `None` = any) and path, and is
/// consumed `times` times (`0` is treated as 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub method: Option<String>,
    pub path: PathMatch,
    pub kind: FaultKind,
    pub times: u32,
}

impl Fault {
    /// A fault on any method and path, applied once.
    pub fn once(kind: FaultKind) -> Self {
        Fault {
            method: None,
            path: PathMatch::Any,
            kind,
            times: 1,
        }
    }

    /// A fault on `method` (None = any) and exactly `path`, applied `times` times.
    pub fn on(method: Option<&str>, path: &str, kind: FaultKind, times: u32) -> Self {
        Fault {
            method: method.map(str::to_string),
            path: PathMatch::Exact(path.to_string()),
            kind,
            times,
        }
    }

    /// A fault on `method` (None = any) and every path under `prefix`, applied `times` times.
    pub fn on_prefix(method: Option<&str>, prefix: &str, kind: FaultKind, times: u32) -> Self {
        Fault {
            method: method.map(str::to_string),
            path: PathMatch::Prefix(prefix.to_string()),
            kind,
            times,
        }
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.matches(path)
    }
}

/// Case-insensitive email comparison (Segment matches emails case-insensitively).
pub fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Who an email belongs to inside a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailOwner {
    User,
    Invite,
}

impl Workspace {
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.id == id)
    }

    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users.iter().find(|u| same_email(&u.email, email))
    }

    pub fn invite(&self, email: &str) -> Option<&Invite> {
        self.invites.iter().find(|i| same_email(&i.email, email))
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    pub fn group_mut(&mut self, id: &str) -> Option<&mut Group> {
        self.groups.iter_mut().find(|g| g.id == id)
    }

    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }

    /// Is this email an accepted user or a pending invite (users win)?
    pub fn email_owner(&self, email: &str) -> Option<EmailOwner> {
        if self.user_by_email(email).is_some() {
            Some(EmailOwner::User)
        } else if self.invite(email).is_some() {
            Some(EmailOwner::Invite)
        } else {
            None
        }
    }

    /// Does a resource of this type and id exist? (WORKSPACE: the workspace id itself.)
    pub fn resource_exists(&self, kind: &str, id: &str) -> bool {
        match kind {
            "WORKSPACE" => id == self.id,
            "SOURCE" => self.sources.iter().any(|s| s.id == id),
            "WAREHOUSE" => self.warehouses.iter().any(|w| w.id == id),
            "FUNCTION" => self.functions.iter().any(|f| f.id == id),
            "SPACE" => self.spaces.iter().any(|s| s.id == id),
            _ => false,
        }
    }

    /// Groups the user with this email is a member of (in workspace order).
    pub fn groups_of_email(&self, email: &str) -> Vec<&Group> {
        self.groups
            .iter()
            .filter(|g| {
                g.member_emails
                    .iter()
                    .chain(g.invite_emails.iter())
                    .any(|e| same_email(e, email))
            })
            .collect()
    }

    /// Users that are members of `group`, in the group's member order. Member emails that
    /// no longer resolve to a user are skipped.
    pub fn group_users(&self, group: &Group) -> Vec<&User> {
        group
            .member_emails
            .iter()
            .filter_map(|e| self.user_by_email(e))
            .collect()
    }

    /// Removes a user and its group memberships. Returns false when the id is unknown.
    pub fn remove_user(&mut self, id: &str) -> bool {
        let Some(pos) = self.users.iter().position(|u| u.id == id) else {
            return false;
        };
        let user = self.users.remove(pos);
        for g in &mut self.groups {
            g.member_emails.retain(|e| !same_email(e, &user.email));
        }
        true
    }

    /// Withdraws an invite and its group memberships. Returns false when unknown.
    pub fn remove_invite(&mut self, email: &str) -> bool {
        let Some(pos) = self
            .invites
            .iter()
            .position(|i| same_email(&i.email, email))
        else {
            return false;
        };
        self.invites.remove(pos);
        for g in &mut self.groups {
            g.invite_emails.retain(|e| !same_email(e, email));
        }
        true
    }

    /// Simulates the invitee accepting: the invite becomes a user (new id, given name) with
    /// the invite's permissions (a permission without resources applies to the workspace),
    /// and group invite memberships become user memberships. Returns the new user id.
    pub fn accept_invite(&mut self, email: &str, name: &str, user_id: &str) -> Option<String> {
        let pos = self
            .invites
            .iter()
            .position(|i| same_email(&i.email, email))?;
        let invite = self.invites.remove(pos);
        let ws_id = self.id.clone();
        let permissions = invite
            .permissions
            .into_iter()
            .map(|mut p| {
                if p.resources.is_empty() {
                    p.resources.push(PermissionResource {
                        id: ws_id.clone(),
                        kind: "WORKSPACE".into(),
                        labels: std::mem::take(&mut p.labels),
                    });
                }
                p
            })
            .collect();
        for g in &mut self.groups {
            if let Some(ip) = g
                .invite_emails
                .iter()
                .position(|e| same_email(e, &invite.email))
            {
                g.invite_emails.remove(ip);
                g.member_emails.push(invite.email.clone());
            }
        }
        self.users.push(User {
            id: user_id.to_string(),
            name: name.to_string(),
            email: invite.email,
            permissions,
        });
        Some(user_id.to_string())
    }
}

impl Group {
    /// `memberCount`: user members plus invite members.
    pub fn member_count(&self) -> usize {
        self.member_emails.len() + self.invite_emails.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> Workspace {
        Workspace::demo()
    }

    #[test]
    fn path_match() {
        assert!(PathMatch::Any.matches("/x"));
        assert!(PathMatch::Exact("/users".into()).matches("/users"));
        assert!(!PathMatch::Exact("/users".into()).matches("/users/1"));
        assert!(PathMatch::Prefix("/users".into()).matches("/users/1"));
        assert!(!PathMatch::Prefix("/groups".into()).matches("/users"));
    }

    #[test]
    fn fault_method_match_is_case_insensitive() {
        let f = Fault::on(Some("post"), "/invites", FaultKind::MalformedJson, 1);
        assert!(f.matches("POST", "/invites"));
        assert!(!f.matches("GET", "/invites"));
        assert!(Fault::once(FaultKind::Hang).matches("DELETE", "/anything"));
    }

    #[test]
    fn remove_user_drops_memberships() {
        let mut w = ws();
        assert!(
            w.group("grpEng")
                .unwrap()
                .member_emails
                .iter()
                .any(|e| e == "bob@acme.test")
        );
        assert!(w.remove_user("usrBob"));
        assert!(w.user("usrBob").is_none());
        assert!(
            !w.group("grpEng")
                .unwrap()
                .member_emails
                .iter()
                .any(|e| e == "bob@acme.test")
        );
        assert!(!w.remove_user("usrBob"));
    }

    #[test]
    fn remove_invite_drops_group_invites() {
        let mut w = ws();
        assert!(w.remove_invite("PAT@acme.test"));
        assert!(w.group("grpData").unwrap().invite_emails.is_empty());
        assert!(!w.remove_invite("pat@acme.test"));
    }

    #[test]
    fn accept_invite_moves_membership() {
        let mut w = ws();
        let id = w.accept_invite("pat@acme.test", "Pat", "usrPat").unwrap();
        assert_eq!(id, "usrPat");
        let g = w.group("grpData").unwrap();
        assert!(g.invite_emails.is_empty());
        assert!(g.member_emails.iter().any(|e| e == "pat@acme.test"));
        assert_eq!(w.email_owner("pat@acme.test"), Some(EmailOwner::User));
    }

    #[test]
    fn email_owner_and_resources() {
        let w = ws();
        assert_eq!(w.email_owner("ALICE@acme.test"), Some(EmailOwner::User));
        assert_eq!(
            w.email_owner("quinn@partner.test"),
            Some(EmailOwner::Invite)
        );
        assert_eq!(w.email_owner("nobody@acme.test"), None);
        assert!(w.resource_exists("WORKSPACE", "wkspAcme01"));
        assert!(!w.resource_exists("WORKSPACE", "other"));
        assert!(w.resource_exists("SOURCE", "srcWeb"));
        assert!(!w.resource_exists("SOURCE", "spcProd"));
        assert!(w.resource_exists("SPACE", "spcProd"));
        assert!(w.resource_exists("FUNCTION", "sfnc_slack"));
        assert!(w.resource_exists("WAREHOUSE", "whBigQuery"));
        assert!(!w.resource_exists("LABEL", "x"));
    }
}
