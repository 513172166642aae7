//! The same connector logic, run natively and as the sandboxed component, must find the same
//! workspace: the sandbox changes where the code runs, never what it finds.

mod common;

use baton::annotations::contains;
use baton::pb;
use common::*;
use fakes::segment::{FakeConfig, GenSpec, Workspace};
use segment_connector::native::{NativeEnv, walk};

async fn compare(cfg: FakeConfig) {
    let token = cfg.token.clone();
    let fake = fake(cfg).await;
    let base = fake.base_url();
    let native = tokio::task::spawn_blocking(move || {
        walk(&NativeEnv::new(&base, &token)).expect("the native walk succeeds")
    })
    .await
    .unwrap();

    let dir = temp_dir();
    let mut job = job(&fake, TOKEN, &out(&dir));
    job.connection.concurrency = 3;
    baton_segment::commands::sync::sync_on(runtime(), job)
        .await
        .unwrap();
    let c1z = Synced::open(&out(&dir));
    let direct: Vec<String> = c1z
        .grants()
        .into_iter()
        .filter(|g| !contains::<pb::GrantImmutable>(&g.grant.annotations))
        .map(|g| g.grant.id)
        .collect();

    assert!(!native.resources.is_empty());
    assert_eq!(
        sorted(c1z.resource_keys()),
        sorted(native.resources.clone())
    );
    assert_eq!(
        sorted(c1z.entitlement_ids()),
        sorted(native.entitlements.clone())
    );
    assert_eq!(sorted(direct), sorted(native.grants.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_component_agree_on_the_demo_workspace() {
    compare(FakeConfig::demo()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_component_agree_on_a_generated_workspace() {
    let ws = Workspace::generate(
        11,
        GenSpec {
            users: 320,
            groups: 40,
            invites: 30,
            sources: 25,
            warehouses: 3,
            functions: 10,
            spaces: 3,
        },
    );
    compare(FakeConfig::new(TOKEN, ws)).await;
}
