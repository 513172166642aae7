//! What the sandbox costs: the same connector logic on the same generated workspace, run
//! natively (no sandbox, one call at a time) and as the component through the host (one
//! instance and one request at a time, then four). Figures are printed, not asserted.
//!
//! Run with `cargo bench -p baton-segment --bench native_vs_component`.

use baton_segment::commands::connection::{Connection, segment_runtime};
use baton_segment::commands::sync::{self as app, SyncJob};
use baton_segment::sandbox::Secret;
use fakes::segment::{FakeConfig, FakeSegment, GenSpec, Workspace};
use segment_connector::native::{NativeEnv, walk};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let ws = Workspace::generate(
        3,
        GenSpec {
            users: 2000,
            groups: 150,
            invites: 100,
            sources: 80,
            warehouses: 5,
            functions: 30,
            spaces: 5,
        },
    );
    let fake = FakeSegment::start(FakeConfig::new("bench-token", ws))
        .await
        .unwrap();
    let runtime = segment_runtime(8).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Warm up both paths once (connection setup, allocator, the fake's caches).
    let base = fake.base_url();
    let native = tokio::task::spawn_blocking(move || {
        let env = NativeEnv::new(&base, "bench-token");
        walk(&env).unwrap();
        let t = Instant::now();
        let found = walk(&env).unwrap();
        (t.elapsed(), found)
    })
    .await
    .unwrap();
    let (native_time, found) = native;
    let requests_native = fake.requests().len() / 2;
    println!(
        "native, one call at a time:                 {:>6.2} s  ({} resources, {} entitlements, {} grants, ~{} requests)",
        native_time.as_secs_f64(),
        found.resources.len(),
        found.entitlements.len(),
        found.grants.len(),
        requests_native
    );

    for concurrency in [1usize, 4] {
        let connection = Connection::to(&fake.base_url(), Secret::new("bench-token")).unwrap();
        let mut job = SyncJob::with(connection, dir.path().join(format!("c{concurrency}.c1z")));
        job.connection.concurrency = concurrency;
        let whole = std::time::Instant::now();
        let summary = app::sync_on(&runtime, job).await.unwrap();
        let whole = whole.elapsed();
        println!(
            "component, {concurrency} instance(s) and request(s) at once: {:>6.2} s  ({:.2}x native; {} requests; sync engine time, grant expansion included, .c1z writing not)",
            summary.elapsed.as_secs_f64(),
            summary.elapsed.as_secs_f64() / native_time.as_secs_f64(),
            summary.net.requests
        );
        println!(
            "whole job (sync and .c1z file), {concurrency} at once: {:.2} s",
            whole.as_secs_f64()
        );
    }
}
