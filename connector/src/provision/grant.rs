//! `grant`: workspace membership (an invitation), group membership, and roles on the workspace
//! or on one source, warehouse, function or space.

use super::account::{Admission, admit};
use super::steps::{Answer, Steps, Write};
use super::target::{
    Principal, Subject, Target, holds, in_group, principal, role_for_slug, show, target, unlabelled,
};
use crate::bindings::*;
use crate::catalog::RoleCatalog;
use crate::env::{Env, LogLevel};
use crate::grants::{member_grant, permission_grants, role_expansion};
use crate::ids::{GROUP, WORKSPACE};
use crate::resources::rid;
use crate::segment::model::{Permission, PermissionResource};

pub(super) fn grant<E: Env>(
    s: &mut Steps<'_, '_, E>,
    principal_resource: &Resource,
    entitlement: &Entitlement,
) -> Result<GrantOutcome, ConnectorError> {
    let target = target(&entitlement.id)?;
    let p = principal(principal_resource)?;
    match &target {
        Target::WorkspaceMember => workspace_membership(s, &p, principal_resource),
        Target::GroupMember(group) => group_membership(s, group, &p, principal_resource),
        Target::RoleMember(role_id) => {
            let subject = role_holder(&p)?;
            let catalog = s.roles("read the role catalogue")?;
            // A plan shows the workspace the principal was synced under; the run sends the
            // id `GET /` answers.
            let synced = principal_resource
                .parent
                .as_ref()
                .filter(|parent| parent.resource_type == WORKSPACE)
                .map(|ws| ws.resource.clone())
                .unwrap_or_else(|| "<workspace id>".into());
            let workspace =
                s.workspace(&format!("find the workspace id ({synced} when synced)"))?;
            let role = RoleOn {
                role_id: role_id.clone(),
                kind: "WORKSPACE",
                resource_id: workspace.map(|w| w.id).or_stand_in(|| synced),
            };
            add_role(s, subject, &target, role, catalog, principal_resource)
        }
        Target::Scoped {
            scope,
            resource_id,
            slug,
        } => {
            let subject = role_holder(&p)?;
            let catalog = s.roles(&format!("find the role whose entitlement slug is {slug}"))?;
            let role_id = match &catalog {
                Answer::Known(catalog) => role_for_slug(catalog, slug)?,
                Answer::Planned => format!("<id of the role with slug {slug}>"),
            };
            let role = RoleOn {
                role_id,
                kind: scope.api_type(),
                resource_id: resource_id.clone(),
            };
            add_role(s, subject, &target, role, catalog, principal_resource)
        }
    }
}

/// Workspace membership is granted by inviting: a member (or a pending invitation) already
/// holds it.
fn workspace_membership<E: Env>(
    s: &mut Steps<'_, '_, E>,
    p: &Principal,
    principal_resource: &Resource,
) -> Result<GrantOutcome, ConnectorError> {
    let email = match p {
        Principal::Group { .. } => {
            return Err(ConnectorError::InvalidArgument(
                "a user group cannot be a member of the workspace; its users are".into(),
            ));
        }
        Principal::User { id, email } => {
            let user = s.user(
                id,
                "check the user is still a member; a member already holds workspace membership and nothing more is sent",
            )?;
            if user.shows(Option::is_some) {
                return Ok(GrantOutcome::AlreadyExists);
            }
            match email {
                Some(email) => email.clone(),
                None if user.shows(Option::is_none) => {
                    return Err(ConnectorError::FailedPrecondition(format!(
                        "user {id} is no longer in the workspace and the sync recorded no e-mail address to invite them again"
                    )));
                }
                // A plan without an address to invite ends at the check.
                None => return Ok(GrantOutcome::AlreadyExists),
            }
        }
        Principal::Invite { email } => email.clone(),
    };
    match admit(s, &email)? {
        Admission::Pending(_) | Admission::Member(_) => Ok(GrantOutcome::AlreadyExists),
        Admission::Invited => {
            s.log(
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

fn group_membership<E: Env>(
    s: &mut Steps<'_, '_, E>,
    group: &str,
    p: &Principal,
    principal_resource: &Resource,
) -> Result<GrantOutcome, ConnectorError> {
    if matches!(p, Principal::Group { .. }) {
        return Err(ConnectorError::InvalidArgument(
            "a user group cannot be a member of another user group".into(),
        ));
    }
    let email = p.email(s, &principal_resource.id)?.ok_or_else(|| {
        ConnectorError::NotFound(format!("{} no longer exists", show(&principal_resource.id)))
    })?;
    let note = format!("check whether {email} is already a member; nothing is sent if already");
    if in_group(s, group, p, &email, &note)? == Answer::Known(true) {
        return Ok(GrantOutcome::AlreadyExists);
    }
    s.write(&Write::AddGroupMember {
        group,
        email: &email,
    })?;
    Ok(GrantOutcome::Granted(vec![member_grant(
        &rid(GROUP, group),
        principal_resource.id.clone(),
    )]))
}

/// Users and groups hold roles; an invitation cannot until it is accepted.
fn role_holder(p: &Principal) -> Result<Subject<'_>, ConnectorError> {
    p.subject().ok_or_else(|| {
        ConnectorError::InvalidArgument(format!(
            "{} has not accepted the invitation yet; roles can be granted once they are a user",
            p.invitation().unwrap_or_default()
        ))
    })
}

/// A role on one resource (the workspace, or a source, warehouse, function or space), in the
/// terms of Segment's permissions.
struct RoleOn {
    role_id: String,
    /// The resource's type, as Segment writes it (`WORKSPACE`, `SOURCE`, …).
    kind: &'static str,
    resource_id: String,
}

/// Gives `subject` the role unless it already holds it.
fn add_role<E: Env>(
    s: &mut Steps<'_, '_, E>,
    subject: Subject<'_>,
    target: &Target,
    role: RoleOn,
    catalog: Answer<RoleCatalog>,
    principal_resource: &Resource,
) -> Result<GrantOutcome, ConnectorError> {
    let RoleOn {
        role_id,
        kind,
        resource_id,
    } = role;
    let note = format!(
        "read the permissions of {}; nothing is written if it already holds {}",
        subject.describe(),
        target.describe()
    );
    let permissions = s.permissions(subject, &note)?;
    if permissions == Answer::Known(None) {
        return Err(ConnectorError::NotFound(format!(
            "{} no longer exists",
            subject.describe()
        )));
    }
    // On the workspace, only the unrestricted role counts as held: the same role restricted
    // by labels (shown as this entitlement by sync) is less access.
    let held = permissions.shows(|permissions| {
        holds(permissions.as_deref().unwrap_or_default(), |perm, r| {
            perm.role_id == role_id
                && r.kind.eq_ignore_ascii_case(kind)
                && if kind == "WORKSPACE" {
                    unlabelled(r)
                } else {
                    r.id == resource_id
                }
        })
    });
    if held {
        return Ok(GrantOutcome::AlreadyExists);
    }
    s.write(&Write::AddPermission {
        subject,
        role_id: &role_id,
        kind,
        resource_id: &resource_id,
    })?;
    // The grants sync will show for it. (A dry run has no catalogue, and no use for them.)
    let catalog = catalog.known().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::Connector;
    use crate::ids::USER;
    use crate::testing::{body, workspace};
    use serde_json::json;

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
}
