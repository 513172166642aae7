//! Bad input gets a clear error and loses nothing: a wrong token, a malformed or truncated
//! answer, an unwritable output path. Transient trouble (429, 5xx, a dropped connection) is
//! waited out and the sync completes.

mod common;

use common::*;
use fakes::segment::{FakeConfig, Fault, FaultKind};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_reported_and_the_existing_file_is_untouched() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    let path = out(&dir);
    std::fs::write(&path, b"the previous good sync").unwrap();
    let err = baton_segment::commands::sync::sync_on(runtime(), job(&fake, "not-the-token", &path))
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("Segment rejected the token (HTTP 401"),
        "{text}"
    );
    assert!(text.contains("unchanged"), "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), b"the previous good sync");
    // It stopped at the first request, and left no temp file behind.
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_access_is_reported_with_its_status() {
    let fake = fake(FakeConfig::demo()).await;
    fake.inject(Fault::on(
        Some("GET"),
        "/",
        FaultKind::Status {
            status: 403,
            body: r#"{"errors":[{"type":"forbidden","message":"Forbidden"}]}"#.into(),
        },
        1,
    ));
    let dir = temp_dir();
    let err = sync(&fake, &out(&dir)).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("Segment rejected the token (HTTP 403: Forbidden)"),
        "{err:#}"
    );
    assert!(!out(&dir).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_names_the_endpoint_and_writes_nothing() {
    let fake = fake(FakeConfig::demo()).await;
    fake.inject(Fault::on(
        Some("GET"),
        "/users",
        FaultKind::MalformedJson,
        1,
    ));
    let dir = temp_dir();
    let err = sync(&fake, &out(&dir)).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("GET /users") && text.contains("not valid"),
        "{text}"
    );
    assert!(!out(&dir).exists());
    // What was stored before the bad page stays, private, for the next sync to resume from.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [".sync.c1z.work"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(".sync.c1z.work"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    // The server answers well again: the next sync resumes and completes.
    let summary = sync(&fake, &out(&dir)).await.unwrap();
    assert!(summary.resumed);
    assert_eq!(Synced::open(&out(&dir)).resource_keys().len(), 40);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_names_the_endpoint() {
    let fake = fake(FakeConfig::demo()).await;
    let cut = r#"{"data":{"sources":[{"id":"srcWeb","slug":"acme-web","na"#;
    fake.inject(Fault::on(
        Some("GET"),
        "/sources",
        FaultKind::Status {
            status: 200,
            body: cut.into(),
        },
        1,
    ));
    let dir = temp_dir();
    let err = sync(&fake, &out(&dir)).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("GET /sources") && text.contains("truncated"),
        "{text}"
    );
    assert!(!out(&dir).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_body_is_retried() {
    let fake = fake(FakeConfig::demo()).await;
    fake.inject(Fault::on(
        Some("GET"),
        "/invites",
        FaultKind::TruncatedJson,
        1,
    ));
    let dir = temp_dir();
    let summary = sync(&fake, &out(&dir))
        .await
        .expect("the second attempt succeeds");
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/invites")
            .count(),
        2
    );
    assert!(summary.retried_calls >= 1);
    assert!(
        Synced::open(&out(&dir))
            .resource_keys()
            .contains(&"invite:pat@acme.test".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_output_path_fails_before_any_request() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    let path = dir.path().join("no-such-dir").join("sync.c1z");
    let err = sync(&fake, &path).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot write the output file"),
        "{err:#}"
    );
    assert!(fake.requests().is_empty());
}

/// Syncs with `GET /roles` answered 429 once (as `kind` says); checks that the sync waited at
/// least `at_least`, asked again once, completed, and counted the 429. (The host reads the
/// standard headers only; Segment's `msBeforeNext` in the body is the component's to read.)
async fn waits_out_a_429(
    kind: FaultKind,
    at_least: Duration,
) -> baton_segment::commands::summary::SyncSummary {
    let fake = fake(FakeConfig::demo()).await;
    fake.inject(Fault::on(Some("GET"), "/roles", kind, 1));
    let dir = temp_dir();
    let start = Instant::now();
    let summary = sync(&fake, &out(&dir))
        .await
        .expect("the sync completes after waiting");
    let took = start.elapsed();
    assert!(took >= at_least, "waited {took:?}");
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/roles")
            .count(),
        2
    );
    assert_eq!(summary.net.rate_limited, 1);
    assert_eq!(Synced::open(&out(&dir)).entitlement_ids().len(), 46);
    summary
}

/// A 429 a moment long (Segment's reset date is within the second): the request is sent again
/// after a short pause, and the sync completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_back_pressure_and_the_sync_completes() {
    let summary = waits_out_a_429(
        FaultKind::RateLimited { ms_before_next: 30 },
        Duration::ZERO,
    )
    .await;
    assert!(summary.net.rate_limit_wait_ms <= 200, "{summary:?}");
    assert_eq!(summary.net.retries, 1);
}

/// A 429 without `msBeforeNext` in its body: the `X-RateLimit-Reset` date says when to come
/// back. The date has whole seconds, so the wait is at least 1.5 s of the 2.5 asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_only_a_reset_date_is_waited_out_until_that_date() {
    waits_out_a_429(
        FaultKind::RateLimitedHeaderOnly {
            reset_after_ms: 2_500,
        },
        Duration::from_millis(1_500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_on_reads_are_retried_with_backoff() {
    let fake = fake(FakeConfig::demo()).await;
    let body = r#"{"errors":[{"type":"internal","message":"upstream timeout"}]}"#;
    fake.inject(Fault::on(
        Some("GET"),
        "/users",
        FaultKind::Status {
            status: 503,
            body: body.into(),
        },
        2,
    ));
    let dir = temp_dir();
    let summary = sync(&fake, &out(&dir))
        .await
        .expect("the third attempt succeeds");
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path == "/users")
            .count(),
        3
    );
    assert_eq!(summary.net.server_errors, 2);
    assert_eq!(summary.net.retries, 2);
    assert_eq!(Synced::open(&out(&dir)).resource_keys().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_server_errors_fail_the_sync_with_the_status() {
    let fake = fake(FakeConfig::demo()).await;
    let body = r#"{"errors":[{"type":"internal","message":"down for maintenance"}]}"#;
    fake.inject(Fault::on(
        Some("GET"),
        "/",
        FaultKind::Status {
            status: 500,
            body: body.into(),
        },
        1000,
    ));
    let dir = temp_dir();
    let mut j = job(&fake, TOKEN, &out(&dir));
    j.connection.concurrency = 1;
    let err = tokio::time::timeout(
        Duration::from_secs(120),
        baton_segment::commands::sync::sync_on(runtime(), j),
    )
    .await;
    let err = err.expect("gives up in time").unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("GET /")
            && text.contains("HTTP 500")
            && text.contains("down for maintenance"),
        "{text}"
    );
    assert!(!out(&dir).exists());
    assert_eq!(
        fake.requests().iter().filter(|r| r.path == "/").count(),
        5,
        "the host's 5 tries, then a clear failure (no minutes of retries at the first contact)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_made_once_per_sync_are_retried_too() {
    let fake = fake(FakeConfig::demo()).await;
    // A host that hands every 429 to the component at once (as a host without pacing would):
    // the component reports validate rate limited with Segment's `msBeforeNext`, and the engine
    // calls it again after that wait, as often as it takes.
    fake.inject(Fault::on(
        Some("GET"),
        "/",
        FaultKind::RateLimited { ms_before_next: 50 },
        3,
    ));
    let dir = temp_dir();
    let j = job(&fake, TOKEN, &out(&dir));
    let mut policy = j.connection.policy();
    policy.retry.max_rate_limit_wait = Duration::ZERO;
    let run = j.connection.run_context(policy);
    let started = Instant::now();
    let summary = baton_segment::commands::sync::sync_in(runtime(), j, run, None)
        .await
        .expect("validate succeeds when called again");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(fake.requests().iter().filter(|r| r.path == "/").count(), 4);
    assert_eq!(summary.retried_calls, 3);
    assert_eq!(Synced::open(&out(&dir)).resource_keys().len(), 40);
}

/// A sync whose every component call may take at most `wall` (rate-limit pauses aside).
async fn sync_with_wall_per_call(
    fake: &fakes::segment::FakeSegment,
    output: &std::path::Path,
    wall: Duration,
) -> anyhow::Result<baton_segment::commands::summary::SyncSummary> {
    let j = job(fake, TOKEN, output);
    let limits = baton_segment::engine::limits::InstanceLimits {
        memory_bytes: 256 << 20,
        cpu_per_call: Duration::from_secs(30),
        wall_per_call: wall,
    };
    let run = j
        .connection
        .run_context_with(j.connection.policy(), Some(limits));
    baton_segment::commands::sync::sync_in(runtime(), j, run, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_out_a_429_does_not_count_against_the_time_a_call_may_take() {
    let limited = fake(FakeConfig::demo()).await;
    // Segment asks for a pause longer than a call may take.
    limited.inject(Fault::on(
        Some("GET"),
        "/roles",
        FaultKind::RateLimited {
            ms_before_next: 2_500,
        },
        1,
    ));
    let dir = temp_dir();
    let summary = sync_with_wall_per_call(&limited, &out(&dir), Duration::from_secs(2))
        .await
        .expect("the call waits as Segment says and completes");
    assert_eq!(summary.net.rate_limited, 1);
    assert_eq!(Synced::open(&out(&dir)).entitlement_ids().len(), 46);

    // Without a pause Segment asked for, a slow call is still cut off at the limit.
    let slow = fake(FakeConfig::demo()).await;
    slow.inject(Fault::on(
        Some("GET"),
        "/roles",
        FaultKind::Delay(Duration::from_millis(2_500)),
        1,
    ));
    let err = sync_with_wall_per_call(&slow, &out(&dir), Duration::from_secs(2))
        .await
        .expect_err("the slow call is cut off");
    assert!(
        format!("{err:#}").contains("did not finish list-resources within 2 s"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_never_ends_is_stopped_by_the_request_budget() {
    // Every page of /invites hands out a cursor never seen before.
    let endless = fake(FakeConfig::demo()).await;
    endless.inject(Fault::on(
        Some("GET"),
        "/invites",
        FaultKind::EndlessCursor,
        u32::MAX,
    ));
    let dir = temp_dir();
    let path = out(&dir);
    std::fs::write(&path, b"the previous good sync").unwrap();
    let mut j = job(&endless, TOKEN, &path);
    // Every sync has a budget by default; a small one here, so the test ends quickly.
    assert_eq!(
        j.connection.request_budget,
        Some(baton_segment::commands::connection::DEFAULT_REQUEST_BUDGET)
    );
    j.connection.request_budget = Some(200);
    let err = baton_segment::commands::sync::sync_on(runtime(), j)
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("budget"), "{text}");
    assert!(text.contains("unchanged"), "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), b"the previous good sync");
    let invites = endless
        .requests()
        .iter()
        .filter(|r| r.path == "/invites")
        .count();
    assert!(
        invites > 50,
        "{invites} pages of the endless listing were read"
    );
    assert!(endless.requests().len() <= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_stopped_by_its_deadline_keeps_its_work_and_the_next_one_resumes() {
    stopped_sync_resumes("deadline", |mut job| async move {
        job.deadline = Duration::from_secs(1);
        baton_segment::commands::sync::sync_on(runtime(), job).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sync_keeps_its_work_and_session_and_the_next_one_resumes() {
    // What Ctrl-C or SIGTERM does to the command line's sync.
    stopped_sync_resumes("interrupted", |job| {
        let interrupt = tokio::time::sleep(Duration::from_secs(1));
        baton_segment::commands::sync::sync_on_until(runtime(), job, interrupt)
    })
    .await;
}

/// A sync that `stopped` ends after its first pages (its error says `why`) leaves the output
/// alone and keeps its work and the connector's session store; the next sync resumes from them.
async fn stopped_sync_resumes<F, Fut>(why: &str, stopped: F)
where
    F: FnOnce(baton_segment::commands::sync::SyncJob) -> Fut,
    Fut:
        std::future::Future<Output = anyhow::Result<baton_segment::commands::summary::SyncSummary>>,
{
    let mut cfg = FakeConfig::demo();
    // Each answer takes 250 ms: the sync's first pages are stored well within a second, and
    // the whole sync (about ten rounds of requests) takes far longer.
    cfg.latency = Duration::from_millis(250);
    let fake = fake(cfg).await;
    let dir = temp_dir();
    let err = stopped(job(&fake, TOKEN, &out(&dir))).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains(why) && text.contains("resumes"), "{text}");
    assert!(!out(&dir).exists());
    // The work (held in memory until then) and the connector's session store are on disk.
    let work = dir.path().join(".sync.c1z.work");
    for file in ["db", "owner", "session.db"] {
        assert!(work.join(file).exists(), "{file} is missing");
    }
    let asked = fake.requests().len();
    fake.clear_requests();

    let summary = sync(&fake, &out(&dir)).await.unwrap();
    assert!(summary.resumed);
    assert_eq!(Synced::open(&out(&dir)).resource_keys().len(), 40);
    assert!(!work.exists());
    // Together no more than a sync and the once-per-sync reads again.
    assert!(
        asked + fake.requests().len() <= 29 + 6,
        "{asked} + {} requests",
        fake.requests().len()
    );
}
