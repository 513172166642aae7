//! The `baton-segment` command as a user runs it: the demo, its summary, the flags and their
//! `BATON_*` variables, the inspection subcommands, and clear errors.
//! (Declared in host/Cargo.toml so that cargo hands it the binary's path.)

use std::path::Path;
use std::process::{Command, Output};

fn baton_segment(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton-segment"))
        .args(args)
        .current_dir(dir)
        .env_remove("BATON_TOKEN")
        .env_remove("BATON_FILE")
        .env_remove("BATON_BASE_URL")
        .env("BATON_LOG_FORMAT", "console")
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn demo_syncs_and_prints_a_readable_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = baton_segment(&["--demo"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Synced Segment workspace \"Acme Analytics\" (wkspAcme01) into sync.c1z"),
        "{stdout}"
    );
    let words = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in [
        "user 8",
        "group 4",
        "(all) 40",
        "entitlements 46",
        "grants 44 (10 through group membership)",
        "warnings 0",
    ] {
        assert!(words.contains(line), "{line:?} in\n{stdout}");
    }

    assert!(dir.path().join("sync.c1z").exists());

    // The inspection subcommands read it back.
    let out = baton_segment(&["resources", "-t", "invite"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("pat@acme.test") && listing.contains("(Invitation) quinn@partner.test"),
        "{listing}"
    );
    assert!(!listing.contains("usrAlice"));

    let out = baton_segment(
        &["grants", "-o", "json", "-e", "role:roleWsOwner:member"],
        dir.path(),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let mut ids: Vec<&str> = json["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    // Rows are in the order the listings answered.
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "role:roleWsOwner:member:group:grpAdmins",
            "role:roleWsOwner:member:user:usrAlice",
        ]
    );

    let out = baton_segment(&["stats", "-o", "json"], dir.path());
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["grants"], 44);
    assert_eq!(stats["resourcesByResourceType"]["role"], 13);

    for sub in ["resource-types", "entitlements", "stats"] {
        let out = baton_segment(&[sub], dir.path());
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "{sub}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn the_output_file_comes_from_the_flag_or_baton_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = baton_segment(&["--demo", "-f", "flag.c1z"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("flag.c1z").exists());
    let out = Command::new(env!("CARGO_BIN_EXE_baton-segment"))
        .arg("--demo")
        .current_dir(dir.path())
        .env("BATON_FILE", "env.c1z")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(dir.path().join("env.c1z").exists());
}

#[test]
fn help_documents_every_flag_with_its_variable() {
    let out = baton_segment(&["--help"], Path::new("."));
    let help = text(&out.stdout);
    for (flag, var) in [
        ("--token", "BATON_TOKEN"),
        ("--base-url", "BATON_BASE_URL"),
        ("--file", "BATON_FILE"),
        ("--log-level", "BATON_LOG_LEVEL"),
        ("--log-format", "BATON_LOG_FORMAT"),
        ("--demo", "BATON_DEMO"),
        ("--concurrency", "BATON_CONCURRENCY"),
        ("--http-timeout-seconds", "BATON_HTTP_TIMEOUT_SECONDS"),
    ] {
        assert!(
            help.contains(flag) && help.contains(var),
            "{flag} / {var} in\n{help}"
        );
    }
    assert!(help.contains("https://api.segmentapis.com"));
}

#[test]
fn a_missing_token_is_a_clear_error_before_any_work() {
    let (_rt, fake) = fake_segment();
    let dir = tempfile::tempdir().unwrap();
    let out = baton_segment(&["--base-url", &fake.base_url()], dir.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no Segment token") && err.contains("BATON_TOKEN"),
        "{err}"
    );
    assert!(!dir.path().join("sync.c1z").exists());
    assert!(fake.requests().is_empty(), "no request was made");
}

#[test]
fn a_wrong_token_exits_non_zero_and_leaves_the_previous_file() {
    let (_rt, fake) = fake_segment();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sync.c1z"), b"the previous sync").unwrap();
    let out = baton_segment(
        &["--base-url", &fake.base_url(), "--token", "not-the-token"],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Segment rejected the token (HTTP 401"),
        "{err}"
    );
    assert!(!err.contains("not-the-token"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("sync.c1z")).unwrap(),
        b"the previous sync"
    );
}

#[test]
fn a_token_never_shows_in_help_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "tok-should-never-be-printed";
    // An unreachable base URL (nothing listens on port 9): the sync fails, the token stays hidden.
    let out = Command::new(env!("CARGO_BIN_EXE_baton-segment"))
        .args(["--base-url", "http://127.0.0.1:9", "--log-level", "debug"])
        .current_dir(dir.path())
        .env("BATON_TOKEN", secret)
        .env("BATON_HTTP_TIMEOUT_SECONDS", "2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!text(&out.stderr).contains(secret) && !text(&out.stdout).contains(secret));
    let out = Command::new(env!("CARGO_BIN_EXE_baton-segment"))
        .arg("--help")
        .env("BATON_TOKEN", secret)
        .output()
        .unwrap();
    assert!(!text(&out.stdout).contains(secret));
}

#[test]
fn a_corrupt_c1z_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.c1z"), b"C1Z3\0not a v1 file").unwrap();
    let out = baton_segment(&["resources", "-f", "bad.c1z"], dir.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("bad.c1z"), "{err}");
    std::fs::write(dir.path().join("junk.c1z"), b"hello").unwrap();
    let out = baton_segment(&["stats", "-f", "junk.c1z"], dir.path());
    assert!(!out.status.success() && text(&out.stderr).contains("junk.c1z"));
}

#[test]
fn an_invalid_base_url_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_baton-segment"))
        .args(["--base-url", "ftp://example.com", "--token", "x"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid base URL"),
        "{}",
        text(&out.stderr)
    );
}

/// On/off variables take what Go's connectors take (`1`, `True`, `0`, …), so manifests
/// written for them work unchanged.
#[test]
fn on_off_variables_read_as_the_go_connector_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let with_demo = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_baton-segment"))
            .current_dir(dir.path())
            .env_remove("BATON_TOKEN")
            .env_remove("BATON_FILE")
            .env_remove("BATON_BASE_URL")
            .env("BATON_LOG_FORMAT", "console")
            .env("BATON_DEMO", value)
            .output()
            .unwrap()
    };
    for on in ["1", "True", "TRUE", "t", "yes"] {
        let out = with_demo(on);
        assert!(
            out.status.success(),
            "BATON_DEMO={on}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains("Acme Analytics"),
            "BATON_DEMO={on}"
        );
    }
    for off in ["0", "False", "f", "no"] {
        let out = with_demo(off);
        assert!(!out.status.success(), "BATON_DEMO={off}");
        assert!(
            text(&out.stderr).contains("no Segment token"),
            "BATON_DEMO={off}: {}",
            text(&out.stderr)
        );
    }
    let out = with_demo("maybe");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("BATON_DEMO") || text(&out.stderr).contains("--demo"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_token_is_never_sent_over_plain_http_to_another_machine() {
    let dir = tempfile::tempdir().unwrap();
    let out = baton_segment(
        &[
            "--base-url",
            "http://api.segmentapis.com",
            "--token",
            "tok-plain-http-9",
        ],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("base URL refused") && stderr.contains("unencrypted"),
        "{stderr}"
    );
    assert!(!stderr.contains("tok-plain-http-9"));
    assert!(!dir.path().join("sync.c1z").exists());
}

/// A fake Segment in this process, on its own runtime, for commands that talk to it.
fn fake_segment() -> (tokio::runtime::Runtime, fakes::segment::FakeSegment) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt
        .block_on(fakes::segment::FakeSegment::start(
            fakes::segment::FakeConfig::demo(),
        ))
        .unwrap();
    (rt, fake)
}

/// Ctrl-C during a sync: the previous file stays, and no temporary file is left behind.
#[test]
fn an_interrupted_sync_leaves_the_previous_file_and_no_temporary_files() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = fakes::segment::FakeConfig::demo();
    cfg.latency = std::time::Duration::from_millis(300);
    let fake = rt
        .block_on(fakes::segment::FakeSegment::start(cfg))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sync.c1z"), b"previous").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_baton-segment"))
        .current_dir(dir.path())
        .env("BATON_TOKEN", "demo-token")
        .env("BATON_BASE_URL", fake.base_url())
        .env("BATON_LOG_FORMAT", "console")
        .env_remove("BATON_FILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while fake.requests().is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no request came"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("interrupted before the sync finished; sync.c1z is unchanged"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("sync.c1z")).unwrap(),
        b"previous"
    );
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["sync.c1z"], "nothing else is left in the directory");
}

fn with_fake(args: &[&str], dir: &Path, fake: &fakes::segment::FakeSegment) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton-segment"))
        .args(args)
        .current_dir(dir)
        .env("BATON_TOKEN", "demo-token")
        .env("BATON_BASE_URL", fake.base_url())
        .env("BATON_LOG_FORMAT", "json")
        .output()
        .unwrap()
}

#[test]
fn provisioning_from_the_command_line_with_a_dry_run_that_sends_nothing() {
    let (_rt, fake) = fake_segment();
    let dir = tempfile::tempdir().unwrap();
    assert!(
        with_fake(&[], dir.path(), &fake).status.success(),
        "sync first"
    );

    fake.clear_requests();
    let out = with_fake(
        &[
            "--dry-run",
            "--grant-entitlement",
            "group:grpEng:member",
            "--grant-principal",
            "usrGrace",
            "--grant-principal-type",
            "user",
        ],
        dir.path(),
        &fake,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.contains("POST /groups/grpEng/users")
            && plan.contains(r#"{"emails":["grace@acme.test"]}"#),
        "{plan}"
    );
    assert!(
        fake.requests().is_empty(),
        "a dry run sends no request: {:?}",
        fake.requests()
    );

    let out = with_fake(
        &[
            "--grant-entitlement",
            "group:grpEng:member",
            "--grant-principal",
            "usrGrace",
            "--grant-principal-type",
            "user",
        ],
        dir.path(),
        &fake,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("granted (group:grpEng:member:user:usrGrace)"),
        "{}",
        text(&out.stdout)
    );
    // Every write is logged: what, to whom, the result; the token never.
    let logs = text(&out.stderr);
    assert!(
        logs.contains("add grace@acme.test to user group grpEng") && logs.contains("done"),
        "{logs}"
    );
    assert!(!logs.contains("demo-token"));

    // The new grant is looked up in the file, so it needs a sync before it can be revoked.
    let out = with_fake(
        &["--revoke-grant", "group:grpEng:member:user:usrGrace"],
        dir.path(),
        &fake,
    );
    assert!(
        text(&out.stderr).contains("no grant") && text(&out.stderr).contains("sync again"),
        "{}",
        text(&out.stderr)
    );
    assert!(with_fake(&[], dir.path(), &fake).status.success());
    let out = with_fake(
        &["--revoke-grant", "group:grpEng:member:user:usrGrace"],
        dir.path(),
        &fake,
    );
    assert!(
        text(&out.stdout).ends_with("revoked\n"),
        "{}",
        text(&out.stdout)
    );
    let out = with_fake(
        &["--revoke-grant", "group:grpEng:member:user:usrGrace"],
        dir.path(),
        &fake,
    );
    assert!(
        text(&out.stdout).contains("already revoked; nothing was changed"),
        "{}",
        text(&out.stdout)
    );
    let out = with_fake(
        &["--revoke-grant", "workspace:wkspAcme01:member:user:usrBob"],
        dir.path(),
        &fake,
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("delete the user instead"));
}

#[test]
fn provisioning_flags_follow_batons_rules() {
    let dir = tempfile::tempdir().unwrap();
    let out = baton_segment(
        &[
            "--grant-entitlement",
            "group:g:member",
            "--revoke-grant",
            "x",
        ],
        dir.path(),
    );
    assert!(!out.status.success(), "operations are mutually exclusive");
    let out = baton_segment(&["--grant-entitlement", "group:g:member"], dir.path());
    assert!(!out.status.success(), "a grant needs a principal");
    assert!(text(&out.stderr).contains("--grant-principal"));
    let out = baton_segment(&["--help"], dir.path());
    let help = text(&out.stdout);
    for (flag, var) in [
        ("--grant-entitlement", "BATON_GRANT_ENTITLEMENT"),
        ("--grant-principal", "BATON_GRANT_PRINCIPAL"),
        ("--grant-principal-type", "BATON_GRANT_PRINCIPAL_TYPE"),
        ("--revoke-grant", "BATON_REVOKE_GRANT"),
        ("--create-account-email", "BATON_CREATE_ACCOUNT_EMAIL"),
        ("--create-account-login", "BATON_CREATE_ACCOUNT_LOGIN"),
        ("--create-account-profile", "BATON_CREATE_ACCOUNT_PROFILE"),
        ("--delete-resource", "BATON_DELETE_RESOURCE"),
        ("--delete-resource-type", "BATON_DELETE_RESOURCE_TYPE"),
        ("--dry-run", "BATON_DRY_RUN"),
    ] {
        assert!(help.contains(flag) && help.contains(var), "{flag} / {var}");
    }
    // Without a synced file, ids cannot be looked up.
    let out = baton_segment(&["--revoke-grant", "x", "--token", "t"], dir.path());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("sync first"),
        "{}",
        text(&out.stderr)
    );
}

mod guests;

/// What the operator allows the tenants of `tenants_file`: token files in `dir`, variables
/// starting with `BATON_TEST_`, and the fake on 127.0.0.1.
fn serve_policy(dir: &Path) -> Vec<String> {
    [
        "--tenant-secrets-dir",
        dir.to_str().unwrap(),
        "--tenant-env-prefix",
        "BATON_TEST_",
        "--tenant-allow-addresses",
        "loopback",
    ]
    .map(String::from)
    .to_vec()
}

/// A tenants file with a tenant on the fake and one whose token variable is not set.
fn tenants_file(dir: &Path, fake: &fakes::segment::FakeSegment) -> std::path::PathBuf {
    std::fs::write(dir.join("acme.token"), "demo-token\n").unwrap();
    let text = format!(
        r#"
[[tenant]]
id = "acme"
base_url = "{url}"
token_file = "acme.token"
output = "acme.c1z"
interval = "1h"
[tenant.limits]
memory_mib = 64

[[tenant]]
id = "globex"
base_url = "{url}"
token_env = "BATON_TEST_GLOBEX_TOKEN_UNSET"
output = "globex.c1z"
"#,
        url = fake.base_url()
    );
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn serve_once_syncs_every_tenant_and_fails_if_one_did() {
    let (_rt, fake) = fake_segment();
    let dir = tempfile::tempdir().unwrap();
    let file = tenants_file(dir.path(), &fake);
    let policy = serve_policy(dir.path());
    let mut args = vec![
        "--log-format",
        "json",
        "serve",
        "--tenants",
        file.to_str().unwrap(),
        "--once",
        "--no-cache",
    ];
    args.extend(policy.iter().map(String::as_str));
    let out = baton_segment(&args, dir.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("1 of 2 tenants failed") && err.contains("globex: no token: the environment variable BATON_TEST_GLOBEX_TOKEN_UNSET is not set"), "{err}");
    assert!(dir.path().join("acme.c1z").exists());
    assert!(!dir.path().join("globex.c1z").exists());
    assert!(!err.contains("demo-token"));
    // Each run is logged with its figures (JSON lines: stdout is not a terminal).
    let acme = err
        .lines()
        .find(|l| l.contains(r#""tenant":"acme""#) && l.contains(r#""result":"success""#))
        .unwrap_or_else(|| panic!("no success line for acme in\n{err}"));
    for field in [
        r#""requests":29"#,
        r#""retries":0"#,
        r#""rate_limited":0"#,
        r#""grants":44"#,
        r#""peak_memory_kib":"#,
        r#""cpu_ms":"#,
    ] {
        assert!(acme.contains(field), "{field} in {acme}");
    }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn serve_exposes_per_tenant_metrics_on_the_health_check_port() {
    let (_rt, fake) = fake_segment();
    let dir = tempfile::tempdir().unwrap();
    let file = tenants_file(dir.path(), &fake);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton-segment"))
        .args([
            "serve",
            "--tenants",
            file.to_str().unwrap(),
            "--no-cache",
            "--health-check",
            "--health-check-port",
            &port.to_string(),
        ])
        .args(serve_policy(dir.path()))
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut metrics = String::new();
    // Up to a minute (the component is compiled first, --no-cache): a loaded machine is slow.
    for _ in 0..600 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Some(body) = http_get(&addr, "/metrics")
            && body.contains("tenant_last_run_success{tenant=\"acme\"} 1")
            && body.contains("tenant_last_run_success{tenant=\"globex\"} 0")
        {
            metrics = body;
            break;
        }
    }
    let live = http_get(&addr, "/live").unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        metrics.contains("baton_segment_tenant_requests_total{tenant=\"acme\"} 29"),
        "{metrics}"
    );
    assert!(metrics.contains("text/plain; version=0.0.4"));
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
}

#[test]
fn serve_refuses_a_component_that_imports_what_the_sandbox_does_not_grant() {
    let (_rt, fake) = fake_segment();
    let dir = tempfile::tempdir().unwrap();
    let file = tenants_file(dir.path(), &fake);
    let wasm = dir.path().join("filesystem.wasm");
    std::fs::write(&wasm, guests::filesystem_wasm()).unwrap();
    let policy = serve_policy(dir.path());
    let mut args = vec![
        "serve",
        "--tenants",
        file.to_str().unwrap(),
        "--once",
        "--no-cache",
        "--connector",
        wasm.to_str().unwrap(),
    ];
    args.extend(policy.iter().map(String::as_str));
    let out = baton_segment(&args, dir.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("does not grant: ") && err.contains("wasi:filesystem/types"),
        "{err}"
    );
    assert!(!dir.path().join("acme.c1z").exists(), "nothing ran");
}
