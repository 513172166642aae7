//! Enterprise networks through the real binary: an HTTP `CONNECT` proxy on loopback (which
//! alone resolves the `*.example.test` names) between the host and both ConductorOne and the
//! Segment origin, each served over TLS by a private CA that only `BATON_C1_CA_CERT` trusts.
//! (Declared in host/Cargo.toml so that cargo hands it the binary's path.)

use fakes::c1::{FakeC1, FakeC1Config};
use fakes::proxy::ConnectProxy;
use fakes::segment::{FakeConfig, FakeSegment};
use fakes::tls_front::TlsFront;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const SEGMENT_HOST: &str = "segment.example.test";
const C1_HOST: &str = "c1.example.test";
const WAIT: Duration = Duration::from_secs(120);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton-segment"));
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        let proxy_var = k.eq_ignore_ascii_case("https_proxy")
            || k.eq_ignore_ascii_case("http_proxy")
            || k.eq_ignore_ascii_case("no_proxy")
            || k == "SSL_CERT_FILE"
            || k == "SSL_CERT_DIR";
        if k.starts_with("BATON_") || proxy_var {
            cmd.env_remove(k);
        }
    }
    cmd.env("BATON_LOG_FORMAT", "json");
    cmd
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// The fake Segment API behind TLS for `SEGMENT_HOST`, and the proxy that resolves it.
struct SegmentBehindProxy {
    segment: FakeSegment,
    front: TlsFront,
    proxy: ConnectProxy,
}

impl SegmentBehindProxy {
    async fn start() -> SegmentBehindProxy {
        let segment = FakeSegment::start(FakeConfig::demo()).await.unwrap();
        let front = TlsFront::start(segment.addr(), &[SEGMENT_HOST])
            .await
            .unwrap();
        let proxy = ConnectProxy::start().await.unwrap();
        proxy.map_host(SEGMENT_HOST, "127.0.0.1");
        SegmentBehindProxy {
            segment,
            front,
            proxy,
        }
    }

    fn authority(&self) -> String {
        format!("{SEGMENT_HOST}:{}", self.front.port())
    }

    fn base_url(&self) -> String {
        format!("https://{}", self.authority())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_is_reached_through_the_proxy_trusting_the_private_ca() {
    let env = SegmentBehindProxy::start().await;
    env.proxy.require_basic_auth("corp", "pr0xy pass");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, env.front.ca_pem()).unwrap();
    let proxy_url = format!("http://corp:pr0xy%20pass@{}", env.proxy.addr());

    let mut cmd = command(dir.path());
    cmd.env("BATON_TOKEN", FakeConfig::demo().token)
        .env("BATON_BASE_URL", env.base_url())
        .env("BATON_C1_CA_CERT", &ca)
        .env("HTTPS_PROXY", &proxy_url);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!env.segment.requests().is_empty());
    let tunnels = env.proxy.tunnels();
    assert!(!tunnels.is_empty());
    for t in &tunnels {
        // Only the Segment origin the sandbox allows, and with the proxy's credentials.
        assert_eq!(t.authority, env.authority());
        assert_eq!(t.status, 200);
        assert!(
            t.proxy_authorization
                .as_deref()
                .unwrap_or_default()
                .starts_with("Basic ")
        );
    }
    // The Segment token never reached the proxy in the clear, and no credential is logged.
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("pr0xy"), "{stderr}");
    assert!(env.proxy.refused().is_empty());

    // The OS certificate store is trusted, as the Go connector trusts it: the same CA given
    // as the system's (SSL_CERT_FILE is where OpenSSL-style stores are read from).
    let mut cmd = command(dir.path());
    cmd.env("BATON_TOKEN", FakeConfig::demo().token)
        .env("BATON_BASE_URL", env.base_url())
        .env("SSL_CERT_FILE", &ca)
        .env("HTTPS_PROXY", &proxy_url)
        .arg("-f")
        .arg("os-store.c1z");
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Without the private CA the origin is not trusted (the OS store does not know it).
    let mut cmd = command(dir.path());
    cmd.env("BATON_TOKEN", FakeConfig::demo().token)
        .env("BATON_BASE_URL", env.base_url())
        .env("HTTPS_PROXY", &proxy_url)
        .arg("-f")
        .arg("untrusted.c1z");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!dir.path().join("untrusted.c1z").exists());

    // A proxy that refuses the credentials: a clear failure, not a hang.
    let mut cmd = command(dir.path());
    cmd.env("BATON_TOKEN", FakeConfig::demo().token)
        .env("BATON_BASE_URL", env.base_url())
        .env("BATON_C1_CA_CERT", &ca)
        .env("HTTPS_PROXY", format!("http://{}", env.proxy.addr()))
        .arg("-f")
        .arg("refused.c1z");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(env.proxy.tunnels().iter().any(|t| t.status == 407));
}

#[test]
fn a_malformed_proxy_setting_is_an_error_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("HTTPS_PROXY", "socks5://user:hunter2@proxy:1080")
        .arg("--demo")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("HTTPS_PROXY") && stderr.contains("only http://"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// Kills the child if the test fails half-way.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_mode_goes_through_the_proxy_for_conductorone_and_segment() {
    let env = SegmentBehindProxy::start().await;
    let (mut cfg, secret) = FakeC1Config::generated("baton-segment");
    cfg.next_poll = Duration::from_millis(100);
    cfg.server_names = vec![C1_HOST.to_string()];
    let client_id = cfg.client_id.clone();
    let c1 = FakeC1::start(cfg).await.unwrap();
    env.proxy.map_host(C1_HOST, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    // One bundle: the private CAs of ConductorOne and of the Segment origin.
    let ca = dir.path().join("cas.pem");
    std::fs::write(&ca, format!("{}\n{}", c1.ca_pem(), env.front.ca_pem())).unwrap();
    let c1_authority = format!("{C1_HOST}:{}", c1.addr().port());

    let mut cmd = command(dir.path());
    cmd.env("BATON_CLIENT_ID", &client_id)
        .env("BATON_CLIENT_SECRET", &secret)
        .env("BATON_C1_API_HOST", &c1_authority)
        .env("BATON_C1_CA_CERT", &ca)
        .env("BATON_TOKEN", FakeConfig::demo().token)
        .env("BATON_BASE_URL", env.base_url())
        .env("HTTPS_PROXY", env.proxy.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _running = Running(Some(cmd.spawn().expect("the binary starts")));

    c1.wait_for_hellos(1, WAIT)
        .await
        .expect("Hello through the proxy");
    let task_id = c1.push_sync_task();
    let finished = c1
        .wait_for_finished(1, WAIT)
        .await
        .expect("the sync finishes");
    assert_eq!(finished[0].task_id, task_id);
    assert!(finished[0].is_success(), "{:?}", finished[0]);
    assert_eq!(c1.uploads().len(), 1);

    let authorities: std::collections::BTreeSet<String> = env
        .proxy
        .tunnels()
        .into_iter()
        .map(|t| t.authority)
        .collect();
    // The token endpoint and the gRPC channel (one origin), and the Segment origin.
    assert_eq!(authorities.into_iter().collect::<Vec<_>>(), {
        let mut v = vec![c1_authority.clone(), env.authority()];
        v.sort();
        v
    });
    assert!(!c1.received_anywhere(&secret));
}
