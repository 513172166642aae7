//! Provisioning: grant, revoke, create account (an invitation) and delete resource, each
//! written once as the requests it makes ([`steps`]): a real run sends them, and `plan` (a dry
//! run) lists them, in the order a run makes them, and sends nothing.
//!
//! The rules users rely on:
//! * nothing is written that was not asked for: a revoke rewrites a user's or group's
//!   permissions with every other permission, and every label, exactly as Segment returned them;
//! * an operation that is already done says so and writes nothing (each write is preceded by
//!   the read that proves it is needed);
//! * every write is logged (what, to whom, the result), without secrets;
//! * a plan shows every request up to the write, with the body the write is sent with; where a
//!   value comes from an earlier answer (the permissions a revoke writes back, the id of a role
//!   found by its slug) it says how it is derived instead.

mod account;
mod delete;
mod grant;
mod revoke;
mod steps;
mod target;

use crate::bindings::*;
use crate::connector::Connector;
use crate::env::Env;
use steps::Steps;

/// Each operation, run for real; `plan` runs it dry.
impl<E: Env> Connector<'_, E> {
    pub fn grant(
        &self,
        principal: &Resource,
        entitlement: &Entitlement,
    ) -> Result<GrantOutcome, ConnectorError> {
        grant::grant(&mut Steps::run(self), principal, entitlement)
    }

    pub fn revoke(
        &self,
        grant: &Grant,
        principal: &Resource,
    ) -> Result<RevokeOutcome, ConnectorError> {
        revoke::revoke(&mut Steps::run(self), grant, principal)
    }

    /// Creating an account in Segment means inviting the person to the workspace.
    pub fn create_account(
        &self,
        account: &AccountInfo,
    ) -> Result<CreateAccountOutcome, ConnectorError> {
        account::create_account(&mut Steps::run(self), account)
    }

    pub fn delete_resource(
        &self,
        id: &ResourceId,
        _parent: Option<&ResourceId>,
    ) -> Result<DeleteOutcome, ConnectorError> {
        delete::delete_resource(&mut Steps::run(self), id)
    }

    /// The requests an operation would make, without making any.
    pub fn plan(&self, operation: &Operation) -> Result<Vec<PlannedRequest>, ConnectorError> {
        let mut s = Steps::dry_run(self);
        match operation {
            Operation::Grant(op) => grant::grant(&mut s, &op.principal, &op.entitlement).map(drop),
            Operation::Revoke(op) => revoke::revoke(&mut s, &op.grant, &op.principal).map(drop),
            Operation::CreateAccount(account) => account::create_account(&mut s, account).map(drop),
            Operation::DeleteResource(op) => delete::delete_resource(&mut s, &op.id).map(drop),
        }?;
        Ok(s.into_plan())
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

    /// Plans and runs the revoke of `entitlement` from `principal`, which holds it.
    fn revoke_matches_run(env: &FakeEnv, entitlement: &str, principal: &Resource) {
        let grant = workspace::grant(entitlement, principal);
        let op = Operation::Revoke(RevokeOperation {
            grant: grant.clone(),
            principal: principal.clone(),
        });
        plan_matches_run(env, op, |c| {
            assert!(matches!(
                c.revoke(&grant, principal),
                Ok(RevokeOutcome::Revoked)
            ));
        });
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
        revoke_matches_run(&workspace::env(held), "source:s1:source_admin", &user);

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
        revoke_matches_run(&env, "group:g1:member", &user);

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
