//! What a provisioning operation is about: the access an entitlement id stands for in Segment
//! ([`Target`]), who receives or loses it ([`Principal`]), whose permissions change
//! ([`Subject`]), and how to tell from Segment's answers whether they hold it.

use super::steps::{Answer, Steps};
use crate::bindings::*;
use crate::catalog::RoleCatalog;
use crate::env::Env;
use crate::ids::{GROUP, INVITE, MEMBER, ROLE, Scope, USER, WORKSPACE, parse_entitlement_id};
use crate::resources::path_segment;
use crate::segment::model::{Permission, PermissionResource};

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

impl Principal {
    /// The address of an invitation.
    pub(crate) fn invitation(&self) -> Option<&str> {
        match self {
            Principal::Invite { email } => Some(email),
            _ => None,
        }
    }

    /// Whose permissions a role changes: users and groups hold roles, invitations do not.
    pub(crate) fn subject(&self) -> Option<Subject<'_>> {
        match self {
            Principal::User { id, .. } => Some(Subject::User(id)),
            Principal::Group { id } => Some(Subject::Group(id)),
            Principal::Invite { .. } => None,
        }
    }

    /// The e-mail address group membership is managed by (read from Segment when the synced
    /// user carries none); `None` for a group, and for a user who is gone.
    pub(crate) fn email<E: Env>(
        &self,
        s: &mut Steps<'_, '_, E>,
        who: &ResourceId,
    ) -> Result<Option<String>, ConnectorError> {
        match self {
            Principal::Invite { email }
            | Principal::User {
                email: Some(email), ..
            } => Ok(Some(email.clone())),
            Principal::User { id, email: None } => {
                let user = s.user(id, "find the user's e-mail address")?;
                Ok(user
                    .map(|u| u.map(|u| u.email))
                    .or_stand_in(|| Some(format!("<e-mail of {}>", show(who)))))
            }
            Principal::Group { .. } => Ok(None),
        }
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

pub(crate) fn show(id: &ResourceId) -> String {
    format!("{}:{}", id.resource_type, id.resource)
}

/// Segment matches addresses whatever their case.
pub(crate) fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Whether `email` is a member of the group: as a user, or as a pending invitation.
pub(crate) fn in_group<E: Env>(
    s: &mut Steps<'_, '_, E>,
    group: &str,
    principal: &Principal,
    email: &str,
    note: &str,
) -> Result<Answer<bool>, ConnectorError> {
    let members = s.group_members(group, principal.invitation().is_some(), note)?;
    Ok(members.map(|members| members.iter().any(|m| same_email(m, email))))
}

/// The role a scoped entitlement's slug names (slugs are derived from role names).
pub(crate) fn role_for_slug(catalog: &RoleCatalog, slug: &str) -> Result<String, ConnectorError> {
    catalog.by_slug(slug).map(|r| r.id.clone()).ok_or_else(|| {
        ConnectorError::NotFound(format!(
            "no Segment role has the entitlement slug {slug:?} (was the role renamed? sync again to see current entitlements)"
        ))
    })
}

/// A resource of a permission with no labels restricting it.
pub(crate) fn unlabelled(r: &PermissionResource) -> bool {
    r.labels.as_ref().is_none_or(|l| l.is_empty())
}

/// A permission held through a resource that matches.
pub(crate) fn holds(
    permissions: &[Permission],
    matches: impl Fn(&Permission, &PermissionResource) -> bool,
) -> bool {
    permissions
        .iter()
        .any(|p| p.resources.iter().any(|r| matches(p, r)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
