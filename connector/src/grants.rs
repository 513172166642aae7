//! `list-grants`: workspace membership and role assignments of each user (from the permissions
//! recorded in the session), role assignments of groups, and group membership.
//!
//! A group's role assignments are granted to the group and marked expandable to the group's
//! members, so that each member is seen holding the role too.

use crate::bindings::*;
use crate::catalog::RoleCatalog;
use crate::connector::{Connector, keys};
use crate::env::{Env, LogLevel};
use crate::errors::to_connector_error;
use crate::ids::*;
use crate::page_token::{PageToken, Stage};
use crate::resources::{path_segment, rid};
use crate::segment::model::{EmailsPage, GroupData, Permission, UserData, UsersPage};
use serde::de::DeserializeOwned;
use std::collections::HashSet;

/// Grants for a principal's permissions. WORKSPACE-wide permissions are membership of the
/// role; scoped ones are the role's entitlement on that source, warehouse, function or space.
pub(crate) fn permission_grants(
    catalog: &RoleCatalog,
    permissions: &[Permission],
    principal: &ResourceId,
    expandable: Option<&GrantExpandable>,
    log: &dyn Fn(&str),
) -> Vec<Grant> {
    let mut seen = HashSet::new();
    let mut grants = vec![];
    for permission in permissions {
        for resource in &permission.resources {
            let (entitlement_resource, slug) = if resource.kind.eq_ignore_ascii_case("WORKSPACE") {
                (rid(ROLE, &permission.role_id), MEMBER.to_string())
            } else if let Some(scope) = Scope::from_api_type(&resource.kind) {
                (
                    rid(scope.resource_type(), &resource.id),
                    catalog.slug(&permission.role_id, &permission.role_name),
                )
            } else {
                log(&format!(
                    "permission on unknown resource type {:?} ignored",
                    resource.kind
                ));
                continue;
            };
            let entitlement = entitlement_id(
                &entitlement_resource.resource_type,
                &entitlement_resource.resource,
                &slug,
            );
            let id = grant_id(&entitlement, &principal.resource_type, &principal.resource);
            if seen.insert(id.clone()) {
                grants.push(Grant {
                    id,
                    entitlement_id: entitlement,
                    entitlement_resource,
                    principal: principal.clone(),
                    expandable: expandable.cloned(),
                });
            }
        }
    }
    grants
}

/// A group's role grants reach the group's direct user members (Baton grant expansion).
pub(crate) fn role_expansion(group_id: &str) -> GrantExpandable {
    GrantExpandable {
        entitlement_ids: vec![entitlement_id(GROUP, group_id, MEMBER)],
        shallow: true,
        resource_type_ids: vec![USER.into()],
    }
}

pub(crate) fn member_grant(on: &ResourceId, principal: ResourceId) -> Grant {
    let entitlement = entitlement_id(&on.resource_type, &on.resource, MEMBER);
    Grant {
        id: grant_id(&entitlement, &principal.resource_type, &principal.resource),
        entitlement_id: entitlement,
        entitlement_resource: on.clone(),
        principal,
        expandable: None,
    }
}

fn grant_page(items: Vec<Grant>, next: Option<String>) -> GrantPage {
    GrantPage {
        items,
        next_page_token: next.unwrap_or_default(),
        warnings: vec![],
    }
}

/// The answer to `GET /{COLLECTION}/{id}` for one kind of principal, which carries its
/// permissions; listing records them in the session under `SESSION_KEY` and the id.
pub(crate) trait PrincipalData: DeserializeOwned {
    const COLLECTION: &'static str;
    const SESSION_KEY: &'static str;
    fn permissions(self) -> Option<Vec<Permission>>;
}

impl PrincipalData for UserData {
    const COLLECTION: &'static str = "users";
    const SESSION_KEY: &'static str = keys::USER_PERMISSIONS;
    fn permissions(self) -> Option<Vec<Permission>> {
        self.user.permissions
    }
}

impl PrincipalData for GroupData {
    const COLLECTION: &'static str = "groups";
    const SESSION_KEY: &'static str = keys::GROUP_PERMISSIONS;
    fn permissions(self) -> Option<Vec<Permission>> {
        self.user_group.permissions
    }
}

impl<E: Env> Connector<'_, E> {
    pub fn list_grants(
        &self,
        resource: &Resource,
        token: &str,
    ) -> Result<GrantPage, ConnectorError> {
        match resource.id.resource_type.as_str() {
            // Workspace membership is listed with each user (below): one grant per user, so no
            // listing holds the whole workspace at once.
            WORKSPACE => Ok(grant_page(vec![], None)),
            USER => {
                let permissions = self.user_permissions(&resource.id.resource)?;
                let catalog = self.role_catalog()?;
                let mut items =
                    permission_grants(&catalog, &permissions, &resource.id, None, &|m| {
                        self.debug(m)
                    });
                if let Some(ws) = resource
                    .parent
                    .as_ref()
                    .filter(|p| p.resource_type == WORKSPACE)
                {
                    items.insert(0, member_grant(ws, resource.id.clone()));
                }
                Ok(grant_page(items, None))
            }
            GROUP => self.group_grants(&resource.id, token),
            _ => Ok(grant_page(vec![], None)),
        }
    }

    fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message);
    }

    pub(crate) fn user_permissions(
        &self,
        user_id: &str,
    ) -> Result<Vec<Permission>, ConnectorError> {
        self.recorded_permissions::<UserData>(user_id)
    }

    pub(crate) fn group_permissions(
        &self,
        group_id: &str,
    ) -> Result<Vec<Permission>, ConnectorError> {
        self.recorded_permissions::<GroupData>(group_id)
    }

    /// A principal's permissions as listing recorded them in the session, else as
    /// `GET /{collection}/{id}` answers.
    fn recorded_permissions<D: PrincipalData>(
        &self,
        id: &str,
    ) -> Result<Vec<Permission>, ConnectorError> {
        if let Some(p) = self.cache_get(&format!("{}{id}", D::SESSION_KEY)) {
            return Ok(p);
        }
        let path = format!("/{}/{}", D::COLLECTION, path_segment(id));
        let data: D = self.api.get(&path).map_err(|e| to_connector_error(&e))?;
        Ok(data.permissions().unwrap_or_default())
    }

    /// Page token: empty (role assignments, then the first page of user members), then a
    /// [`PageToken`] through the user members and the pending invitations in the group.
    fn group_grants(&self, group: &ResourceId, token: &str) -> Result<GrantPage, ConnectorError> {
        let at = PageToken::<GroupMembers>::parse(token)?;
        let cursor = at.cursor.as_deref();
        let mut items = vec![];
        if token.is_empty() {
            let catalog = self.role_catalog()?;
            let expandable = role_expansion(&group.resource);
            let permissions = self.group_permissions(&group.resource)?;
            items = permission_grants(&catalog, &permissions, group, Some(&expandable), &|m| {
                self.debug(m)
            });
        }
        let id = path_segment(&group.resource);
        let err = |e| to_connector_error(&e);
        match at.stage {
            GroupMembers::Users => {
                let p = self
                    .api
                    .page::<UsersPage>(&format!("/groups/{id}/users"), "", cursor)
                    .map_err(err)?;
                items.extend(
                    p.items
                        .iter()
                        .map(|u| member_grant(group, rid(USER, &u.id))),
                );
                let next = match p.next {
                    Some(c) => PageToken::at(GroupMembers::Users, c),
                    None => PageToken::start(GroupMembers::Invites),
                };
                Ok(grant_page(items, Some(next.to_string())))
            }
            GroupMembers::Invites => {
                let p = self
                    .api
                    .page::<EmailsPage>(&format!("/groups/{id}/invites"), "", cursor)
                    .map_err(err)?;
                items.extend(p.items.iter().map(|e| member_grant(group, rid(INVITE, e))));
                let next = p.next.map(|c| PageToken::at(GroupMembers::Invites, c));
                Ok(grant_page(items, next.map(|t| t.to_string())))
            }
        }
    }
}

/// The stages of a group's grants after its role assignments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum GroupMembers {
    Users,
    Invites,
}

impl Stage for GroupMembers {
    const FIRST: Self = GroupMembers::Users;

    fn name(&self) -> String {
        match self {
            GroupMembers::Users => "users".into(),
            GroupMembers::Invites => "invites".into(),
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "users" => Some(GroupMembers::Users),
            "invites" => Some(GroupMembers::Invites),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeEnv, workspace};

    fn ids(page: &GrantPage) -> Vec<&str> {
        page.items
            .iter()
            .map(|g| g.principal.resource.as_str())
            .collect()
    }

    #[test]
    fn a_groups_grants_walk_its_members_then_its_invitations() {
        let env = FakeEnv::new();
        env.route(
            workspace::ROLES,
            200,
            r#"{"data":{"roles":[],"pagination":{"current":"MA=="}}}"#,
        );
        env.route(
            "GET /groups/g1",
            200,
            r#"{"data":{"userGroup":{"id":"g1","name":"G","permissions":[]}}}"#,
        );
        env.route(
            "GET /groups/g1/users?pagination%5Bcount%5D=200",
            200,
            r#"{"data":{"users":[{"id":"u1","name":"A","email":"a@x.io"}],"pagination":{"current":"MA==","next":"MQ=="}}}"#,
        );
        env.route(
            "GET /groups/g1/users?pagination%5Bcount%5D=200&pagination%5Bcursor%5D=MQ%3D%3D",
            200,
            r#"{"data":{"users":[{"id":"u2","name":"B","email":"b@x.io"}],"pagination":{"current":"MQ=="}}}"#,
        );
        env.route(
            "GET /groups/g1/invites?pagination%5Bcount%5D=200",
            200,
            r#"{"data":{"emails":["c@x.io"],"pagination":{"current":"MA=="}}}"#,
        );
        let c = Connector::new(&env, &Default::default());
        let group = workspace::group();
        let first = c.list_grants(&group, "").unwrap();
        assert_eq!(
            (ids(&first), first.next_page_token.as_str()),
            (vec!["u1"], "users|MQ==")
        );
        let second = c.list_grants(&group, &first.next_page_token).unwrap();
        assert_eq!(
            (ids(&second), second.next_page_token.as_str()),
            (vec!["u2"], "invites|")
        );
        let last = c.list_grants(&group, &second.next_page_token).unwrap();
        assert_eq!(
            (ids(&last), last.next_page_token.as_str()),
            (vec!["c@x.io"], "")
        );
    }
}
