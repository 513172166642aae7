//! Service mode end to end: the daemon (`baton_segment::service::run`) against the fake
//! ConductorOne (real TLS, real gRPC, real Ed25519 client assertions) and the fake Segment API,
//! running the real connector component. Also: the Kubernetes manifests and the Dockerfile.

mod common;

use baton::c1::service::{Task, task};
use baton::pb;
use baton_segment::commands::connection::{Connection, segment_runtime};
use baton_segment::engine::Runtime;
use baton_segment::health::State;
use baton_segment::sandbox::Secret;
use baton_segment::service::{self, ServiceOptions, Timing};
use common::*;
use fakes::c1::{FakeC1, FakeC1Config, FinishOutcome, RecordedFinish, UploadOutcome};
use fakes::segment::{FakeConfig, FakeSegment, Fault, FaultKind};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;

const HOST_ID: &str = "test-host";
const WAIT: Duration = Duration::from_secs(60);

/// One compiled component for every daemon in this binary.
fn shared_runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Arc::new(segment_runtime(64).expect("the component compiles")))
        .clone()
}

fn fast_timing() -> Timing {
    Timing {
        startup_attempts: 3,
        startup_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        default_poll: Duration::from_millis(50),
        min_poll: Duration::from_millis(20),
        upload_backoff: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(1),
        ..Timing::default()
    }
}

/// The fakes, and the options of a daemon pointed at them.
struct Env {
    c1: FakeC1,
    segment: FakeSegment,
    client_id: String,
    secret: String,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start(adjust: impl FnOnce(&mut FakeC1Config), segment: FakeConfig) -> Env {
        let (mut cfg, secret) = FakeC1Config::generated("baton-segment");
        cfg.next_poll = Duration::from_millis(50);
        adjust(&mut cfg);
        let client_id = cfg.client_id.clone();
        let c1 = FakeC1::start(cfg)
            .await
            .expect("the fake ConductorOne starts");
        let segment = fake(segment).await;
        let dir = temp_dir();
        c1.write_ca_pem(&dir.path().join("c1-ca.pem")).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        Env {
            c1,
            segment,
            client_id,
            secret,
            dir,
        }
    }

    fn temp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    fn options(&self) -> ServiceOptions {
        let connection = Connection::to(&self.segment.base_url(), Secret::new(TOKEN)).unwrap();
        let mut opts = ServiceOptions::new(
            &self.client_id,
            Secret::new(self.secret.clone()),
            connection,
        );
        opts.api_host = Some(self.c1.host());
        opts.ca_cert = Some(self.dir.path().join("c1-ca.pem"));
        opts.host_id = Some(HOST_ID.into());
        opts.temp_dir = Some(self.temp());
        opts.runtime = Some(shared_runtime());
        opts.timing = fast_timing();
        opts
    }

    fn spawn(&self, opts: ServiceOptions) -> Daemon {
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(service::run(opts, async move {
            let _ = rx.await;
        }));
        Daemon {
            stop: Some(tx),
            handle,
        }
    }

    /// Waits for the `n`-th finished task and returns it.
    async fn finished(&self, n: usize) -> RecordedFinish {
        self.c1
            .wait_for_finished(n, WAIT)
            .await
            .expect("the task finishes")
            .remove(n - 1)
    }

    fn temp_is_empty(&self) -> bool {
        std::fs::read_dir(self.temp()).unwrap().next().is_none()
    }

    /// Segment requests other than reads.
    fn segment_writes(&self) -> Vec<String> {
        self.segment
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

struct Daemon {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    /// Signals shutdown and waits for a clean stop.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let result = tokio::time::timeout(Duration::from_secs(30), &mut self.handle)
            .await
            .expect("the daemon stops promptly")
            .expect("the daemon task does not panic");
        result.expect("the daemon stops cleanly");
    }

    /// The daemon's own end (an error at startup).
    async fn error(self) -> String {
        let result = tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("the daemon gives up in time")
            .expect("the daemon task does not panic");
        format!("{:#}", result.expect_err("the daemon fails"))
    }
}

fn task_of(t: task::TaskType) -> Task {
    Task {
        id: String::new(),
        status: task::Status::Pending as i32,
        debug: false,
        task_type: Some(t),
    }
}

fn status_code(f: &RecordedFinish) -> Code {
    Code::from_i32(f.status_code)
}

fn expect_failure(f: &RecordedFinish, code: Code, non_retryable: bool) {
    assert!(
        matches!(f.outcome, FinishOutcome::Error { .. }),
        "an error outcome: {f:?}"
    );
    assert_eq!(status_code(f), code, "{}", f.status_message);
    assert_eq!(f.non_retryable(), non_retryable, "{f:?}");
}

fn expect_success(f: &RecordedFinish) {
    assert!(f.is_success(), "success: {} {f:?}", f.status_message);
    // As baton-sdk reports a success: no status at all.
    assert!(!f.has_status, "{f:?}");
    assert_eq!(f.host_id, HOST_ID);
}

/// Writes uploaded bytes to a file and opens it as a `.c1z`.
fn open_upload(bytes: &[u8], dir: &Path) -> Synced {
    let path = dir.join("uploaded.c1z");
    std::fs::write(&path, bytes).unwrap();
    Synced::open(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_uploads_and_provisions_like_conductorone_asks() {
    let env = Env::start(|_| {}, FakeConfig::demo()).await;
    let mut opts = env.options();
    opts.provisioning = true;
    let daemon = env.spawn(opts);

    // Hello: who we are and what the connector can do.
    let hellos = env.c1.wait_for_hellos(1, WAIT).await.unwrap();
    let hello = &hellos[0];
    assert_eq!(hello.host_id, HOST_ID);
    assert!(hello.task_id.is_empty());
    let build = hello.build_info.as_ref().unwrap();
    assert_eq!(
        (build.package.as_str(), build.lang_version.as_str()),
        ("baton-segment", "rust")
    );
    assert!(!build.package_version.is_empty());
    let os = hello.os_info.as_ref().unwrap();
    assert_eq!(os.os, std::env::consts::OS);
    assert_eq!(os.kernel_arch, std::env::consts::ARCH);
    let meta = hello.connector_metadata.as_ref().unwrap();
    assert_eq!(meta.display_name, "Twilio Segment");
    assert!(meta.help_url.starts_with("https://"));
    assert!(!meta.description.is_empty());
    let caps = meta.capabilities.as_ref().unwrap();
    for c in [
        pb::Capability::Sync,
        pb::Capability::Provision,
        pb::Capability::AccountProvisioning,
        pb::Capability::ResourceDelete,
    ] {
        assert!(caps.connector_capabilities.contains(&(c as i32)), "{c:?}");
    }
    let group = caps
        .resource_type_capabilities
        .iter()
        .find(|r| r.resource_type.as_ref().unwrap().id == "group")
        .expect("group capabilities");
    assert!(
        !group
            .resource_type
            .as_ref()
            .unwrap()
            .display_name
            .is_empty()
    );
    assert_eq!(
        group.capabilities,
        vec![
            pb::Capability::Sync as i32,
            pb::Capability::Provision as i32
        ]
    );
    let invite = caps
        .resource_type_capabilities
        .iter()
        .find(|r| r.resource_type.as_ref().unwrap().id == "invite")
        .expect("invite capabilities");
    assert!(
        invite
            .capabilities
            .contains(&(pb::Capability::AccountProvisioning as i32))
    );

    // A full sync: uploaded in ≤ 512 KiB chunks with a matching checksum, then deleted here.
    let sync_id = env.c1.push_sync_task();
    let done = env.finished(1).await;
    assert_eq!(done.task_id, sync_id);
    expect_success(&done);
    assert!(done.response().is_none());
    let uploads = env.c1.uploads();
    assert_eq!(uploads.len(), 1);
    let up = &uploads[0];
    assert_eq!(up.sha256, Sha256::digest(&up.bytes).to_vec());
    assert_eq!(
        (up.task_id.as_str(), up.host_id.as_str()),
        (sync_id.as_str(), HOST_ID)
    );
    assert!(!up.chunk_sizes.is_empty());
    assert!(up.chunk_sizes.iter().all(|&c| c > 0 && c <= 512 * 1024));
    let (last, full) = up.chunk_sizes.split_last().unwrap();
    assert!(
        full.iter().all(|&c| c == 512 * 1024),
        "{:?}",
        up.chunk_sizes
    );
    assert!(*last > 0);
    assert_eq!(up.chunk_sizes.iter().sum::<usize>(), up.bytes.len());
    assert!(up.bytes.starts_with(baton::c1z::C1Z_V1_MAGIC));
    assert!(env.temp_is_empty(), "the temporary .c1z is deleted");

    // Its contents: the demo workspace.
    let synced = open_upload(&up.bytes, env.dir.path());
    let keys = synced.resource_keys();
    assert_eq!(keys.len(), 40, "{keys:?}");
    for k in [
        "workspace:wkspAcme01",
        "user:usrGrace",
        "group:grpEng",
        "invite:quinn@partner.test",
    ] {
        assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
    }
    let grant_ids = synced.grant_ids();
    assert_eq!(grant_ids.len(), 44);
    assert!(grant_ids.contains(&"source:srcWeb:source_admin:user:usrBob".to_string()));
    assert!(!grant_ids.contains(&"group:grpEng:member:user:usrGrace".to_string()));

    // A grant, as ConductorOne sends it: the entitlement and the principal as synced.
    let entitlement = synced
        .entitlements()
        .into_iter()
        .find(|e| e.id == "group:grpEng:member")
        .unwrap();
    let grace = synced
        .resources()
        .into_iter()
        .find(|r| key(r.id.as_ref()) == "user:usrGrace")
        .unwrap();
    let grant_task = task_of(task::TaskType::Grant(task::GrantTask {
        entitlement: Some(entitlement.clone()),
        principal: Some(grace.clone()),
        annotations: vec![],
        duration: None,
    }));
    env.segment.clear_requests();
    let id = env.c1.push_task(grant_task.clone());
    let done = env.finished(2).await;
    assert_eq!(done.task_id, id);
    expect_success(&done);
    let resp: pb::GrantManagerServiceGrantResponse = done.response_as().expect("a grant response");
    assert!(resp.annotations.is_empty());
    let ids: Vec<&str> = resp.grants.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["group:grpEng:member:user:usrGrace"]);
    assert_eq!(
        resp.grants[0].entitlement.as_ref().unwrap().id,
        "group:grpEng:member"
    );
    assert_eq!(
        key(resp.grants[0].principal.as_ref().unwrap().id.as_ref()),
        "user:usrGrace"
    );
    let eng = |env: &Env| {
        env.segment
            .workspace()
            .groups
            .into_iter()
            .find(|g| g.id == "grpEng")
            .unwrap()
    };
    assert!(
        eng(&env)
            .member_emails
            .contains(&"grace@acme.test".to_string())
    );
    assert_eq!(env.segment_writes().len(), 1, "{:?}", env.segment_writes());

    // Again: already held, reported with GrantAlreadyExists, nothing written.
    env.segment.clear_requests();
    env.c1.push_task(grant_task);
    let done = env.finished(3).await;
    expect_success(&done);
    let resp: pb::GrantManagerServiceGrantResponse = done.response_as().unwrap();
    assert!(resp.grants.is_empty());
    assert!(baton::annotations::contains::<pb::GrantAlreadyExists>(
        &resp.annotations
    ));
    // FinishTask's success annotations are the response's, as baton-sdk sends them.
    match &done.outcome {
        FinishOutcome::Success { annotations, .. } => assert_eq!(annotations, &resp.annotations),
        other => panic!("{other:?}"),
    }
    assert!(env.segment_writes().is_empty());

    // A revoke of one of Bob's two Source Admin sources, with the grant as synced.
    let bob_src_web = synced
        .grants()
        .into_iter()
        .find(|g| g.grant.id == "source:srcWeb:source_admin:user:usrBob")
        .unwrap()
        .grant;
    let revoke_task = task_of(task::TaskType::Revoke(task::RevokeTask {
        grant: Some(bob_src_web),
        annotations: vec![],
    }));
    env.c1.push_task(revoke_task.clone());
    let done = env.finished(4).await;
    expect_success(&done);
    let resp: pb::GrantManagerServiceRevokeResponse =
        done.response_as().expect("a revoke response");
    assert!(resp.annotations.is_empty());
    let bob = env
        .segment
        .workspace()
        .users
        .into_iter()
        .find(|u| u.id == "usrBob")
        .unwrap();
    let admin = bob
        .permissions
        .iter()
        .find(|p| p.role_id == "roleSrcAdmin")
        .unwrap();
    let ids: Vec<&str> = admin.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["srcIos"], "srcWeb is gone, srcIos stays");
    env.c1.push_task(revoke_task);
    let done = env.finished(5).await;
    let resp: pb::GrantManagerServiceRevokeResponse = done.response_as().unwrap();
    assert!(baton::annotations::contains::<pb::GrantAlreadyRevoked>(
        &resp.annotations
    ));

    // Create account: an invitation, which needs the person to act.
    let mut profile = prost_types::Struct::default();
    profile.fields.insert(
        "email".into(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(
                "new.hire@acme.test".into(),
            )),
        },
    );
    env.c1.push_task(task_of(task::TaskType::CreateAccount(
        task::CreateAccountTask {
            account_info: Some(pb::AccountInfo {
                emails: vec![pb::account_info::Email {
                    address: "new.hire@acme.test".into(),
                    is_primary: true,
                }],
                login: "new.hire@acme.test".into(),
                login_aliases: vec![],
                profile: Some(profile),
            }),
            credential_options: None,
            encryption_configs: vec![],
            resource_type_id: String::new(),
        },
    )));
    let done = env.finished(6).await;
    expect_success(&done);
    let resp: pb::CreateAccountResponse = done.response_as().expect("a create-account response");
    match resp.result {
        Some(pb::create_account_response::Result::ActionRequired(a)) => {
            assert!(a.is_create_account_result);
            assert_eq!(
                key(a.resource.as_ref().unwrap().id.as_ref()),
                "invite:new.hire@acme.test"
            );
            assert!(!a.message.is_empty());
        }
        other => panic!("action required expected, got {other:?}"),
    }
    assert!(
        env.segment
            .workspace()
            .invites
            .iter()
            .any(|i| i.email == "new.hire@acme.test")
    );

    // Delete an invitation, twice.
    let delete = task_of(task::TaskType::DeleteResource(task::DeleteResourceTask {
        resource_id: Some(pb::ResourceId {
            resource_type: "invite".into(),
            resource: "quinn@partner.test".into(),
            baton_resource: false,
        }),
        parent_resource_id: None,
    }));
    env.c1.push_task(delete.clone());
    let done = env.finished(7).await;
    let resp: pb::DeleteResourceResponse = done.response_as().expect("a delete response");
    assert!(resp.annotations.is_empty());
    assert!(
        !env.segment
            .workspace()
            .invites
            .iter()
            .any(|i| i.email == "quinn@partner.test")
    );
    env.c1.push_task(delete);
    let done = env.finished(8).await;
    let resp: pb::DeleteResourceResponse = done.response_as().unwrap();
    assert!(baton::annotations::contains::<pb::ResourceDoesNotExist>(
        &resp.annotations
    ));

    // A malformed task: no principal.
    env.c1
        .push_task(task_of(task::TaskType::Grant(task::GrantTask {
            entitlement: Some(entitlement),
            principal: None,
            annotations: vec![],
            duration: None,
        })));
    let done = env.finished(9).await;
    expect_failure(&done, Code::InvalidArgument, true);
    assert!(
        done.status_message.contains("principal"),
        "{}",
        done.status_message
    );

    // The connector's own error: a principal Segment does not know → NOT_FOUND, non-retryable.
    let mut ghost = grace;
    ghost.id = Some(pb::ResourceId {
        resource_type: "user".into(),
        resource: "usrNobody".into(),
        baton_resource: false,
    });
    ghost.annotations.clear();
    env.c1
        .push_task(task_of(task::TaskType::Grant(task::GrantTask {
            entitlement: Some(
                synced
                    .entitlements()
                    .into_iter()
                    .find(|e| e.id == "group:grpEng:member")
                    .unwrap(),
            ),
            principal: Some(ghost),
            annotations: vec![],
            duration: None,
        })));
    let done = env.finished(10).await;
    assert!(!done.is_success(), "{done:?}");
    assert!(done.non_retryable(), "{done:?}");
    assert_ne!(status_code(&done), Code::Ok);

    // One token for everything (reused until it expires), on every call; the secret never
    // travelled.
    assert_eq!(env.c1.tokens_issued(), 1);
    let rpcs: Vec<_> = env
        .c1
        .requests()
        .into_iter()
        .filter(|r| r.method != "token")
        .collect();
    assert!(rpcs.iter().all(|r| r.authorization_valid), "{rpcs:?}");
    assert!(!env.c1.received_anywhere(&env.secret));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_what_it_does_not_do() {
    let env = Env::start(|_| {}, FakeConfig::demo()).await;
    let daemon = env.spawn(env.options()); // provisioning off
    env.c1.wait_for_hellos(1, WAIT).await.unwrap();

    let group = pb::Resource {
        id: Some(pb::ResourceId {
            resource_type: "group".into(),
            resource: "grpEng".into(),
            baton_resource: false,
        }),
        display_name: "Engineering".into(),
        ..Default::default()
    };
    env.c1
        .push_task(task_of(task::TaskType::Grant(task::GrantTask {
            entitlement: Some(pb::Entitlement {
                id: "group:grpEng:member".into(),
                resource: Some(group),
                slug: "member".into(),
                ..Default::default()
            }),
            principal: Some(pb::Resource {
                id: Some(pb::ResourceId {
                    resource_type: "user".into(),
                    resource: "usrGrace".into(),
                    baton_resource: false,
                }),
                ..Default::default()
            }),
            annotations: vec![],
            duration: None,
        })));
    let done = env.finished(1).await;
    expect_failure(&done, Code::FailedPrecondition, true);
    assert_eq!(
        done.status_message,
        "provisioning is not enabled (set --provisioning / BATON_PROVISIONING)"
    );
    env.c1.push_task(task_of(task::TaskType::DeleteResource(
        task::DeleteResourceTask {
            resource_id: Some(pb::ResourceId {
                resource_type: "user".into(),
                resource: "usrFrank".into(),
                baton_resource: false,
            }),
            parent_resource_id: None,
        },
    )));
    expect_failure(&env.finished(2).await, Code::FailedPrecondition, true);

    // Types we do not handle, and one this protocol version does not even name.
    env.c1.push_task(task_of(task::TaskType::RotateCredentials(
        task::RotateCredentialsTask::default(),
    )));
    let done = env.finished(3).await;
    expect_failure(&done, Code::Unimplemented, true);
    assert!(
        done.status_message.contains("rotate_credentials"),
        "{}",
        done.status_message
    );
    // Types it has no handler for, and one this protocol version does not even name: as
    // baton-sdk reports them, UNKNOWN "unsupported task type", retryable.
    env.c1.push_task(task_of(task::TaskType::EventFeed(
        task::EventFeedTask::default(),
    )));
    let done = env.finished(4).await;
    expect_failure(&done, Code::Unknown, false);
    assert!(
        done.status_message.contains("unsupported task type"),
        "{}",
        done.status_message
    );
    env.c1.push_task(Task {
        id: String::new(),
        status: task::Status::Pending as i32,
        debug: false,
        task_type: None,
    });
    expect_failure(&env.finished(5).await, Code::Unknown, false);
    // A targeted resource without an id is a malformed task.
    env.c1
        .push_task(task_of(task::TaskType::SyncFull(task::SyncFullTask {
            targeted_sync_resources: vec![pb::Resource::default()],
            ..Default::default()
        })));
    expect_failure(&env.finished(6).await, Code::InvalidArgument, true);

    // A hello task: Hello again, naming the task, and no FinishTask (as baton-sdk).
    let id = env
        .c1
        .push_task(task_of(task::TaskType::Hello(task::HelloTask {})));
    let hellos = env.c1.wait_for_hellos(2, WAIT).await.unwrap();
    assert_eq!(hellos[1].task_id, id);
    // The next task's end is the next one reported.
    let next = env.c1.push_task(task_of(task::TaskType::EventFeed(
        task::EventFeedTask::default(),
    )));
    assert_eq!(env.finished(7).await.task_id, next);
    assert!(env.c1.finished().iter().all(|f| f.task_id != id));

    // Nothing reached Segment's write endpoints; nothing was uploaded.
    assert!(
        env.segment_writes().is_empty(),
        "{:?}",
        env.segment_writes()
    );
    assert!(env.c1.uploads().is_empty());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_sync_stops_and_uploads_nothing() {
    let env = Env::start(
        |c| c.next_heartbeat = Duration::from_secs(1),
        FakeConfig::demo(),
    )
    .await;
    // The sync's first Segment request never gets an answer: only cancelling ends the task.
    env.segment.inject(Fault::once(FaultKind::Hang));
    let daemon = env.spawn(env.options());
    let id = env.c1.push_sync_task();
    let beats = env.c1.wait_for_heartbeats(1, WAIT).await.unwrap();
    assert_eq!(beats[0].task_id, id);
    assert_eq!(beats[0].host_id, HOST_ID);
    assert!(!beats[0].cancelled);
    assert!(env.c1.finished().is_empty(), "still running");
    env.c1.cancel_task(&id);
    let done = env.finished(1).await;
    assert_eq!(done.task_id, id);
    expect_failure(&done, Code::Cancelled, false);
    assert!(env.c1.heartbeats().iter().any(|h| h.cancelled));
    assert!(env.c1.uploads().is_empty());
    assert!(
        env.c1.upload_attempts().is_empty(),
        "no upload was even started"
    );
    assert!(env.temp_is_empty(), "the partial sync file is gone");

    // The daemon goes on with the next task.
    let hello = env
        .c1
        .push_task(task_of(task::TaskType::Hello(task::HelloTask {})));
    let hellos = env.c1.wait_for_hellos(2, WAIT).await.unwrap();
    assert_eq!(hellos[1].task_id, hello);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_and_heartbeats_follow_the_intervals_conductorone_gives() {
    let env = Env::start(
        |c| {
            c.next_poll = Duration::from_millis(700);
            c.next_heartbeat = Duration::from_millis(1500);
        },
        FakeConfig::demo(),
    )
    .await;
    let times = |env: &Env, method: &str| -> Vec<std::time::Instant> {
        env.c1
            .requests()
            .into_iter()
            .filter(|r| r.method == method)
            .map(|r| r.at)
            .collect()
    };
    let gaps = |t: &[std::time::Instant]| -> Vec<Duration> {
        t.windows(2).map(|w| w[1].duration_since(w[0])).collect()
    };
    // Room for a second task, so that polling goes on while the first one runs.
    let mut opts = env.options();
    opts.task_concurrency = 2;
    let daemon = env.spawn(opts);
    env.c1.wait_for_hellos(1, WAIT).await.unwrap();
    // Idle: one poll every `next_poll`.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let polls = times(&env, "GetTask");
    assert!((3..=5).contains(&polls.len()), "{} polls", polls.len());
    for gap in gaps(&polls) {
        assert!(gap >= Duration::from_millis(690), "{gap:?} between polls");
    }

    // A task that hangs: heartbeats every `next_heartbeat`, first as GetTask said, then as the
    // last heartbeat answer says.
    env.segment.inject(Fault::once(FaultKind::Hang));
    let id = env.c1.push_sync_task();
    env.c1.wait_for_heartbeats(1, WAIT).await.unwrap();
    env.c1.set_next_heartbeat(Duration::from_millis(2500));
    env.c1.wait_for_heartbeats(3, WAIT).await.unwrap();
    let beats = gaps(&times(&env, "Heartbeat"));
    assert!(
        beats[0] >= Duration::from_millis(1490) && beats[0] < Duration::from_millis(2400),
        "{beats:?}"
    );
    assert!(beats[1] >= Duration::from_millis(2490), "{beats:?}");
    // Handing out the task did not hurry the next poll, nor did the polls stop while it ran:
    // every gap is `next_poll` or more.
    let polls = times(&env, "GetTask");
    assert!(polls.len() >= 8, "{} polls", polls.len());
    for gap in gaps(&polls) {
        assert!(gap >= Duration::from_millis(690), "{gap:?} between polls");
    }
    env.c1.cancel_task(&id);
    expect_failure(&env.finished(1).await, Code::Cancelled, false);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_heartbeats_keep_failing_is_abandoned() {
    let env = Env::start(
        |c| c.next_heartbeat = Duration::from_secs(1),
        FakeConfig::demo(),
    )
    .await;
    env.segment.inject(Fault::once(FaultKind::Hang));
    let mut opts = env.options();
    opts.timing.heartbeat_failures = 3;
    let daemon = env.spawn(opts);
    let id = env.c1.push_sync_task();
    // The first heartbeat goes through; every later one fails.
    env.c1.wait_for_heartbeats(1, WAIT).await.unwrap();
    env.c1.fail_heartbeats(1000);
    let done = env.finished(1).await;
    assert_eq!(done.task_id, id);
    expect_failure(&done, Code::Aborted, false);
    assert!(env.c1.uploads().is_empty());
    assert!(env.temp_is_empty(), "the partial sync file is gone");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_is_sent_again_once() {
    let env = Env::start(|c| c.upload_failures = 1, FakeConfig::demo()).await;
    let daemon = env.spawn(env.options());
    let id = env.c1.push_sync_task();
    let done = env.finished(1).await;
    expect_success(&done);
    let attempts = env.c1.upload_attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].outcome, UploadOutcome::ScriptedFailure);
    assert_eq!(attempts[1].outcome, UploadOutcome::Completed);
    let uploads = env.c1.uploads();
    assert_eq!(uploads.len(), 1, "exactly one complete upload");
    assert_eq!(uploads[0].task_id, id);
    let synced = open_upload(&uploads[0].bytes, env.dir.path());
    assert_eq!(synced.grants().len(), 44);
    // The retry sent the checksum of the whole file again, not of what the failed attempt sent.
    assert_eq!(
        uploads[0].sha256,
        Sha256::digest(&uploads[0].bytes).to_vec()
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_go_up_in_512_kib_chunks() {
    use baton_segment::service::auth::{Credentials, TokenSource};
    use baton_segment::service::client::{C1Client, Trust};
    use baton_segment::service::upload;
    // The demo's .c1z fits one chunk: upload a bigger (incompressible) file directly.
    let env = Env::start(|_| {}, FakeConfig::demo()).await;
    let creds = Credentials::parse(&env.client_id, &env.secret, Some(&env.c1.host())).unwrap();
    let trust = Trust::with_ca_pem(env.c1.ca_pem()).unwrap();
    let tokens = Arc::new(TokenSource::new(creds, &trust, "test").unwrap());
    let client = C1Client::new(tokens, &trust, "test", Duration::from_secs(10)).unwrap();
    let id = env.c1.push_sync_task();
    let got = client
        .get_task(baton::c1::service::BatonServiceGetTaskRequest {
            host_id: HOST_ID.into(),
        })
        .await
        .unwrap();
    assert_eq!(got.task.unwrap().id, id);

    let data: Vec<u8> = (0..(2 * upload::CHUNK + 12_345))
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect();
    let path = env.temp().join("big.c1z");
    std::fs::write(&path, &data).unwrap();
    let sent = upload::upload(&client, HOST_ID, &id, &path, 3, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(sent.bytes, data.len() as u64);
    assert_eq!(sent.sha256.as_slice(), Sha256::digest(&data).as_slice());
    let up = &env.c1.uploads()[0];
    assert_eq!(up.chunk_sizes, [upload::CHUNK, upload::CHUNK, 12_345]);
    assert_eq!(up.bytes, data);
    assert_eq!(up.sha256, Sha256::digest(&data).to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_outage_at_startup_is_waited_out() {
    let env = Env::start(|c| c.token_endpoint_failures = 2, FakeConfig::demo()).await;
    let daemon = env.spawn(env.options()); // 3 attempts
    env.c1.wait_for_hellos(1, WAIT).await.unwrap();
    assert_eq!(env.c1.token_requests(), 3);
    assert_eq!(env.c1.tokens_issued(), 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_before_expiry_and_after_a_refusal() {
    // Tokens live 4 s: each is replaced after 2 s.
    let env = Env::start(|c| c.token_ttl = Duration::from_secs(4), FakeConfig::demo()).await;
    let daemon = env.spawn(env.options());
    env.c1.wait_for_hellos(1, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(env.c1.tokens_issued() >= 2, "{}", env.c1.tokens_issued());
    let rpcs = |env: &Env| -> Vec<_> {
        env.c1
            .requests()
            .into_iter()
            .filter(|r| r.method != "token")
            .collect()
    };
    assert!(
        rpcs(&env).iter().all(|r| r.authorization_valid),
        "no call went out with an expired token"
    );

    // ConductorOne forgets every token: the next call gets a fresh one and goes through.
    env.c1.set_token_ttl(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let issued = env.c1.tokens_issued();
    env.c1.revoke_tokens();
    env.c1
        .push_task(task_of(task::TaskType::Hello(task::HelloTask {})));
    env.c1.wait_for_hellos(2, WAIT).await.unwrap();
    assert!(env.c1.tokens_issued() > issued);
    assert!(rpcs(&env).iter().any(|r| !r.authorization_valid));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_once_conductorone_takes_the_hello_and_not_while_it_is_unreachable() {
    let env = Env::start(|c| c.token_endpoint_failures = 2, FakeConfig::demo()).await;
    let opts = env.options();
    let health = opts.health.clone();
    assert!(matches!(health.state(), State::Starting(_)));
    let daemon = env.spawn(opts);
    let started = std::time::Instant::now();
    while health.state() != State::Ready {
        assert!(started.elapsed() < WAIT, "{:?}", health.state());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(env.c1.hellos().len(), 1, "ready only after the Hello");

    // ConductorOne goes away: after a few failed polls the host says it is not ready, and why.
    let Env { c1, segment, .. } = env;
    c1.shutdown().await;
    let degraded = loop {
        match health.state() {
            State::Degraded(why) => break why,
            other => {
                assert!(started.elapsed() < WAIT, "{other:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(
        degraded.contains("polling ConductorOne for tasks failed 3 times in a row"),
        "{degraded}"
    );
    daemon.stop().await;
    assert_eq!(health.state(), State::Stopping);
    drop(segment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_outage_is_a_clear_error() {
    let env = Env::start(|c| c.token_endpoint_failures = 100, FakeConfig::demo()).await;
    let mut opts = env.options();
    opts.timing.startup_attempts = 4;
    let err = env.spawn(opts).error().await;
    assert!(err.contains("cannot get an access token"), "{err}");
    assert!(err.contains(&env.c1.token_url()), "{err}");
    assert!(err.contains("503"), "{err}");
    assert!(err.contains("gave up after 4 attempts"), "{err}");
    assert_eq!(env.c1.token_requests(), 4);
    assert!(env.c1.hellos().is_empty());
    // The waits between attempts double from 50 ms.
    let at: Vec<_> = env
        .c1
        .requests()
        .into_iter()
        .filter(|r| r.method == "token")
        .map(|r| r.at)
        .collect();
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, least) in gaps.iter().zip([50, 100, 200]) {
        assert!(*gap >= Duration::from_millis(least), "{gaps:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_at_once() {
    let env = Env::start(|_| {}, FakeConfig::demo()).await;
    // A well-formed secret for another key.
    let (_, other_secret, _) =
        baton::c1::credentials::generate_credentials("baton-segment", "127.0.0.1");
    let mut opts = env.options();
    opts.client_secret = Secret::new(other_secret.clone());
    let err = env.spawn(opts).error().await;
    assert!(
        err.contains("ConductorOne refused the client credentials (Unauthenticated: HTTP 401"),
        "{err}"
    );
    assert!(!err.contains(&other_secret[34..]), "{err}");
    assert_eq!(env.c1.token_requests(), 1, "a refusal is not retried");
    assert!(env.c1.hellos().is_empty());
    assert!(!env.c1.received_anywhere(&other_secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_credentials_are_clear_errors_without_the_secret() {
    let env = Env::start(|_| {}, FakeConfig::demo()).await;

    let mut opts = env.options();
    opts.client_id = "baton-segment-without-a-host".into();
    let err = env.spawn(opts).error().await;
    assert!(err.contains("BATON_CLIENT_ID"), "{err}");
    assert!(err.contains("'@'"), "{err}");

    // A secret with one character of its key changed (no longer base64url).
    let mut broken = env.secret.clone();
    broken.replace_range(40..41, "*");
    let mut opts = env.options();
    opts.client_secret = Secret::new(broken.clone());
    let err = env.spawn(opts).error().await;
    assert!(err.contains("BATON_CLIENT_SECRET"), "{err}");
    assert!(!err.contains(&broken[34..]), "{err}");
    assert!(!err.contains(&broken[34..54]), "{err}");

    let mut opts = env.options();
    opts.client_secret = Secret::new("secret-token:conductorone.com:v2:c2VjcmV0");
    let err = env.spawn(opts).error().await;
    assert!(err.contains("version"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "{err}");

    // A CA file that is not a certificate.
    let bad_ca = env.dir.path().join("not-a-ca.pem");
    std::fs::write(&bad_ca, "hello").unwrap();
    let mut opts = env.options();
    opts.ca_cert = Some(bad_ca);
    let err = env.spawn(opts).error().await;
    assert!(err.contains("BATON_C1_CA_CERT"), "{err}");

    // Nothing was sent anywhere.
    assert_eq!(env.c1.token_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_private_ca_the_server_is_not_trusted() {
    let env = Env::start(|_| {}, FakeConfig::demo()).await;
    let mut opts = env.options();
    opts.ca_cert = None; // web roots only: the fake's CA is not among them
    let err = env.spawn(opts).error().await;
    assert!(err.contains("cannot get an access token"), "{err}");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert_eq!(env.c1.tokens_issued(), 0);
}

// ---- The protocol as baton-sdk speaks it (one test per difference it had) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_fills_every_os_field_and_declares_account_creation() {
    // The fake refuses a Hello with an empty OSInfo field, as ConductorOne does.
    let env = Env::start(|_| {}, FakeConfig::demo()).await;
    let daemon = env.spawn(env.options());
    let hello = env.c1.wait_for_hellos(1, WAIT).await.unwrap().remove(0);
    let os = hello.os_info.unwrap();
    for (name, v) in [
        ("hostname", &os.hostname),
        ("os", &os.os),
        ("platform", &os.platform),
        ("platform_version", &os.platform_version),
        ("platform_family", &os.platform_family),
        ("kernel_version", &os.kernel_version),
        ("kernel_arch", &os.kernel_arch),
        ("virtualization_system", &os.virtualization_system),
    ] {
        assert!(!v.is_empty(), "{name}");
    }
    let meta = hello.connector_metadata.unwrap();
    // Field 9: the form ConductorOne shows to create an account.
    let schema = meta
        .account_creation_schema
        .expect("account_creation_schema");
    let email = &schema.field_map["email"];
    assert_eq!(email.display_name, "Email Address");
    assert!(email.required);
    assert_eq!(email.placeholder, "user@example.com");
    assert!(matches!(
        email.field,
        Some(pb::connector_account_creation_schema::field::Field::StringField(_))
    ));
    // ConnectorCapabilities field 3: accounts are created without a password.
    let details = meta
        .capabilities
        .unwrap()
        .credential_details
        .expect("credential_details");
    let ap = details.capability_account_provisioning.unwrap();
    let no_password = pb::CapabilityDetailCredentialOption::NoPassword as i32;
    assert_eq!(ap.supported_credential_options, vec![no_password]);
    assert_eq!(ap.preferred_credential_option, no_password);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_assertion_and_token_type_are_baton_sdk_s() {
    // The client id names its own tenant host; BATON_C1_API_HOST sends the requests to the
    // fake. The fake takes only baton-sdk's assertion (aud: the client id's host, one string;
    // the JWK's kid; a hex nonce) and only `Bearer` on RPCs, while it answers `bearer`.
    let env = Env::start(|c| c.token_type = "bearer".into(), FakeConfig::demo()).await;
    assert_ne!(
        env.c1.host().split(':').next(),
        Some(fakes::c1::TENANT_HOST),
        "the API host differs from the client id's"
    );
    let daemon = env.spawn(env.options());
    env.c1.wait_for_hellos(1, WAIT).await.unwrap();
    let token_requests: Vec<_> = env
        .c1
        .requests()
        .into_iter()
        .filter(|r| r.method == "token")
        .collect();
    assert!(token_requests.iter().all(|r| r.http_status == Some(200)));
    let rpcs: Vec<_> = env
        .c1
        .requests()
        .into_iter()
        .filter(|r| r.method != "token")
        .collect();
    assert!(rpcs.iter().all(|r| r.authorization_valid), "{rpcs:?}");
    assert!(rpcs.iter().all(|r| {
        r.metadata
            .iter()
            .any(|(k, v)| k == "authorization" && v.starts_with("Bearer "))
    }));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_full_syncs_heartbeat_the_first_one_at_once() {
    // Heartbeats answered "next in an hour" (held to 5 min): a sync of seconds sees only the
    // first one, which baton-sdk sends before the sync starts.
    let env = Env::start(
        |c| c.next_heartbeat = Duration::from_secs(3600),
        FakeConfig::demo(),
    )
    .await;
    let mut opts = env.options();
    opts.provisioning = true;
    let daemon = env.spawn(opts);
    let sync = env.c1.push_sync_task();
    expect_success(&env.finished(1).await);
    let beats = env.c1.heartbeats();
    assert_eq!(beats.len(), 1, "{beats:?}");
    assert_eq!(
        (beats[0].task_id.as_str(), beats[0].task_type.as_str()),
        (sync.as_str(), "sync_full")
    );

    // A provisioning task that takes longer than the heartbeat interval sends none.
    env.c1.set_next_heartbeat(Duration::from_secs(1));
    env.segment.set_latency(Duration::from_millis(1500));
    env.c1.push_task(task_of(task::TaskType::DeleteResource(
        task::DeleteResourceTask {
            resource_id: Some(pb::ResourceId {
                resource_type: "invite".into(),
                resource: "quinn@partner.test".into(),
                baton_resource: false,
            }),
            parent_resource_id: None,
        },
    )));
    expect_success(&env.finished(2).await);
    assert_eq!(env.c1.heartbeats().len(), 1, "{:?}", env.c1.heartbeats());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_whose_first_heartbeat_fails_is_dropped_unreported() {
    let env = Env::start(|_| {}, FakeConfig::demo()).await;
    let daemon = env.spawn(env.options());
    env.c1.wait_for_hellos(1, WAIT).await.unwrap();
    env.c1.fail_heartbeats(1);
    let sync = env.c1.push_sync_task();
    let next = env.c1.push_task(task_of(task::TaskType::EventFeed(
        task::EventFeedTask::default(),
    )));
    // The next task is the first reported: the sync never started and is not finished
    // (ConductorOne hands it out again).
    assert_eq!(env.finished(1).await.task_id, next);
    assert!(env.c1.finished().iter().all(|f| f.task_id != sync));
    assert!(
        env.segment.requests().iter().all(|r| r.path == "/"),
        "no sync request"
    );
    assert!(env.c1.uploads().is_empty());
    daemon.stop().await;
}

/// A sync task with options, and the `.c1z` it uploads.
async fn sync_with(env: &Env, n: usize, t: task::SyncFullTask) -> (Synced, usize) {
    env.segment.clear_requests();
    env.c1.push_task(task_of(task::TaskType::SyncFull(t)));
    expect_success(&env.finished(n).await);
    let up = env.c1.uploads().remove(n - 1);
    let dir = env.dir.path().join(format!("up{n}"));
    std::fs::create_dir(&dir).unwrap();
    (open_upload(&up.bytes, &dir), env.segment.requests().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_tasks_honour_their_options() {
    let env = Env::start(|_| {}, FakeConfig::demo()).await;
    let daemon = env.spawn(env.options());
    let (full, full_requests) = sync_with(&env, 1, task::SyncFullTask::default()).await;
    assert_eq!(full.reader.latest_sync().unwrap().sync_type, "full");

    // Resources only.
    let (only, requests) = sync_with(
        &env,
        2,
        task::SyncFullTask {
            skip_entitlements_and_grants: true,
            ..Default::default()
        },
    )
    .await;
    let sorted = |mut keys: Vec<String>| {
        keys.sort();
        keys
    };
    assert_eq!(sorted(only.resource_keys()), sorted(full.resource_keys()));
    assert!(only.entitlements().is_empty() && only.grants().is_empty());
    assert_eq!(
        only.reader.latest_sync().unwrap().sync_type,
        "resources_only"
    );
    assert!(requests < full_requests, "{requests} < {full_requests}");

    // Grants left out.
    let (no_grants, _) = sync_with(
        &env,
        3,
        task::SyncFullTask {
            skip_grants: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(no_grants.entitlements().len(), full.entitlements().len());
    assert!(no_grants.grants().is_empty());

    // Some resource types.
    let (groups, requests) = sync_with(
        &env,
        4,
        task::SyncFullTask {
            sync_resource_type_ids: vec!["group".into()],
            ..Default::default()
        },
    )
    .await;
    let keys = groups.resource_keys();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("group:")),
        "{keys:?}"
    );
    assert!(
        groups
            .grants()
            .iter()
            .all(|g| g.grant.id.starts_with("group:"))
    );
    assert!(requests < full_requests, "{requests} < {full_requests}");

    // One targeted resource, named with its parent: listed there, alone, as a partial sync.
    let (one, _) = sync_with(
        &env,
        5,
        task::SyncFullTask {
            targeted_sync_resources: vec![pb::Resource {
                id: Some(pb::ResourceId {
                    resource_type: "group".into(),
                    resource: "grpEng".into(),
                    baton_resource: false,
                }),
                parent_resource_id: Some(pb::ResourceId {
                    resource_type: "workspace".into(),
                    resource: "wkspAcme01".into(),
                    baton_resource: false,
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(one.resource_keys(), ["group:grpEng"]);
    assert_eq!(one.reader.latest_sync().unwrap().sync_type, "partial");
    assert!(!one.grants().is_empty());
    assert!(
        one.grants()
            .iter()
            .all(|g| g.grant.id.starts_with("group:grpEng:"))
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_full_sync_answers_syncs_with_an_empty_one() {
    let env = Env::start(|_| {}, FakeConfig::demo()).await;
    let mut opts = env.options();
    opts.skip_full_sync = true;
    let daemon = env.spawn(opts);
    env.c1.wait_for_hellos(1, WAIT).await.unwrap();
    env.segment.clear_requests();
    env.c1.push_sync_task();
    expect_success(&env.finished(1).await);
    let up = env.c1.uploads().remove(0);
    let empty = open_upload(&up.bytes, env.dir.path());
    assert!(empty.resources().is_empty());
    assert!(env.segment.requests().is_empty(), "Segment is not asked");
    daemon.stop().await;
}

// ---- Deployment files ----

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn yaml_docs(path: &Path) -> Vec<yaml_rust2::Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

#[test]
fn kubernetes_manifests_are_valid_and_complete() {
    use yaml_rust2::Yaml;
    let dir = repo_root().join("deploy/kubernetes");
    let mut docs = vec![];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            docs.extend(yaml_docs(&path));
        }
    }
    let kind = |d: &Yaml| d["kind"].as_str().unwrap_or_default().to_string();
    for d in &docs {
        assert!(d["apiVersion"].as_str().is_some(), "apiVersion in {d:?}");
        assert!(
            d["metadata"]["name"].as_str().is_some(),
            "metadata.name in {d:?}"
        );
    }

    // The shape of ConductorOne's Baton manifests: the Secret baton-segment-secrets, loaded
    // whole with envFrom; labels app, baton and baton-app (`kubectl logs -l app=…`).
    let secret = docs.iter().find(|d| kind(d) == "Secret").expect("a Secret");
    let secret_name = secret["metadata"]["name"].as_str().unwrap();
    assert_eq!(secret_name, "baton-segment-secrets");
    let data = &secret["stringData"];
    for k in ["BATON_CLIENT_ID", "BATON_CLIENT_SECRET", "BATON_TOKEN"] {
        assert!(data[k].as_str().is_some(), "{k} in the Secret");
    }
    assert_eq!(data["BATON_PROVISIONING"].as_str(), Some("true"));

    let deployment = docs
        .iter()
        .find(|d| kind(d) == "Deployment")
        .expect("a Deployment");
    for labels in [
        &deployment["metadata"]["labels"],
        &deployment["spec"]["template"]["metadata"]["labels"],
    ] {
        assert_eq!(labels["app"].as_str(), Some("baton-segment"));
        assert_eq!(labels["baton"].as_str(), Some("true"));
        assert_eq!(labels["baton-app"].as_str(), Some("segment"));
    }
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"]["app"].as_str(),
        Some("baton-segment")
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert!(c["image"].as_str().unwrap().contains("baton-segment"));
    let env_from = c["envFrom"].as_vec().expect("envFrom");
    assert!(
        env_from
            .iter()
            .any(|e| e["secretRef"]["name"].as_str() == Some(secret_name)),
        "envFrom the Secret"
    );

    let env: Vec<&Yaml> = c["env"].as_vec().unwrap().iter().collect();
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("{name} in the container's env"))
    };
    assert_eq!(var("BATON_HEALTH_CHECK")["value"].as_str(), Some("true"));
    assert_eq!(
        var("BATON_HEALTH_CHECK_PORT")["value"].as_str(),
        Some("8081")
    );
    assert_eq!(
        var("BATON_HEALTH_CHECK_BIND_ADDRESS")["value"].as_str(),
        Some("0.0.0.0")
    );
    assert_eq!(
        var("BATON_HOST_ID")["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.name")
    );

    for (probe, path) in [("livenessProbe", "/live"), ("readinessProbe", "/ready")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_i64(), Some(8081), "{probe}");
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    let mounts = c["volumeMounts"].as_vec().unwrap();
    let tmp = mounts
        .iter()
        .find(|m| m["mountPath"].as_str() == Some("/tmp"))
        .expect("a writable /tmp");
    let volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == tmp["name"].as_str())
        .expect("the /tmp volume");
    assert!(!volume["emptyDir"].is_badvalue(), "an emptyDir for /tmp");
    for k in ["requests", "limits"] {
        assert!(
            c["resources"][k]["memory"].as_str().is_some(),
            "resources.{k}.memory"
        );
        assert!(c["resources"][k]["cpu"].as_str().is_some() || k == "limits");
    }
    // One replica: each host takes tasks on its own; more are fine but not needed.
    assert!(deployment["spec"]["replicas"].as_i64().is_some());
}

#[test]
fn dockerfile_builds_the_binary_and_runs_it_unprivileged() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    assert!(froms[0].contains("rust:1.95"), "{froms:?}");
    assert!(froms[1].contains("nonroot"), "{froms:?}");
    assert!(text.contains("wasm32-wasip2"));
    assert!(text.contains("cargo build --release -p baton-segment --locked"));
    assert!(text.contains("USER nonroot") || text.contains("USER 65532"));
    // Where the Go connector's image has its binary, so manifests naming it keep working.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("COPY --from=builder") && l.ends_with(" /baton-segment")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&r#"ENTRYPOINT ["/baton-segment"]"#),
        "{lines:?}"
    );
    // The toolchain file pins what the builder installs.
    let toolchain = std::fs::read_to_string(root.join("rust-toolchain.toml")).unwrap();
    assert!(toolchain.contains("1.95"), "{toolchain}");
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    assert!(
        ignore
            .lines()
            .any(|l| l.trim().trim_matches('/') == "target")
    );
}
