//! A feature the workspace's plan lacks is skipped with a warning naming it; the sync succeeds
//! with everything else.

mod common;

use common::*;
use fakes::segment::{FakeConfig, Plan};

async fn sync_with(
    plan: Plan,
    function_types: Option<&[&str]>,
) -> (
    baton_segment::commands::summary::SyncSummary,
    Synced,
    tempfile::TempDir,
) {
    let mut cfg = FakeConfig::demo();
    cfg.plan = plan;
    if let Some(types) = function_types {
        cfg.accepted_function_types = types.iter().map(|s| s.to_string()).collect();
    }
    let fake = fake(cfg).await;
    let dir = temp_dir();
    let summary = sync(&fake, &out(&dir))
        .await
        .expect("a missing feature does not fail the sync");
    let c1z = Synced::open(&out(&dir));
    (summary, c1z, dir)
}

fn count(c1z: &Synced, resource_type: &str) -> usize {
    c1z.resource_keys()
        .iter()
        .filter(|k| k.starts_with(&format!("{resource_type}:")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_user_groups() {
    let (summary, c1z, _dir) = sync_with(
        Plan {
            groups: false,
            ..Plan::default()
        },
        None,
    )
    .await;
    assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
    let w = &summary.warnings[0];
    assert!(
        w.starts_with("User groups are not available")
            && w.contains("Your plan does not include User Groups"),
        "{w}"
    );
    assert_eq!(count(&c1z, "group"), 0);
    assert_eq!(count(&c1z, "user"), 8);
    assert!(
        c1z.grant_ids()
            .iter()
            .all(|g| !g.contains(":group:") && !g.starts_with("group:"))
    );
    // Users' own role grants are all there.
    assert!(
        c1z.grant_ids()
            .contains(&"source:srcServer:data_steward:user:usrErin".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_spaces_warehouses_or_functions() {
    let (summary, c1z, _dir) = sync_with(
        Plan {
            spaces: false,
            warehouses: false,
            functions: false,
            ..Plan::default()
        },
        None,
    )
    .await;
    let joined = summary.warnings.join("\n");
    // Three features, and the users' permissions on them, which have no entitlement to point at.
    assert_eq!(summary.warnings.len(), 4, "{joined}");
    for feature in [
        "Spaces are not available",
        "Warehouses are not available",
        "Functions are not available",
    ] {
        assert!(joined.contains(feature), "{feature} in {joined}");
    }
    for t in ["space", "warehouse", "function"] {
        assert_eq!(count(&c1z, t), 0, "{t}");
    }
    assert_eq!(count(&c1z, "source"), 4);
    assert_eq!(count(&c1z, "group"), 4);
    // The grants on spaces, warehouses and functions had nowhere to go and are reported.
    assert!(c1z.grant_ids().iter().all(|g| !g.starts_with("space:")
        && !g.starts_with("function:")
        && !g.starts_with("warehouse:")));
    assert!(
        summary.warnings[3].contains("named an entitlement the connector never listed"),
        "{joined}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_types_the_api_version_rejects_are_skipped() {
    let (summary, c1z, _dir) = sync_with(Plan::default(), Some(&["SOURCE", "DESTINATION"])).await;
    assert_eq!(summary.warnings.len(), 3, "{:?}", summary.warnings);
    for kind in [
        "INSERT_DESTINATION",
        "INSERT_SOURCE",
        "INSERT_TRANSFORMATION",
    ] {
        assert!(
            summary
                .warnings
                .iter()
                .any(|w| w.contains(&format!("resourceType {kind} were skipped"))),
            "{kind}"
        );
    }
    let mut functions: Vec<String> = c1z
        .resource_keys()
        .into_iter()
        .filter(|k| k.starts_with("function:"))
        .collect();
    functions.sort();
    assert_eq!(functions, ["function:sfnc_enrich", "function:sfnc_slack"]);
}
