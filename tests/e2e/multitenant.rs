//! Many tenants in one host process: hostile tenants run side by side with well-behaved ones;
//! each attack is contained with a clear error for that tenant alone, and the well-behaved
//! tenants' `.c1z` files hold exactly what a solo run writes.

mod common;
mod guests;

use baton_segment::engine::{Runtime, RuntimeLimits};
use baton_segment::sandbox::{AddressClass, AddressPolicy, Origin};
use baton_segment::serve::config::{Tenant, TenantLimits, TokenSource};
use baton_segment::serve::{self, ServeOptions};
use common::*;
use fakes::segment::FakeConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Loopback servers for the attacks: one that never answers, one that sends a 10 MiB body, one
/// that counts the connections it gets (outside every allowlist, or a flood's target), and one
/// that takes 50 ms per answer and records how many requests it held at once.
#[derive(Clone, Copy)]
enum Behaviour {
    Silent,
    Huge,
    Counting,
    Slow,
}

/// What a server saw: connections in all, and the most requests it held at once.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

async fn server(behaviour: Behaviour) -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let counters = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counters.connections.fetch_add(1, Ordering::SeqCst);
            let counters = counters.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                match behaviour {
                    Behaviour::Slow => {
                        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        counters.peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        counters.in_flight.fetch_sub(1, Ordering::SeqCst);
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}")
                            .await;
                    }
                    Behaviour::Silent => tokio::time::sleep(Duration::from_secs(3600)).await,
                    Behaviour::Huge => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n")
                            .await;
                        let chunk = vec![b'x'; 64 * 1024];
                        for _ in 0..160 {
                            if socket.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                    }
                    Behaviour::Counting => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                            .await;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// The hostile component, written to `dir` for tenants that name it as their `connector`.
fn hostile_wasm_in(dir: &Path) -> PathBuf {
    let path = dir.join("hostile.wasm");
    std::fs::write(&path, guests::hostile_wasm()).unwrap();
    path
}

fn token_file(dir: &Path, token: &str) -> TokenSource {
    let path = dir.join(format!("token-{}", token.len()));
    std::fs::write(&path, token).unwrap();
    TokenSource::File(path)
}

fn limits(base_url: &str) -> TenantLimits {
    TenantLimits {
        memory_bytes: 128 << 20,
        cpu_per_call: Duration::from_secs(10),
        wall_per_call: Duration::from_secs(60),
        wall_per_sync: Duration::from_secs(120),
        concurrent_requests: 4,
        request_budget: None,
        response_max_bytes: 32 << 20,
        session_bytes: 64 << 20,
        allowed_origins: vec![Origin::parse(base_url).unwrap()],
        // What an operator allows with `--tenant-allow-addresses loopback`: the fakes are on
        // 127.0.0.1.
        addresses: AddressPolicy::public_and(&[AddressClass::Loopback]),
    }
}

fn good(id: &str, base_url: &str, dir: &Path) -> Tenant {
    Tenant {
        id: id.into(),
        origin: baton_segment::sandbox::Origin::parse(base_url).unwrap(),
        token: token_file(dir, TOKEN),
        output: dir.join(format!("{id}.c1z")),
        interval: Duration::from_secs(3600),
        connector: None,
        settings: BTreeMap::new(),
        limits: limits(base_url),
    }
}

/// A tenant running the hostile component with `attack`, under tight limits.
fn hostile(
    id: &str,
    attack: &str,
    base_url: &str,
    dir: &Path,
    wasm: &Path,
    extra: &[(&str, &str)],
) -> Tenant {
    let mut settings: BTreeMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    settings.insert("attack".into(), attack.into());
    let mut limits = limits(base_url);
    limits.memory_bytes = 32 << 20;
    limits.cpu_per_call = Duration::from_millis(300);
    limits.wall_per_call = Duration::from_secs(2);
    limits.wall_per_sync = Duration::from_secs(20);
    limits.response_max_bytes = 1 << 20;
    Tenant {
        id: id.into(),
        origin: baton_segment::sandbox::Origin::parse(base_url).unwrap(),
        token: token_file(dir, TOKEN),
        output: dir.join(format!("{id}.c1z")),
        interval: Duration::from_secs(3600),
        connector: Some(wasm.to_path_buf()),
        settings,
        limits,
    }
}

/// Everything a `.c1z` holds, without what differs between runs (sync id, timestamps).
/// The rows of the file's latest sync, by table and id (the order rows were stored in depends on
/// which listing answered first).
fn contents(path: &Path) -> Vec<(String, Vec<u8>)> {
    let c1z = Synced::open(path);
    let sync = c1z.reader.latest_sync().unwrap().sync_id;
    let conn = rusqlite::Connection::open(c1z.reader.db_path()).unwrap();
    let mut rows = vec![];
    for table in [
        "v1_resource_types",
        "v1_resources",
        "v1_entitlements",
        "v1_grants",
    ] {
        let mut stmt = conn
            .prepare(&format!(
                "select external_id, data from {table} where sync_id = ?1 order by external_id"
            ))
            .unwrap();
        let mapped = stmt
            .query_map([&sync], |r| {
                Ok((
                    format!("{table}/{}", r.get::<_, String>(0)?),
                    r.get::<_, Vec<u8>>(1)?,
                ))
            })
            .unwrap();
        rows.extend(mapped.map(Result::unwrap));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tenants_are_contained_and_the_others_are_untouched() {
    let fake = fake(FakeConfig::demo()).await;
    let base = fake.base_url();
    let dir = temp_dir();
    let wasm_path = hostile_wasm_in(dir.path());

    // What a well-behaved tenant writes when it runs alone.
    let solo = serve::run(
        ServeOptions::once(vec![good("solo", &base, dir.path())]),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(solo.failures.is_empty(), "{:?}", solo.failures);
    let expected = contents(&dir.path().join("solo.c1z"));
    assert_eq!(
        expected
            .iter()
            .filter(|(k, _)| k.starts_with("v1_grants/"))
            .count(),
        44
    );

    let (silent, _) = server(Behaviour::Silent).await;
    let (huge, _) = server(Behaviour::Huge).await;
    let (outside, outside_seen) = server(Behaviour::Counting).await;
    let (flood_target, flood_seen) = server(Behaviour::Counting).await;
    let (slow_target, slow_seen) = server(Behaviour::Slow).await;
    let authority = base.trim_start_matches("http://").to_string();
    let port = fake.addr().port();
    let localhost = format!("http://localhost:{port}/");
    let w = wasm_path.as_path();
    let d = dir.path();
    let with_origin = |mut t: Tenant, url: &str| {
        t.limits.allowed_origins.push(Origin::parse(url).unwrap());
        t
    };
    let mut session_flood = hostile("session-flood", "session-flood", &base, d, w, &[]);
    session_flood.limits.session_bytes = 1 << 20;
    let mut flood = with_origin(
        hostile(
            "flood",
            "flood",
            &base,
            d,
            w,
            &[("target", &flood_target), ("count", "200")],
        ),
        &flood_target,
    );
    flood.limits.request_budget = Some(20);
    // A flood with no budget to stop it: held to its 4 requests in flight.
    let in_flight_flood = with_origin(
        hostile(
            "in-flight-flood",
            "flood",
            &base,
            d,
            w,
            &[("target", &slow_target), ("count", "40")],
        ),
        &slow_target,
    );
    assert_eq!(in_flight_flood.limits.concurrent_requests, 4);
    let tenants = vec![
        good("good-a", &base, d),
        hostile("spin", "spin", &base, d, w, &[]),
        with_origin(
            hostile("hang", "hang", &base, d, w, &[("target", &silent)]),
            &silent,
        ),
        with_origin(
            hostile(
                "spin-after-hang",
                "spin-after-hang",
                &base,
                d,
                w,
                &[("target", &silent)],
            ),
            &silent,
        ),
        hostile("memory-bomb", "memory-bomb", &base, d, w, &[]),
        good("good-b", &base, d),
        hostile("recursion", "recursion", &base, d, w, &[]),
        hostile(
            "other-origin",
            "fetch",
            &base,
            d,
            w,
            &[("target", &outside)],
        ),
        hostile("localhost", "fetch", &base, d, w, &[("target", &localhost)]),
        hostile(
            "absolute-form",
            "absolute-form",
            &base,
            d,
            w,
            &[
                ("allowed-authority", &authority),
                ("target", &format!("{outside}/steal")),
            ],
        ),
        hostile(
            "set-authorization",
            "set-authorization",
            &base,
            d,
            w,
            &[("target", &base)],
        ),
        with_origin(
            hostile(
                "huge-response",
                "huge-response",
                &base,
                d,
                w,
                &[("target", &huge)],
            ),
            &huge,
        ),
        flood,
        in_flight_flood,
        session_flood,
        good("good-c", &base, d),
    ];
    let report = serve::run(ServeOptions::once(tenants), std::future::pending())
        .await
        .unwrap();

    let failures: BTreeMap<String, String> = report.failures.into_iter().collect();
    for (t, m) in &failures {
        println!("[multitenant] {t}: {m}");
    }
    let expect = |tenant: &str, words: &[&str]| {
        let message = failures
            .get(tenant)
            .unwrap_or_else(|| panic!("{tenant} should have failed: {failures:?}"));
        for w in words {
            assert!(message.contains(w), "{tenant}: {w:?} in {message}");
        }
    };
    expect("spin", &["CPU budget"]);
    expect("hang", &["did not finish validate within 2 s"]);
    expect("spin-after-hang", &["CPU budget"]);
    expect("memory-bomb", &["memory limit of 32 MiB"]);
    expect("recursion", &["stopped during validate"]);
    let recursion = &failures["recursion"];
    assert!(
        recursion.contains("overflowed its call stack") || recursion.contains("out of bounds"),
        "{recursion}"
    );
    expect("other-origin", &["HttpRequestDenied"]);
    expect("localhost", &["HttpRequestDenied"]);
    expect("absolute-form", &["set-path-with-query refused"]);
    expect("set-authorization", &["Forbidden"]);
    expect("huge-response", &["size exceeds limit"]);
    expect("flood", &["ConnectionLimitReached"]);
    expect("in-flight-flood", &["started: 40", "ok: 40"]);
    expect(
        "session-flood",
        &["the session store is full (1048576 bytes at most)"],
    );
    assert_eq!(
        failures.len(),
        13,
        "only the hostile tenants failed: {failures:?}"
    );

    // Nothing reached the origin no tenant may use; the flood stopped at its budget; the
    // other flood never had more than its 4 requests at the server at once.
    assert_eq!(outside_seen.connections.load(Ordering::SeqCst), 0);
    let flooded = flood_seen.connections.load(Ordering::SeqCst);
    assert!(flooded <= 20, "{flooded}");
    let peak = slow_seen.peak.load(Ordering::SeqCst);
    assert!((2..=4).contains(&peak), "in flight at once: {peak}");
    assert_eq!(slow_seen.connections.load(Ordering::SeqCst), 40);
    // Failed tenants wrote nothing; the others wrote exactly what a solo run writes.
    for t in failures.keys() {
        assert!(!dir.path().join(format!("{t}.c1z")).exists(), "{t}");
    }
    for t in ["good-a", "good-b", "good-c"] {
        assert_eq!(
            contents(&dir.path().join(format!("{t}.c1z"))),
            expected,
            "{t} matches the solo run"
        );
    }
    // Each tenant has its own metrics.
    let metrics = report.metrics.render();
    assert!(
        metrics.contains("baton_segment_tenant_last_run_success{tenant=\"good-b\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("baton_segment_tenant_last_run_success{tenant=\"spin\"} 0"));
    assert!(
        metrics.contains("baton_segment_tenant_denied_requests_total{tenant=\"other-origin\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_finds_nothing_of_the_previous_tenant_in_a_reused_memory_slot() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    // One pool slot: the second tenant's instance takes the first one's memory slot.
    let runtime = Runtime::new(
        guests::hostile_wasm(),
        RuntimeLimits {
            max_instances: 1,
            memory_bytes: 64 << 20,
            ..RuntimeLimits::default()
        },
    )
    .unwrap();
    let program = runtime.program().clone();
    let wasm = hostile_wasm_in(dir.path());
    let marker = "TENANT-A-SECRET-MARKER-7731";
    let writer = hostile(
        "tenant-a",
        "write-marker",
        &fake.base_url(),
        dir.path(),
        &wasm,
        &[("marker", marker)],
    );
    let report = serve::run_tenant(&runtime, &program, &writer).await;
    // The marker writer "succeeds" at validate and is then an empty connector.
    assert!(report.error.is_none(), "{:?}", report.error);
    let pool = runtime
        .engine()
        .pooling_allocator_metrics()
        .expect("pooling");
    let warm = pool.unused_warm_memories();
    assert!(warm >= 1, "the writer's memory slot is warm");
    let scanner = hostile(
        "tenant-b",
        "scan-memory",
        &fake.base_url(),
        dir.path(),
        &wasm,
        &[("marker", marker)],
    );
    let report = serve::run_tenant(&runtime, &program, &scanner).await;
    // No slot was used that had not been before: the scanner ran in the writer's.
    assert_eq!(
        pool.unused_warm_memories(),
        warm,
        "the scanner reused a warm slot"
    );
    let message = report.error.expect("the scanner reports what it found");
    assert!(
        message.contains(" 0 hits") || message.contains("hits: 0"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_scanner_side_by_side_with_a_good_tenant_finds_nothing_and_changes_nothing() {
    let fake = fake(FakeConfig::demo()).await;
    let base = fake.base_url();
    let dir = temp_dir();
    let wasm = hostile_wasm_in(dir.path());
    // One engine and pool for all, as `serve` has: the Segment connector and the hostile one.
    let runtime = Runtime::new(
        baton_segment::engine::contract::SEGMENT_CONNECTOR_WASM,
        RuntimeLimits {
            max_instances: 8,
            memory_bytes: 64 << 20,
            ..RuntimeLimits::default()
        },
    )
    .unwrap();
    let segment = runtime.program().clone();
    let hostile_program = runtime.load(guests::hostile_wasm(), None).unwrap();
    let solo = serve::run_tenant(&runtime, &segment, &good("solo", &base, dir.path())).await;
    assert!(solo.success, "{:?}", solo.error);
    let expected = contents(&dir.path().join("solo.c1z"));

    // The marker goes into a slot; the pool hands a freed slot to the next instance of the same
    // component first, so the scanner runs where the writer ran, while a good tenant syncs.
    let marker = "TENANT-A-SECRET-MARKER-9152";
    let writer = hostile(
        "writer",
        "write-marker",
        &base,
        dir.path(),
        &wasm,
        &[("marker", marker)],
    );
    let wrote = serve::run_tenant(&runtime, &hostile_program, &writer).await;
    assert!(wrote.error.is_none(), "{:?}", wrote.error);
    let scanner = hostile(
        "scanner",
        "scan-memory",
        &base,
        dir.path(),
        &wasm,
        &[("marker", marker)],
    );
    let neighbour = good("neighbour", &base, dir.path());
    let (scanned, synced) = tokio::join!(
        serve::run_tenant(&runtime, &hostile_program, &scanner),
        serve::run_tenant(&runtime, &segment, &neighbour),
    );
    let message = scanned.error.expect("the scanner reports what it found");
    assert!(
        message.contains(" 0 hits") || message.contains("hits: 0"),
        "{message}"
    );
    assert!(synced.success, "{:?}", synced.error);
    assert_eq!(contents(&neighbour.output), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_imports_more_than_the_sandbox_grants_is_refused_with_the_list() {
    let dir = temp_dir();
    let path: PathBuf = dir.path().join("filesystem.wasm");
    std::fs::write(&path, guests::filesystem_wasm()).unwrap();
    let tenants = vec![good("t", "https://api.segmentapis.com", dir.path())];
    let err = serve::run(
        ServeOptions {
            tenants,
            once: true,
            connector: Some(path),
            cache_dir: None,
            health: None,
            compile_timeout: serve::COMPILE_TIMEOUT,
        },
        std::future::pending(),
    )
    .await
    .expect_err("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("does not grant")
            && text.contains("wasi:filesystem/")
            && text.contains("wasi:sockets/tcp"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_own_component_is_refused_fails_alone() {
    let fake = fake(FakeConfig::demo()).await;
    let base = fake.base_url();
    let dir = temp_dir();
    let path: PathBuf = dir.path().join("filesystem.wasm");
    std::fs::write(&path, guests::filesystem_wasm()).unwrap();
    let mut greedy = good("greedy", &base, dir.path());
    greedy.connector = Some(path);
    let mut missing = good("missing", &base, dir.path());
    missing.connector = Some(dir.path().join("nowhere.wasm"));
    let report = serve::run(
        ServeOptions::once(vec![greedy, good("fine", &base, dir.path()), missing]),
        std::future::pending(),
    )
    .await
    .expect("the others still run");
    let failures: BTreeMap<String, String> = report.failures.into_iter().collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    let greedy = &failures["greedy"];
    for import in [
        "wasi:filesystem/types",
        "wasi:sockets/tcp",
        "wasi:sockets/udp",
    ] {
        assert!(greedy.contains(import), "{import} in {greedy}");
    }
    assert!(
        failures["missing"].contains("cannot read the connector"),
        "{failures:?}"
    );
    assert!(!dir.path().join("greedy.c1z").exists());
    assert_eq!(
        Synced::open(&dir.path().join("fine.c1z")).grants().len(),
        44
    );
    assert!(
        report
            .metrics
            .render()
            .contains("baton_segment_tenant_last_run_success{tenant=\"greedy\"} 0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_component_of_the_world_runs_with_connector() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    // The bundled connector, loaded from a file as any other component would be.
    let path = dir.path().join("segment.wasm");
    std::fs::write(
        &path,
        baton_segment::engine::contract::SEGMENT_CONNECTOR_WASM,
    )
    .unwrap();
    let report = serve::run(
        ServeOptions {
            tenants: vec![good("from-file", &fake.base_url(), dir.path())],
            once: true,
            connector: Some(path),
            cache_dir: None,
            health: None,
            compile_timeout: serve::COMPILE_TIMEOUT,
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        Synced::open(&dir.path().join("from-file.c1z"))
            .grants()
            .len(),
        44
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_past_its_wall_time_budget_is_stopped_and_the_file_is_unchanged() {
    let mut cfg = FakeConfig::demo();
    cfg.latency = Duration::from_millis(300);
    let fake = fake(cfg).await;
    let dir = temp_dir();
    let mut slow = good("slow", &fake.base_url(), dir.path());
    slow.limits.wall_per_sync = Duration::from_millis(700);
    std::fs::write(&slow.output, b"previous").unwrap();
    let report = serve::run(
        ServeOptions::once(vec![slow.clone()]),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(
        report.failures[0].1.contains("wall-time budget of 700ms"),
        "{:?}",
        report.failures
    );
    assert_eq!(std::fs::read(&slow.output).unwrap(), b"previous");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_a_single_round_counts_the_unfinished_tenants_as_failed() {
    let mut cfg = FakeConfig::demo();
    cfg.latency = Duration::from_millis(400);
    let fake = Arc::new(fake(cfg).await);
    let dir = temp_dir();
    let slow = good("slow", &fake.base_url(), dir.path());
    std::fs::write(&slow.output, b"previous").unwrap();
    // Shut down once the sync is under way.
    let watching = fake.clone();
    let shutdown = async move {
        while watching.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let report = serve::run(ServeOptions::once(vec![slow.clone()]), shutdown)
        .await
        .unwrap();
    assert_eq!(
        report.failures,
        vec![(
            "slow".to_string(),
            "stopped by a shutdown before its sync finished".to_string()
        )]
    );
    assert_eq!(std::fs::read(&slow.output).unwrap(), b"previous");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_component_that_does_not_compile_in_time_fails_alone() {
    let fake = fake(FakeConfig::demo()).await;
    let base = fake.base_url();
    let dir = temp_dir();
    // The bundled connector from a file: compiling it takes a moment, more than no time at all.
    let path = dir.path().join("segment.wasm");
    std::fs::write(
        &path,
        baton_segment::engine::contract::SEGMENT_CONNECTOR_WASM,
    )
    .unwrap();
    let mut slow = good("slow", &base, dir.path());
    slow.connector = Some(path);
    // A FIFO would block whoever reads it until a writer comes: refused, not read.
    let fifo = dir.path().join("fifo.wasm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut blocking = good("blocking", &base, dir.path());
    blocking.connector = Some(fifo);
    let mut opts = ServeOptions::once(vec![slow, good("fine", &base, dir.path()), blocking]);
    opts.compile_timeout = Duration::ZERO;
    let report = serve::run(opts, std::future::pending()).await.unwrap();
    let failures: BTreeMap<String, String> = report.failures.into_iter().collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures["slow"].contains("did not compile within"),
        "{failures:?}"
    );
    assert!(
        failures["blocking"].contains("not a regular file"),
        "{failures:?}"
    );
    assert_eq!(
        Synced::open(&dir.path().join("fine.c1z")).grants().len(),
        44
    );
}
