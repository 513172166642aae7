//! An interrupted sync resumes: the real binary, killed with SIGKILL midway through a sync of a
//! generated workspace, leaves its work private on disk; run again, it goes on from its last
//! checkpoint, asks for no page it had stored, and writes exactly what an uninterrupted sync
//! writes.

mod common;

use common::*;
use fakes::segment::{FakeConfig, GenSpec, LoggedRequest, Workspace};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn binary(fake_url: &str, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton-segment"));
    cmd.args(["--base-url", fake_url, "-f"])
        .arg(out)
        .env("BATON_TOKEN", TOKEN)
        .env("BATON_LOG_LEVEL", "warn")
        .env_remove("BATON_DEMO");
    cmd
}

fn key(r: &LoggedRequest) -> (String, String) {
    (r.path.clone(), r.query.clone().unwrap_or_default())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_midway_resumes_without_asking_for_stored_pages_again() {
    let ws = Workspace::generate(
        11,
        GenSpec {
            users: 600,
            groups: 40,
            invites: 60,
            sources: 30,
            warehouses: 2,
            functions: 4,
            spaces: 2,
        },
    );
    let dir = temp_dir();

    // What an uninterrupted sync writes, and how many requests it makes.
    let reference_fake = fake(FakeConfig::new(TOKEN, ws.clone())).await;
    let reference_path = dir.path().join("reference.c1z");
    sync(&reference_fake, &reference_path).await.unwrap();
    let reference = Synced::open(&reference_path);
    let all_requests = reference_fake.requests().len();

    // The same sync through the real binary, killed once half of its requests are answered
    // and its work has moved from memory to disk (after `MEMORY_FOR`: a kill before that
    // starts over, having lost at most those first seconds).
    let mut cfg = FakeConfig::new(TOKEN, ws);
    cfg.latency = Duration::from_millis(20);
    let fake = fake(cfg).await;
    let out = dir.path().join("sync.c1z");
    let mut child = binary(&fake.base_url(), &out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let work = dir.path().join(".sync.c1z.work");
    while fake.requests().len() < all_requests / 2 || !work.join("owner").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the sync never got halfway"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL: nothing of the sync's own clean-up runs
    child.wait().unwrap();
    let first = fake.requests();
    fake.clear_requests();

    // Nothing replaced the output, and the work left behind is readable by its owner only.
    assert!(!out.exists());
    #[cfg(unix)]
    {
        assert_eq!(mode(&work), 0o700);
        for file in ["db", "session.db", "owner"] {
            assert_eq!(mode(&work.join(file)), 0o600, "{file}");
        }
        // Their write-ahead logs, where the last batches are, too.
        for file in ["db-wal", "session.db-wal"] {
            if work.join(file).exists() {
                assert_eq!(mode(&work.join(file)), 0o600, "{file}");
            }
        }
    }

    // Run again: it resumes and completes.
    let url = fake.base_url();
    let again_out = out.clone();
    let output = tokio::task::spawn_blocking(move || binary(&url, &again_out).output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("resumed"), "{stdout}");
    assert!(
        !work.exists(),
        "the work directory goes once the sync is written"
    );

    // The same resources, entitlements and grants as the uninterrupted sync.
    let resumed = Synced::open(&out);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(resumed.resource_keys()),
        sorted(reference.resource_keys())
    );
    assert_eq!(
        sorted(resumed.entitlement_ids()),
        sorted(reference.entitlement_ids())
    );
    assert_eq!(sorted(resumed.grant_ids()), sorted(reference.grant_ids()));

    // No stored page is asked for again: of what the first run had answered, only the requests
    // still in flight at the kill (a batch of 64 users' permissions, and at most 4 calls × 8
    // requests) and the once-per-sync reads (the workspace, the roles) come back.
    let second = fake.requests();
    let answered: HashSet<_> = first.iter().filter(|r| r.status == 200).map(key).collect();
    let again: Vec<_> = second
        .iter()
        .map(key)
        .filter(|k| answered.contains(k) && k.0 != "/" && k.0 != "/roles")
        .collect();
    assert!(
        again.len() <= 64 + 32,
        "{} pages asked again: {again:?}",
        again.len()
    );
    assert!(
        first.len() + second.len() <= all_requests + 40,
        "the two runs made {} + {} requests; one sync makes {all_requests}",
        first.len(),
        second.len()
    );
}
