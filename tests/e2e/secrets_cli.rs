//! Secrets and the real binary: what `baton-segment` prints (stderr, the log in both formats)
//! never holds the token, even when the server on the allowed origin echoes it back
//! (`fakes::echo`); a secret given as a flag is warned about; and `serve` refuses a tenants
//! file that reaches for what the operator did not allow, before anything is sent.
//! (Declared in host/Cargo.toml so that cargo hands it the binary's path.)

use fakes::echo::{EchoFormat, EchoMode, EchoServer};
use fakes::segment::{FakeConfig, FakeSegment};
use std::path::Path;
use std::process::Output;

const SECRET: &str = "sgp_CliEchoTest7Qp2LmZx81kQp7uVb3nRtYw2LmA0cD9e";

async fn baton_segment(args: &[&str], envs: &[(&str, &str)], dir: &Path) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_baton-segment"))
        .args(args)
        .current_dir(dir)
        .env_remove("BATON_TOKEN")
        .env_remove("BATON_FILE")
        .env_remove("BATON_BASE_URL")
        .envs(envs.iter().copied())
        .output()
        .await
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_clean(what: &str, text: &str) {
    for piece in [SECRET, &SECRET[..12], &SECRET[12..30], &SECRET[30..]] {
        assert!(!text.contains(piece), "{what} holds {piece:?}:\n{text}");
    }
}

async fn servers(mode: EchoMode) -> (FakeSegment, EchoServer) {
    let segment = FakeSegment::start(FakeConfig {
        token: SECRET.into(),
        ..FakeConfig::demo()
    })
    .await
    .unwrap();
    let echo = EchoServer::start(&segment.base_url(), mode).await.unwrap();
    (segment, echo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_binary_prints_never_holds_the_token() {
    for (mode, format) in [
        (EchoMode::Status(422, EchoFormat::Json), "json"),
        (EchoMode::Status(400, EchoFormat::Json), "console"),
        (EchoMode::Ok, "json"),
    ] {
        let (_segment, echo) = servers(mode).await;
        let dir = tempfile::tempdir().unwrap();
        let out = baton_segment(
            &["--base-url", &echo.base_url(), "--log-level", "debug"],
            &[("BATON_TOKEN", SECRET), ("BATON_LOG_FORMAT", format)],
            dir.path(),
        )
        .await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!echo.echoed().is_empty(), "the server was asked");
        if mode == EchoMode::Ok {
            assert!(out.status.success(), "{stderr}");
        } else {
            assert!(!out.status.success());
            assert!(
                stderr.contains("[REDACTED]"),
                "the echo was quoted: {stderr}"
            );
        }
        assert_clean(&format!("stderr ({mode:?}, {format})"), &stderr);
        assert_clean(&format!("stdout ({mode:?})"), &stdout);
        assert!(
            !stderr.contains("on the command line"),
            "no warning for the variable"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_given_as_a_flag_is_warned_about() {
    let (_segment, echo) = servers(EchoMode::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let out = baton_segment(
        &["--base-url", &echo.base_url(), "--token", SECRET],
        &[("BATON_LOG_FORMAT", "console")],
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--token was given on the command line")
            && stderr.contains("set BATON_TOKEN in the environment instead"),
        "{stderr}"
    );
    assert_clean("stderr", &stderr);
}

/// A tenants file in `dir`, and `serve --once` run on it with `flags`.
async fn serve(dir: &Path, tenants: &str, flags: &[&str], envs: &[(&str, &str)]) -> Output {
    std::fs::write(dir.join("tenants.toml"), tenants).unwrap();
    let mut args = vec!["serve", "--tenants", "tenants.toml", "--once", "--no-cache"];
    args.extend(flags);
    baton_segment(&args, envs, dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_never_hold_the_token() {
    let (_segment, echo) = servers(EchoMode::Status(400, EchoFormat::Json)).await;
    let dir = tempfile::tempdir().unwrap();
    let tenants = format!(
        "[[tenant]]\nid = \"echoed\"\nbase_url = \"{}\"\ntoken_env = \"TENANT_TOKEN_ECHOED\"\noutput = \"echoed.c1z\"\n",
        echo.base_url()
    );
    let out = serve(
        dir.path(),
        &tenants,
        &[
            "--tenant-env-prefix",
            "TENANT_TOKEN_",
            "--tenant-allow-addresses",
            "loopback",
        ],
        &[
            ("TENANT_TOKEN_ECHOED", SECRET),
            ("BATON_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("1 of 1 tenants failed"), "{stderr}");
    assert!(stderr.contains("[REDACTED]"), "{stderr}");
    assert_clean("serve's stderr", &stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_what_the_operator_did_not_allow_before_sending_anything() {
    let (_segment, echo) = servers(EchoMode::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let base = echo.base_url();
    let entry = |extra: &str| {
        format!("[[tenant]]\nid = \"t\"\nbase_url = \"{base}\"\noutput = \"t.c1z\"\n{extra}\n")
    };
    let allow = ["--tenant-allow-addresses", "loopback"];
    let with_dir = [
        "--tenant-secrets-dir",
        secrets.to_str().unwrap(),
        "--tenant-allow-addresses",
        "loopback",
    ];
    for (tenants, flags, says) in [
        // The attack: a host file as the bearer token.
        (
            entry("token_file = \"/etc/hostname\""),
            &allow[..],
            "--tenant-secrets-dir",
        ),
        (
            entry("token_file = \"/etc/hostname\""),
            &with_dir[..],
            "outside the secrets directory",
        ),
        (
            entry("token_env = \"BATON_CLIENT_SECRET\""),
            &allow[..],
            "--tenant-env-prefix",
        ),
        // The fake is on 127.0.0.1: not without the operator's word.
        (
            entry("token_env = \"TENANT_X\""),
            &["--tenant-env-prefix", "TENANT_"][..],
            "loopback address",
        ),
    ] {
        let out = serve(dir.path(), &tenants, flags, &[("TENANT_X", SECRET)]).await;
        let stderr = text(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(says), "{says:?} in {stderr}");
    }
    let output_root = dir.path().join("out");
    std::fs::create_dir(&output_root).unwrap();
    let escape = format!(
        "[[tenant]]\nid = \"t\"\nbase_url = \"{base}\"\ntoken_env = \"TENANT_X\"\noutput = \"../escape.c1z\"\n"
    );
    let out = serve(
        dir.path(),
        &escape,
        &[
            "--tenant-env-prefix",
            "TENANT_",
            "--tenant-allow-addresses",
            "loopback",
            "--output-root",
            output_root.to_str().unwrap(),
        ],
        &[("TENANT_X", SECRET)],
    )
    .await;
    assert!(text(&out.stderr).contains("outside the output root"));
    assert!(echo.echoed().is_empty(), "nothing was sent");

    // Allowed: it syncs into the output root.
    let ok = format!(
        "[[tenant]]\nid = \"t\"\nbase_url = \"{base}\"\ntoken_env = \"TENANT_X\"\noutput = \"t.c1z\"\n"
    );
    let out = serve(
        dir.path(),
        &ok,
        &[
            "--tenant-env-prefix",
            "TENANT_",
            "--tenant-allow-addresses",
            "loopback",
            "--output-root",
            output_root.to_str().unwrap(),
        ],
        &[("TENANT_X", SECRET)],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(output_root.join("t.c1z").exists());
}
