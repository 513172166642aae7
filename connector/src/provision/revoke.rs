//! `revoke`: group membership, and roles on the workspace or on one resource. A role is revoked
//! by writing back every other permission, and every label, exactly as Segment returned them.
//! Workspace membership is not revoked on its own: deleting the user is.

use super::steps::{Answer, Steps, Write};
use super::target::{
    Principal, Subject, Target, holds, in_group, principal, role_for_slug, show, target, unlabelled,
};
use crate::bindings::*;
use crate::catalog::RoleCatalog;
use crate::env::{Env, LogLevel};
use crate::segment::model::{Permission, PermissionResource};
use serde_json::{Value, json};

pub(super) fn revoke<E: Env>(
    s: &mut Steps<'_, '_, E>,
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
        Target::WorkspaceMember => Err(ConnectorError::FailedPrecondition(format!(
            "workspace membership cannot be revoked on its own: delete the user instead \
             (--delete-resource {} --delete-resource-type user)",
            grant.principal.resource
        ))),
        Target::GroupMember(group) => group_membership(s, group, &p, principal_resource),
        Target::RoleMember(_) | Target::Scoped { .. } => match p.subject() {
            Some(subject) => role(s, &target, subject),
            // An invitation holds no role.
            None => Ok(RevokeOutcome::AlreadyRevoked),
        },
    }
}

fn group_membership<E: Env>(
    s: &mut Steps<'_, '_, E>,
    group: &str,
    p: &Principal,
    principal_resource: &Resource,
) -> Result<RevokeOutcome, ConnectorError> {
    let Some(email) = p.email(s, &principal_resource.id)? else {
        return Ok(RevokeOutcome::AlreadyRevoked);
    };
    let note = format!("check whether {email} is a member; nothing is sent if not");
    if in_group(s, group, p, &email, &note)? == Answer::Known(false) {
        return Ok(RevokeOutcome::AlreadyRevoked);
    }
    s.write(&Write::RemoveGroupMember {
        group,
        email: &email,
    })?;
    Ok(RevokeOutcome::Revoked)
}

fn role<E: Env>(
    s: &mut Steps<'_, '_, E>,
    target: &Target,
    subject: Subject<'_>,
) -> Result<RevokeOutcome, ConnectorError> {
    let note = format!(
        "read the permissions of {}; nothing is written if it does not hold {}",
        subject.describe(),
        target.describe()
    );
    let permissions = s.permissions(subject, &note)?;
    if permissions == Answer::Known(None) {
        return Ok(RevokeOutcome::AlreadyRevoked);
    }
    let catalog = s.roles("map role names to entitlement slugs")?;
    let rewrite = match (permissions, catalog) {
        (Answer::Known(Some(permissions)), Answer::Known(catalog)) => {
            match rewrite(target, subject, &permissions, &catalog)? {
                Some(rewrite) => rewrite,
                None => return Ok(RevokeOutcome::AlreadyRevoked),
            }
        }
        // A dry run: what is kept depends on what the run reads.
        _ => Rewrite {
            kept: Answer::Planned,
            labelled_left: false,
        },
    };
    s.write(&Write::ReplacePermissions {
        subject,
        kept: rewrite.kept,
        removed: target.describe(),
    })?;
    if rewrite.labelled_left
        && let Target::RoleMember(role_id) = target
    {
        s.log(
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

/// The permissions a revoke writes back.
struct Rewrite {
    kept: Answer<Vec<Value>>,
    /// The role is still held on the workspace restricted by labels (which the revoke kept).
    labelled_left: bool,
}

/// What revoking `target` from `permissions` writes back; `None` when they do not hold it.
fn rewrite(
    target: &Target,
    subject: Subject<'_>,
    permissions: &[Permission],
    catalog: &RoleCatalog,
) -> Result<Option<Rewrite>, ConnectorError> {
    let on_workspace = |perm: &Permission, r: &PermissionResource, role_id: &str| {
        perm.role_id == role_id && r.kind.eq_ignore_ascii_case("WORKSPACE")
    };
    // Sync shows the role on the whole workspace and the same role restricted by labels as
    // one grant. The unrestricted one is revoked when held, and the labelled ones only when
    // they are all there is: revoking what a grant added must never take the narrower access
    // held before it.
    let unrestricted_held = match target {
        Target::RoleMember(role_id) => holds(permissions, |perm, r| {
            on_workspace(perm, r, role_id) && unlabelled(r)
        }),
        _ => false,
    };
    // What this grant is, in terms of the permissions read.
    let revoked = |perm: &Permission, r: &PermissionResource| match target {
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
    if !holds(permissions, revoked) {
        // A slug no current role has (a role renamed since the sync) cannot be told from a
        // revoked grant: say so instead of reporting it done.
        if let Target::Scoped { slug, .. } = target {
            role_for_slug(catalog, slug)?;
        }
        return Ok(None);
    }
    // Segment's write shape has no permission-level labels and needs at least one resource
    // per permission: a permission read with labels of its own, or with no resource, cannot
    // be written back as it was, so refuse rather than change it.
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
    let kept = permissions
        .iter()
        .filter_map(|perm| permission_input(perm, |r| !revoked(perm, r)))
        .collect();
    let labelled_left = match target {
        Target::RoleMember(role_id) => {
            unrestricted_held
                && holds(permissions, |perm, r| {
                    on_workspace(perm, r, role_id) && !unlabelled(r)
                })
        }
        _ => false,
    };
    Ok(Some(Rewrite {
        kept: Answer::Known(kept),
        labelled_left,
    }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::Connector;
    use crate::ids::{USER, WORKSPACE};
    use crate::resources::{rid, user_resource};
    use crate::segment::model::{Label, User};
    use crate::testing::{FakeEnv, body, workspace};

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
