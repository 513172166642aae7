//! A hostile server on the allowed origin: `fakes::echo` hands every request back (request line,
//! every header with the `Authorization` the host added, the body) in 200, 400, 401 and 422
//! answers, as JSON and as raw text, in bodies and in headers. In no case does the token reach
//! the component (what a hostile component finds, whatever it reads), the sync's error, the
//! `.c1z`, `serve`'s report or metrics, or what service mode tells ConductorOne in
//! `FinishTask`. (stderr and the log of the real binary: `tests/e2e/secrets_cli.rs`.)
//!
//! Also the rest of the sandbox's answer to hostile servers: methods other than the REST ones
//! never leave the host, an oversized response head is refused as such and not retried, the
//! response headers a component keeps count against its memory limit, and a body is read into
//! one buffer of its announced size.

mod common;
mod guests;

use baton_segment::commands::connection::Connection;
use baton_segment::commands::sync::{self as app, SyncJob};
use baton_segment::engine::contract::ConnectorError;
use baton_segment::engine::host_state::RunContext;
use baton_segment::engine::limits::InstanceLimits;
use baton_segment::engine::session::SessionStore;
use baton_segment::engine::{CallResult, Runtime, RuntimeLimits};
use baton_segment::sandbox::{AddressClass, AddressPolicy, HttpPolicy, Origin, RunNetwork, Secret};
use baton_segment::serve::config::{Tenant, TenantLimits, TokenSource};
use baton_segment::serve::{self, ServeOptions};
use common::*;
use fakes::echo::{EchoFormat, EchoMode, EchoServer};
use fakes::segment::FakeConfig;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A token shaped like Segment's, long enough that a cut-short echo can be told apart.
const SECRET: &str = "sgp_EchoTest9f3Kq2LmZx81Qp7uVb3nRtYw2LmA0cD9eFh4";

/// Every answer the hostile server gives.
fn modes() -> Vec<EchoMode> {
    let mut modes = vec![EchoMode::Ok, EchoMode::Status(200, EchoFormat::Text)];
    for status in [400, 401, 422] {
        for format in [EchoFormat::Json, EchoFormat::Text] {
            modes.push(EchoMode::Status(status, format));
        }
    }
    modes
}

/// Fails if `text` holds the token or a recognisable piece of it.
fn assert_clean(what: &str, text: &str) {
    for piece in [SECRET, &SECRET[..12], &SECRET[12..30], &SECRET[30..]] {
        assert!(!text.contains(piece), "{what} holds {piece:?}:\n{text}");
    }
}

fn assert_clean_bytes(what: &str, bytes: &[u8]) {
    assert_clean(what, &String::from_utf8_lossy(bytes));
}

/// The fake Segment (expecting `SECRET`) and the echo server in front of it.
async fn servers(mode: EchoMode) -> (fakes::segment::FakeSegment, EchoServer) {
    let segment = fake(FakeConfig {
        token: SECRET.into(),
        ..FakeConfig::demo()
    })
    .await;
    let echo = EchoServer::start(&segment.base_url(), mode).await.unwrap();
    (segment, echo)
}

/// A connection to `base_url` with the token.
fn connection(base_url: &str) -> Connection {
    Connection::to(base_url, Secret::new(SECRET)).unwrap()
}

/// The hostile component, compiled once.
fn hostile_runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(
            guests::hostile_wasm(),
            RuntimeLimits {
                max_instances: 8,
                memory_bytes: 64 << 20,
                cpu_per_call: Duration::from_secs(5),
                wall_per_call: Duration::from_secs(30),
            },
        )
        .expect("the hostile guest compiles")
    })
}

fn hostile_run(
    attack: &str,
    settings: &[(&str, &str)],
    policy: HttpPolicy,
    limits: Option<InstanceLimits>,
) -> Arc<RunContext> {
    let mut config: BTreeMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config.insert("attack".into(), attack.into());
    Arc::new(RunContext {
        label: attack.into(),
        config,
        session: SessionStore::new(1 << 20),
        network: RunNetwork::new(policy),
        limits,
        meter: Default::default(),
    })
}

/// What the hostile component reported from `validate`.
async fn attack_report(run: Arc<RunContext>) -> String {
    let mut instance = hostile_runtime().instantiate(run).await.unwrap();
    match instance.validate().await {
        Ok(Err(ConnectorError::Internal(report))) => report,
        other => panic!("expected a report, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_component_never_sees_the_token_whatever_the_server_echoes() {
    for mode in modes() {
        let (_segment, echo) = servers(mode).await;
        for path in ["/", "/users?pagination%5Bcount%5D=2"] {
            let target = format!("{}{path}", echo.base_url());
            let policy =
                HttpPolicy::for_base_url(&echo.base_url(), Some(Secret::new(SECRET))).unwrap();
            let run = hostile_run(
                "read-token",
                &[("target", &target), ("keep", "1000000")],
                policy,
                None,
            );
            let report = attack_report(run.clone()).await;
            // (It looked at its environment too: the counter `host_contract.rs` relies on works.)
            assert!(run.meter.environment_reads() >= 3);
            // The server did echo the token (the host sent it), in the body and a header ...
            assert!(
                echo.echoed()
                    .last()
                    .unwrap()
                    .contains(&format!("authorization: Bearer {SECRET}")),
                "{mode:?}"
            );
            assert!(
                report.contains("x-echo-authorization=[REDACTED]"),
                "{mode:?} {path}: {report}"
            );
            assert!(report.contains("[REDACTED]*"), "{mode:?} {path}: {report}");
            // ... and the component found none of it, in what it read or in its memory.
            assert_clean(
                &format!("what the component saw ({mode:?} {path})"),
                &report,
            );
            assert!(
                report.contains("memory scan for the bearer prefix: 0 hits"),
                "{report}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_against_an_echoing_server_leaks_the_token_nowhere() {
    for mode in modes() {
        let (_segment, echo) = servers(mode).await;
        let dir = temp_dir();
        let output = out(&dir);
        let job = SyncJob::with(connection(&echo.base_url()), &output);
        match app::sync_on(runtime(), job).await {
            Ok(summary) => {
                assert_eq!(mode, EchoMode::Ok, "only the 200 JSON answers make a sync");
                assert_clean("the summary", &summary.to_string());
                let synced = Synced::open(&output);
                let db = std::fs::read(synced.reader.db_path()).unwrap();
                // The echo is in the file (as names), masked.
                let text = String::from_utf8_lossy(&db);
                assert!(text.contains("GET /users"), "the echo reached the .c1z");
                assert!(text.contains("authorization: [REDACTED]*"));
                assert_clean_bytes("the .c1z's database", &db);
                assert_clean_bytes("the .c1z", &std::fs::read(&output).unwrap());
            }
            Err(e) => {
                let text = format!("{e:#}");
                if matches!(mode, EchoMode::Status(_, EchoFormat::Json)) {
                    assert!(
                        text.contains("[REDACTED]"),
                        "{mode:?}: the error quotes the echo: {text}"
                    );
                }
                assert_clean(&format!("the sync's error ({mode:?})"), &text);
                assert!(!output.exists());
            }
        }
    }
}

/// A tenant syncing through the echo server: the failure `serve` reports and its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_and_metrics_never_hold_the_token() {
    for mode in [
        EchoMode::Status(400, EchoFormat::Json),
        EchoMode::Status(422, EchoFormat::Text),
    ] {
        let (_segment, echo) = servers(mode).await;
        let dir = temp_dir();
        let token = dir.path().join("token");
        std::fs::write(&token, SECRET).unwrap();
        let tenant = Tenant {
            id: "echoed".into(),
            origin: Origin::parse(&echo.base_url()).unwrap(),
            token: TokenSource::File(token),
            output: dir.path().join("echoed.c1z"),
            interval: Duration::from_secs(3600),
            connector: None,
            settings: BTreeMap::new(),
            limits: TenantLimits {
                memory_bytes: 128 << 20,
                cpu_per_call: Duration::from_secs(10),
                wall_per_call: Duration::from_secs(60),
                wall_per_sync: Duration::from_secs(120),
                concurrent_requests: 2,
                request_budget: None,
                response_max_bytes: 1 << 20,
                session_bytes: 1 << 20,
                allowed_origins: vec![Origin::parse(&echo.base_url()).unwrap()],
                addresses: AddressPolicy::public_and(&[AddressClass::Loopback]),
            },
        };
        let report = serve::run(ServeOptions::once(vec![tenant]), std::future::pending())
            .await
            .unwrap();
        let (_, failure) = &report.failures[0];
        if matches!(mode, EchoMode::Status(_, EchoFormat::Json)) {
            assert!(failure.contains("[REDACTED]"), "{failure}");
        }
        assert_clean("serve's failure", failure);
        assert_clean("/metrics", &report.metrics.render());
    }
}

/// Service mode syncing through the echo server: `FinishTask` (and everything else
/// ConductorOne receives, the uploaded `.c1z` included) never holds the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_task_never_holds_the_token() {
    use baton_segment::service::{self, ServiceOptions, Timing};
    use fakes::c1::{FakeC1, FakeC1Config};
    for mode in [EchoMode::Status(422, EchoFormat::Json), EchoMode::Ok] {
        let (_segment, echo) = servers(mode).await;
        let (mut cfg, c1_secret) = FakeC1Config::generated("baton-segment");
        cfg.next_poll = Duration::from_millis(50);
        let client_id = cfg.client_id.clone();
        let c1 = FakeC1::start(cfg).await.unwrap();
        let dir = temp_dir();
        c1.write_ca_pem(&dir.path().join("ca.pem")).unwrap();
        let mut opts = ServiceOptions::new(
            &client_id,
            Secret::new(c1_secret),
            connection(&echo.base_url()),
        );
        opts.api_host = Some(c1.host());
        opts.ca_cert = Some(dir.path().join("ca.pem"));
        opts.temp_dir = Some(dir.path().to_path_buf());
        opts.timing = Timing {
            default_poll: Duration::from_millis(50),
            min_poll: Duration::from_millis(20),
            shutdown_grace: Duration::from_secs(1),
            ..Timing::default()
        };
        c1.push_sync_task();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(service::run(opts, async move {
            let _ = stopped.await;
        }));
        let finished = c1
            .wait_for_finished(1, Duration::from_secs(60))
            .await
            .expect("the task finishes")
            .remove(0);
        let _ = stop.send(());
        let _ = daemon.await;
        if mode == EchoMode::Ok {
            assert!(finished.is_success(), "{finished:?}");
            assert_eq!(c1.uploads().len(), 1);
        } else {
            assert!(
                finished.status_message.contains("[REDACTED]"),
                "{}",
                finished.status_message
            );
            assert_clean("FinishTask", &format!("{finished:?}"));
        }
        for piece in [SECRET, &SECRET[..12], &SECRET[12..30]] {
            assert!(
                !c1.received_anywhere(piece),
                "{mode:?}: ConductorOne got {piece:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Methods, oversized heads, memory

/// A loopback server that answers every request with `reply` and counts what it gets.
struct Raw {
    url: String,
    requests: Arc<AtomicUsize>,
}

async fn raw_server(reply: Vec<u8>) -> Raw {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (counter, reply) = (counter.clone(), reply.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                loop {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    seen.extend_from_slice(&buf[..n]);
                    // One answer per request head (keep-alive connections carry several).
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        counter.fetch_add(1, Ordering::SeqCst);
                        if socket.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Raw { url, requests }
}

fn reply_with_header(header_bytes: usize, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-pad: {}\r\ncontent-length: {}\r\n\r\n{body}",
        "p".repeat(header_bytes),
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_and_other_methods_are_refused_before_anything_is_sent() {
    let server = raw_server(reply_with_header(10, "{}")).await;
    let policy = HttpPolicy::for_base_url(&server.url, Some(Secret::new(SECRET))).unwrap();
    let report = attack_report(hostile_run(
        "methods",
        &[("target", &server.url)],
        policy,
        None,
    ))
    .await;
    assert!(
        report.contains("method Method::Get: status 200"),
        "{report}"
    );
    for method in ["Trace", "Connect", "Options", "Other(\"PROPFIND\")"] {
        assert!(
            report.contains(&format!(
                "method Method::{method}: error ErrorCode::HttpRequestMethodInvalid"
            )),
            "{method}: {report}"
        );
    }
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        1,
        "only the GET went out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_head_is_refused_as_such_and_not_retried() {
    let server = raw_server(reply_with_header(100 * 1024, "{}")).await;
    // The hostile component sees the error code ...
    let policy = HttpPolicy::for_base_url(&server.url, Some(Secret::new(SECRET))).unwrap();
    let report = attack_report(hostile_run(
        "fetch",
        &[("target", &server.url)],
        policy,
        None,
    ))
    .await;
    assert!(
        report.contains("error: ErrorCode::HttpResponseHeaderSectionSize(Some(65536))"),
        "{report}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "not retried");
    // ... and the bundled connector says what happened, and asks once.
    let dir = temp_dir();
    let err = app::sync_on(runtime(), SyncJob::with(connection(&server.url), out(&dir)))
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("response headers are larger than the host allows"),
        "{text}"
    );
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        2,
        "one more request, not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_headers_the_component_keeps_count_against_its_memory_limit() {
    const LIMIT: usize = 16 << 20;
    const HEADER: usize = 24 * 1024;
    let server = raw_server(reply_with_header(HEADER, "{}")).await;
    let policy = HttpPolicy::for_base_url(&server.url, None).unwrap();
    let limits = InstanceLimits {
        memory_bytes: LIMIT,
        cpu_per_call: Duration::from_secs(10),
        wall_per_call: Duration::from_secs(60),
    };
    let run = hostile_run(
        "keep-headers",
        &[("target", &server.url), ("count", "2000")],
        policy,
        Some(limits),
    );
    let report = attack_report(run.clone()).await;
    let kept: usize = report
        .split("kept ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    // Stopped by the memory limit, well before the 2000 it asked for (which, uncounted, would
    // be 47 MiB of headers held by the host).
    assert!(report.contains("memory limit"), "{report}");
    assert!(kept * HEADER < LIMIT, "{kept} kept: {report}");
    assert!(kept > 50, "{kept} kept: {report}");
    assert!(
        run.meter.peak_memory_bytes() <= LIMIT,
        "peak {} over the limit",
        run.meter.peak_memory_bytes()
    );
}

/// Peak memory of one `validate` of the bundled connector against a server whose workspace
/// answer carries `padding` bytes the connector skips.
async fn validate_peak(padding: usize) -> usize {
    let body = format!(
        r#"{{"data":{{"workspace":{{"id":"w","name":"W","slug":"w"}},"padding":"{}"}}}}"#,
        "x".repeat(padding)
    );
    let server = raw_server(reply_with_header(10, &body)).await;
    let connection = connection(&server.url);
    let run = connection.run_context(connection.policy());
    let mut instance = runtime().instantiate(run.clone()).await.unwrap();
    let result: CallResult<()> = instance.validate().await;
    assert_eq!(result, Ok(Ok(())));
    instance.peak_memory_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_is_read_into_one_buffer_of_its_announced_size() {
    const BODY: usize = 12 << 20;
    let baseline = validate_peak(1024).await;
    let peak = validate_peak(BODY).await;
    let extra = peak - baseline;
    eprintln!(
        "[memory] a {} MiB body took {:.2} MiB of guest memory ({:.2}x)",
        BODY >> 20,
        extra as f64 / (1 << 20) as f64,
        extra as f64 / BODY as f64
    );
    // Growing a buffer by doubling would hold 8 + 16 MiB at the last reallocation.
    assert!(
        (extra as f64) < BODY as f64 * 1.25,
        "{extra} bytes of memory for a {BODY}-byte body"
    );
}

/// A name that resolves to a private address is refused when the connection is made (so a
/// name checked earlier cannot be re-pointed: DNS rebinding), and so is such an IP literal;
/// nothing reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_run_connects_to_no_private_address_whatever_the_name() {
    let server = raw_server(reply_with_header(10, "{}")).await;
    let port = server.url.rsplit(':').next().unwrap().to_string();
    for base in [format!("http://localhost:{port}"), server.url.clone()] {
        let connection = connection(&base);
        let mut policy = connection.policy();
        policy.addresses = AddressPolicy::public_and(&[]);
        let run = connection.run_context(policy);
        let dir = temp_dir();
        let job = SyncJob::with(connection, out(&dir));
        let err = app::sync_in(runtime(), job, run.clone(), None)
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("DestinationIpProhibited"), "{base}: {text}");
        assert_eq!(run.network.stats.snapshot().retries, 0, "not retried");
    }
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        0,
        "nothing was sent"
    );
}
