//! What the component promises any host (`wit/connector.wit`), shown with the real component:
//!
//! * the session store is a cache: a host whose store forgets what it accepted (here, one that
//!   keeps only its newest entries) still gets every resource, entitlement and grant, at the
//!   cost of requests;
//! * every request with a body states its `Content-Length` (a host that would send it chunked
//!   may meet a server that ignores chunked bodies);
//! * it never asks for its environment, arguments or working directory (the hostile
//!   component's `read-token`, which does, is the counter's control: `hostile_server.rs`).

mod common;

use baton_segment::commands::connection::Connection;
use baton_segment::commands::provision::{self, Lookup};
use baton_segment::commands::sync::{self as app, SyncJob};
use baton_segment::engine::host_state::RunContext;
use baton_segment::engine::session::SessionStore;
use baton_segment::sandbox::{RunNetwork, Secret};
use common::*;
use fakes::echo::{EchoMode, EchoServer};
use fakes::segment::{FakeConfig, FakeSegment};
use std::path::Path;
use std::sync::Arc;

/// A sync of `fake` whose session store keeps at most `keep` entries (`None`: all of them).
async fn sync_keeping(fake: &FakeSegment, keep: Option<usize>, output: &Path) -> (Synced, u64) {
    let connection = Connection::to(&fake.base_url(), Secret::new(TOKEN)).unwrap();
    let config = connection.run_context(connection.policy()).config.clone();
    let run = Arc::new(RunContext {
        label: "evicting".into(),
        config,
        session: match keep {
            None => SessionStore::new(64 << 20),
            Some(keep) => SessionStore::evicting(64 << 20, keep),
        },
        network: RunNetwork::new(connection.policy()),
        limits: None,
        meter: Default::default(),
    });
    let summary = app::sync_in(
        runtime(),
        SyncJob::with(connection, output),
        run.clone(),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("keeping {keep:?}: {e:#}"));
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    (Synced::open(output), run.network.stats.snapshot().requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_store_that_evicts_costs_requests_never_grants() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    let (full, full_requests) = sync_keeping(&fake, None, &dir.path().join("full.c1z")).await;
    let expected = (
        sorted(full.resource_keys()),
        sorted(full.entitlement_ids()),
        sorted(full.grant_ids()),
    );
    assert_eq!(expected.2.len(), 44);
    for keep in [0, 1, 3, 5] {
        let path = dir.path().join(format!("keep-{keep}.c1z"));
        let (synced, requests) = sync_keeping(&fake, Some(keep), &path).await;
        let got = (
            sorted(synced.resource_keys()),
            sorted(synced.entitlement_ids()),
            sorted(synced.grant_ids()),
        );
        assert_eq!(got, expected, "keeping {keep} entries");
        assert!(
            requests > full_requests,
            "keeping {keep}: {requests} requests, {full_requests} with a store that keeps everything"
        );
        eprintln!(
            "[session] keeping {keep:>2} entries: {requests} requests ({full_requests} keeping all)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_body_states_its_length() {
    let fake = fake(FakeConfig::demo()).await;
    let echo = EchoServer::start(&fake.base_url(), EchoMode::Ok)
        .await
        .unwrap();
    let dir = temp_dir();
    let c1z = dir.path().join("sync.c1z");
    app::sync_on(
        runtime(),
        SyncJob::with(
            Connection::to(&echo.base_url(), Secret::new(TOKEN)).unwrap(),
            &c1z,
        ),
    )
    .await
    .unwrap();
    let lookup = Lookup::open(&c1z).unwrap();
    let connection = Connection::to(&echo.base_url(), Secret::new(TOKEN)).unwrap();
    for op in [
        lookup
            .grant("group:grpEng:member", "usrGrace", "user")
            .unwrap(),
        lookup
            .revoke("role:roleWsOwner:member:user:usrAlice")
            .unwrap(),
    ] {
        provision::execute(runtime(), &connection, &op)
            .await
            .unwrap();
    }
    let writes: Vec<String> = echo
        .echoed()
        .into_iter()
        .filter(|e| !e.starts_with("GET "))
        .collect();
    assert!(writes.len() >= 2, "{writes:#?}");
    for write in writes {
        let (head, body) = write.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}\r\n", body.len())),
            "{head}"
        );
        assert!(!head.contains("transfer-encoding"), "{head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_component_never_looks_at_its_environment() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    let connection = Connection::to(&fake.base_url(), Secret::new(TOKEN)).unwrap();
    let run = connection.run_context(connection.policy());
    app::sync_in(
        runtime(),
        SyncJob::with(connection, out(&dir)),
        run.clone(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        run.meter.environment_reads(),
        0,
        "no environment variable, argument or working directory was asked for"
    );
}
