//! A generated workspace larger than one page of everything: every page is read, each cursor
//! once, and the counts match the workspace.

mod common;

use common::*;
use fakes::segment::{FakeConfig, Fault, FaultKind, GenSpec, Workspace};
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_a_large_workspace_is_read_once() {
    let ws = Workspace::generate(
        7,
        GenSpec {
            users: 450,
            groups: 210,
            invites: 230,
            sources: 205,
            warehouses: 3,
            functions: 12,
            spaces: 4,
        },
    );
    let fake = fake(FakeConfig::new(TOKEN, ws.clone())).await;
    let dir = temp_dir();
    let summary = sync(&fake, &out(&dir)).await.unwrap();
    let counts: std::collections::HashMap<_, _> =
        summary.resources_by_type.iter().cloned().collect();
    assert_eq!(counts["user"], 450);
    assert_eq!(counts["group"], 210);
    assert_eq!(counts["invite"], 230);
    assert_eq!(counts["source"], 205);
    assert_eq!(counts["role"], ws.roles.len());

    let requests = fake.requests();
    let pages = |path: &str| requests.iter().filter(|r| r.path == path).count();
    assert_eq!(pages("/users"), 3);
    assert_eq!(pages("/groups"), 2);
    assert_eq!(pages("/invites"), 2);
    assert_eq!(pages("/sources"), 2);
    let cursors: Vec<String> = requests
        .iter()
        .filter(|r| r.path == "/users")
        .map(|r| {
            r.query_pairs()
                .into_iter()
                .find(|(k, _)| k == "pagination[cursor]")
                .map(|(_, v)| v)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        cursors.iter().collect::<HashSet<_>>().len(),
        3,
        "no cursor repeated: {cursors:?}"
    );
    // Each user's permissions are asked for once, whether with its own page or ahead of it
    // (to fill the slots a page's last round leaves free).
    let per_user: Vec<&str> = requests
        .iter()
        .filter(|r| r.path.starts_with("/users/"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(per_user.len(), 450);
    assert_eq!(per_user.iter().collect::<HashSet<_>>().len(), 450);

    let c1z = Synced::open(&out(&dir));
    let grants = c1z.grant_ids();
    let members: usize = ws
        .groups
        .iter()
        .map(|g| g.member_emails.len() + g.invite_emails.len())
        .sum();
    assert_eq!(
        grants
            .iter()
            .filter(|g| g.starts_with("group:") && g.contains(":member:"))
            .count(),
        members
    );
    assert_eq!(
        grants
            .iter()
            .filter(|g| g.starts_with("workspace:"))
            .count(),
        450
    );
    // Every grant's entitlement exists.
    let entitlements: HashSet<String> = c1z.entitlement_ids().into_iter().collect();
    for g in c1z.grants() {
        assert!(entitlements.contains(&g.grant.entitlement.unwrap().id));
    }
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
}

/// One instance serves a whole sync: thousands of requests must not use up what the host
/// allows an instance to hold at once (its resource table: 2048 entries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_sync_in_one_instance_does_not_exhaust_its_resources() {
    let ws = Workspace::generate(
        5,
        GenSpec {
            users: 2300,
            groups: 3,
            invites: 1,
            sources: 2,
            warehouses: 1,
            functions: 1,
            spaces: 1,
        },
    );
    let fake = fake(FakeConfig::new(TOKEN, ws)).await;
    let dir = temp_dir();
    let mut job = job(&fake, TOKEN, &out(&dir));
    job.connection.concurrency = 1;
    let summary = baton_segment::commands::sync::sync_on(runtime(), job)
        .await
        .expect("the sync completes");
    assert!(
        summary.net.requests > baton_segment::engine::host_state::MAX_RESOURCES as u64,
        "{}",
        summary.net.requests
    );
    assert_eq!(
        summary
            .resources_by_type
            .iter()
            .find(|(t, _)| t == "user")
            .unwrap()
            .1,
        2300
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_form_a_cycle_stop_the_sync_instead_of_looping() {
    let ws = Workspace::generate(
        3,
        GenSpec {
            users: 250,
            groups: 1,
            invites: 1,
            sources: 1,
            warehouses: 1,
            functions: 1,
            spaces: 1,
        },
    );
    let fake = fake(FakeConfig::new(TOKEN, ws)).await;
    // The second (last) page of users points back to the first: page 1 → 2 → 1 → 2 …
    // Each page looks fine on its own; only the listing as a whole repeats a cursor.
    fake.inject(Fault::on(
        Some("GET"),
        "/users",
        FaultKind::LastPageLoopsTo("MA==".into()),
        100,
    ));
    let dir = temp_dir();
    std::fs::write(out(&dir), b"the previous sync").unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), sync(&fake, &out(&dir)))
        .await
        .expect("the sync stops instead of looping")
        .expect_err("a cycle of pages is an error");
    let text = format!("{err:#}");
    assert!(
        text.contains("list-resources(user") && text.contains("a second time"),
        "{text}"
    );
    let user_pages = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/users")
        .count();
    assert!(user_pages <= 4, "{user_pages} pages of users read");
    assert_eq!(std::fs::read(out(&dir)).unwrap(), b"the previous sync");
}
