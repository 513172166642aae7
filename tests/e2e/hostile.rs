//! A hostile component against the real host: every attack of `tests/guests/hostile` is
//! contained, fails with a clear error, and leaves the runtime usable.
//!
//! The guest reads `config("attack")` in every export and performs that attack; what it
//! observed comes back in its return value (a `ConnectorError::Internal` report). The servers
//! it talks to are loopback servers started here, which record what reached them.
//!
//! Run with `cargo test -p fakes --test hostile -- --nocapture` to see each attack's outcome and
//! timing.

mod guests;

use baton_segment::engine::contract::ConnectorError;
use baton_segment::engine::host_state::RunContext;
use baton_segment::engine::session::SessionStore;
use baton_segment::engine::{CallError, CallResult, ConnectorInstance, Runtime, RuntimeLimits};
use baton_segment::sandbox::{HttpPolicy, RunNetwork, Secret};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MEMORY: usize = 64 << 20;
const CPU: Duration = Duration::from_millis(500);
const WALL: Duration = Duration::from_secs(3);
/// What a limit may overshoot by (epoch ticks, a loaded machine).
const SLACK: Duration = Duration::from_millis(1500);
const TOKEN: &str = "tok-hostile-7d41-the-host-keeps-this";
const SESSION_BYTES: usize = 1 << 20;

/// Tests that measure the process's memory, or use a lot of it, run one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resident memory of this process (Linux), in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn limits(max_instances: u32) -> RuntimeLimits {
    RuntimeLimits {
        max_instances,
        memory_bytes: MEMORY,
        cpu_per_call: CPU,
        wall_per_call: WALL,
    }
}

/// The runtime most tests share (small limits, a pool of 16).
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(guests::hostile_wasm(), limits(16)).expect("the guest compiles"))
}

/// A runtime with a pool of one: every instance takes the same slot (memory, tables, stack)
/// the previous one left.
fn single_slot_runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(guests::hostile_wasm(), limits(1)).expect("the guest compiles"))
}

/// A policy allowing only `allowed_url`, where the host adds `TOKEN`.
fn policy(allowed_url: &str) -> HttpPolicy {
    HttpPolicy::for_base_url(allowed_url, Some(Secret::new(TOKEN))).unwrap()
}

fn run_with(attack: &str, settings: &[(&str, &str)], policy: HttpPolicy) -> Arc<RunContext> {
    let mut config: BTreeMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config.insert("attack".into(), attack.into());
    Arc::new(RunContext {
        label: format!("hostile-{attack}"),
        config,
        session: SessionStore::new(SESSION_BYTES),
        network: RunNetwork::new(policy),
        limits: None,
        meter: Default::default(),
    })
}

/// A run whose network allows nothing useful (an origin nobody listens on).
fn run(attack: &str, settings: &[(&str, &str)]) -> Arc<RunContext> {
    run_with(attack, settings, policy("http://127.0.0.1:9"))
}

async fn instance(rt: &Runtime, run: Arc<RunContext>) -> ConnectorInstance {
    rt.instantiate(run).await.expect("the guest instantiates")
}

/// Calls `validate` on a fresh instance, timing it.
async fn validate(rt: &Runtime, run: Arc<RunContext>) -> (CallResult<()>, Duration) {
    let mut instance = instance(rt, run).await;
    let started = Instant::now();
    let result = instance.validate().await;
    (result, started.elapsed())
}

/// The report of an attack that survived (it comes back as `Internal`).
fn report(attack: &str, result: CallResult<()>) -> String {
    match result {
        Ok(Err(ConnectorError::Internal(report))) => report,
        other => panic!("{attack}: expected a report, got {other:?}"),
    }
}

fn trap_reason(attack: &str, result: CallResult<()>) -> String {
    match result {
        Err(CallError::Trapped { call, reason }) => {
            assert_eq!(call, "validate");
            reason
        }
        other => panic!("{attack}: expected a trap, got {other:?}"),
    }
}

fn outcome(attack: &str, what: &str, took: Duration) {
    eprintln!("[hostile] {attack:<18} -> {what} ({} ms)", took.as_millis());
}

/// After a failure, the same runtime still gives working instances.
async fn assert_recovers(rt: &Runtime) {
    let (result, took) = validate(rt, run("none", &[])).await;
    assert_eq!(
        result,
        Ok(Ok(())),
        "a fresh instance works after the attack"
    );
    assert!(took < Duration::from_secs(1), "and promptly ({took:?})");
}

/// `key: <number>` in a report.
fn number(report: &str, key: &str) -> u64 {
    let at = report
        .find(&format!("{key}: "))
        .unwrap_or_else(|| panic!("no {key:?} in {report}"));
    report[at + key.len() + 2..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key:?} in {report}"))
}

/// The line of a report that starts with `key:`.
fn line<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key:?} line in {report}"))
}

// ---------------------------------------------------------------------------------------------
// Loopback servers

/// What a server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
enum Reply {
    /// Accept, read the request, never answer (hold the connection until the client goes).
    Never,
    /// Answer 200 after `delay` with a body of `body` bytes, with or without Content-Length
    /// (without: the body ends when the connection closes).
    Ok {
        delay: Duration,
        body: usize,
        content_length: bool,
    },
}

impl Reply {
    fn small() -> Reply {
        Reply::Ok {
            delay: Duration::ZERO,
            body: 2,
            content_length: true,
        }
    }
}

/// A loopback HTTP/1.1 server (one request per connection) that records connections, the
/// requests it got, how many were being handled at once, and connections the client closed.
#[derive(Clone)]
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    client_closed: Arc<AtomicUsize>,
}

impl Server {
    async fn start(reply: Reply) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            addr: listener.local_addr().unwrap(),
            seen: Default::default(),
            connections: Default::default(),
            active: Default::default(),
            peak: Default::default(),
            client_closed: Default::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let s = s.clone();
                s.connections.fetch_add(1, Ordering::SeqCst);
                let now = s.active.fetch_add(1, Ordering::SeqCst) + 1;
                s.peak.fetch_max(now, Ordering::SeqCst);
                tokio::spawn(async move {
                    if !s.serve(socket, reply).await {
                        s.active.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        server
    }

    /// Serves one request; true when it answered (and so already stopped counting as active).
    async fn serve(&self, mut socket: tokio::net::TcpStream, reply: Reply) -> bool {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default()
            .to_string();
        let headers = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        self.seen.lock().unwrap().push(Seen { path, headers });
        match reply {
            Reply::Never => {
                // Hold on until the client gives up.
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                self.client_closed.fetch_add(1, Ordering::SeqCst);
                false
            }
            Reply::Ok {
                delay,
                body,
                content_length,
            } => {
                tokio::time::sleep(delay).await;
                // The request stops counting as "being handled" when its answer starts: that
                // lies inside the time the host holds its in-flight slot (a slot is freed
                // only after the answer was read, so the next request cannot overlap).
                self.active.fetch_sub(1, Ordering::SeqCst);
                let mut answer = String::from(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-served-by: hostile-test\r\nconnection: close\r\n",
                );
                if content_length {
                    answer.push_str(&format!("content-length: {body}\r\n"));
                }
                answer.push_str("\r\n");
                if socket.write_all(answer.as_bytes()).await.is_err() {
                    return true;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = body;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if socket.write_all(&chunk[..n]).await.is_err() {
                        return true;
                    }
                    left -= n;
                }
                let _ = socket.shutdown().await;
                true
            }
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn authority(&self) -> String {
        self.addr.to_string()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// CPU, time, memory, stack

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_is_stopped_by_the_cpu_budget_and_others_keep_running() {
    let rt = runtime();
    let spinner = tokio::spawn(async move {
        let mut instance = instance(rt, run("spin", &[])).await;
        let started = Instant::now();
        let result = instance.validate().await;
        let took = started.elapsed();
        // The instance is poisoned: it refuses further calls.
        let again = instance.validate().await;
        (result, took, again)
    });
    // Another tenant on the same runtime keeps getting answers meanwhile.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let (result, took) = validate(rt, run("none", &[])).await;
        assert_eq!(result, Ok(Ok(())));
        assert!(
            took < Duration::from_millis(300),
            "a neighbour took {took:?}"
        );
    }
    let (result, took, again) = spinner.await.unwrap();
    let reason = trap_reason("spin", result);
    outcome("spin", &format!("Trapped: {reason}"), took);
    assert!(reason.contains("CPU budget"), "{reason}");
    assert!(
        took >= CPU - Duration::from_millis(50),
        "stopped early? {took:?}"
    );
    assert!(took < CPU + SLACK, "stopped late: {took:?}");
    match again {
        Err(CallError::Trapped { reason, .. }) => assert!(reason.contains("already failed")),
        other => panic!("a trapped instance must refuse calls, got {other:?}"),
    }
    assert_recovers(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_blocked_on_a_silent_server_times_out_and_the_connection_is_closed() {
    let silent = Server::start(Reply::Never).await;
    let rt = runtime();
    let run = run_with("hang", &[("target", &silent.url())], policy(&silent.url()));
    let mut instance = instance(rt, run).await;
    let started = Instant::now();
    let result = instance.validate().await;
    let took = started.elapsed();
    outcome("hang", &format!("{result:?}"), took);
    assert_eq!(
        result,
        Err(CallError::TimedOut {
            call: "validate",
            after: WALL
        })
    );
    assert!(took >= WALL && took < WALL + SLACK, "{took:?}");
    assert_eq!(silent.connections(), 1, "the request did go out");
    assert_eq!(silent.client_closed.load(Ordering::SeqCst), 0);
    // Dropping the instance drops its pending request: the connection does not linger.
    drop(instance);
    let deadline = Instant::now() + Duration::from_secs(5);
    while silent.client_closed.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        silent.client_closed.load(Ordering::SeqCst),
        1,
        "the host closes the hung connection once the instance is gone"
    );
    assert_recovers(rt).await;
}

/// Spinning with a request pending: the CPU budget (500 ms) is shorter than the wall limit
/// (3 s) and the guest burns CPU the whole time, so the CPU budget traps it first. (Had it
/// blocked on the request instead, it would have used no CPU and the wall limit would end it,
/// as in the test above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_with_a_request_pending_is_trapped_by_the_cpu_budget() {
    let silent = Server::start(Reply::Never).await;
    let rt = runtime();
    let run = run_with(
        "spin-after-hang",
        &[("target", &silent.url())],
        policy(&silent.url()),
    );
    let (result, took) = validate(rt, run).await;
    let reason = trap_reason("spin-after-hang", result);
    outcome("spin-after-hang", &format!("Trapped: {reason}"), took);
    assert!(reason.contains("CPU budget"), "{reason}");
    assert!(took < CPU + SLACK, "{took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while silent.client_closed.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(silent.client_closed.load(Ordering::SeqCst), 1);
    assert_recovers(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_traps_at_the_memory_limit() {
    let _heavy = HEAVY.lock().await;
    let rt = runtime();
    let mut instance = instance(rt, run("memory-bomb", &[])).await;
    let started = Instant::now();
    let result = instance.validate().await;
    let took = started.elapsed();
    let reason = trap_reason("memory-bomb", result);
    outcome("memory-bomb", &format!("Trapped: {reason}"), took);
    assert!(reason.contains("memory limit"), "{reason}");
    assert!(reason.contains("64 MiB"), "{reason}");
    let peak = instance.peak_memory_bytes();
    assert!(peak <= MEMORY, "peak {peak} over the limit");
    assert!(peak > MEMORY / 2, "the bomb did allocate ({peak})");
    drop(instance);
    assert_recovers(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_traps_instead_of_crashing_the_host() {
    let rt = runtime();
    for attack in ["recursion", "recursion-locals"] {
        let (result, took) = validate(rt, run(attack, &[])).await;
        let reason = trap_reason(attack, result);
        outcome(attack, &format!("Trapped: {reason}"), took);
        assert!(
            reason.contains("overflowed its call stack") || reason.contains("out of bounds"),
            "{attack}: {reason}"
        );
        assert!(took < CPU + SLACK, "{took:?}");
        assert_recovers(rt).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Network policy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_to_the_allowed_origin_carries_the_host_token() {
    let allowed = Server::start(Reply::small()).await;
    let rt = runtime();
    let target = format!("{}/ok", allowed.url());
    let run = run_with("fetch", &[("target", &target)], policy(&allowed.url()));
    let (result, took) = validate(rt, run).await;
    let report = report("fetch", result);
    outcome("fetch (allowed)", report.trim(), took);
    assert!(report.contains("status: 200"), "{report}");
    let seen = allowed.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/ok");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_to_another_origin_is_denied_before_it_leaves_the_host() {
    let allowed = Server::start(Reply::small()).await;
    let other = Server::start(Reply::small()).await;
    let rt = runtime();
    let target = format!("{}/steal", other.url());
    let run = run_with("fetch", &[("target", &target)], policy(&allowed.url()));
    let (result, took) = validate(rt, run.clone()).await;
    let report = report("fetch", result);
    outcome("fetch (other)", report.trim(), took);
    assert!(
        report.contains("error: ErrorCode::HttpRequestDenied"),
        "{report}"
    );
    assert_eq!(other.connections(), 0, "nothing reached the other origin");
    assert_eq!(allowed.connections(), 0);
    assert_eq!(run.network.stats.snapshot().denied, 1);
    assert_eq!(run.network.stats.snapshot().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_spellings_of_the_allowed_loopback_address_are_denied() {
    let allowed = Server::start(Reply::small()).await;
    let port = allowed.addr.port();
    let rt = runtime();
    for target in [
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://127.0.0.2:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{}/", port.wrapping_add(1)),
    ] {
        let run = run_with("fetch", &[("target", &target)], policy(&allowed.url()));
        let (result, took) = validate(rt, run).await;
        let report = report("fetch", result);
        outcome("fetch (spelling)", report.trim(), took);
        assert!(
            report.contains("error: ErrorCode::HttpRequestDenied"),
            "{report}"
        );
    }
    assert_eq!(allowed.connections(), 0, "the allowed server saw nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_and_authority_tricks_do_not_reach_another_host() {
    let allowed = Server::start(Reply::small()).await;
    let other = Server::start(Reply::small()).await;
    let rt = runtime();
    let target = format!("{}/steal", other.url());
    let run = run_with(
        "absolute-form",
        &[
            ("allowed-authority", &allowed.authority()),
            ("target", &target),
        ],
        policy(&allowed.url()),
    );
    let (result, took) = validate(rt, run).await;
    let report = report("absolute-form", result);
    outcome("absolute-form", &report.trim().replace('\n', " | "), took);
    assert!(
        line(&report, "absolute-path").contains("set-path-with-query refused"),
        "{report}"
    );
    assert!(
        line(&report, "asterisk-path").contains("refused"),
        "{report}"
    );
    assert!(
        line(&report, "relative-path").contains("refused"),
        "{report}"
    );
    for key in ["userinfo-authority", "userinfo-authority-reversed"] {
        let l = line(&report, key);
        assert!(
            l.contains("refused") || l.contains("HttpRequestDenied"),
            "{report}"
        );
    }
    // `//other/steal` is a valid path: it went to the allowed server, as a path.
    assert!(
        line(&report, "protocol-relative-path").contains("status 200"),
        "{report}"
    );
    assert_eq!(other.connections(), 0, "the other host saw nothing");
    let seen = allowed.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, format!("//{}/steal", other.authority()));
    assert_eq!(seen[0].header("host"), Some(allowed.authority().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_cannot_set_credentials_or_host_headers() {
    let allowed = Server::start(Reply::small()).await;
    let rt = runtime();
    let target = format!("{}/whoami", allowed.url());
    let run = run_with(
        "set-authorization",
        &[("target", &target)],
        policy(&allowed.url()),
    );
    let (result, took) = validate(rt, run).await;
    let report = report("set-authorization", result);
    outcome(
        "set-authorization",
        &report.trim().replace('\n', " | "),
        took,
    );
    let attempts: Vec<&str> = report
        .lines()
        .filter(|l| {
            l.starts_with("from-list ") || l.starts_with("set ") || l.starts_with("append ")
        })
        .collect();
    assert_eq!(attempts.len(), 12, "{report}");
    for attempt in attempts {
        assert!(
            attempt.ends_with("Err(HeaderError::Forbidden)"),
            "{attempt}"
        );
    }
    assert!(line(&report, "request").contains("status: 200"), "{report}");
    let seen = allowed.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str()),
        "only the host's token"
    );
    assert_eq!(seen[0].header("host"), Some(allowed.authority().as_str()));
    assert!(seen[0].header("proxy-authorization").is_none());
    assert!(
        !seen[0].headers.iter().any(|(_, v)| v.contains("stolen")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_cannot_find_the_token_anywhere() {
    let allowed = Server::start(Reply::small()).await;
    let rt = runtime();
    let target = format!("{}/profile", allowed.url());
    let run = run_with("read-token", &[("target", &target)], policy(&allowed.url()));
    run.session
        .set("cursor".into(), b"a session value".to_vec())
        .unwrap();
    let (result, took) = validate(rt, run).await;
    let report = report("read-token", result);
    outcome("read-token", &report.trim().replace('\n', " | "), took);
    // It did look, and the request did carry the token.
    assert!(report.contains("environment (0 variables)"), "{report}");
    assert!(line(&report, "config token").ends_with("None"), "{report}");
    assert!(report.contains("x-served-by=hostile-test"), "{report}");
    assert!(report.contains("a session value"), "{report}");
    assert_eq!(
        allowed.seen()[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // But the token is nowhere in what it found.
    assert!(!report.contains(TOKEN), "the token leaked: {report}");
    assert!(
        !report.contains("7d41"),
        "part of the token leaked: {report}"
    );
    assert!(
        report.contains("memory scan for the bearer prefix: 0 hits"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_response_reaches_the_guest_as_a_body_size_error() {
    let _heavy = HEAVY.lock().await;
    const CAP: u64 = 1 << 20;
    let rt = runtime();
    for content_length in [true, false] {
        let huge = Server::start(Reply::Ok {
            delay: Duration::ZERO,
            body: 10 << 20,
            content_length,
        })
        .await;
        let mut policy = policy(&huge.url());
        policy.max_response_bytes = CAP;
        let run = run_with("huge-response", &[("target", &huge.url())], policy);
        let mut instance = instance(rt, run.clone()).await;
        let started = Instant::now();
        let result = instance.validate().await;
        let took = started.elapsed();
        let report = report("huge-response", result);
        let what = if content_length {
            "huge-response (with length)"
        } else {
            "huge-response (streamed)"
        };
        outcome(what, report.trim(), took);
        // With a Content-Length the host refuses the response itself and the guest gets the
        // typed code. Cut off while streaming, the guest gets a stream error whose text says
        // so; `http-error-code` cannot type it (wasmtime-wasi-http 48 stores the unified
        // `Error`, and only downcasts to the p2 `ErrorCode`), so the text is what there is.
        let typed = format!("HttpResponseBodySize(Some({CAP}))");
        let text = format!("body size exceeds limit: {CAP} bytes");
        if content_length {
            assert!(report.contains(&typed), "{report}");
        } else {
            assert!(
                report.contains(&typed) || report.contains(&text),
                "{report}"
            );
        }
        let read = number(&report, "body-bytes-read");
        assert!(read <= CAP, "the guest read {read} bytes, over the cap");
        if content_length {
            // Refused on the Content-Length alone.
            assert_eq!(read, 0, "{report}");
        }
        assert!(!instance.is_broken(), "an error, not a trap");
        assert!(
            run.network.stats.snapshot().bytes_received <= CAP + (1 << 20),
            "{:?}",
            run.network.stats.snapshot()
        );
        drop(instance);
    }
    assert_recovers(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_is_held_to_the_in_flight_limit() {
    let server = Server::start(Reply::Ok {
        delay: Duration::from_millis(50),
        body: 2,
        content_length: true,
    })
    .await;
    let rt = runtime();
    let mut policy = policy(&server.url());
    policy.max_in_flight = 4;
    let run = run_with(
        "flood",
        &[("target", &server.url()), ("count", "40")],
        policy,
    );
    let (result, took) = validate(rt, run.clone()).await;
    let report = report("flood", result);
    let peak = server.peak.load(Ordering::SeqCst);
    outcome(
        "flood (in flight)",
        &format!(
            "{} ; server peak {peak} ; {:?}",
            report.trim(),
            run.network.stats.snapshot()
        ),
        took,
    );
    assert_eq!(number(&report, "started"), 40, "{report}");
    assert_eq!(number(&report, "ok"), 40, "{report}");
    assert_eq!(server.connections(), 40);
    assert!(
        peak <= 4,
        "at most 4 requests at the server at once, saw {peak}"
    );
    assert!(peak >= 2, "the requests did run in parallel (peak {peak})");
}

/// Not a containment failure, a property worth knowing: a response holds its in-flight slot
/// until its body is read, so a guest that waits for its requests one by one, in an order the
/// host did not send them in, while holding more than `max_in_flight` of them, waits for
/// itself. Whatever happens, the call ends by the wall limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_flood_in_reverse_order_ends_by_the_wall_limit() {
    let server = Server::start(Reply::small()).await;
    let rt = runtime();
    let mut policy = policy(&server.url());
    policy.max_in_flight = 4;
    let run = run_with(
        "flood",
        &[
            ("target", &server.url()),
            ("count", "40"),
            ("order", "reverse"),
        ],
        policy,
    );
    let mut instance = instance(rt, run.clone()).await;
    let started = Instant::now();
    let result = instance.validate().await;
    let took = started.elapsed();
    let (while_alive, requests_while_alive, peak_while_alive) = (
        server.connections(),
        server.seen().len(),
        server.peak.load(Ordering::SeqCst),
    );
    drop(instance);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let what = match &result {
        Ok(Err(ConnectorError::Internal(r))) => r.clone(),
        other => format!("{other:?}"),
    };
    outcome(
        "flood (reverse)",
        &format!(
            "{what} ; server saw {while_alive} connections ({requests_while_alive} requests) \
             (peak {peak_while_alive}) while the instance lived, {} connections ({} requests, \
             peak {}) once it was dropped ; {:?}",
            server.connections(),
            server.seen().len(),
            server.peak.load(Ordering::SeqCst),
            run.network.stats.snapshot()
        ),
        took,
    );
    assert!(took < WALL + SLACK, "{took:?}");
    match result {
        Ok(Err(ConnectorError::Internal(report))) => {
            assert_eq!(number(&report, "ok"), 40, "{report}")
        }
        Err(CallError::TimedOut { .. }) => {
            assert!(while_alive <= 4, "{while_alive}");
            assert!(peak_while_alive <= 4, "{peak_while_alive}");
            // What happens once it is dropped is the subject of the next test.
        }
        other => panic!("{other:?}"),
    }
    assert_recovers(rt).await;
}

/// Requests an instance queued (waiting for an in-flight slot) when its call timed out must
/// not go out once the instance is dropped: the host has already reported the call as failed,
/// and for a provisioning call a request sent now would change the service behind its back.
///
/// The race needs slots held by finished, unread responses (dropping those frees the slot at
/// once, while the store is still being torn down): the guest waits for its last request first
/// (`order` = `reverse`). It does not happen every time, so the scenario runs 20 times with a
/// short wall limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_by_a_dropped_instance_are_never_sent() {
    static RT: OnceLock<Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        Runtime::new(
            guests::hostile_wasm(),
            RuntimeLimits {
                wall_per_call: Duration::from_millis(300),
                ..limits(2)
            },
        )
        .unwrap()
    });
    let (mut late, mut over_limit) = (Vec::new(), Vec::new());
    for round in 0..20 {
        let server = Server::start(Reply::small()).await;
        let mut policy = policy(&server.url());
        policy.max_in_flight = 2;
        let run = run_with(
            "flood",
            &[
                ("target", &server.url()),
                ("count", "100"),
                ("order", "reverse"),
            ],
            policy,
        );
        let mut instance = instance(rt, run).await;
        let result = instance.validate().await;
        assert!(
            matches!(result, Err(CallError::TimedOut { .. })),
            "{result:?}"
        );
        let while_alive = server.seen().len();
        assert_eq!(
            while_alive, 2,
            "two in flight (answered, unread), the rest queued"
        );
        drop(instance);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = server.seen();
        if seen.len() > while_alive {
            let tokens = seen[while_alive..]
                .iter()
                .filter(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}")))
                .count();
            late.push(format!(
                "round {round}: {} late requests ({tokens} with the token)",
                seen.len() - while_alive
            ));
        }
        let peak = server.peak.load(Ordering::SeqCst);
        if peak > 2 {
            over_limit.push(format!("round {round}: peak {peak}"));
        }
    }
    outcome(
        "flood (dropped)",
        &format!("late requests: {late:?} ; over the in-flight limit: {over_limit:?}"),
        Duration::ZERO,
    );
    assert!(
        late.is_empty(),
        "requests of dropped instances reached the server afterwards: {late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_is_cut_off_at_the_request_budget() {
    let server = Server::start(Reply::Ok {
        delay: Duration::from_millis(10),
        body: 2,
        content_length: true,
    })
    .await;
    let rt = runtime();
    let mut policy = policy(&server.url());
    policy.request_budget = Some(10);
    let run = run_with(
        "flood",
        &[("target", &server.url()), ("count", "200")],
        policy,
    );
    let (result, took) = validate(rt, run.clone()).await;
    let report = report("flood", result);
    outcome(
        "flood (budget)",
        &format!("{} ; server saw {}", report.trim(), server.connections()),
        took,
    );
    assert_eq!(number(&report, "started"), 200, "{report}");
    assert_eq!(number(&report, "ok"), 10, "{report}");
    assert!(
        report.contains("\"ErrorCode::ConnectionLimitReached\": 190"),
        "{report}"
    );
    assert!(
        server.connections() <= 10,
        "the server saw {}",
        server.connections()
    );
    let stats = run.network.stats.snapshot();
    assert_eq!((stats.requests, stats.denied), (10, 190), "{stats:?}");
}

// ---------------------------------------------------------------------------------------------
// Cross-tenant memory

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_in_a_reused_slot_sees_nothing_of_the_previous_one() {
    let _heavy = HEAVY.lock().await;
    let rt = single_slot_runtime();
    // Built at run time so that it is in neither the test binary's data nor the guest's.
    let marker = format!(
        "{}-{}-MARKER-{}-",
        "TENANT".to_lowercase().to_uppercase(),
        "A-SECRET",
        std::process::id()
    );
    let settings = [("marker", marker.as_str())];

    // The scanner works: in one instance, writing then scanning finds the marker.
    let (result, took) = validate(rt, run("marker-selftest", &settings)).await;
    let control = report("marker-selftest", result);
    outcome("marker-selftest", control.trim(), took);
    assert!(number(&control, "hits") > 100_000, "{control}");

    // Tenant A fills its memory with the marker and goes.
    let (result, took) = validate(rt, run("write-marker", &settings)).await;
    outcome("write-marker", &format!("{result:?}"), took);
    assert_eq!(result, Ok(Ok(())));

    // Tenant B gets the same slot (the pool has one) and looks everywhere, grown pages too.
    let (result, took) = validate(rt, run("scan-memory", &settings)).await;
    let report = report("scan-memory", result);
    outcome("scan-memory", report.trim(), took);
    assert_eq!(number(&report, "hits"), 0, "{report}");
    assert!(
        number(&report, "scanned-bytes") >= 16 << 20,
        "covers where A's 8 MiB were: {report}"
    );
}

// ---------------------------------------------------------------------------------------------
// Host imports

/// Lines the host logged for components, and the longest one.
struct LogCounter {
    lines: AtomicUsize,
    longest: AtomicUsize,
}

static LOGGED: LogCounter = LogCounter {
    lines: AtomicUsize::new(0),
    longest: AtomicUsize::new(0),
};

#[derive(Clone, Copy)]
struct CountingWriter;

/// The run whose lines are counted (other tests may log at the same time).
const COUNTED_RUN: &str = "counted-log-flood";

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let counted = COUNTED_RUN.as_bytes();
        if !buf.windows(counted.len()).any(|w| w == counted) {
            return Ok(buf.len());
        }
        LOGGED.lines.fetch_add(
            buf.iter().filter(|b| **b == b'\n').count(),
            Ordering::SeqCst,
        );
        LOGGED.longest.fetch_max(buf.len(), Ordering::SeqCst);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CountingWriter {
    type Writer = CountingWriter;
    fn make_writer(&'a self) -> CountingWriter {
        CountingWriter
    }
}

/// A global subscriber that counts the connector's log lines (only this test logs them).
fn count_connector_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_writer(CountingWriter)
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("connector=trace"))
            .try_init()
            .expect("no other subscriber in this test binary");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_truncated_and_the_host_survives() {
    let _heavy = HEAVY.lock().await;
    count_connector_logs();
    // Enough CPU for the whole flood: this is about the log path, not the budget.
    let rt = Runtime::new(
        guests::hostile_wasm(),
        RuntimeLimits {
            cpu_per_call: Duration::from_secs(300),
            wall_per_call: Duration::from_secs(300),
            ..limits(2)
        },
    )
    .unwrap();
    let run = Arc::new(RunContext {
        label: COUNTED_RUN.into(),
        ..Arc::into_inner(run("log-flood", &[])).unwrap()
    });
    let (result, took) = validate(&rt, run).await;
    let report = report("log-flood", result);
    let (lines, longest) = (
        LOGGED.lines.load(Ordering::SeqCst),
        LOGGED.longest.load(Ordering::SeqCst),
    );
    outcome(
        "log-flood",
        &format!(
            "{} ; host logged {lines} lines, longest {longest} bytes",
            report.trim()
        ),
        took,
    );
    assert!(
        report.contains("logged 100000 lines of 102400 bytes"),
        "{report}"
    );
    assert_eq!(lines, 100_000);
    assert!(
        longest < 4096 + 512,
        "log lines are cut (longest {longest})"
    );
    assert_recovers(&rt).await;
}

/// With the normal 500 ms CPU budget, time spent in the host on the guest's behalf (log
/// calls) counts: the flood is cut off by the budget instead of running for seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_bounded_by_the_cpu_budget() {
    let rt = runtime();
    let (result, took) = validate(rt, run("log-flood", &[])).await;
    let what = match &result {
        Ok(Err(ConnectorError::Internal(r))) => r.clone(),
        Err(e) => e.to_string(),
        other => format!("{other:?}"),
    };
    outcome("log-flood (budget)", &what, took);
    match result {
        // Fast enough to finish within the budget: fine too.
        Ok(Err(ConnectorError::Internal(report))) => {
            assert!(report.contains("logged 100000"), "{report}")
        }
        Err(CallError::Trapped { reason, .. }) => {
            assert!(reason.contains("CPU budget"), "{reason}");
            assert!(took < CPU + SLACK, "{took:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_recovers(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_flood_is_refused_by_the_store() {
    let rt = runtime();
    let run = run("session-flood", &[]);
    let (result, took) = validate(rt, run.clone()).await;
    let report = report("session-flood", result);
    outcome("session-flood", &report.trim().replace('\n', " | "), took);
    let full = format!("the session store is full ({SESSION_BYTES} bytes at most)");
    let one = line(&report, "session-flood: one value");
    assert!(one.contains(&full), "{report}");
    assert!(
        one.contains(&format!("refused at {SESSION_BYTES} bytes")),
        "{report}"
    );
    let small = line(&report, "session-flood: small keys");
    assert!(small.contains(&full), "{report}");
    assert!(number(small, "stored") > 900, "{report}");
    assert!(run.session.bytes() <= SESSION_BYTES);
    assert_recovers(rt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_export_runs_the_attack() {
    let rt = runtime();
    let run = run("unknown-attack-name", &[]);
    let mut instance = instance(rt, run).await;
    let metadata = instance.metadata().await.unwrap();
    assert_eq!(metadata.display_name, "Hostile");
    match instance.list_resources("user", None, "").await {
        Ok(Ok(page)) => {
            assert_eq!(page.items.len(), 1);
            assert!(page.items[0].display_name.contains("unknown attack"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        instance.resource_types().await,
        Ok(Err(ConnectorError::Internal(_)))
    ));
}

// ---------------------------------------------------------------------------------------------
// Memory the host holds on the guest's behalf, outside its linear memory

/// The production CPU budget (30 s) with the small memory limit and a 10 s wall limit: the
/// small test budget would end these floods before they show anything.
fn production_cpu_runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(
            guests::hostile_wasm(),
            RuntimeLimits {
                cpu_per_call: RuntimeLimits::default().cpu_per_call,
                wall_per_call: Duration::from_secs(10),
                ..limits(2)
            },
        )
        .expect("the guest compiles")
    })
}

/// A guest may make the host keep header maps (up to 128 KiB each, up to 100 000 handles per
/// store) that no limit of the runtime counts. 4000 maps of 100 KiB are ~400 MB of host memory
/// from a guest limited to 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_maps_the_guest_keeps_count_against_a_limit() {
    let _heavy = HEAVY.lock().await;
    let rt = production_cpu_runtime();
    let run = run("fields-flood", &[("count", "4000"), ("size", "102400")]);
    let mut instance = instance(rt, run).await;
    let before = rss();
    let started = Instant::now();
    let result = instance.validate().await;
    let took = started.elapsed();
    let grown = rss().saturating_sub(before);
    let what = match &result {
        Ok(Err(ConnectorError::Internal(r))) => r.clone(),
        other => format!("{other:?}"),
    };
    outcome(
        "fields-flood",
        &format!("{what} ; host RSS grew {} MiB", grown >> 20),
        took,
    );
    drop(instance);
    assert!(
        grown < 2 * MEMORY,
        "the host holds {} MiB for a guest limited to {} MiB ({what})",
        grown >> 20,
        MEMORY >> 20
    );
    assert_recovers(rt).await;
}

/// Request bodies are collected on the host before a request waits for an in-flight slot, so
/// a guest can park many bodies there: 150 bodies of 2 MiB, against a server that never
/// answers (8 requests in flight, 142 waiting with their bodies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_waiting_for_a_slot_count_against_a_limit() {
    let _heavy = HEAVY.lock().await;
    let silent = Server::start(Reply::Never).await;
    let rt = production_cpu_runtime();
    let run = run_with(
        "body-flood",
        &[
            ("target", &silent.url()),
            ("count", "150"),
            // Under the host's 1 MiB request cap, so every body is accepted and waits.
            ("size", "917504"),
        ],
        policy(&silent.url()),
    );
    let mut instance = instance(rt, run).await;
    let before = rss();
    let peak = Arc::new(AtomicUsize::new(before));
    let sampling = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let result = instance.validate().await;
    let took = started.elapsed();
    sampling.abort();
    let grown = peak.load(Ordering::SeqCst).saturating_sub(before);
    outcome(
        "body-flood",
        &format!(
            "{result:?} ; server saw {} connections ; host RSS grew {} MiB",
            silent.connections(),
            grown >> 20
        ),
        took,
    );
    drop(instance);
    assert_eq!(
        result,
        Err(CallError::TimedOut {
            call: "validate",
            after: rt.limits().wall_per_call
        }),
        "the guest wrote every body and waited"
    );
    assert!(silent.connections() <= 8, "in-flight limit held");
    assert!(
        grown < 2 * MEMORY,
        "the host held {} MiB for a guest limited to {} MiB",
        grown >> 20,
        MEMORY >> 20
    );
    assert_recovers(rt).await;
}

// ---------------------------------------------------------------------------------------------
// Messages

/// The CPU-budget trap names the budget in whole seconds, so a sub-second budget reads
/// "CPU budget of 0 s" (`runtime.rs`, `describe`: `cpu_budget_ticks * TICK / 1000` in integer
/// seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_budget_message_names_the_budget() {
    let rt = runtime();
    let (result, _) = validate(rt, run("spin", &[])).await;
    let reason = trap_reason("spin", result);
    assert!(reason.contains("CPU budget"), "{reason}");
    assert!(!reason.contains("budget of 0 s"), "{reason}");
}
