//! The sandbox holds with the real component: it reaches only the allowed origin, cannot set
//! `Authorization`, and never sees the token, which the host adds on the way out.

mod common;

use baton_segment::engine::contract::ConnectorError;
use baton_segment::engine::host_state::RunContext;
use baton_segment::engine::session::SessionStore;
use baton_segment::sandbox::{HttpPolicy, RunNetwork, Secret};
use common::*;
use fakes::segment::FakeConfig;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A run whose component is configured with `config`, while the sandbox only allows
/// `allowed_url` and injects `token` there.
fn run(config: &[(&str, &str)], allowed_url: &str, token: &str) -> Arc<RunContext> {
    let policy = HttpPolicy::for_base_url(allowed_url, Some(Secret::new(token))).unwrap();
    Arc::new(RunContext {
        label: "sandbox-test".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        session: SessionStore::new(1 << 20),
        network: RunNetwork::new(policy),
        limits: None,
        meter: Default::default(),
    })
}

/// A TCP listener that counts the connections it gets.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_another_origin_is_denied_before_it_leaves_the_host() {
    let fake = fake(FakeConfig::demo()).await;
    let (other, connections) = counting_listener().await;
    let run = run(&[("base-url", &other)], &fake.base_url(), TOKEN);
    let mut instance = runtime().instantiate(run.clone()).await.unwrap();
    let answer = instance.validate().await.expect("no trap");
    match answer {
        Err(ConnectorError::PermissionDenied(m)) => assert!(m.contains("HttpRequestDenied"), "{m}"),
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "nothing reached the other origin"
    );
    assert_eq!(run.network.stats.snapshot().denied, 1);
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_is_not_the_allowed_loopback_address() {
    let fake = fake(FakeConfig::demo()).await;
    let port = fake.addr().port();
    let run = run(
        &[("base-url", &format!("http://localhost:{port}"))],
        &fake.base_url(),
        TOKEN,
    );
    let mut instance = runtime().instantiate(run).await.unwrap();
    assert!(matches!(
        instance.validate().await.unwrap(),
        Err(ConnectorError::PermissionDenied(_))
    ));
    assert!(
        fake.requests().is_empty(),
        "the same server under another name stays unreachable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_cannot_set_authorization() {
    let fake = fake(FakeConfig::demo()).await;
    // The connector sends its own Authorization header when it is given a token setting.
    let run = run(
        &[
            ("base-url", &fake.base_url()),
            ("token", "a-token-the-guest-chose"),
        ],
        &fake.base_url(),
        TOKEN,
    );
    let mut instance = runtime().instantiate(run).await.unwrap();
    match instance.validate().await.unwrap() {
        Err(ConnectorError::PermissionDenied(m)) => assert!(
            m.contains("header was refused") && m.contains("Forbidden"),
            "{m}"
        ),
        other => panic!("expected the header to be refused, got {other:?}"),
    }
    assert!(
        fake.requests().is_empty(),
        "the request was refused before sending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_reaches_segment_but_nothing_the_component_returns() {
    let token = "tok-4c1e-very-secret-segment-token";
    let mut cfg = FakeConfig::demo();
    cfg.token = token.into();
    let fake = fake(cfg).await;
    let dir = temp_dir();
    let summary = baton_segment::commands::sync::sync_on(runtime(), job(&fake, token, &out(&dir)))
        .await
        .unwrap();

    let requests = fake.requests();
    assert!(!requests.is_empty());
    let expected = format!("Bearer {token}");
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(expected.as_str())),
        "every request carried the host's token"
    );

    // Not in the .c1z (decompressed database, every byte), not in the summary.
    let c1z = Synced::open(&out(&dir));
    let mut db = vec![];
    std::fs::File::open(c1z.reader.db_path())
        .unwrap()
        .read_to_end(&mut db)
        .unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
    assert!(!summary.to_string().contains(token));
    assert!(
        !format!("{:?}", job(&fake, token, &out(&dir))).contains(token),
        "Debug output redacts the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_the_size_cap_do_not_reach_the_component() {
    let fake = fake(FakeConfig::demo()).await;
    let mut policy = HttpPolicy::for_base_url(&fake.base_url(), Some(Secret::new(TOKEN))).unwrap();
    policy.max_response_bytes = 512;
    let run = Arc::new(RunContext {
        label: "cap-test".into(),
        config: BTreeMap::from([("base-url".to_string(), fake.base_url())]),
        session: SessionStore::new(1 << 20),
        network: RunNetwork::new(policy),
        limits: None,
        meter: Default::default(),
    });
    let mut instance = runtime().instantiate(run).await.unwrap();
    // GET / is small and passes; the user list is larger than 512 bytes.
    instance
        .validate()
        .await
        .unwrap()
        .expect("a small answer passes");
    let ws = baton_segment::engine::contract::ResourceId {
        resource_type: "workspace".into(),
        resource: "wkspAcme01".into(),
    };
    match instance
        .list_resources("user", Some(&ws), "")
        .await
        .unwrap()
    {
        Err(ConnectorError::Internal(m)) => assert!(
            m.contains("GET /users") && m.contains("larger than the host allows"),
            "{m}"
        ),
        other => panic!("expected the cap to stop the answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_never_exceed_the_configured_number() {
    let mut cfg = FakeConfig::demo();
    // Every answer takes a while, so requests the host lets go overlap at the fake.
    cfg.latency = std::time::Duration::from_millis(150);
    let fake = fake(cfg).await;
    let dir = temp_dir();
    let mut job = job(&fake, TOKEN, &out(&dir));
    job.connection.concurrency = 3;
    baton_segment::commands::sync::sync_on(runtime(), job)
        .await
        .unwrap();
    let peak = fake.peak_in_flight();
    assert!(peak <= 3, "at most 3 requests in flight, saw {peak}");
    assert!(peak >= 2, "the work did run in parallel (peak {peak})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_segment_are_kept_open_and_reused() {
    let fake = fake(FakeConfig::demo()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let target = fake.addr();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let dir = temp_dir();
    let connection =
        baton_segment::commands::connection::Connection::to(&url, Secret::new(TOKEN)).unwrap();
    let mut job = baton_segment::commands::sync::SyncJob::with(connection, out(&dir));
    job.connection.concurrency = 2;
    let summary = baton_segment::commands::sync::sync_on(runtime(), job)
        .await
        .unwrap();
    let connections = accepted.load(Ordering::SeqCst);
    assert_eq!(summary.net.requests, 29);
    assert!(
        connections <= 4,
        "{} requests over {connections} connections",
        summary.net.requests
    );
}
