//! Provisioning through the real component against the fake Segment API: each operation
//! changes exactly what was asked and nothing else; doing it again reports it done and writes
//! nothing; rate limits are waited out; failures leave Segment as it was; a dry run sends
//! nothing.

mod common;

use baton_segment::commands::connection::Connection;
use baton_segment::commands::provision::{self, Lookup, Outcome, ProvisionError};
use baton_segment::engine::contract::{Operation, ResourceId};
use baton_segment::sandbox::Secret;
use common::*;
use fakes::segment::{
    FakeConfig, FakeSegment, Fault, FaultKind, Label, Permission, PermissionResource, Workspace,
};
use std::path::PathBuf;

struct Setup {
    fake: FakeSegment,
    _dir: tempfile::TempDir,
    c1z: PathBuf,
}

/// The demo workspace, synced into a `.c1z` to look ids up in (as the CLI does).
async fn setup(cfg: FakeConfig) -> Setup {
    let fake = fake(cfg).await;
    let dir = temp_dir();
    let c1z = out(&dir);
    sync(&fake, &c1z).await.unwrap();
    fake.clear_requests();
    Setup {
        fake,
        _dir: dir,
        c1z,
    }
}

impl Setup {
    fn connection(&self) -> Connection {
        Connection::to(&self.fake.base_url(), Secret::new(TOKEN)).unwrap()
    }

    fn lookup(&self) -> Lookup {
        Lookup::open(&self.c1z).unwrap()
    }

    async fn run(&self, op: &Operation) -> Result<Outcome, ProvisionError> {
        provision::execute(runtime(), &self.connection(), op).await
    }

    fn writes(&self) -> Vec<String> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Runs `op` twice: the first changes Segment exactly as `change` does to the state before;
    /// the second finds it done and writes nothing.
    async fn exactly_once(
        &self,
        op: &Operation,
        change: impl FnOnce(&mut Workspace),
        first: &str,
        second: &str,
    ) {
        let mut expected = self.fake.workspace();
        change(&mut expected);
        let outcome = self.run(op).await.expect("the operation succeeds");
        assert_eq!(kind(&outcome), first, "{}", outcome.describe());
        assert_eq!(
            self.fake.workspace(),
            expected,
            "exactly the asked change, nothing else"
        );
        assert_eq!(self.writes().len(), 1, "one write: {:?}", self.writes());
        self.fake.clear_requests();
        let again = self.run(op).await.expect("the repeat succeeds");
        assert_eq!(kind(&again), second, "{}", again.describe());
        assert!(
            self.writes().is_empty(),
            "the repeat writes nothing: {:?}",
            self.writes()
        );
        assert_eq!(self.fake.workspace(), expected);
        self.fake.clear_requests();
    }
}

fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Granted(_) => "granted",
        Outcome::AlreadyExists => "already-exists",
        Outcome::Revoked => "revoked",
        Outcome::AlreadyRevoked => "already-revoked",
        Outcome::Account(
            baton_segment::engine::contract::CreateAccountOutcome::ActionRequired(_),
        ) => "action-required",
        Outcome::Account(baton_segment::engine::contract::CreateAccountOutcome::AlreadyExists(
            _,
        )) => "account-exists",
        Outcome::Account(baton_segment::engine::contract::CreateAccountOutcome::Success(_)) => {
            "account-created"
        }
        Outcome::Deleted => "deleted",
        Outcome::AlreadyDeleted => "already-deleted",
    }
}

fn group<'a>(w: &'a mut Workspace, id: &str) -> &'a mut fakes::segment::Group {
    w.groups.iter_mut().find(|g| g.id == id).unwrap()
}

fn user<'a>(w: &'a mut Workspace, id: &str) -> &'a mut fakes::segment::User {
    w.users.iter_mut().find(|u| u.id == id).unwrap()
}

fn permission(role_id: &str, role_name: &str, kind: &str, id: &str) -> Permission {
    Permission {
        role_id: role_id.into(),
        role_name: role_name.into(),
        resources: vec![PermissionResource {
            id: id.into(),
            kind: kind.into(),
            labels: vec![],
        }],
        labels: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_membership_for_users_and_invitations() {
    let s = setup(FakeConfig::demo()).await;
    let op = s
        .lookup()
        .grant("group:grpEng:member", "usrGrace", "user")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            group(w, "grpEng")
                .member_emails
                .push("grace@acme.test".into())
        },
        "granted",
        "already-exists",
    )
    .await;
    let op = s
        .lookup()
        .grant("group:grpEng:member", "quinn@partner.test", "invite")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            group(w, "grpEng")
                .invite_emails
                .push("quinn@partner.test".into())
        },
        "granted",
        "already-exists",
    )
    .await;
    let op = s
        .lookup()
        .revoke("group:grpEng:member:user:usrBob")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            group(w, "grpEng")
                .member_emails
                .retain(|e| e != "bob@acme.test")
        },
        "revoked",
        "already-revoked",
    )
    .await;
    // An invitation leaves the group too (by Segment's singular path: the fake answers the
    // plural one 404, so the change below happens only through the right one).
    let op = s
        .lookup()
        .revoke("group:grpData:member:invite:pat@acme.test")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            let invites = &mut group(w, "grpData").invite_emails;
            assert!(
                invites.iter().any(|e| e == "pat@acme.test"),
                "in the fixture"
            );
            invites.retain(|e| e != "pat@acme.test")
        },
        "revoked",
        "already-revoked",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_for_users_and_groups_workspace_wide_and_scoped() {
    let s = setup(FakeConfig::demo()).await;
    let op = s
        .lookup()
        .grant("role:roleTpAdmin:member", "usrHeidi", "user")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            user(w, "usrHeidi").permissions.push(permission(
                "roleTpAdmin",
                "Tracking Plan Admin",
                "WORKSPACE",
                "wkspAcme01",
            ))
        },
        "granted",
        "already-exists",
    )
    .await;
    // A group, which the Go connector refused.
    let op = s
        .lookup()
        .grant("source:srcIos:source_read_only", "grpEng", "group")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            group(w, "grpEng").permissions.push(permission(
                "roleSrcRead",
                "Source Read-only",
                "SOURCE",
                "srcIos",
            ))
        },
        "granted",
        "already-exists",
    )
    .await;
    // A role whose name names no scope.
    let op = s
        .lookup()
        .grant("source:srcWeb:data_steward", "usrFrank", "user")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            user(w, "usrFrank").permissions.push(permission(
                "roleSteward",
                "Data Steward",
                "SOURCE",
                "srcWeb",
            ))
        },
        "granted",
        "already-exists",
    )
    .await;
    let op = s
        .lookup()
        .revoke("role:roleWhRead:member:group:grpData")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            group(w, "grpData")
                .permissions
                .retain(|p| p.role_id != "roleWhRead")
        },
        "revoked",
        "already-revoked",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_one_scoped_role_keeps_every_other_permission_and_label() {
    let s = setup(FakeConfig::demo()).await;
    // Erin holds Source Admin on the workspace restricted by a label, and Data Steward on one source.
    let before = s.fake.workspace();
    let erin = before
        .users
        .iter()
        .find(|u| u.id == "usrErin")
        .unwrap()
        .clone();
    assert!(
        erin.permissions
            .iter()
            .any(|p| p.resources.iter().any(|r| !r.labels.is_empty()))
    );
    let op = s
        .lookup()
        .revoke("source:srcServer:data_steward:user:usrErin")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            user(w, "usrErin")
                .permissions
                .retain(|p| p.role_id != "roleSteward")
        },
        "revoked",
        "already-revoked",
    )
    .await;
    let after = s.fake.workspace();
    let erin_after = after.users.iter().find(|u| u.id == "usrErin").unwrap();
    assert_eq!(
        erin_after.permissions[0], erin.permissions[0],
        "the labelled permission is untouched"
    );
    // Bob: revoking one of two sources of the same role keeps the other.
    let op = s
        .lookup()
        .revoke("source:srcWeb:source_admin:user:usrBob")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            user(w, "usrBob").permissions[0]
                .resources
                .retain(|r| r.id != "srcWeb")
        },
        "revoked",
        "already-revoked",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_account_invites_and_tells_invited_from_member() {
    let s = setup(FakeConfig::demo()).await;
    let op = provision::create_account(Some("new.hire@acme.test"), None, None).unwrap();
    let mut expected = s.fake.workspace();
    expected.invites.push(fakes::segment::Invite {
        email: "new.hire@acme.test".into(),
        permissions: vec![],
    });
    let outcome = s.run(&op).await.unwrap();
    assert!(
        outcome
            .describe()
            .contains("must accept the email invitation"),
        "{}",
        outcome.describe()
    );
    assert_eq!(s.fake.workspace(), expected);
    s.fake.clear_requests();
    // Again: already invited, told apart, nothing written.
    let again = s.run(&op).await.unwrap();
    assert_eq!(kind(&again), "action-required");
    assert!(
        again.describe().contains("already pending"),
        "{}",
        again.describe()
    );
    assert!(s.writes().is_empty());
    // A member (any case): already exists, nothing written.
    let op =
        provision::create_account(None, None, Some(r#"{"email": "Alice@Acme.test"}"#)).unwrap();
    let member = s.run(&op).await.unwrap();
    assert_eq!(kind(&member), "account-exists");
    assert!(member.describe().contains("user:usrAlice"));
    assert!(s.writes().is_empty());
    assert_eq!(s.fake.workspace(), expected);
    // No usable address: a clear error, no request.
    s.fake.clear_requests();
    let err = s
        .run(&provision::create_account(None, Some("not-an-address"), None).unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("e-mail address is needed"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_users_and_invitations() {
    let s = setup(FakeConfig::demo()).await;
    let op = s.lookup().delete("usrFrank", "user").unwrap();
    s.exactly_once(
        &op,
        |w| {
            w.users.retain(|u| u.id != "usrFrank");
            for g in &mut w.groups {
                g.member_emails.retain(|e| e != "frank@acme.test");
            }
        },
        "deleted",
        "already-deleted",
    )
    .await;
    let op = s.lookup().delete("quinn@partner.test", "invite").unwrap();
    s.exactly_once(
        &op,
        |w| w.invites.retain(|i| i.email != "quinn@partner.test"),
        "deleted",
        "already-deleted",
    )
    .await;
    assert!(s.lookup().delete("grpEng", "group").is_ok());
    let err = s
        .run(&s.lookup().delete("grpEng", "group").unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("only users and invitations can be deleted"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_membership_is_not_revoked_but_points_to_deleting_the_user() {
    let s = setup(FakeConfig::demo()).await;
    let before = s.fake.workspace();
    let err = s
        .run(
            &s.lookup()
                .revoke("workspace:wkspAcme01:member:user:usrBob")
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("--delete-resource usrBob --delete-resource-type user"),
        "{err}"
    );
    assert!(s.fake.requests().is_empty());
    assert_eq!(s.fake.workspace(), before);
    // Granting it to a member changes nothing.
    let granted = s
        .run(
            &s.lookup()
                .grant("workspace:wkspAcme01:member", "usrBob", "user")
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(kind(&granted), "already-exists");
    assert!(s.writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granting_workspace_membership_to_someone_who_left_invites_them_once() {
    let s = setup(FakeConfig::demo()).await;
    // Frank left the workspace after the sync.
    s.fake.update_workspace(|w| {
        w.users.retain(|u| u.id != "usrFrank");
        for g in &mut w.groups {
            g.member_emails.retain(|e| e != "frank@acme.test");
        }
    });
    let op = s
        .lookup()
        .grant("workspace:wkspAcme01:member", "usrFrank", "user")
        .unwrap();
    s.exactly_once(
        &op,
        |w| {
            w.invites.push(fakes::segment::Invite {
                email: "frank@acme.test".into(),
                permissions: vec![],
            })
        },
        "granted",
        "already-exists",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_ids_are_clear_errors() {
    let s = setup(FakeConfig::demo()).await;
    let e = s
        .lookup()
        .grant("group:nope:member", "usrBob", "user")
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("no entitlement \"group:nope:member\""),
        "{e}"
    );
    let e = s
        .lookup()
        .grant("group:grpEng:member", "usrNobody", "user")
        .err()
        .unwrap();
    assert!(e.to_string().contains("no user \"usrNobody\""), "{e}");
    let e = s
        .lookup()
        .revoke("group:grpEng:member:user:usrNobody")
        .err()
        .unwrap();
    assert!(e.to_string().contains("no grant"), "{e}");
    // A grant that exists only through a group is revoked through the group.
    let e = s
        .lookup()
        .revoke("source:srcServer:source_admin:user:usrBob")
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("held through group:grpEng:member"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_that_hits_the_write_limit_waits_and_completes() {
    let mut cfg = FakeConfig::demo();
    // Segment's documented 60 writes per minute per write operation, scaled down to 1 per 4 s
    // (long enough that the second revoke's reads surely end inside the first one's window).
    cfg.write_limit = 1;
    cfg.write_window = std::time::Duration::from_secs(4);
    let s = setup(cfg).await;
    let member_of = |group: &str, email: &str| {
        s.fake
            .workspace()
            .groups
            .iter()
            .find(|g| g.id == group)
            .unwrap()
            .member_emails
            .contains(&email.to_string())
    };
    // The first removal spends the window's one DELETE /group/{id}/users.
    let first = s
        .run(
            &s.lookup()
                .revoke("group:grpEng:member:user:usrBob")
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(kind(&first), "revoked");
    let start = std::time::Instant::now();
    let outcome = s
        .run(
            &s.lookup()
                .revoke("group:grpData:member:user:usrCarol")
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(kind(&outcome), "revoked");
    let deletes: Vec<(String, u16)> = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| (r.path.clone(), r.status))
        .collect();
    let statuses: Vec<u16> = deletes.iter().map(|d| d.1).collect();
    // Refused, then done once the window is over. (A reset time within the second is first
    // taken as a moment's pause: one more 429 then says the window is really spent.)
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        statuses.first() == Some(&200)
            && statuses.last() == Some(&200)
            && (1..=2).contains(&refused)
            && statuses.len() == refused + 2,
        "refused, then done: {deletes:?}"
    );
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(1),
        "the host waited for the window to end"
    );
    assert!(!member_of("grpEng", "bob@acme.test"));
    assert!(!member_of("grpData", "carol@acme.test"));
    assert!(
        member_of("grpData", "erin@acme.test"),
        "nothing else changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_changes_nothing_and_says_why() {
    let s = setup(FakeConfig::demo()).await;
    let before = s.fake.workspace();
    let body = r#"{"errors":[{"type":"internal","message":"policy service unavailable"}]}"#;
    s.fake.inject(Fault::on(
        Some("PUT"),
        "/users/usrErin/permissions",
        FaultKind::Status {
            status: 500,
            body: body.into(),
        },
        10,
    ));
    let err = s
        .run(
            &s.lookup()
                .revoke("source:srcServer:data_steward:user:usrErin")
                .unwrap(),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("PUT /users/usrErin/permissions")
            && text.contains("HTTP 500")
            && text.contains("policy service unavailable"),
        "{text}"
    );
    assert_eq!(s.fake.workspace(), before);
    // The host never repeats a write on its own; the operation is tried again (as often as
    // the retry policy allows an unavailable call), and each attempt reads first, so a write
    // that did land would be found done, not repeated.
    let attempts = s.connection().policy().retry.call_attempts as usize;
    let log: Vec<String> = s
        .fake
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(s.writes().len(), attempts, "{log:?}");
    assert_eq!(
        log.iter().filter(|r| *r == "GET /users/usrErin").count(),
        attempts,
        "{log:?}"
    );

    // A refusal (4xx) is not tried again.
    s.fake.clear_requests();
    s.fake.clear_faults();
    let body = r#"{"errors":[{"type":"input-validation","message":"roleId is not valid","field":"permissions.roleId"}]}"#;
    s.fake.inject(Fault::on(
        Some("PUT"),
        "/users/usrErin/permissions",
        FaultKind::Status {
            status: 422,
            body: body.into(),
        },
        1,
    ));
    let err = s
        .run(
            &s.lookup()
                .revoke("source:srcServer:data_steward:user:usrErin")
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("HTTP 422") && err.to_string().contains("roleId is not valid"),
        "{err}"
    );
    assert_eq!(s.writes().len(), 1);
    assert_eq!(s.fake.workspace(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_sends_nothing_and_shows_the_requests() {
    let s = setup(FakeConfig::demo()).await;
    for op in [
        s.lookup()
            .grant("group:grpEng:member", "usrGrace", "user")
            .unwrap(),
        s.lookup()
            .grant("role:roleTpAdmin:member", "usrHeidi", "user")
            .unwrap(),
        s.lookup()
            .revoke("source:srcServer:data_steward:user:usrErin")
            .unwrap(),
        s.lookup().delete("usrFrank", "user").unwrap(),
        provision::create_account(Some("x@acme.test"), None, None).unwrap(),
    ] {
        let steps = provision::plan(runtime(), &s.connection(), &op)
            .await
            .unwrap();
        assert!(
            steps.iter().any(|s| s.method != "GET"),
            "every plan shows its write"
        );
        let text = provision::render_plan(&op, &steps);
        assert!(text.starts_with("Dry run:") && text.contains("none was sent"));
    }
    let steps = provision::plan(
        runtime(),
        &s.connection(),
        &s.lookup()
            .grant("group:grpEng:member", "usrGrace", "user")
            .unwrap(),
    )
    .await
    .unwrap();
    let write = steps.iter().find(|s| s.method == "POST").unwrap();
    assert_eq!(write.path, "/groups/grpEng/users");
    assert_eq!(
        write.body.as_deref(),
        Some(r#"{"emails":["grace@acme.test"]}"#)
    );
    let steps = provision::plan(
        runtime(),
        &s.connection(),
        &s.lookup()
            .grant("role:roleTpAdmin:member", "usrHeidi", "user")
            .unwrap(),
    )
    .await
    .unwrap();
    let write = steps.iter().find(|s| s.method == "POST").unwrap();
    assert_eq!(
        write.body.as_deref(),
        Some(
            r#"{"permissions":[{"resources":[{"id":"wkspAcme01","type":"WORKSPACE"}],"roleId":"roleTpAdmin"}]}"#
        )
    );
    assert!(
        s.fake.requests().is_empty(),
        "the fake saw no request at all: {:?}",
        s.fake.requests()
    );
}

/// Builds a permission from generated parts.
fn label(k: u8, v: u8) -> Label {
    Label {
        key: format!("k{k}"),
        value: format!("v{v}"),
        description: k.is_multiple_of(2).then(|| format!("label {k}")),
    }
}

mod property {
    use super::*;
    use proptest::prelude::*;

    /// (role id, role name, resource type, resource ids that type can take)
    const CHOICES: &[(&str, &str, &str, &[&str])] = &[
        (
            "roleSrcAdmin",
            "Source Admin",
            "SOURCE",
            &["srcWeb", "srcIos", "srcServer", "srcLegacy"],
        ),
        (
            "roleSrcRead",
            "Source Read-only",
            "SOURCE",
            &["srcWeb", "srcIos", "srcServer"],
        ),
        (
            "roleSteward",
            "Data Steward",
            "SOURCE",
            &["srcWeb", "srcLegacy"],
        ),
        (
            "roleFnAdmin",
            "Function Admin",
            "FUNCTION",
            &["sfnc_enrich", "sfnc_slack", "sfnc_mask"],
        ),
        (
            "roleFnRead",
            "Function Read-only",
            "FUNCTION",
            &["sfnc_geo", "sfnc_enrich"],
        ),
        (
            "roleWhAdmin",
            "Warehouse Destination Admin",
            "WAREHOUSE",
            &["whSnowflake", "whBigQuery"],
        ),
        (
            "roleEngAdmin",
            "Unify and Engage Admin",
            "SPACE",
            &["spcProd", "spcStaging"],
        ),
        (
            "roleEngRead",
            "Unify and Engage Read-only",
            "SPACE",
            &["spcProd"],
        ),
    ];
    const WORKSPACE_ROLES: &[(&str, &str)] = &[
        ("roleSrcAdmin", "Source Admin"),
        ("roleSrcRead", "Source Read-only"),
        ("roleTpAdmin", "Tracking Plan Admin"),
        ("roleEngRead", "Unify and Engage Read-only"),
    ];

    /// A permission set: scoped permissions (several resources per role) and workspace-wide
    /// ones, some restricted by labels.
    fn permission_set() -> impl Strategy<Value = Vec<Permission>> {
        let scoped = (
            0..CHOICES.len(),
            proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
        )
            .prop_map(|(i, picks)| {
                let (role, name, kind, ids) = CHOICES[i];
                let mut resources: Vec<PermissionResource> = vec![];
                for p in picks {
                    let id = ids[p.index(ids.len())];
                    if !resources.iter().any(|r| r.id == id) {
                        resources.push(PermissionResource {
                            id: id.into(),
                            kind: kind.into(),
                            labels: vec![],
                        });
                    }
                }
                Permission {
                    role_id: role.into(),
                    role_name: name.into(),
                    resources,
                    labels: vec![],
                }
            });
        let wide = (
            0..WORKSPACE_ROLES.len(),
            proptest::collection::vec((0u8..4, 0u8..3), 0..3),
        )
            .prop_map(|(i, labels)| {
                let (role, name) = WORKSPACE_ROLES[i];
                let mut ls: Vec<Label> = vec![];
                for (k, v) in labels {
                    if !ls.iter().any(|l| l.key == format!("k{k}")) {
                        ls.push(label(k, v));
                    }
                }
                Permission {
                    role_id: role.into(),
                    role_name: name.into(),
                    resources: vec![PermissionResource {
                        id: "wkspAcme01".into(),
                        kind: "WORKSPACE".into(),
                        labels: ls,
                    }],
                    labels: vec![],
                }
            });
        proptest::collection::vec(prop_oneof![scoped, wide], 0..6).prop_map(|perms| {
            // One permission per role, as Segment keeps them.
            let mut out: Vec<Permission> = vec![];
            for p in perms {
                match out.iter_mut().find(|o| o.role_id == p.role_id) {
                    Some(o) => {
                        for r in p.resources {
                            if !o.resources.iter().any(|x| x.kind == r.kind && x.id == r.id) {
                                o.resources.push(r);
                            }
                        }
                    }
                    None => out.push(p),
                }
            }
            out
        })
    }

    fn entitlement(
        scope: &str,
        resource: &str,
        slug: &str,
    ) -> baton_segment::engine::contract::Entitlement {
        baton_segment::engine::contract::Entitlement {
            id: format!("{scope}:{resource}:{slug}"),
            resource: ResourceId {
                resource_type: scope.into(),
                resource: resource.into(),
            },
            display_name: String::new(),
            description: String::new(),
            slug: slug.into(),
            purpose: baton_segment::engine::contract::Purpose::Permission,
            grantable_to: vec![],
        }
    }

    /// What is granted then revoked: a scoped role on one resource, or a role on the whole
    /// workspace (`role:<id>:member`).
    #[derive(Debug, Clone)]
    enum Access {
        Scoped {
            choice: usize,
            resource: &'static str,
        },
        Wide {
            role: usize,
        },
    }

    fn access() -> impl Strategy<Value = Access> {
        prop_oneof![
            (0..CHOICES.len(), any::<prop::sample::Index>()).prop_map(|(choice, pick)| {
                let ids = CHOICES[choice].3;
                Access::Scoped {
                    choice,
                    resource: ids[pick.index(ids.len())],
                }
            }),
            (0..WORKSPACE_ROLES.len()).prop_map(|role| Access::Wide { role }),
        ]
    }

    fn writes(fake: &FakeSegment) -> usize {
        fake.requests().iter().filter(|r| r.method != "GET").count()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

        /// Granting then revoking one role (scoped, or on the whole workspace) leaves a user's
        /// and a group's permissions exactly as they were, labels included; a grant of what is
        /// already held writes nothing.
        #[test]
        fn grant_then_revoke_restores_permissions_exactly(user_perms in permission_set(), group_perms in permission_set(), access in access()) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async {
                let fake = fake(FakeConfig::demo()).await;
                fake.update_workspace(|w| {
                    w.users.iter_mut().find(|u| u.id == "usrHeidi").unwrap().permissions = user_perms.clone();
                    w.groups.iter_mut().find(|g| g.id == "grpContractors").unwrap().permissions = group_perms.clone();
                });
                let (role, ent) = match &access {
                    Access::Scoped { choice, resource } => {
                        let (role, name, kind, _) = CHOICES[*choice];
                        (role, entitlement(&kind.to_ascii_lowercase(), resource, &baton_segment_slug(name)))
                    }
                    Access::Wide { role } => {
                        let role = WORKSPACE_ROLES[*role].0;
                        (role, entitlement("role", role, "member"))
                    }
                };
                let connection = Connection::to(&fake.base_url(), Secret::new(TOKEN)).unwrap();
                for principal in [("user", "usrHeidi"), ("group", "grpContractors")] {
                    let before = fake.workspace();
                    let principal_resource = principal_resource(principal.0, principal.1);
                    let op = Operation::Grant(baton_segment::engine::contract::GrantOperation { principal: principal_resource.clone(), entitlement: ent.clone() });
                    let writes_before = writes(&fake);
                    let granted = provision::execute(runtime(), &connection, &op).await.unwrap();
                    let held_before = match &access {
                        Access::Scoped { choice, resource } => holds(&before, principal, role, CHOICES[*choice].2, resource),
                        Access::Wide { .. } => holds_wide(&before, principal, role, true),
                    };
                    prop_assert_eq!(matches!(granted, Outcome::AlreadyExists), held_before);
                    prop_assert_eq!(writes(&fake) - writes_before, usize::from(!held_before), "one write, or none when already held");
                    let grant = baton_segment::engine::contract::GrantRecord {
                        id: format!("{}:{}:{}", ent.id, principal.0, principal.1),
                        entitlement_id: ent.id.clone(),
                        entitlement_resource: ent.resource.clone(),
                        principal: principal_resource.id.clone(),
                        expandable: None,
                    };
                    let op = Operation::Revoke(baton_segment::engine::contract::RevokeOperation { grant, principal: principal_resource });
                    provision::execute(runtime(), &connection, &op).await.unwrap();
                    // What the grant wrote, the revoke takes back: the state is as before. Had
                    // the principal held it already, the revoke removes that, and on the whole
                    // workspace only the unrestricted role, never the same role restricted by labels.
                    let mut expected = before.clone();
                    if held_before {
                        match &access {
                            Access::Scoped { choice, resource } => remove(&mut expected, principal, role, CHOICES[*choice].2, resource, |_| true),
                            Access::Wide { .. } => remove(&mut expected, principal, role, "WORKSPACE", "wkspAcme01", |r| r.labels.is_empty()),
                        }
                    }
                    prop_assert_eq!(fake.workspace(), expected);
                    // Revoking again finds nothing to revoke and writes nothing, unless sync
                    // still shows the grant (the role restricted by labels, on the workspace).
                    let still_shown = matches!(access, Access::Wide { .. })
                        && holds_wide(&fake.workspace(), principal, role, false);
                    if !still_shown {
                        let writes_before = writes(&fake);
                        let again = provision::execute(runtime(), &connection, &op).await.unwrap();
                        prop_assert!(matches!(again, Outcome::AlreadyRevoked));
                        prop_assert_eq!(writes(&fake), writes_before);
                    }
                }
                Ok(())
            })?;
        }
    }

    fn baton_segment_slug(name: &str) -> String {
        name.to_ascii_lowercase().replace([' ', '-'], "_")
    }

    fn principal_resource(kind: &str, id: &str) -> baton_segment::engine::contract::Resource {
        use baton_segment::engine::contract::*;
        let email = if kind == "user" {
            vec![Email {
                address: "heidi@acme.test".into(),
                is_primary: true,
            }]
        } else {
            vec![]
        };
        let traits = if kind == "user" {
            vec![ResourceTrait::User(UserTrait {
                emails: email,
                login: String::new(),
                login_aliases: vec![],
                account_type: AccountType::Human,
                status: ResourceStatus::Enabled,
                profile: vec![],
            })]
        } else {
            vec![ResourceTrait::Group(GroupTrait { profile: vec![] })]
        };
        Resource {
            id: ResourceId {
                resource_type: kind.into(),
                resource: id.into(),
            },
            parent: Some(ResourceId {
                resource_type: "workspace".into(),
                resource: "wkspAcme01".into(),
            }),
            display_name: id.into(),
            description: String::new(),
            traits,
            profile: vec![],
            status: ResourceStatus::Enabled,
            child_resource_types: vec![],
            hints: SyncHints::empty(),
        }
    }

    fn perms_of<'a>(w: &'a mut Workspace, (kind, id): (&str, &str)) -> &'a mut Vec<Permission> {
        if kind == "user" {
            &mut w.users.iter_mut().find(|u| u.id == id).unwrap().permissions
        } else {
            &mut w
                .groups
                .iter_mut()
                .find(|g| g.id == id)
                .unwrap()
                .permissions
        }
    }

    fn holds(w: &Workspace, who: (&str, &str), role: &str, kind: &str, resource: &str) -> bool {
        let mut w = w.clone();
        perms_of(&mut w, who).iter().any(|p| {
            p.role_id == role
                && p.resources
                    .iter()
                    .any(|r| r.kind == kind && r.id == resource)
        })
    }

    /// Holds `role` on the whole workspace (`unrestricted`: without labels).
    fn holds_wide(w: &Workspace, who: (&str, &str), role: &str, unrestricted: bool) -> bool {
        let mut w = w.clone();
        perms_of(&mut w, who).iter().any(|p| {
            p.role_id == role
                && p.resources
                    .iter()
                    .any(|r| r.kind == "WORKSPACE" && (!unrestricted || r.labels.is_empty()))
        })
    }

    /// Takes `role` on `resource` away from `who`, where `which` says so of the resource.
    fn remove(
        w: &mut Workspace,
        who: (&str, &str),
        role: &str,
        kind: &str,
        resource: &str,
        which: impl Fn(&PermissionResource) -> bool,
    ) {
        let perms = perms_of(w, who);
        for p in perms.iter_mut().filter(|p| p.role_id == role) {
            p.resources
                .retain(|r| !(r.kind == kind && r.id == resource && which(r)));
        }
        perms.retain(|p| !p.resources.is_empty());
    }
}
