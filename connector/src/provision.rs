//! Provisioning: grant, revoke, create account (an invitation), delete resource, and `plan`
//! (the same operations described instead of sent).
//!
//! The rules users rely on:
//! * nothing is written that was not asked for: a revoke rewrites a user's or group's
//!   permissions with every other permission, and every label, exactly as Segment returned them;
//! * an operation that is already done says so and writes nothing (each write is preceded by
//!   the read that proves it is needed);
//! * every write is logged (what, to whom, the result), without secrets.

use crate::bindings::*;
use crate::catalog::RoleCatalog;
use crate::connector::Connector;
use crate::env::{Env, HttpRequest, LogLevel, Method};
use crate::errors::to_connector_error;
use crate::grants::{member_grant, permission_grants, role_expansion};
use crate::ids::{GROUP, INVITE, MEMBER, ROLE, Scope, USER, WORKSPACE, parse_entitlement_id};
use crate::resources::{invite_resource, path_segment, rid, user_resource};
use crate::segment::api::encode_array;
use crate::segment::model::{
    EmailsPage, GroupData, InvitesPage, Permission, PermissionResource, User, UserData, UsersPage,
};
use serde_json::{Value, json};

/// What an entitlement id means in Segment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    WorkspaceMember,
    GroupMember(String),
    /// A role on the whole workspace.
    RoleMember(String),
    /// A role on one source, warehouse, function or space, named by its slug.
    Scoped {
        scope: Scope,
        resource_id: String,
        slug: String,
    },
}

pub(crate) fn target(entitlement_id: &str) -> Result<Target, ConnectorError> {
    let bad = || {
        ConnectorError::InvalidArgument(format!(
            "{entitlement_id:?} is not an entitlement of this connector"
        ))
    };
    let (resource_type, resource_id, slug) =
        parse_entitlement_id(entitlement_id).ok_or_else(bad)?;
    match (resource_type, slug) {
        (WORKSPACE, MEMBER) => Ok(Target::WorkspaceMember),
        (GROUP, MEMBER) => Ok(Target::GroupMember(resource_id.into())),
        (ROLE, MEMBER) => Ok(Target::RoleMember(resource_id.into())),
        (other, slug) => match Scope::from_resource_type(other) {
            Some(scope) => Ok(Target::Scoped {
                scope,
                resource_id: resource_id.into(),
                slug: slug.into(),
            }),
            None => Err(bad()),
        },
    }
}

impl Target {
    /// The access, in Segment's terms, for logs and plans.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::WorkspaceMember => "membership of the workspace".into(),
            Target::GroupMember(group) => format!("membership of user group {group}"),
            Target::RoleMember(role_id) => format!("role {role_id} on the workspace"),
            Target::Scoped {
                scope,
                resource_id,
                slug,
            } => format!("{slug} on {} {resource_id}", scope.api_type()),
        }
    }
}

/// Operations refused before any request: the same answer from a run and from its plan.
pub(crate) mod refused {
    use crate::bindings::ConnectorError;

    pub fn group_in_group() -> ConnectorError {
        ConnectorError::InvalidArgument(
            "a user group cannot be a member of another user group".into(),
        )
    }

    pub fn group_in_workspace() -> ConnectorError {
        ConnectorError::InvalidArgument(
            "a user group cannot be a member of the workspace; its users are".into(),
        )
    }

    pub fn role_to_invitation(email: &str) -> ConnectorError {
        ConnectorError::InvalidArgument(format!(
            "{email} has not accepted the invitation yet; roles can be granted once they are a user"
        ))
    }

    pub fn workspace_revoke(user_id: &str) -> ConnectorError {
        ConnectorError::FailedPrecondition(format!(
            "workspace membership cannot be revoked on its own: delete the user instead \
             (--delete-resource {user_id} --delete-resource-type user)"
        ))
    }
}

/// Who receives or loses access.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Principal {
    User { id: String, email: Option<String> },
    Invite { email: String },
    Group { id: String },
}

fn primary_email(resource: &Resource) -> Option<String> {
    resource.traits.iter().find_map(|t| match t {
        ResourceTrait::User(u) => u
            .emails
            .iter()
            .find(|e| e.is_primary)
            .or(u.emails.first())
            .map(|e| e.address.clone()),
        _ => None,
    })
}

pub(crate) fn principal(resource: &Resource) -> Result<Principal, ConnectorError> {
    let id = resource.id.resource.clone();
    match resource.id.resource_type.as_str() {
        USER => Ok(Principal::User {
            id,
            email: primary_email(resource),
        }),
        INVITE => Ok(Principal::Invite { email: id }),
        GROUP => Ok(Principal::Group { id }),
        other => Err(ConnectorError::InvalidArgument(format!(
            "a {other} cannot hold Segment access; principals are users, invitations and groups"
        ))),
    }
}

/// Whose permissions a role grant changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Subject<'a> {
    User(&'a str),
    Group(&'a str),
}

impl Subject<'_> {
    pub(crate) fn path(&self) -> String {
        match self {
            Subject::User(id) => format!("/users/{}", path_segment(id)),
            Subject::Group(id) => format!("/groups/{}", path_segment(id)),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Subject::User(id) => format!("user {id}"),
            Subject::Group(id) => format!("group {id}"),
        }
    }
}

pub(crate) fn subject(p: &Principal) -> Option<Subject<'_>> {
    match p {
        Principal::User { id, .. } => Some(Subject::User(id)),
        Principal::Group { id } => Some(Subject::Group(id)),
        Principal::Invite { .. } => None,
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
    ReplacePermissions {
        subject: Subject<'a>,
        permissions: Vec<Value>,
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
            Write::ReplacePermissions {
                subject,
                permissions,
                ..
            } => HttpRequest::with_json(
                Method::Put,
                format!("{}/permissions", subject.path()),
                &json!({ "permissions": permissions }),
            ),
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

    pub(crate) fn planned(&self) -> PlannedRequest {
        let r = self.request();
        PlannedRequest {
            method: r.method.as_str().into(),
            path: r.path,
            body: r.body.map(|b| String::from_utf8_lossy(&b).into_owned()),
            note: self.note(),
        }
    }
}

pub(crate) fn read(path: impl Into<String>, note: impl Into<String>) -> PlannedRequest {
    PlannedRequest {
        method: "GET".into(),
        path: path.into(),
        body: None,
        note: note.into(),
    }
}

fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// A permission in the shape the write endpoints take, with the resources `keep` accepts and
/// their labels exactly as read; `None` when no resource is left.
fn permission_input(p: &Permission, keep: impl Fn(&PermissionResource) -> bool) -> Option<Value> {
    let resources: Vec<&PermissionResource> = p.resources.iter().filter(|r| keep(r)).collect();
    if resources.is_empty() {
        return None;
    }
    Some(json!({ "roleId": p.role_id, "resources": resources }))
}

/// A resource of a permission with no labels restricting it.
fn unlabelled(r: &PermissionResource) -> bool {
    r.labels.as_ref().is_none_or(|l| l.is_empty())
}

/// A permission held through a resource that matches.
fn holds(
    permissions: &[Permission],
    matches: impl Fn(&Permission, &PermissionResource) -> bool,
) -> bool {
    permissions
        .iter()
        .any(|p| p.resources.iter().any(|r| matches(p, r)))
}

/// Where an address stands after [`Connector::admit`].
enum Admission {
    /// An invitation was already pending (the address as Segment lists it).
    Pending(String),
    /// The address belongs to a member (the user, when found).
    Member(Option<User>),
    /// An invitation was sent.
    Invited,
}

pub(crate) fn invite_email_of(p: &Principal) -> Option<&str> {
    match p {
        Principal::Invite { email } => Some(email),
        _ => None,
    }
}

impl<E: Env> Connector<'_, E> {
    /// Sends a write and logs it.
    fn send(&self, write: &Write<'_>) -> Result<Value, ConnectorError> {
        let request = write.request();
        let what = format!("{} ({})", write.note(), request.describe());
        match self.api.call::<Value>(&request) {
            Ok(v) => {
                self.log(LogLevel::Info, &format!("{what}: done"));
                Ok(v)
            }
            Err(e) => {
                self.log(LogLevel::Warn, &format!("{what}: failed: {e}"));
                Err(to_connector_error(&e))
            }
        }
    }

    fn user(&self, id: &str) -> Result<Option<User>, ConnectorError> {
        match self
            .api
            .get::<UserData>(&format!("/users/{}", path_segment(id)))
        {
            Ok(d) => Ok(Some(d.user)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(to_connector_error(&e)),
        }
    }

    /// The subject's permissions, or `None` if it no longer exists.
    fn current_permissions(
        &self,
        subject: Subject<'_>,
    ) -> Result<Option<Vec<Permission>>, ConnectorError> {
        match subject {
            Subject::User(id) => Ok(self.user(id)?.map(|u| u.permissions.unwrap_or_default())),
            Subject::Group(_) => match self.api.get::<GroupData>(&subject.path()) {
                Ok(d) => Ok(Some(d.user_group.permissions.unwrap_or_default())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(to_connector_error(&e)),
            },
        }
    }

    /// The e-mail address group membership is managed by.
    fn email_of(&self, p: &Principal) -> Result<Option<String>, ConnectorError> {
        match p {
            Principal::Invite { email } => Ok(Some(email.clone())),
            Principal::User {
                email: Some(email), ..
            } => Ok(Some(email.clone())),
            Principal::User { id, email: None } => Ok(self.user(id)?.map(|u| u.email)),
            Principal::Group { .. } => Ok(None),
        }
    }

    /// Whether `email` is a member of the group (as a user, or as a pending invitation).
    fn in_group(&self, group: &str, email: &str, invitation: bool) -> Result<bool, ConnectorError> {
        let id = path_segment(group);
        let found = if invitation {
            self.api
                .all::<EmailsPage>(&format!("/groups/{id}/invites"), "")
                .map(|emails| emails.iter().any(|e| same_email(e, email)))
        } else {
            self.api
                .all::<UsersPage>(&format!("/groups/{id}/users"), "")
                .map(|users| users.iter().any(|u| same_email(&u.email, email)))
        };
        found.map_err(|e| to_connector_error(&e))
    }

    /// The role a scoped entitlement's slug names (slugs are derived from role names).
    fn role_for_slug(&self, catalog: &RoleCatalog, slug: &str) -> Result<String, ConnectorError> {
        catalog.by_slug(slug).map(|r| r.id.clone()).ok_or_else(|| {
            ConnectorError::NotFound(format!(
                "no Segment role has the entitlement slug {slug:?} (was the role renamed? sync again to see current entitlements)"
            ))
        })
    }

    pub fn grant(
        &self,
        principal_resource: &Resource,
        entitlement: &Entitlement,
    ) -> Result<GrantOutcome, ConnectorError> {
        let target = target(&entitlement.id)?;
        let p = principal(principal_resource)?;
        let granted = |grant: Grant| Ok(GrantOutcome::Granted(vec![grant]));
        match &target {
            Target::WorkspaceMember => self.grant_workspace_membership(&p, principal_resource),
            Target::GroupMember(group) => {
                if matches!(p, Principal::Group { .. }) {
                    return Err(refused::group_in_group());
                }
                let email = self.email_of(&p)?.ok_or_else(|| {
                    ConnectorError::NotFound(format!(
                        "{} no longer exists",
                        show(&principal_resource.id)
                    ))
                })?;
                if self.in_group(group, &email, invite_email_of(&p).is_some())? {
                    return Ok(GrantOutcome::AlreadyExists);
                }
                self.send(&Write::AddGroupMember {
                    group,
                    email: &email,
                })?;
                granted(member_grant(
                    &rid(GROUP, group),
                    principal_resource.id.clone(),
                ))
            }
            Target::RoleMember(_) | Target::Scoped { .. } => {
                let Some(subject) = subject(&p) else {
                    return Err(refused::role_to_invitation(
                        invite_email_of(&p).unwrap_or_default(),
                    ));
                };
                let catalog = self.role_catalog()?;
                let (role_id, kind, resource_id) = match &target {
                    Target::Scoped {
                        scope,
                        resource_id,
                        slug,
                    } => (
                        self.role_for_slug(&catalog, slug)?,
                        scope.api_type(),
                        resource_id.clone(),
                    ),
                    Target::RoleMember(role_id) => {
                        (role_id.clone(), "WORKSPACE", self.workspace()?.id)
                    }
                    _ => unreachable!("matched above"),
                };
                let Some(permissions) = self.current_permissions(subject)? else {
                    return Err(ConnectorError::NotFound(format!(
                        "{} no longer exists",
                        subject.describe()
                    )));
                };
                // On the workspace, only the unrestricted role counts as held: the same role
                // restricted by labels (shown as this entitlement by sync) is less access.
                let held = holds(&permissions, |perm, r| {
                    perm.role_id == role_id
                        && r.kind.eq_ignore_ascii_case(kind)
                        && if kind == "WORKSPACE" {
                            unlabelled(r)
                        } else {
                            r.id == resource_id
                        }
                });
                if held {
                    return Ok(GrantOutcome::AlreadyExists);
                }
                self.send(&Write::AddPermission {
                    subject,
                    role_id: &role_id,
                    kind,
                    resource_id: &resource_id,
                })?;
                let added = Permission {
                    role_id: role_id.clone(),
                    role_name: catalog
                        .get(&role_id)
                        .map(|r| r.name.clone())
                        .unwrap_or_default(),
                    resources: vec![PermissionResource {
                        id: resource_id,
                        kind: kind.into(),
                        labels: None,
                    }],
                    labels: None,
                };
                let expandable = match subject {
                    Subject::Group(id) => Some(role_expansion(id)),
                    Subject::User(_) => None,
                };
                Ok(GrantOutcome::Granted(permission_grants(
                    &catalog,
                    &[added],
                    &principal_resource.id,
                    expandable.as_ref(),
                    &|_| {},
                )))
            }
        }
    }

    pub fn revoke(
        &self,
        grant: &Grant,
        principal_resource: &Resource,
    ) -> Result<RevokeOutcome, ConnectorError> {
        if show(&principal_resource.id) != show(&grant.principal) {
            return Err(ConnectorError::InvalidArgument(format!(
                "the principal given ({}) is not the grant's ({})",
                show(&principal_resource.id),
                show(&grant.principal)
            )));
        }
        let target = target(&grant.entitlement_id)?;
        let p = principal(principal_resource)?;
        match &target {
            Target::WorkspaceMember => Err(refused::workspace_revoke(&grant.principal.resource)),
            Target::GroupMember(group) => {
                let Some(email) = self.email_of(&p)? else {
                    return Ok(RevokeOutcome::AlreadyRevoked);
                };
                if !self.in_group(group, &email, invite_email_of(&p).is_some())? {
                    return Ok(RevokeOutcome::AlreadyRevoked);
                }
                self.send(&Write::RemoveGroupMember {
                    group,
                    email: &email,
                })?;
                Ok(RevokeOutcome::Revoked)
            }
            Target::RoleMember(_) | Target::Scoped { .. } => {
                let Some(subject) = subject(&p) else {
                    return Ok(RevokeOutcome::AlreadyRevoked);
                };
                let Some(permissions) = self.current_permissions(subject)? else {
                    return Ok(RevokeOutcome::AlreadyRevoked);
                };
                let catalog = self.role_catalog()?;
                let on_workspace = |perm: &Permission, r: &PermissionResource, role_id: &str| {
                    perm.role_id == role_id && r.kind.eq_ignore_ascii_case("WORKSPACE")
                };
                // Sync shows the role on the whole workspace and the same role restricted by
                // labels as one grant. The unrestricted one is revoked when held, and the
                // labelled ones only when they are all there is: revoking what a grant added
                // must never take the narrower access held before it.
                let unrestricted_held = match &target {
                    Target::RoleMember(role_id) => holds(&permissions, |perm, r| {
                        on_workspace(perm, r, role_id) && unlabelled(r)
                    }),
                    _ => false,
                };
                // What this grant is, in terms of the permissions read.
                let revoked = |perm: &Permission, r: &PermissionResource| match &target {
                    Target::RoleMember(role_id) => {
                        on_workspace(perm, r, role_id) && (unlabelled(r) || !unrestricted_held)
                    }
                    Target::Scoped {
                        scope,
                        resource_id,
                        slug,
                    } => {
                        catalog.slug(&perm.role_id, &perm.role_name) == *slug
                            && r.kind.eq_ignore_ascii_case(scope.api_type())
                            && &r.id == resource_id
                    }
                    _ => false,
                };
                if !holds(&permissions, revoked) {
                    // A slug no current role has (a role renamed since the sync) cannot be
                    // told from a revoked grant: say so instead of reporting it done.
                    if let Target::Scoped { slug, .. } = &target {
                        self.role_for_slug(&catalog, slug)?;
                    }
                    return Ok(RevokeOutcome::AlreadyRevoked);
                }
                // Segment's write shape has no permission-level labels and needs at least one
                // resource per permission: a permission read with labels of its own, or with no
                // resource, cannot be written back as it was, so refuse rather than change it.
                if let Some((p, why)) = permissions.iter().find_map(|p| {
                    if p.labels.as_ref().is_some_and(|l| !l.is_empty()) {
                        Some((p, "with permission-level labels"))
                    } else if p.resources.is_empty() {
                        Some((p, "on no resource"))
                    } else {
                        None
                    }
                }) {
                    return Err(ConnectorError::FailedPrecondition(format!(
                        "{} holds role {} {why}, which Segment's API cannot write back as it is; \
                         rewriting the permissions would change it, so revoke this grant in the Segment app",
                        subject.describe(),
                        p.role_id
                    )));
                }
                let kept: Vec<Value> = permissions
                    .iter()
                    .filter_map(|perm| permission_input(perm, |r| !revoked(perm, r)))
                    .collect();
                self.send(&Write::ReplacePermissions {
                    subject,
                    permissions: kept,
                    removed: target.describe(),
                })?;
                if let Target::RoleMember(role_id) = &target
                    && unrestricted_held
                    && holds(&permissions, |perm, r| {
                        on_workspace(perm, r, role_id) && !unlabelled(r)
                    })
                {
                    self.log(
                        LogLevel::Warn,
                        &format!(
                            "{} still holds role {role_id} on the workspace restricted by labels, \
                             which this revoke kept (the next sync still shows the grant); revoke it \
                             again to remove that too",
                            subject.describe()
                        ),
                    );
                }
                Ok(RevokeOutcome::Revoked)
            }
        }
    }

    /// Creating an account in Segment means inviting the person to the workspace.
    pub fn create_account(
        &self,
        account: &AccountInfo,
    ) -> Result<CreateAccountOutcome, ConnectorError> {
        let email = account_email(account)?;
        let ws = rid(WORKSPACE, &self.workspace()?.id);
        let pending = |existing: &str| {
            CreateAccountOutcome::ActionRequired(ActionRequired {
                resource: invite_resource(existing, Some(&ws)),
                message: format!(
                    "An invitation to {existing} is already pending; they must accept it to join the workspace."
                ),
            })
        };
        Ok(match self.admit(&email)? {
            Admission::Pending(existing) => pending(&existing),
            Admission::Member(user) => {
                CreateAccountOutcome::AlreadyExists(user.map(|u| user_resource(&u, &ws)))
            }
            Admission::Invited => CreateAccountOutcome::ActionRequired(ActionRequired {
                resource: invite_resource(&email, Some(&ws)),
                message: format!(
                    "Invitation sent to {email}. The user must accept the email invitation to complete account creation."
                ),
            }),
        })
    }

    /// Makes sure `email` is in the workspace or invited to it: invites only when it is
    /// neither, and tells which it was.
    fn admit(&self, email: &str) -> Result<Admission, ConnectorError> {
        if let Some(existing) = self.pending_invitation(email)? {
            return Ok(Admission::Pending(existing));
        }
        if let Some(user) = self.user_by_email(email)? {
            return Ok(Admission::Member(Some(user)));
        }
        match self.send(&Write::Invite { email }) {
            Ok(_) => Ok(Admission::Invited),
            // Invited or joined between the check and the write. Segment answers 400 "…was
            // already invited to join workspace." for both; a 409 means the same.
            Err(ConnectorError::InvalidArgument(m)) if m.contains("already invited") => {
                self.already_admitted(email)
            }
            Err(ConnectorError::AlreadyExists(_)) => self.already_admitted(email),
            Err(e) => Err(e),
        }
    }

    fn already_admitted(&self, email: &str) -> Result<Admission, ConnectorError> {
        Ok(match self.pending_invitation(email)? {
            Some(existing) => Admission::Pending(existing),
            None => Admission::Member(self.user_by_email(email)?),
        })
    }

    /// Workspace membership is granted by inviting: a member (or a pending invitation)
    /// already holds it.
    fn grant_workspace_membership(
        &self,
        p: &Principal,
        principal_resource: &Resource,
    ) -> Result<GrantOutcome, ConnectorError> {
        let email = match p {
            Principal::Group { .. } => return Err(refused::group_in_workspace()),
            Principal::User { id, email } => {
                if self.user(id)?.is_some() {
                    return Ok(GrantOutcome::AlreadyExists);
                }
                email.clone().ok_or_else(|| {
                    ConnectorError::FailedPrecondition(format!(
                        "user {id} is no longer in the workspace and the sync recorded no e-mail address to invite them again"
                    ))
                })?
            }
            Principal::Invite { email } => email.clone(),
        };
        match self.admit(&email)? {
            Admission::Pending(_) | Admission::Member(_) => Ok(GrantOutcome::AlreadyExists),
            Admission::Invited => {
                self.log(
                    LogLevel::Info,
                    &format!(
                        "{} was invited to the workspace; membership starts when they accept the invitation",
                        show(&principal_resource.id)
                    ),
                );
                Ok(GrantOutcome::Granted(vec![]))
            }
        }
    }

    fn pending_invitation(&self, email: &str) -> Result<Option<String>, ConnectorError> {
        let invites = self
            .api
            .all::<InvitesPage>("/invites", "")
            .map_err(|e| to_connector_error(&e))?;
        Ok(invites.into_iter().find(|i| same_email(i, email)))
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>, ConnectorError> {
        let users = self
            .api
            .all::<UsersPage>("/users", "")
            .map_err(|e| to_connector_error(&e))?;
        Ok(users.into_iter().find(|u| same_email(&u.email, email)))
    }

    pub fn delete_resource(
        &self,
        id: &ResourceId,
        _parent: Option<&ResourceId>,
    ) -> Result<DeleteOutcome, ConnectorError> {
        let outcome = |r: Result<Value, ConnectorError>| match r {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(ConnectorError::NotFound(_)) => Ok(DeleteOutcome::AlreadyDeleted),
            Err(e) => Err(e),
        };
        match id.resource_type.as_str() {
            USER => {
                if self.user(&id.resource)?.is_none() {
                    return Ok(DeleteOutcome::AlreadyDeleted);
                }
                outcome(self.send(&Write::DeleteUser { id: &id.resource }))
            }
            INVITE => match self.pending_invitation(&id.resource)? {
                None => Ok(DeleteOutcome::AlreadyDeleted),
                Some(email) => outcome(self.send(&Write::DeleteInvite { email: &email })),
            },
            other => Err(ConnectorError::Unimplemented(format!(
                "only users and invitations can be deleted through this connector, not a {other}"
            ))),
        }
    }
}

pub(crate) fn show(id: &ResourceId) -> String {
    format!("{}:{}", id.resource_type, id.resource)
}

/// The address to invite: the primary e-mail, else any e-mail, else the profile's `email`, else
/// a login that is an address.
pub(crate) fn account_email(account: &AccountInfo) -> Result<String, ConnectorError> {
    let from_emails = account
        .emails
        .iter()
        .find(|e| e.is_primary)
        .or(account.emails.first())
        .map(|e| e.address.clone());
    let from_profile = account
        .profile
        .iter()
        .find(|f| f.key == "email")
        .and_then(|f| match &f.value {
            ProfileValue::Text(s) => Some(s.clone()),
            _ => None,
        });
    let from_login = Some(account.login.clone()).filter(|l| l.contains('@'));
    let email = from_emails
        .or(from_profile)
        .or(from_login)
        .map(|e| e.trim().to_string())
        .unwrap_or_default();
    let valid = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !valid {
        return Err(ConnectorError::InvalidArgument(format!(
            "an e-mail address is needed to invite someone to Segment (got {email:?})"
        )));
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::model::Label;
    use crate::testing::FakeEnv;

    #[test]
    fn entitlement_ids_name_their_target() {
        assert_eq!(
            target("group:g1:member").unwrap(),
            Target::GroupMember("g1".into())
        );
        assert_eq!(
            target("role:r1:member").unwrap(),
            Target::RoleMember("r1".into())
        );
        assert_eq!(
            target("workspace:w:member").unwrap(),
            Target::WorkspaceMember
        );
        assert_eq!(
            target("space:sp1:unify_and_engage_admin").unwrap(),
            Target::Scoped {
                scope: Scope::Space,
                resource_id: "sp1".into(),
                slug: "unify_and_engage_admin".into()
            }
        );
        assert!(matches!(
            target("user:u1:member"),
            Err(ConnectorError::InvalidArgument(_))
        ));
        assert!(matches!(
            target("nonsense"),
            Err(ConnectorError::InvalidArgument(_))
        ));
    }

    #[test]
    fn rewritten_permissions_keep_labels_exactly() {
        let labels = vec![Label {
            key: "environment".into(),
            value: "prod".into(),
            description: Some("Production".into()),
        }];
        let p = Permission {
            role_id: "r".into(),
            role_name: "Source Admin".into(),
            resources: vec![
                PermissionResource {
                    id: "w".into(),
                    kind: "WORKSPACE".into(),
                    labels: Some(labels),
                },
                PermissionResource {
                    id: "s1".into(),
                    kind: "SOURCE".into(),
                    labels: None,
                },
            ],
            labels: None,
        };
        let kept = permission_input(&p, |r| r.id != "s1").unwrap();
        assert_eq!(
            kept,
            json!({"roleId": "r", "resources": [{"id": "w", "type": "WORKSPACE", "labels": [{"key": "environment", "value": "prod", "description": "Production"}]}]})
        );
        assert!(
            permission_input(&p, |_| false).is_none(),
            "a permission left without resources is dropped"
        );
    }

    #[test]
    fn the_invited_address_comes_from_emails_profile_or_login() {
        let info = |emails: Vec<Email>, login: &str, profile: Vec<ProfileField>| AccountInfo {
            emails,
            login: login.into(),
            profile,
            resource_type: String::new(),
        };
        let e = |a: &str, p: bool| Email {
            address: a.into(),
            is_primary: p,
        };
        assert_eq!(
            account_email(&info(
                vec![e("b@x.io", false), e("a@x.io", true)],
                "",
                vec![]
            ))
            .unwrap(),
            "a@x.io"
        );
        let profile = vec![ProfileField {
            key: "email".into(),
            value: ProfileValue::Text(" c@x.io ".into()),
        }];
        assert_eq!(account_email(&info(vec![], "", profile)).unwrap(), "c@x.io");
        assert_eq!(
            account_email(&info(vec![], "d@x.io", vec![])).unwrap(),
            "d@x.io"
        );
        assert!(account_email(&info(vec![], "bob", vec![])).is_err());
        assert!(account_email(&info(vec![e("no at sign.io", true)], "", vec![])).is_err());
    }

    #[test]
    fn revoking_what_is_not_held_reads_and_writes_nothing() {
        let env = FakeEnv::new();
        env.route("GET /roles?pagination%5Bcount%5D=200", 200, r#"{"data":{"roles":[{"id":"r1","name":"Source Admin","description":""}],"pagination":{"current":"MA=="}}}"#);
        env.route("GET /users/u1", 200, r#"{"data":{"user":{"id":"u1","name":"U","email":"u@x.io","permissions":[{"roleId":"r1","roleName":"Source Admin","resources":[{"id":"s2","type":"SOURCE","labels":[]}]}]}}}"#);
        let c = Connector::new(&env, &Default::default());
        let grant = Grant {
            id: "source:s1:source_admin:user:u1".into(),
            entitlement_id: "source:s1:source_admin".into(),
            entitlement_resource: rid("source", "s1"),
            principal: rid(USER, "u1"),
            expandable: None,
        };
        let principal = user_resource(
            &User {
                id: "u1".into(),
                name: "U".into(),
                email: "u@x.io".into(),
                permissions: None,
            },
            &rid(WORKSPACE, "w"),
        );
        assert!(matches!(
            c.revoke(&grant, &principal),
            Ok(RevokeOutcome::AlreadyRevoked)
        ));
        assert!(env.writes().is_empty());
        // Another principal than the grant's is refused before any request.
        let other = user_resource(
            &User {
                id: "u2".into(),
                name: String::new(),
                email: "v@x.io".into(),
                permissions: None,
            },
            &rid(WORKSPACE, "w"),
        );
        let before = env.requests().len();
        assert!(matches!(
            c.revoke(&grant, &other),
            Err(ConnectorError::InvalidArgument(_))
        ));
        assert_eq!(env.requests().len(), before);
    }

    use crate::testing::workspace;

    fn body(r: &HttpRequest) -> Value {
        serde_json::from_slice(r.body.as_deref().unwrap_or(b"null")).unwrap()
    }

    #[test]
    fn a_label_restricted_workspace_role_does_not_count_as_the_unrestricted_one() {
        let env = workspace::env(
            r#"[{"roleId":"r1","roleName":"Source Admin","resources":[{"id":"w","type":"WORKSPACE","labels":[{"key":"environment","value":"prod"}]}]}]"#,
        );
        let c = Connector::new(&env, &Default::default());
        let outcome = c
            .grant(
                &workspace::user(),
                &workspace::entitlement("role:r1:member"),
            )
            .unwrap();
        assert!(matches!(outcome, GrantOutcome::Granted(_)));
        let writes = env.writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].path, "/users/u1/permissions");
        assert_eq!(
            body(&writes[0]),
            json!({"permissions":[{"roleId":"r1","resources":[{"id":"w","type":"WORKSPACE"}]}]})
        );

        // Held without labels: already granted, nothing written.
        let env = workspace::env(
            r#"[{"roleId":"r1","roleName":"Source Admin","resources":[{"id":"w","type":"WORKSPACE","labels":[]}]}]"#,
        );
        let c = Connector::new(&env, &Default::default());
        assert!(matches!(
            c.grant(
                &workspace::user(),
                &workspace::entitlement("role:r1:member")
            ),
            Ok(GrantOutcome::AlreadyExists)
        ));
        assert!(env.writes().is_empty());
    }

    /// Sync shows `role:r1:member` for the role on the whole workspace with or without labels;
    /// a revoke takes the unrestricted one when held, the labelled ones only when alone.
    #[test]
    fn revoking_a_workspace_role_keeps_its_label_restricted_form_when_both_are_held() {
        let labelled =
            r#"{"id":"w","type":"WORKSPACE","labels":[{"key":"environment","value":"prod"}]}"#;
        let grant = workspace::grant("role:r1:member", &workspace::user());
        let revoke = |permissions: &str| {
            let env = workspace::env(permissions);
            let c = Connector::new(&env, &Default::default());
            assert!(matches!(
                c.revoke(&grant, &workspace::user()),
                Ok(RevokeOutcome::Revoked)
            ));
            let writes = env.writes();
            assert_eq!(writes.len(), 1);
            assert_eq!(writes[0].path, "/users/u1/permissions");
            body(&writes[0])
        };
        // Both forms (as a grant adds the unrestricted one next to a labelled one): the
        // labelled one stays.
        assert_eq!(
            revoke(&format!(
                r#"[{{"roleId":"r1","roleName":"Source Admin","resources":[{labelled},{{"id":"w","type":"WORKSPACE"}}]}}]"#
            )),
            json!({"permissions":[{"roleId":"r1","resources":[{"id":"w","type":"WORKSPACE","labels":[{"key":"environment","value":"prod"}]}]}]})
        );
        // Only the labelled form: that is what the grant stands for, so it goes.
        assert_eq!(
            revoke(&format!(
                r#"[{{"roleId":"r1","roleName":"Source Admin","resources":[{labelled}]}},{{"roleId":"r2","roleName":"Workspace Owner","resources":[{{"id":"s1","type":"SOURCE"}}]}}]"#
            )),
            json!({"permissions":[{"roleId":"r2","resources":[{"id":"s1","type":"SOURCE"}]}]})
        );
    }

    #[test]
    fn revoking_a_scoped_role_no_current_role_has_says_to_sync_again() {
        // The grant was synced when a role had the slug `data_steward`; no role has it now.
        let env = workspace::env(
            r#"[{"roleId":"r1","roleName":"Source Admin","resources":[{"id":"s1","type":"SOURCE"}]}]"#,
        );
        let c = Connector::new(&env, &Default::default());
        let grant = workspace::grant("source:s1:data_steward", &workspace::user());
        match c.revoke(&grant, &workspace::user()) {
            Err(ConnectorError::NotFound(m)) => assert!(m.contains("sync again"), "{m}"),
            other => panic!("expected not found, got {other:?}"),
        }
        assert!(env.writes().is_empty());
        // A slug that exists but is not held is simply already revoked.
        let grant = workspace::grant("source:s2:source_admin", &workspace::user());
        assert!(matches!(
            c.revoke(&grant, &workspace::user()),
            Ok(RevokeOutcome::AlreadyRevoked)
        ));
    }

    #[test]
    fn a_role_granted_to_a_group_is_expandable_to_its_members() {
        let env = workspace::env("[]");
        let c = Connector::new(&env, &Default::default());
        let GrantOutcome::Granted(grants) = c
            .grant(
                &workspace::group(),
                &workspace::entitlement("source:s1:source_admin"),
            )
            .unwrap()
        else {
            panic!("expected a grant")
        };
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].id, "source:s1:source_admin:group:g1");
        let expandable = grants[0].expandable.as_ref().expect("expandable");
        assert_eq!(expandable.entitlement_ids, ["group:g1:member"]);
        assert!(expandable.shallow);
        assert_eq!(expandable.resource_type_ids, [USER]);
        assert_eq!(env.writes()[0].path, "/groups/g1/permissions");
    }

    #[test]
    fn granting_workspace_membership_invites_only_who_is_neither_member_nor_invited() {
        let ws_member = workspace::entitlement("workspace:w:member");
        // A member already holds it.
        let env = workspace::env("[]");
        let c = Connector::new(&env, &Default::default());
        assert!(matches!(
            c.grant(&workspace::user(), &ws_member),
            Ok(GrantOutcome::AlreadyExists)
        ));
        assert!(env.writes().is_empty());

        // A pending invitation (matched whatever the case) holds it too.
        env.route(
            workspace::INVITES,
            200,
            r#"{"data":{"invites":["New@X.io"],"pagination":{"current":"MA=="}}}"#,
        );
        assert!(matches!(
            c.grant(&workspace::invite("new@x.io"), &ws_member),
            Ok(GrantOutcome::AlreadyExists)
        ));
        assert!(env.writes().is_empty());

        // Neither: invited.
        let env = workspace::env("[]");
        let c = Connector::new(&env, &Default::default());
        assert!(matches!(
            c.grant(&workspace::invite("new@x.io"), &ws_member),
            Ok(GrantOutcome::Granted(_))
        ));
        let writes = env.writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].path, "/invites");
        assert_eq!(body(&writes[0]), json!({"invites":[{"email":"new@x.io"}]}));

        // A group is not a member of the workspace.
        assert!(matches!(
            c.grant(&workspace::group(), &ws_member),
            Err(ConnectorError::InvalidArgument(_))
        ));
    }

    #[test]
    fn segment_saying_already_invited_at_the_write_is_reported_not_failed() {
        let account = AccountInfo {
            emails: vec![Email {
                address: "late@x.io".into(),
                is_primary: true,
            }],
            login: String::new(),
            profile: vec![],
            resource_type: String::new(),
        };
        // Invited by someone else between the check and the write: Segment's live answer is
        // a 400; the second look finds the invitation.
        let env = workspace::env("[]");
        let looks = std::cell::Cell::new(0);
        env.route_with(workspace::INVITES, move |_| {
            looks.set(looks.get() + 1);
            let invites = if looks.get() == 1 {
                "[]"
            } else {
                r#"["late@x.io"]"#
            };
            (
                200,
                format!(r#"{{"data":{{"invites":{invites},"pagination":{{"current":"MA=="}}}}}}"#),
            )
        });
        env.route(
            "POST /invites",
            400,
            r#"{"errors":[{"type":"bad-request","message":"One or more email address was already invited to join workspace."}]}"#,
        );
        let c = Connector::new(&env, &Default::default());
        match c.create_account(&account).unwrap() {
            CreateAccountOutcome::ActionRequired(a) => {
                assert!(a.message.contains("already pending"), "{}", a.message);
                assert_eq!(show(&a.resource.id), "invite:late@x.io");
            }
            other => panic!("expected the pending invitation, got {other:?}"),
        }
        assert_eq!(env.writes().len(), 1, "the invitation is not sent again");

        // A 409 for an address that turns out to be a member's.
        let env = workspace::env("[]");
        env.route(
            "POST /invites",
            409,
            r#"{"errors":[{"type":"conflict","message":"already exists"}]}"#,
        );
        let c = Connector::new(&env, &Default::default());
        assert!(matches!(
            c.create_account(&account),
            Ok(CreateAccountOutcome::AlreadyExists(None))
        ));
        assert_eq!(env.writes().len(), 1);
    }

    #[test]
    fn a_revoke_that_cannot_write_every_other_permission_back_is_refused() {
        let env = workspace::env(
            r#"[{"roleId":"r1","roleName":"Source Admin","resources":[{"id":"s1","type":"SOURCE"}]},{"roleId":"r2","roleName":"Workspace Owner","resources":[]}]"#,
        );
        let c = Connector::new(&env, &Default::default());
        let grant = workspace::grant("source:s1:source_admin", &workspace::user());
        match c.revoke(&grant, &workspace::user()) {
            Err(ConnectorError::FailedPrecondition(m)) => {
                assert!(m.contains("r2") && m.contains("on no resource"), "{m}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(env.writes().is_empty());

        let env = workspace::env(
            r#"[{"roleId":"r1","roleName":"Source Admin","resources":[{"id":"s1","type":"SOURCE"}]},{"roleId":"r2","roleName":"Workspace Owner","resources":[{"id":"w","type":"WORKSPACE"}],"labels":[{"key":"environment","value":"prod"}]}]"#,
        );
        let c = Connector::new(&env, &Default::default());
        match c.revoke(&grant, &workspace::user()) {
            Err(ConnectorError::FailedPrecondition(m)) => {
                assert!(m.contains("permission-level labels"), "{m}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(env.writes().is_empty());
    }
}
