//! The command line as a Baton connector's: every flag of baton-sdk's standard list
//! (`pkg/field/defaults.go`) and its `BATON_*` variable accepted, the ones this connector
//! cannot honour answered with one line, errors exiting 1, `-v`, Go's switch forms, levels
//! and formats in any case, zap's JSON keys, and the `capabilities`, `config` and
//! `health-check` subcommands with baton-sdk's shapes.
//! (Declared in host/Cargo.toml so that cargo hands it the binary's path.)

use baton_segment::cli::standard_flags::{FIELDS, Field, NOT_SUPPORTED, Support};
use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The binary, with no `BATON_*` setting from the environment running the tests.
fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton-segment"));
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("BATON_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("BATON_LOG_FORMAT", "console");
    cmd
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

/// What a flag must come with (clap's "requires" rules, as Baton's).
fn companions(name: &str) -> Vec<&'static str> {
    match name {
        "client-id" => vec!["--client-secret=secret-token:conductorone.com:v1:x"],
        "client-secret" => vec!["--client-id=name@tenant.conductor.one/pcc"],
        "grant-entitlement" | "grant-principal" | "grant-principal-type" => vec![
            "--grant-entitlement=group:grpEng:member",
            "--grant-principal=usrAna",
            "--grant-principal-type=user",
        ],
        "delete-resource" | "delete-resource-type" => {
            vec!["--delete-resource=usrAna", "--delete-resource-type=user"]
        }
        _ => vec![],
    }
}

/// Checks one way of giving a field (`how` names it in messages).
fn check(field: &Field, out: &Output, how: &str) {
    let stderr = text(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(2),
        "{how}: exit 2 is never used\n{stderr}"
    );
    assert!(
        !stderr.contains("unexpected argument") && !stderr.contains("invalid value"),
        "{how} is accepted\n{stderr}"
    );
    let line = format!("--{}: {NOT_SUPPORTED}", field.name);
    match (field.support, field.operation) {
        (Support::NotSupported, true) => {
            assert_eq!(
                out.status.code(),
                Some(1),
                "{how}: an operation it cannot do is an error\n{stderr}"
            );
            assert!(stderr.contains(&line), "{how}: says so\n{stderr}");
        }
        (Support::NotSupported, false) => {
            assert!(
                out.status.success(),
                "{how}: a setting is ignored\n{stderr}"
            );
            assert!(stderr.contains(&line), "{how}: says so\n{stderr}");
            assert_eq!(
                stderr.matches(NOT_SUPPORTED).count(),
                1,
                "{how}: one line\n{stderr}"
            );
        }
        _ => {
            assert!(out.status.success(), "{how}\n{stderr}");
            assert!(!stderr.contains(NOT_SUPPORTED), "{how}\n{stderr}");
        }
    }
}

#[test]
fn every_standard_flag_and_variable_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "").unwrap();
    // The whole of baton-sdk's DefaultFields is in the table (its order, its names).
    let names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    for must in [
        "create-ticket",
        "bulk-create-ticket",
        "bulk-ticket-template-path",
        "get-ticket",
        "list-ticket-schemas",
        "provisioning",
        "ticketing",
        "c1z-temp-dir",
        "client-id",
        "client-secret",
        "create-account-email",
        "create-account-login",
        "create-account-profile",
        "create-account-resource-type",
        "delete-resource",
        "delete-resource-type",
        "event-feed",
        "event-feed-id",
        "event-feed-start-at",
        "event-feed-cursor",
        "file",
        "grant-entitlement",
        "grant-principal",
        "grant-principal-type",
        "log-format",
        "revoke-grant",
        "rotate-credentials",
        "rotate-credentials-type",
        "ticket-id",
        "ticket-template-path",
        "log-level",
        "log-level-debug-expires-at",
        "skip-full-sync",
        "sync-resources",
        "sync-resource-types",
        "skip-entitlements-and-grants",
        "skip-grants",
        "external-resource-c1z",
        "external-resource-entitlement-id-filter",
        "diff-syncs",
        "base-sync-id",
        "applied-sync-id",
        "compact-sync-ids",
        "compact-file-paths",
        "compact-output-path",
        "compact-syncs",
        "invoke-action",
        "invoke-action-args",
        "invoke-action-resource-type",
        "list-action-schemas",
        "list-action-schemas-resource-type",
        "list-resource-actions",
        "invoke-resource-action",
        "invoke-resource-action-resource-type",
        "invoke-resource-action-args",
        "session-store-maximum-size",
        "otel-collector-endpoint",
        "otel-collector-endpoint-tls-cert-path",
        "otel-collector-endpoint-tls-cert",
        "otel-collector-endpoint-tls-insecure",
        "otel-tracing-disabled",
        "otel-logging-disabled",
        "auth-method",
    ] {
        assert!(names.contains(&must), "{must} is in the table");
    }

    for field in FIELDS {
        let given = match field.example {
            Some(v) => format!("--{}={v}", field.name),
            None => format!("--{}", field.name),
        };
        let own = format!("--{}=", field.name);
        let mut args: Vec<&str> = companions(field.name)
            .into_iter()
            .filter(|c| !c.starts_with(&own))
            .collect();
        args.push(&given);
        // `config` prints the schema: nothing else runs, so every flag can be given.
        args.push("config");
        let out = run(dir.path(), &args, &[]);
        check(field, &out, &given);

        // The variable alone (with the companions as flags).
        let value = field.example.unwrap_or("true");
        let env = field.env();
        let mut args: Vec<&str> = companions(field.name)
            .into_iter()
            .filter(|c| !c.starts_with(&own))
            .collect();
        args.push("config");
        let out = run(dir.path(), &args, &[(&env, value)]);
        check(field, &out, &format!("{env}={value}"));
    }
}

#[test]
fn switches_take_go_s_forms() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--provisioning=true", "config"],
        vec!["--provisioning=false", "config"],
        vec!["-p", "config"],
        vec!["--provisioning", "config"],
        vec!["--skip-full-sync=1", "config"],
        vec!["--health-check=TRUE", "config"],
        vec!["--otel-tracing-disabled=f", "config"],
    ] {
        let out = run(dir.path(), &args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    for (k, v) in [
        ("BATON_PROVISIONING", "TRUE"),
        ("BATON_PROVISIONING", "0"),
        ("BATON_SKIP_GRANTS", "True"),
    ] {
        let out = run(dir.path(), &["config"], &[(k, v)]);
        assert!(out.status.success(), "{k}={v}: {}", text(&out.stderr));
    }
    let out = run(dir.path(), &["--provisioning=maybe", "config"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn errors_exit_1_help_and_version_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = run(
        dir.path(),
        &["--client-id", "svc@acme.conductor.one/pcc"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "required together");
    let out = run(dir.path(), &["--log-level", "loud", "config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unrecognized level"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        dir.path(),
        &["--log-level-debug-expires-at", "tomorrow", "config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("RFC 3339"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        dir.path(),
        &["--c1z-temp-dir", "/nonexistent/dir", "config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("c1z temp dir does not exist"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        dir.path(),
        &["--sync-resources", "user/usrAna", "--demo"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a Baton resource id"),
        "{}",
        text(&out.stderr)
    );

    let version = format!("baton-segment version {}", env!("CARGO_PKG_VERSION"));
    for flag in ["-v", "--version"] {
        let out = run(dir.path(), &[flag], &[]);
        assert!(out.status.success());
        assert_eq!(text(&out.stdout).trim(), version, "{flag}");
    }
    let out = run(dir.path(), &["--help"], &[]);
    assert!(out.status.success());
}

#[test]
fn levels_and_formats_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    for (k, v) in [
        ("BATON_LOG_LEVEL", "DEBUG"),
        ("BATON_LOG_LEVEL", "Warn"),
        ("BATON_LOG_FORMAT", "JSON"),
        ("BATON_LOG_FORMAT", "Console"),
        // Baton falls back to JSON for a format it does not know.
        ("BATON_LOG_FORMAT", "logfmt"),
    ] {
        let out = run(dir.path(), &["config"], &[(k, v)]);
        assert!(out.status.success(), "{k}={v}: {}", text(&out.stderr));
    }
}

#[test]
fn json_logs_carry_zap_s_keys_and_debug_expires() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "--demo",
            "--log-format=json",
            "--log-level=debug",
            "--log-level-debug-expires-at=2001-01-01T00:00:00Z",
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(!lines.is_empty(), "{stderr}");
    for line in &lines {
        let level = line["level"].as_str().expect("level");
        assert!(
            ["debug", "info", "warn", "error"].contains(&level),
            "{line}"
        );
        assert!(
            line["ts"].as_f64().expect("ts in epoch seconds") > 1.7e9,
            "{line}"
        );
        let caller = line["caller"].as_str().expect("caller");
        assert!(caller.contains(".rs:"), "{line}");
        assert!(line["msg"].is_string(), "{line}");
        // Debug logging had expired: nothing below info.
        assert_ne!(level, "debug", "{line}");
    }
    assert!(
        lines.iter().any(|l| l["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("debug logging expired")),
        "{stderr}"
    );
}

#[test]
fn capabilities_print_baton_s_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["capabilities"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        v["@type"],
        "type.googleapis.com/c1.connector.v2.ConnectorCapabilities"
    );
    let connector: Vec<&str> = v["connectorCapabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        "CAPABILITY_SYNC",
        "CAPABILITY_PROVISION",
        "CAPABILITY_ACCOUNT_PROVISIONING",
        "CAPABILITY_RESOURCE_DELETE",
    ] {
        assert!(connector.contains(&c), "{c} in {connector:?}");
    }
    let per_type = v["resourceTypeCapabilities"].as_array().unwrap();
    let caps = |id: &str| -> (Value, Vec<String>) {
        let entry = per_type
            .iter()
            .find(|e| e["resourceType"]["id"] == id)
            .unwrap_or_else(|| panic!("{id}"));
        let caps = entry["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        (entry.clone(), caps)
    };
    // As the Go connector's capabilities file: sync and provision on the types with roles
    // and members, delete on users, account creation and delete on invitations.
    for id in [
        "workspace",
        "group",
        "role",
        "source",
        "warehouse",
        "function",
        "space",
    ] {
        let (_, c) = caps(id);
        assert_eq!(c, ["CAPABILITY_SYNC", "CAPABILITY_PROVISION"], "{id}");
    }
    let (user, c) = caps("user");
    assert_eq!(c, ["CAPABILITY_SYNC", "CAPABILITY_RESOURCE_DELETE"]);
    assert_eq!(user["resourceType"]["displayName"], "User");
    assert_eq!(user["resourceType"]["traits"][0], "TRAIT_USER");
    let (invite, c) = caps("invite");
    assert_eq!(
        c,
        [
            "CAPABILITY_SYNC",
            "CAPABILITY_ACCOUNT_PROVISIONING",
            "CAPABILITY_RESOURCE_DELETE"
        ]
    );
    assert_eq!(
        invite["resourceType"]["annotations"][0]["@type"],
        "type.googleapis.com/c1.connector.v2.SkipEntitlementsAndGrants"
    );
    let (group, _) = caps("group");
    assert_eq!(group["resourceType"]["traits"][0], "TRAIT_GROUP");
    assert!(group["resourceType"]["description"].is_string());
    let ap = &v["credentialDetails"]["capabilityAccountProvisioning"];
    assert_eq!(
        ap["supportedCredentialOptions"],
        serde_json::json!(["CAPABILITY_DETAIL_CREDENTIAL_OPTION_NO_PASSWORD"])
    );
    assert_eq!(
        ap["preferredCredentialOption"],
        "CAPABILITY_DETAIL_CREDENTIAL_OPTION_NO_PASSWORD"
    );
}

#[test]
fn config_prints_the_setup_form_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["config"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["displayName"], "Segment");
    assert_eq!(v["helpUrl"], "/docs/baton/segment");
    assert_eq!(v["iconUrl"], "/static/app-icons/segment.svg");
    let fields = v["fields"].as_array().unwrap();
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {fields:?}"))
            .clone()
    };
    let token = field("token");
    assert_eq!(token["displayName"], "Access Token");
    assert_eq!(
        token["description"],
        "Personal Access Token (PAT) for Segment API authentication"
    );
    assert_eq!(token["isRequired"], true);
    assert_eq!(token["isSecret"], true);
    assert_eq!(token["stringField"], serde_json::json!({}));
    assert!(token.get("isOps").is_none());
    let base = field("base-url");
    assert_eq!(base["displayName"], "Base URL");
    assert_eq!(
        base["stringField"]["defaultValue"],
        "https://api.segmentapis.com"
    );
    assert!(base.get("isRequired").is_none() && base.get("isSecret").is_none());
    let level = field("log-level");
    assert_eq!(level["isOps"], true);
    assert_eq!(level["stringField"]["defaultValue"], "info");
    let size = field("session-store-maximum-size");
    assert_eq!(size["isOps"], true);
    assert!(
        size["intField"]["defaultValue"].is_string(),
        "int64 as protojson writes it"
    );
    for name in [
        "log-level-debug-expires-at",
        "otel-collector-endpoint",
        "otel-collector-endpoint-tls-cert-path",
        "otel-collector-endpoint-tls-cert",
    ] {
        assert_eq!(field(name)["isOps"], true, "{name}");
        assert!(field(name)["stringField"].is_object(), "{name}");
    }
    for name in [
        "otel-collector-endpoint-tls-insecure",
        "otel-tracing-disabled",
        "otel-logging-disabled",
    ] {
        assert_eq!(field(name)["boolField"], serde_json::json!({}), "{name}");
    }
    // Only what ConductorOne's form or operators set: no command-line-only fields.
    for name in [
        "client-id",
        "client-secret",
        "file",
        "provisioning",
        "grant-entitlement",
    ] {
        assert!(
            !fields.iter().any(|f| f["name"] == name),
            "{name} is not in the form"
        );
    }
}

/// A one-shot HTTP server on loopback: `/health` answers 200, anything else 503.
fn health_server() -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut paths = vec![];
        for _ in 0..3 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = req
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let answer = if path == "/health" {
                "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhealthy"
            } else {
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\nConnection: close\r\n\r\nstarting"
            };
            s.write_all(answer.as_bytes()).unwrap();
            paths.push(path);
        }
        paths
    });
    (port, handle)
}

#[test]
fn health_check_asks_baton_s_default_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (port, server) = health_server();
    let port = port.to_string();
    // Baton's default endpoint is health.
    let out = run(
        dir.path(),
        &[
            "health-check",
            "--health-check-port",
            &port,
            "--timeout",
            "5",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        dir.path(),
        &[
            "health-check",
            "--health-check-port",
            &port,
            "--endpoint=ready",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    // --path still works.
    let out = run(
        dir.path(),
        &[
            "health-check",
            "--health-check-port",
            &port,
            "--path",
            "/live",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(server.join().unwrap(), ["/health", "/ready", "/live"]);
    let out = run(dir.path(), &["health-check", "--endpoint=bogus"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for e in ["health", "ready", "live"] {
        assert!(stderr.contains(e), "{stderr}");
    }
}

#[test]
fn partial_syncs_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "--demo",
            "--sync-resource-types=user,group",
            "--skip-grants",
            "-f",
            "partial.c1z",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reader = baton::C1zReader::open(&dir.path().join("partial.c1z")).unwrap();
    let sync = reader.latest_sync().unwrap();
    let types: std::collections::BTreeSet<String> = reader
        .resources(&sync.sync_id)
        .unwrap()
        .iter()
        .map(|r| r.id.as_ref().unwrap().resource_type.clone())
        .collect();
    assert_eq!(types.into_iter().collect::<Vec<_>>(), ["group", "user"]);
    assert!(
        reader.grants(&sync.sync_id).unwrap().is_empty(),
        "--skip-grants"
    );
    assert!(
        !reader.entitlements(&sync.sync_id).unwrap().is_empty(),
        "entitlements are kept"
    );
    let mut kept: Vec<String> = reader
        .resource_types(&sync.sync_id)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    kept.sort();
    assert_eq!(kept, ["group", "user"], "only the types asked for");
    assert_eq!(
        sync.sync_type, "full",
        "every resource of those types is there"
    );
}

#[test]
fn the_readme_table_marks_every_standard_flag() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for field in FIELDS {
        let flag = format!("`--{}`", field.name);
        let row = rows
            .iter()
            .find(|r| r.contains(&flag))
            .unwrap_or_else(|| panic!("{flag} is in the README's configuration table"));
        let label = format!("| {} |", field.support.label());
        assert!(row.contains(&label), "{flag} is marked {label}: {row}");
    }
}
