//! `plan`: the requests a provisioning operation would make, in the order it makes them, and
//! nothing sent. Writes are built by the same [`Write`] values a real run sends, so method, path
//! and body are exactly what would go out; where a value comes from an earlier answer (the
//! permissions a revoke writes back, the id of a role found by its slug) the plan says how it is
//! derived instead.

use crate::bindings::*;
use crate::connector::Connector;
use crate::env::Env;
use crate::ids::{INVITE, USER, WORKSPACE};
use crate::provision::{
    Principal, Target, Write, account_email, invite_email_of, principal, read, refused, show,
    subject, target,
};
use crate::resources::path_segment;

impl<E: Env> Connector<'_, E> {
    /// The requests an operation would make, without making any.
    pub fn plan(&self, operation: &Operation) -> Result<Vec<PlannedRequest>, ConnectorError> {
        match operation {
            Operation::Grant(op) => self.plan_grant(&op.principal, &op.entitlement),
            Operation::Revoke(op) => self.plan_revoke(&op.grant, &op.principal),
            Operation::CreateAccount(account) => {
                let email = account_email(account)?;
                let mut steps = vec![read("/", "find the workspace the invitation is to")];
                steps.extend(self.plan_admit(&email));
                Ok(steps)
            }
            Operation::DeleteResource(op) => match op.id.resource_type.as_str() {
                USER => Ok(vec![
                    read(
                        format!("/users/{}", path_segment(&op.id.resource)),
                        "check the user is still in the workspace; nothing is sent if not",
                    ),
                    Write::DeleteUser {
                        id: &op.id.resource,
                    }
                    .planned(),
                ]),
                INVITE => Ok(vec![
                    self.listing(
                        "/invites",
                        "check the invitation is still pending; nothing is sent if not",
                    ),
                    Write::DeleteInvite {
                        email: &op.id.resource,
                    }
                    .planned(),
                ]),
                other => Err(ConnectorError::Unimplemented(format!(
                    "a {other} cannot be deleted through this connector"
                ))),
            },
        }
    }

    /// A read of every page of a list endpoint (its first page shown).
    fn listing(&self, path: &str, note: &str) -> PlannedRequest {
        read(
            self.api.page_url(path, "", None),
            format!("{note} (every page)"),
        )
    }

    /// What `admit` does: invite only an address that is neither invited nor a member.
    fn plan_admit(&self, email: &str) -> Vec<PlannedRequest> {
        let mut invite = Write::Invite { email }.planned();
        invite.note.push_str(" (only if neither)");
        vec![
            self.listing(
                "/invites",
                &format!("check whether {email} is already invited"),
            ),
            self.listing(
                "/users",
                &format!("check whether {email} is already a member"),
            ),
            invite,
        ]
    }

    /// The address group membership is managed by, with the read that finds it when the
    /// synced principal does not carry one.
    fn plan_email(
        &self,
        p: &Principal,
        principal_resource: &Resource,
    ) -> (String, Vec<PlannedRequest>) {
        match p {
            Principal::Invite { email }
            | Principal::User {
                email: Some(email), ..
            } => (email.clone(), vec![]),
            Principal::User { id, email: None } => (
                format!("<e-mail of {}>", show(&principal_resource.id)),
                vec![read(
                    format!("/users/{}", path_segment(id)),
                    "find the user's e-mail address",
                )],
            ),
            Principal::Group { .. } => (String::new(), vec![]),
        }
    }

    fn plan_membership_check(
        &self,
        group: &str,
        p: &Principal,
        email: &str,
        already: &str,
    ) -> PlannedRequest {
        let listing = if invite_email_of(p).is_some() {
            "invites"
        } else {
            "users"
        };
        self.listing(
            &format!("/groups/{}/{listing}", path_segment(group)),
            &format!("check whether {email} is {already}a member; nothing is sent if {already}"),
        )
    }

    fn plan_grant(
        &self,
        principal_resource: &Resource,
        entitlement: &Entitlement,
    ) -> Result<Vec<PlannedRequest>, ConnectorError> {
        let target = target(&entitlement.id)?;
        let p = principal(principal_resource)?;
        match &target {
            Target::WorkspaceMember => match &p {
                Principal::Group { .. } => Err(refused::group_in_workspace()),
                Principal::User { id, email } => {
                    let mut steps = vec![read(
                        format!("/users/{}", path_segment(id)),
                        "check the user is still a member; a member already holds workspace membership and nothing more is sent",
                    )];
                    if let Some(email) = email {
                        steps.extend(self.plan_admit(email));
                    }
                    Ok(steps)
                }
                Principal::Invite { email } => Ok(self.plan_admit(email)),
            },
            Target::GroupMember(group) => {
                if matches!(p, Principal::Group { .. }) {
                    return Err(refused::group_in_group());
                }
                let (email, mut steps) = self.plan_email(&p, principal_resource);
                steps.push(self.plan_membership_check(group, &p, &email, "already "));
                steps.push(
                    Write::AddGroupMember {
                        group,
                        email: &email,
                    }
                    .planned(),
                );
                Ok(steps)
            }
            Target::RoleMember(_) | Target::Scoped { .. } => {
                let Some(subject) = subject(&p) else {
                    return Err(refused::role_to_invitation(
                        invite_email_of(&p).unwrap_or_default(),
                    ));
                };
                let mut steps = vec![];
                let (role, kind, resource_id) = match &target {
                    Target::Scoped {
                        scope,
                        resource_id,
                        slug,
                    } => {
                        steps.push(self.listing(
                            "/roles",
                            &format!("find the role whose entitlement slug is {slug}"),
                        ));
                        (
                            format!("<id of the role with slug {slug}>"),
                            scope.api_type(),
                            resource_id.clone(),
                        )
                    }
                    Target::RoleMember(role_id) => {
                        steps.push(self.listing("/roles", "read the role catalogue"));
                        // The body shows the workspace the principal was synced under; the
                        // real run sends the id `GET /` answers.
                        let ws = principal_resource
                            .parent
                            .as_ref()
                            .filter(|p| p.resource_type == WORKSPACE)
                            .map(|ws| ws.resource.clone())
                            .unwrap_or_else(|| "<workspace id>".into());
                        steps.push(read(
                            "/",
                            format!("find the workspace id ({ws} when synced)"),
                        ));
                        (role_id.clone(), "WORKSPACE", ws)
                    }
                    _ => unreachable!("matched above"),
                };
                steps.push(read(
                    subject.path(),
                    format!(
                        "read the permissions of {}; nothing is written if it already holds {}",
                        subject.describe(),
                        target.describe()
                    ),
                ));
                steps.push(
                    Write::AddPermission {
                        subject,
                        role_id: &role,
                        kind,
                        resource_id: &resource_id,
                    }
                    .planned(),
                );
                Ok(steps)
            }
        }
    }

    fn plan_revoke(
        &self,
        grant: &Grant,
        principal_resource: &Resource,
    ) -> Result<Vec<PlannedRequest>, ConnectorError> {
        let target = target(&grant.entitlement_id)?;
        let p = principal(principal_resource)?;
        match &target {
            Target::WorkspaceMember => Err(refused::workspace_revoke(&grant.principal.resource)),
            Target::GroupMember(group) => {
                let (email, mut steps) = self.plan_email(&p, principal_resource);
                steps.push(self.plan_membership_check(group, &p, &email, ""));
                steps.push(
                    Write::RemoveGroupMember {
                        group,
                        email: &email,
                    }
                    .planned(),
                );
                Ok(steps)
            }
            Target::RoleMember(_) | Target::Scoped { .. } => {
                // An invitation holds no role: the revoke is already done, nothing is sent.
                let Some(subject) = subject(&p) else {
                    return Ok(vec![]);
                };
                let mut put = Write::ReplacePermissions {
                    subject,
                    permissions: vec![],
                    removed: target.describe(),
                }
                .planned();
                put.body = Some(
                    "{\"permissions\": <every permission read above, exactly as read (labels included), without the revoked one>}"
                        .into(),
                );
                Ok(vec![
                    read(
                        subject.path(),
                        format!(
                            "read the permissions of {}; nothing is written if it does not hold {}",
                            subject.describe(),
                            target.describe()
                        ),
                    ),
                    self.listing("/roles", "map role names to entitlement slugs"),
                    put,
                ])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeEnv, workspace};

    fn lines(plan: &[PlannedRequest]) -> Vec<String> {
        plan.iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Plans `op` (which must send nothing), runs it for real with `run`, and compares.
    fn plan_matches_run(env: &FakeEnv, op: Operation, run: impl FnOnce(&Connector<'_, FakeEnv>)) {
        let c = Connector::new(env, &Default::default());
        let plan = c.plan(&op).expect("a plan");
        assert!(env.requests().is_empty(), "planning sent a request");
        run(&c);
        assert_eq!(lines(&plan), env.request_lines(), "plan vs run of {op:?}");
        // Writes are planned with the body they are sent with (a revoke's depends on the read).
        for (planned, sent) in plan.iter().zip(env.requests()) {
            // A placeholder (`<…>`) stands for a value the run reads first.
            let derived = planned.body.as_deref().is_some_and(|b| b.contains('<'));
            if (planned.method == "POST" || planned.method == "DELETE") && !derived {
                let sent_body = sent.body.map(|b| String::from_utf8(b).unwrap());
                assert_eq!(planned.body, sent_body, "{}", planned.path);
            }
        }
    }

    fn grant_op(principal: Resource, entitlement: &str) -> Operation {
        Operation::Grant(GrantOperation {
            principal,
            entitlement: workspace::entitlement(entitlement),
        })
    }

    #[test]
    fn plans_list_the_requests_a_real_run_makes_in_order() {
        let user = workspace::user();
        for entitlement in [
            "role:r2:member",
            "source:s1:source_admin",
            "group:g1:member",
        ] {
            let env = workspace::env("[]");
            let op = grant_op(user.clone(), entitlement);
            plan_matches_run(&env, op, |c| {
                let GrantOutcome::Granted(_) = c
                    .grant(&user, &workspace::entitlement(entitlement))
                    .unwrap()
                else {
                    panic!("{entitlement} should be granted")
                };
            });
        }

        let invite = workspace::invite("new@x.io");
        let env = workspace::env("[]");
        plan_matches_run(&env, grant_op(invite.clone(), "workspace:w:member"), |c| {
            c.grant(&invite, &workspace::entitlement("workspace:w:member"))
                .unwrap();
        });

        let held = r#"[{"roleId":"r1","roleName":"Source Admin","resources":[{"id":"s1","type":"SOURCE"},{"id":"w","type":"WORKSPACE","labels":[{"key":"environment","value":"prod"}]}]}]"#;
        let env = workspace::env(held);
        let grant = workspace::grant("source:s1:source_admin", &user);
        let op = Operation::Revoke(RevokeOperation {
            grant: grant.clone(),
            principal: user.clone(),
        });
        plan_matches_run(&env, op, |c| {
            assert!(matches!(
                c.revoke(&grant, &user),
                Ok(RevokeOutcome::Revoked)
            ));
        });

        let env = workspace::env("[]");
        env.route(
            "GET /groups/g1/users?pagination%5Bcount%5D=200",
            200,
            r#"{"data":{"users":[{"id":"u1","name":"U","email":"u1@x.io"}],"pagination":{"current":"MA=="}}}"#,
        );
        env.route(
            "DELETE /group/g1/users?emails.0=u1%40x.io",
            200,
            r#"{"data":{"status":"SUCCESS"}}"#,
        );
        let grant = workspace::grant("group:g1:member", &user);
        let op = Operation::Revoke(RevokeOperation {
            grant: grant.clone(),
            principal: user.clone(),
        });
        plan_matches_run(&env, op, |c| {
            assert!(matches!(
                c.revoke(&grant, &user),
                Ok(RevokeOutcome::Revoked)
            ));
        });

        let account = AccountInfo {
            emails: vec![Email {
                address: "new@x.io".into(),
                is_primary: true,
            }],
            login: String::new(),
            profile: vec![],
            resource_type: String::new(),
        };
        let env = workspace::env("[]");
        plan_matches_run(&env, Operation::CreateAccount(account.clone()), |c| {
            c.create_account(&account).unwrap();
        });

        let env = workspace::env("[]");
        env.route(
            "DELETE /users?userIds.0=u1",
            200,
            r#"{"data":{"status":"SUCCESS"}}"#,
        );
        let op = Operation::DeleteResource(DeleteOperation {
            id: user.id.clone(),
            parent: None,
        });
        plan_matches_run(&env, op, |c| {
            assert!(matches!(
                c.delete_resource(&user.id, None),
                Ok(DeleteOutcome::Deleted)
            ));
        });
    }
}
