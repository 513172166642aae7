//! Service mode through the real `baton-segment` binary: it runs against the fake
//! ConductorOne until SIGTERM, serving health checks; refused or malformed credentials are
//! clear errors, and the secret never appears in its output, even at debug level.
//! (Declared in host/Cargo.toml so that cargo hands it the binary's path.)

use baton::c1::service::{Task, task};
use baton::pb;
use fakes::c1::{FakeC1, FakeC1Config};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The binary with a clean environment of `BATON_*` settings.
fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton-segment"));
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("BATON_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("BATON_LOG_FORMAT", "json");
    cmd
}

/// The fake ConductorOne, its CA written to `dir`, and the client secret.
async fn fake_c1(dir: &Path) -> (FakeC1, String, String, PathBuf) {
    let (mut cfg, secret) = FakeC1Config::generated("baton-segment");
    cfg.next_poll = Duration::from_millis(100);
    let id = cfg.client_id.clone();
    let fake = FakeC1::start(cfg).await.unwrap();
    let ca = dir.join("c1-ca.pem");
    fake.write_ca_pem(&ca).unwrap();
    (fake, id, secret, ca)
}

fn connect_to(cmd: &mut Command, fake: &FakeC1, id: &str, secret: &str, ca: &Path) {
    cmd.env("BATON_CLIENT_ID", id)
        .env("BATON_CLIENT_SECRET", secret)
        .env("BATON_C1_API_HOST", fake.host())
        .env("BATON_C1_CA_CERT", ca);
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_secret_is_a_clear_error_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, id, right_secret, ca) = fake_c1(dir.path()).await;
    // Well-formed, but for another key.
    let (_, wrong_secret, _) =
        baton::c1::credentials::generate_credentials("baton-segment", "127.0.0.1");
    let mut cmd = command(dir.path());
    connect_to(&mut cmd, &fake, &id, &wrong_secret, &ca);
    cmd.env("BATON_LOG_LEVEL", "debug").arg("--demo");
    let out = output(cmd).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ConductorOne refused the client credentials (Unauthenticated: HTTP 401"),
        "{stderr}"
    );
    assert!(stderr.contains("BATON_CLIENT_SECRET"), "{stderr}");
    let key = &wrong_secret["secret-token:conductorone.com:v1:".len()..];
    for needle in [
        wrong_secret.as_str(),
        key,
        &key[..16],
        &key[key.len() - 16..],
    ] {
        assert!(!stderr.contains(needle), "the secret leaked: {stderr}");
        assert!(!stdout.contains(needle), "the secret leaked: {stdout}");
    }
    assert!(!stderr.contains(&right_secret[34..]));
    assert_eq!(fake.token_requests(), 1, "refusals are not retried");
    assert!(!fake.received_anywhere(&wrong_secret));
    assert!(fake.hellos().is_empty());
}

#[test]
fn malformed_credentials_and_flag_misuse_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broken = "secret-token:conductorone.com:v1:QUFBQS1ub3QtYS1qd2s";
    let out = command(dir.path())
        .args(["--demo", "--client-id", "svc@acme.conductor.one/pcc"])
        .args(["--client-secret", broken])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("BATON_CLIENT_SECRET"), "{stderr}");
    assert!(!stderr.contains("QUFBQS1ub3QtYS1qd2s"), "{stderr}");
    assert!(!text(&out.stdout).contains("QUFBQS1ub3QtYS1qd2s"));

    let out = command(dir.path())
        .args(["--demo", "--client-id", "no-host-here"])
        .env("BATON_CLIENT_SECRET", broken)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("BATON_CLIENT_ID"), "{stderr}");
    assert!(!stderr.contains("QUFBQS1ub3QtYS1qd2s"), "{stderr}");

    // Required together.
    let out = command(dir.path())
        .args(["--client-id", "svc@acme.conductor.one/pcc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "errors exit 1, as Baton's do");
    assert!(
        text(&out.stderr).contains("--client-secret"),
        "{}",
        text(&out.stderr)
    );

    // Service mode does not mix with one-shot provisioning.
    let out = command(dir.path())
        .args(["--client-id", "svc@acme.conductor.one/pcc"])
        .env("BATON_CLIENT_SECRET", broken)
        .args(["--revoke-grant", "group:grpEng:member:user:usrBob"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "errors exit 1, as Baton's do");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert!(!stderr.contains("QUFBQS1ub3QtYS1qd2s"), "{stderr}");

    // The help lists the service-mode flags.
    let out = command(dir.path()).arg("--help").output().unwrap();
    let help = text(&out.stdout);
    for flag in [
        "--client-id",
        "--client-secret",
        "--provisioning",
        "--health-check",
        "--health-check-port",
        "--health-check-bind-address",
        "BATON_HOST_ID",
    ] {
        assert!(help.contains(flag), "{flag} in\n{help}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// `baton-segment health-check` against `port`.
fn health_check(dir: &Path, port: u16, path: &str) -> Command {
    let mut cmd = command(dir);
    cmd.args(["health-check", "--path", path, "--health-check-port"])
        .arg(port.to_string());
    cmd
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
async fn runs_as_a_service_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, id, secret, ca) = fake_c1(dir.path()).await;
    // A Segment that takes writes (the built-in demo workspace is read-only).
    let segment = fakes::segment::FakeSegment::start(fakes::segment::FakeConfig::demo())
        .await
        .unwrap();
    let port = free_port();
    let log_path = dir.path().join("baton-segment.log");
    let mut cmd = command(dir.path());
    connect_to(&mut cmd, &fake, &id, &secret, &ca);
    // As a manifest written for the Go connector may say it (strconv.ParseBool's "1").
    cmd.env("BATON_HOST_ID", "cli-host")
        .env("BATON_PROVISIONING", "1")
        .env("BATON_LOG_LEVEL", "debug")
        .env("BATON_BASE_URL", segment.base_url())
        .env("BATON_TOKEN", fakes::segment::FakeConfig::demo().token)
        .args(["--health-check", "--health-check-port"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let mut running = Running(Some(cmd.spawn().expect("the binary starts")));
    let pid = running.0.as_ref().unwrap().id();

    let hellos = fake.wait_for_hellos(1, WAIT).await.expect("it says hello");
    assert_eq!(hellos[0].host_id, "cli-host");
    // The binary's own probe (what an exec probe in an image without a shell runs): ready
    // once ConductorOne has taken the Hello.
    let started = Instant::now();
    loop {
        let probe = output(health_check(dir.path(), port, "/ready")).await;
        if probe.status.success() {
            assert!(text(&probe.stdout).contains("ready"), "{probe:?}");
            break;
        }
        assert!(started.elapsed() < WAIT, "never ready: {probe:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(http_get(port, "/live").starts_with("HTTP/1.1 200"));
    assert!(http_get(port, "/health").contains("\r\n\r\nready"));

    let task_id = fake.push_sync_task();
    let finished = fake.wait_for_finished(1, WAIT).await.unwrap();
    assert_eq!(finished[0].task_id, task_id);
    assert!(finished[0].is_success(), "{:?}", finished[0]);
    assert_eq!(fake.uploads().len(), 1);
    assert_eq!(fake.uploads()[0].host_id, "cli-host");

    // Provisioning is on (BATON_PROVISIONING=1): an invitation task is carried out.
    let invite = fake.push_task(Task {
        id: String::new(),
        status: task::Status::Pending as i32,
        debug: false,
        task_type: Some(task::TaskType::CreateAccount(task::CreateAccountTask {
            account_info: Some(pb::AccountInfo {
                emails: vec![pb::account_info::Email {
                    address: "new.hire@acme.test".into(),
                    is_primary: true,
                }],
                login: String::new(),
                login_aliases: vec![],
                profile: None,
            }),
            credential_options: None,
            encryption_configs: vec![],
            resource_type_id: String::new(),
        })),
    });
    let finished = fake.wait_for_finished(2, WAIT).await.unwrap();
    assert_eq!(finished[1].task_id, invite);
    assert!(finished[1].is_success(), "{:?}", finished[1]);

    // SIGTERM: a clean stop.
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = running.0.take().unwrap();
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "it stops within 30 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(exit.success(), "{exit:?}\n{log}");
    // Nothing listens any more: the probe fails and says what it tried.
    let probe = output(health_check(dir.path(), port, "/ready")).await;
    assert!(!probe.status.success());
    assert!(
        text(&probe.stderr).contains(&format!(
            "no health server at http://127.0.0.1:{port}/ready"
        )),
        "{probe:?}"
    );
    assert!(log.contains("connected to ConductorOne"), "{log}");
    assert!(log.contains(&task_id), "the task is logged by id:\n{log}");
    assert!(log.contains("task finished"), "{log}");
    assert!(log.contains("service mode stopped"), "{log}");
    let key = &secret["secret-token:conductorone.com:v1:".len()..];
    assert!(
        !log.contains(key) && !log.contains(&key[..16]),
        "the secret leaked:\n{log}"
    );
    assert!(!fake.received_anywhere(&secret));
}

/// The Kubernetes manifests of ConductorOne's Baton documentation for this connector (the
/// seed documents), as a user copies them: a Secret `baton-segment-secrets` loaded whole with
/// `envFrom`, `BATON_PROVISIONING: true` unquoted, labels `app`, `baton`, `baton-app`.
const SEED_MANIFESTS: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: baton-segment-secrets
type: Opaque
stringData:
  # ConductorOne credentials
  BATON_CLIENT_ID: <ConductorOne client ID>
  BATON_CLIENT_SECRET: <ConductorOne client secret>

  # Segment credentials
  BATON_TOKEN: <Segment API token>

  # Optional: include if you want ConductorOne to provision access using this connector
  BATON_PROVISIONING: true
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: baton-segment
  labels:
    app: baton-segment
spec:
  selector:
    matchLabels:
      app: baton-segment
  template:
    metadata:
      labels:
        app: baton-segment
        baton: "true"
        baton-app: segment
    spec:
      containers:
      - name: baton-segment
        image: ghcr.io/conductorone/baton-segment:latest
        imagePullPolicy: IfNotPresent
        env:
        - name: BATON_HOST_ID
          value: baton-segment
        envFrom:
        - secretRef:
            name: baton-segment-secrets
"#;

/// Every variable the manifests give the container: `env` values, then the Secrets loaded
/// with `envFrom` (YAML scalars as Kubernetes passes them: text).
fn manifest_env(manifests: &str) -> Vec<(String, String)> {
    use yaml_rust2::Yaml;
    let docs = yaml_rust2::YamlLoader::load_from_str(manifests).expect("valid YAML");
    let scalar = |y: &Yaml| match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    };
    let secret = |name: &str| {
        docs.iter()
            .find(|d| {
                d["kind"].as_str() == Some("Secret") && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("the Secret {name}"))
    };
    let deployment = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .expect("a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut env = vec![];
    for e in container["env"].as_vec().into_iter().flatten() {
        if let Some(v) = e["value"].as_str() {
            env.push((e["name"].as_str().unwrap().to_string(), v.to_string()));
        }
    }
    for from in container["envFrom"].as_vec().expect("envFrom") {
        let name = from["secretRef"]["name"].as_str().expect("a secretRef");
        for (k, v) in secret(name)["stringData"].as_hash().expect("stringData") {
            env.push((scalar(k), scalar(v)));
        }
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_manifests_work_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let seed = manifest_env(SEED_MANIFESTS);
    let names: Vec<&str> = seed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "BATON_HOST_ID",
            "BATON_CLIENT_ID",
            "BATON_CLIENT_SECRET",
            "BATON_TOKEN",
            "BATON_PROVISIONING"
        ]
    );
    // Our own manifests set the same variables the same way (and more).
    let ours = {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
        let text = ["secret.yaml", "deployment.yaml"]
            .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
            .join("\n---\n");
        manifest_env(&text)
    };
    for (k, _) in &seed {
        if k != "BATON_HOST_ID" {
            assert!(ours.iter().any(|(o, _)| o == k), "{k} in deploy/kubernetes");
        }
    }
    assert!(ours.contains(&("BATON_PROVISIONING".into(), "true".into())));

    // Every variable, values as written, is accepted.
    let mut cmd = command(dir.path());
    cmd.arg("config").envs(seed.iter().cloned());
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("not supported"),
        "{}",
        text(&out.stderr)
    );

    // And they run: the same variables with real credentials in the Secret (plus where this
    // test's ConductorOne and the fake Segment API are).
    let (fake, id, secret, ca) = fake_c1(dir.path()).await;
    // A Segment that takes writes (the built-in demo workspace is read-only).
    let segment = fakes::segment::FakeSegment::start(fakes::segment::FakeConfig::demo())
        .await
        .unwrap();
    let mut cmd = command(dir.path());
    for (k, v) in &seed {
        let v = match k.as_str() {
            "BATON_CLIENT_ID" => id.clone(),
            "BATON_CLIENT_SECRET" => secret.clone(),
            _ => v.clone(),
        };
        cmd.env(k, v);
    }
    cmd.env("BATON_C1_API_HOST", fake.host())
        .env("BATON_C1_CA_CERT", &ca)
        .env("BATON_BASE_URL", segment.base_url())
        .env("BATON_TOKEN", fakes::segment::FakeConfig::demo().token)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _running = Running(Some(cmd.spawn().expect("the binary starts")));
    let hellos = fake.wait_for_hellos(1, WAIT).await.expect("it says hello");
    assert_eq!(hellos[0].host_id, "baton-segment");
    // BATON_PROVISIONING: true (unquoted) turned provisioning on.
    let invite = fake.push_task(Task {
        id: String::new(),
        status: task::Status::Pending as i32,
        debug: false,
        task_type: Some(task::TaskType::CreateAccount(task::CreateAccountTask {
            account_info: Some(pb::AccountInfo {
                emails: vec![pb::account_info::Email {
                    address: "seed.hire@acme.test".into(),
                    is_primary: true,
                }],
                login: String::new(),
                login_aliases: vec![],
                profile: None,
            }),
            credential_options: None,
            encryption_configs: vec![],
            resource_type_id: String::new(),
        })),
    });
    let finished = fake.wait_for_finished(1, WAIT).await.unwrap();
    assert_eq!(finished[0].task_id, invite);
    assert!(finished[0].is_success(), "{:?}", finished[0]);
}
