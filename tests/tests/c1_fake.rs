//! The fake ConductorOne over real TLS on 127.0.0.1: the token endpoint with real Ed25519
//! client assertions (reqwest + rustls trusting only the fake's CA) and every BatonService
//! RPC through the generated tonic client over TLS.

use baton::c1::credentials::{self, ClientId, ClientSecret};
use baton::c1::service::baton_service_client::BatonServiceClient;
use baton::c1::service::baton_service_finish_task_request as finish;
use baton::c1::service::baton_service_hello_request::{BuildInfo, OsInfo};
use baton::c1::service::baton_service_upload_asset_request::{
    Msg, UploadData, UploadEof, UploadMetadata,
};
use baton::c1::service::{
    BatonServiceFinishTaskRequest, BatonServiceGetTaskRequest, BatonServiceGetTasksRequest,
    BatonServiceHeartbeatRequest, BatonServiceHelloRequest, BatonServiceUploadAssetRequest, Task,
    task,
};
use baton::pb;
use fakes::c1::{FakeC1, FakeC1Config, FinishOutcome, UploadOutcome};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Code, Request};

const HOST_ID: &str = "test-host";

struct Env {
    fake: FakeC1,
    id: ClientId,
    secret: ClientSecret,
    secret_text: String,
}

async fn start(adjust: impl FnOnce(&mut FakeC1Config)) -> Env {
    let (mut cfg, secret_text) = FakeC1Config::generated("baton-segment");
    adjust(&mut cfg);
    let id = ClientId::parse(&cfg.client_id).unwrap();
    let fake = FakeC1::start(cfg).await.unwrap();
    Env {
        fake,
        id,
        secret: ClientSecret::parse(&secret_text).unwrap(),
        secret_text,
    }
}

/// An HTTPS client that trusts only the fake's CA.
fn https(fake: &FakeC1) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(fake.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

async fn post_token(
    http: &reqwest::Client,
    fake: &FakeC1,
    body: String,
) -> (reqwest::StatusCode, serde_json::Value) {
    let resp = http
        .post(fake.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

impl Env {
    fn assertion(&self) -> String {
        // The audience is the client id's host, wherever BATON_C1_API_HOST sends the request.
        credentials::client_assertion(
            &self.id,
            &self.secret,
            &self.id.token_host,
            SystemTime::now(),
        )
    }

    /// A token through the real endpoint.
    async fn token(&self) -> String {
        let body = credentials::token_request_body(&self.id, &self.assertion());
        let (status, json) = post_token(&https(&self.fake), &self.fake, body).await;
        assert_eq!(status, 200, "{json}");
        let t: credentials::TokenResponse = serde_json::from_value(json).unwrap();
        assert_eq!(t.token_type, "Bearer");
        t.access_token
    }

    async fn client(&self) -> BatonServiceClient<Channel> {
        BatonServiceClient::new(channel(&self.fake).await)
    }
}

/// A gRPC channel over TLS trusting only the fake's CA (server name from the URL:
/// `127.0.0.1`).
async fn channel(fake: &FakeC1) -> Channel {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(fake.ca_pem()));
    Channel::from_shared(fake.url())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A compact JWS over `header` and `claims`, signed with the secret's key.
fn sign(secret: &str, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    use credentials::ed25519_dalek::{Signer as _, SigningKey};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = b64.decode(secret.rsplit(':').next().unwrap()).unwrap();
    let jwk: serde_json::Value = serde_json::from_slice(&jwk).unwrap();
    let d: [u8; 32] = b64
        .decode(jwk["d"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let sig = SigningKey::from_bytes(&d).sign(input.as_bytes());
    format!("{input}.{}", b64.encode(sig.to_bytes()))
}

fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// Every field filled, as baton-sdk sends it.
fn full_os_info() -> OsInfo {
    OsInfo {
        hostname: "box".into(),
        os: "linux".into(),
        platform: "debian".into(),
        platform_version: "12".into(),
        platform_family: "debian".into(),
        kernel_version: "6.1.0".into(),
        kernel_arch: "x86_64".into(),
        virtualization_system: "none".into(),
    }
}

fn hello_request() -> BatonServiceHelloRequest {
    BatonServiceHelloRequest {
        host_id: HOST_ID.into(),
        task_id: String::new(),
        build_info: Some(BuildInfo {
            lang_version: "rust 1.95".into(),
            package: "baton-segment".into(),
            package_version: "0.1.0".into(),
        }),
        os_info: Some(full_os_info()),
        connector_metadata: Some(pb::ConnectorMetadata {
            display_name: "Twilio Segment".into(),
            ..Default::default()
        }),
        annotations: vec![],
    }
}

async fn get_task(client: &mut BatonServiceClient<Channel>, token: &str) -> Task {
    client
        .get_task(authed(
            BatonServiceGetTaskRequest {
                host_id: HOST_ID.into(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .task
        .expect("GetTask always answers a task")
}

fn upload_messages(
    task_id: &str,
    data: &[u8],
    chunk: usize,
    checksum: Vec<u8>,
) -> Vec<BatonServiceUploadAssetRequest> {
    let mut msgs = vec![BatonServiceUploadAssetRequest {
        msg: Some(Msg::Metadata(UploadMetadata {
            host_id: HOST_ID.into(),
            task_id: task_id.into(),
            annotations: vec![],
        })),
    }];
    for c in data.chunks(chunk) {
        msgs.push(BatonServiceUploadAssetRequest {
            msg: Some(Msg::Data(UploadData { data: c.to_vec() })),
        });
    }
    msgs.push(BatonServiceUploadAssetRequest {
        msg: Some(Msg::Eof(UploadEof {
            sha256_checksum: checksum,
            annotations: vec![],
        })),
    });
    msgs
}

async fn upload(
    client: &mut BatonServiceClient<Channel>,
    token: &str,
    msgs: Vec<BatonServiceUploadAssetRequest>,
) -> Result<(), tonic::Status> {
    let stream = tonic::codegen::tokio_stream::iter(msgs);
    client.upload_asset(authed(stream, token)).await.map(|_| ())
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn token_endpoint_over_https() {
    let env = start(|c| c.token_ttl = Duration::from_secs(900)).await;
    let http = https(&env.fake);

    // A real assertion → 200 with a bearer token.
    let body = credentials::token_request_body(&env.id, &env.assertion());
    let (status, json) = post_token(&http, &env.fake, body.clone()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 900);
    assert!(json["access_token"].as_str().unwrap().len() > 20);

    // Replaying the very same assertion (same nonce) is refused.
    let (status, json) = post_token(&http, &env.fake, body).await;
    assert_eq!(status, 401);
    assert_eq!(json["error"], "invalid_client");
    assert!(
        json["error_description"]
            .as_str()
            .unwrap()
            .contains("replayed")
    );

    // Wrong client id in the form.
    let other = ClientId::parse("intruder@127.0.0.1/fake").unwrap();
    let (status, json) = post_token(
        &http,
        &env.fake,
        credentials::token_request_body(&other, &env.assertion()),
    )
    .await;
    assert_eq!(
        (status.as_u16(), json["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // Signed with another key.
    let (_, other_secret, _) = credentials::generate_credentials("x", "127.0.0.1");
    let other_secret = ClientSecret::parse(&other_secret).unwrap();
    let forged = credentials::client_assertion(
        &env.id,
        &other_secret,
        &env.id.token_host,
        SystemTime::now(),
    );
    let (status, json) = post_token(
        &http,
        &env.fake,
        credentials::token_request_body(&env.id, &forged),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        json["error_description"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{json}"
    );

    // The audience must be the client id's host, as one string (baton-sdk's form): the
    // API host, or an array, is refused.
    let api_host_aud =
        credentials::client_assertion(&env.id, &env.secret, &env.fake.host(), SystemTime::now());
    let (status, json) = post_token(
        &http,
        &env.fake,
        credentials::token_request_body(&env.id, &api_host_aud),
    )
    .await;
    assert_eq!(status, 401, "{json}");
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let kid = env
        .secret
        .key_id()
        .expect("the fake's secrets name their key")
        .to_string();
    let claims = |aud: serde_json::Value| {
        serde_json::json!({"iss": env.id.full, "sub": env.id.full, "aud": aud,
            "iat": now, "nbf": now - 120, "exp": now + 120})
    };
    let hex_nonce = "00112233445566778899aabbccddeeff";
    for (header, claims, why) in [
        (
            serde_json::json!({"alg": "EdDSA", "kid": kid, "nonce": hex_nonce}),
            claims(serde_json::json!([env.id.token_host])),
            "aud must be a single string",
        ),
        (
            serde_json::json!({"alg": "EdDSA", "kid": kid, "nonce": "AAECAwQFBgcICQoLDA0ODw"}),
            claims(serde_json::json!(env.id.token_host)),
            "nonce must be 16 random bytes in hex",
        ),
        (
            serde_json::json!({"alg": "EdDSA", "nonce": hex_nonce}),
            claims(serde_json::json!(env.id.token_host)),
            "kid",
        ),
    ] {
        let jws = sign(&env.secret_text, &header, &claims);
        let (status, json) = post_token(
            &http,
            &env.fake,
            credentials::token_request_body(&env.id, &jws),
        )
        .await;
        assert_eq!(status, 401, "{why}: {json}");
        assert!(
            json["error_description"].as_str().unwrap().contains(why),
            "{json}"
        );
    }
    // The same by hand in baton-sdk's form is accepted.
    let jws = sign(
        &env.secret_text,
        &serde_json::json!({"alg": "EdDSA", "kid": kid, "nonce": hex_nonce}),
        &claims(serde_json::json!(env.id.token_host)),
    );
    let (status, json) = post_token(
        &http,
        &env.fake,
        credentials::token_request_body(&env.id, &jws),
    )
    .await;
    assert_eq!(status, 200, "{json}");

    // Audience for another host.
    let wrong_aud =
        credentials::client_assertion(&env.id, &env.secret, "localhost:1", SystemTime::now());
    let (status, json) = post_token(
        &http,
        &env.fake,
        credentials::token_request_body(&env.id, &wrong_aud),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        json["error_description"]
            .as_str()
            .unwrap()
            .contains("audience")
    );

    // Expired (made 10 minutes ago).
    let old = credentials::client_assertion(
        &env.id,
        &env.secret,
        &env.id.token_host,
        SystemTime::now() - Duration::from_secs(600),
    );
    let (status, json) = post_token(
        &http,
        &env.fake,
        credentials::token_request_body(&env.id, &old),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        json["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // Malformed requests.
    let (status, json) = post_token(&http, &env.fake, "grant_type=password".into()).await;
    assert_eq!(
        (status.as_u16(), json["error"].as_str()),
        (401, Some("unsupported_grant_type"))
    );
    let (status, json) = post_token(
        &http,
        &env.fake,
        format!(
            "client_id={}&grant_type=client_credentials&client_assertion_type=x&client_assertion=y",
            env.id.full
        ),
    )
    .await;
    assert_eq!(
        (status.as_u16(), json["error"].as_str()),
        (401, Some("invalid_request"))
    );
    let resp = http
        .post(env.fake.token_url())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http.get(env.fake.token_url()).send().await.unwrap();
    assert_eq!(resp.status(), 405);

    // 15 requests: 2 tokens issued (the real assertion and baton-sdk's form by hand).
    assert_eq!(env.fake.token_requests(), 15);
    assert_eq!(env.fake.tokens_issued(), 2);
    // The form carried the id and an assertion, never the secret.
    let log = env.fake.requests();
    assert!(log.iter().all(|r| r.method == "token"));
    assert!(
        log[0]
            .form
            .iter()
            .any(|(k, v)| k == "client_id" && *v == env.id.full)
    );
    assert!(!env.fake.received_anywhere(&env.secret_text));
    let key_part = env.secret_text.rsplit(':').next().unwrap();
    assert!(!env.fake.received_anywhere(&key_part[..16]));

    // A client that does not trust the fake's CA cannot even connect.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(
        untrusting
            .post(env.fake.token_url())
            .body("x")
            .send()
            .await
            .is_err()
    );
    env.fake.shutdown().await;
}

#[tokio::test]
async fn token_endpoint_outage_then_recovery() {
    let env = start(|c| c.token_endpoint_failures = 2).await;
    let http = https(&env.fake);
    for _ in 0..2 {
        let body = credentials::token_request_body(&env.id, &env.assertion());
        let (status, json) = post_token(&http, &env.fake, body).await;
        assert_eq!(status, 503);
        assert_eq!(json["error"], "temporarily_unavailable");
    }
    let _token = env.token().await;
    assert_eq!(env.fake.token_requests(), 3);
    assert_eq!(env.fake.tokens_issued(), 1);
    // Scripted again at run time.
    env.fake.fail_token_requests(1);
    let body = credentials::token_request_body(&env.id, &env.assertion());
    assert_eq!(post_token(&http, &env.fake, body).await.0, 503);
    env.token().await;
    assert_eq!(env.fake.token_requests(), 5);
}

#[tokio::test]
async fn rpcs_require_a_valid_unexpired_token() {
    let env = start(|c| c.token_ttl = Duration::from_secs(1)).await;
    let mut client = env.client().await;

    // No token.
    let err = client
        .hello(Request::new(hello_request()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // A token the fake never issued, and a malformed header.
    let err = client
        .get_task(authed(
            BatonServiceGetTaskRequest {
                host_id: HOST_ID.into(),
            },
            "made-up",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut req = Request::new(hello_request());
    let token = env.token().await;
    req.metadata_mut()
        .insert("authorization", token.parse().unwrap());
    assert_eq!(
        client.hello(req).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // Streaming RPC too.
    let err = upload(
        &mut client,
        "nope",
        upload_messages("x", b"abc", 2, vec![0; 32]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        env.fake.upload_attempts()[0].outcome,
        UploadOutcome::Unauthenticated
    );
    assert!(env.fake.hellos().is_empty());

    // The real token works, with the scheme baton-sdk always sends (oauth2 normalises the
    // token type to `Bearer`)…
    client.hello(authed(hello_request(), &token)).await.unwrap();
    let mut req = Request::new(hello_request());
    req.metadata_mut()
        .insert("authorization", format!("bearer {token}").parse().unwrap());
    let err = client.hello(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(env.fake.hellos().len(), 1);

    // …until it expires.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = client
        .hello(authed(hello_request(), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("expired"), "{err:?}");
    // A fresh token works again; revoking all tokens stops it.
    let fresh = env.token().await;
    client.hello(authed(hello_request(), &fresh)).await.unwrap();
    env.fake.revoke_tokens();
    assert_eq!(
        client
            .hello(authed(hello_request(), &fresh))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let rpcs: Vec<_> = env
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "token")
        .collect();
    let flags: Vec<(bool, bool, Option<Code>)> = rpcs
        .iter()
        .map(|r| (r.authorization_present, r.authorization_valid, r.grpc_code))
        .collect();
    assert_eq!(
        flags,
        vec![
            (false, false, Some(Code::Unauthenticated)),
            (true, false, Some(Code::Unauthenticated)),
            (true, false, Some(Code::Unauthenticated)),
            (true, false, Some(Code::Unauthenticated)),
            (true, true, Some(Code::Ok)),
            // `bearer` in lower case: not what baton-sdk sends.
            (true, false, Some(Code::Unauthenticated)),
            (true, false, Some(Code::Unauthenticated)),
            (true, true, Some(Code::Ok)),
            (true, false, Some(Code::Unauthenticated)),
        ]
    );
    assert_eq!(rpcs[0].method, "Hello");
    assert_eq!(rpcs[1].method, "GetTask");
    assert_eq!(rpcs[3].method, "UploadAsset");
    assert!(!env.fake.received_anywhere(&env.secret_text));

    // A gRPC client that does not trust the CA fails the handshake.
    let untrusting = Channel::from_shared(env.fake.url())
        .unwrap()
        .tls_config(ClientTlsConfig::new())
        .unwrap()
        .connect()
        .await;
    assert!(untrusting.is_err());
}

#[tokio::test]
async fn hello_is_recorded() {
    let env = start(|_| {}).await;
    let token = env.token().await;
    let mut client = env.client().await;
    client.hello(authed(hello_request(), &token)).await.unwrap();
    let hellos = env
        .fake
        .wait_for_hellos(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(hellos[0].host_id, HOST_ID);
    assert_eq!(
        hellos[0].build_info.as_ref().unwrap().package,
        "baton-segment"
    );
    assert_eq!(hellos[0].os_info.as_ref().unwrap().os, "linux");
    assert_eq!(
        hellos[0].connector_metadata.as_ref().unwrap().display_name,
        "Twilio Segment"
    );
    // ConductorOne cannot register a connector whose Hello has an empty OSInfo field: each
    // one is refused (baton-sdk fills them all; virtualization_system with "none").
    for field in 0..8 {
        let mut bad = hello_request();
        let os = bad.os_info.as_mut().unwrap();
        let (name, value) = match field {
            0 => ("hostname", &mut os.hostname),
            1 => ("os", &mut os.os),
            2 => ("platform", &mut os.platform),
            3 => ("platform_version", &mut os.platform_version),
            4 => ("platform_family", &mut os.platform_family),
            5 => ("kernel_version", &mut os.kernel_version),
            6 => ("kernel_arch", &mut os.kernel_arch),
            _ => ("virtualization_system", &mut os.virtualization_system),
        };
        value.clear();
        let err = client.hello(authed(bad, &token)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}");
        assert!(err.message().contains(name), "{name}: {err:?}");
    }
    let mut bad = hello_request();
    bad.os_info = None;
    assert_eq!(
        client.hello(authed(bad, &token)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    // Validation: connector_metadata is required, host_id must be non-empty.
    let mut bad = hello_request();
    bad.connector_metadata = None;
    let err = client.hello(authed(bad, &token)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut bad = hello_request();
    bad.host_id.clear();
    assert_eq!(
        client.hello(authed(bad, &token)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(env.fake.hellos().len(), 1);
    let log = env.fake.requests();
    let hello_log = log.iter().find(|r| r.method == "Hello").unwrap();
    assert_eq!(hello_log.host_id, HOST_ID);
    assert!(hello_log.metadata.iter().any(|(k, _)| k == "authorization"));
}

#[tokio::test]
async fn tasks_heartbeats_cancellation_and_finish() {
    let env = start(|c| {
        c.next_poll = Duration::from_millis(250);
        c.next_heartbeat = Duration::from_secs(2);
    })
    .await;
    let token = env.token().await;
    let mut client = env.client().await;

    let sync_id = env.fake.push_sync_task();
    let grant = Task {
        task_type: Some(task::TaskType::Grant(task::GrantTask {
            entitlement: Some(pb::Entitlement {
                id: "group:g1:member".into(),
                ..Default::default()
            }),
            principal: Some(pb::Resource {
                id: Some(pb::ResourceId {
                    resource_type: "user".into(),
                    resource: "u1".into(),
                    baton_resource: false,
                }),
                ..Default::default()
            }),
            annotations: vec![],
            duration: None,
        })),
        ..Default::default()
    };
    let grant_id = env.fake.push_task(grant);
    for id in [&sync_id, &grant_id] {
        assert_eq!(id.len(), 27);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    assert_eq!(env.fake.pending_tasks().len(), 2);

    // GetTask: scripted tasks in order, then "none" answers; intervals from the config.
    let resp = client
        .get_task(authed(
            BatonServiceGetTaskRequest {
                host_id: HOST_ID.into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.next_poll,
        Some(prost_types::Duration {
            seconds: 0,
            nanos: 250_000_000
        })
    );
    assert_eq!(
        resp.next_heartbeat,
        Some(prost_types::Duration {
            seconds: 2,
            nanos: 0
        })
    );
    let t1 = resp.task.unwrap();
    assert_eq!(t1.id, sync_id);
    assert!(matches!(t1.task_type, Some(task::TaskType::SyncFull(_))));
    let t2 = get_task(&mut client, &token).await;
    assert_eq!(t2.id, grant_id);
    let Some(task::TaskType::Grant(g)) = &t2.task_type else {
        panic!("not a grant: {t2:?}");
    };
    assert_eq!(g.entitlement.as_ref().unwrap().id, "group:g1:member");
    for _ in 0..2 {
        let none = get_task(&mut client, &token).await;
        assert!(none.id.is_empty());
        assert!(matches!(none.task_type, Some(task::TaskType::None(_))));
    }
    assert_eq!(env.fake.handed_out().len(), 2);

    // Heartbeats: not cancelled, then cancelled once the test says so.
    let hb = |id: &str| {
        authed(
            BatonServiceHeartbeatRequest {
                host_id: HOST_ID.into(),
                task_id: id.into(),
                annotations: vec![],
                task_ids: vec![],
            },
            &token,
        )
    };
    let r = client.heartbeat(hb(&sync_id)).await.unwrap().into_inner();
    assert!(!r.cancelled);
    assert_eq!(
        r.next_heartbeat,
        Some(prost_types::Duration {
            seconds: 2,
            nanos: 0
        })
    );
    env.fake.cancel_task(&sync_id);
    let r = client.heartbeat(hb(&sync_id)).await.unwrap().into_inner();
    assert!(r.cancelled);
    assert!(
        !client
            .heartbeat(hb(&grant_id))
            .await
            .unwrap()
            .into_inner()
            .cancelled
    );
    // Batch form.
    let r = client
        .heartbeat(authed(
            BatonServiceHeartbeatRequest {
                host_id: HOST_ID.into(),
                task_id: String::new(),
                annotations: vec![],
                task_ids: vec![sync_id.clone(), grant_id.clone()],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.cancelled_task_ids, vec![sync_id.clone()]);
    // Unknown task.
    let err = client
        .heartbeat(hb("0000000000000000000000000Zz"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let hbs = env.fake.heartbeats();
    assert_eq!(
        hbs.iter().map(|h| h.cancelled).collect::<Vec<_>>(),
        vec![false, true, false, false]
    );

    // GetTasks (batch): hands out up to page_size.
    let t3 = env.fake.push_sync_task();
    let r = client
        .get_tasks(authed(
            BatonServiceGetTasksRequest {
                host_id: HOST_ID.into(),
                page_size: 10,
                known_task_ids: vec![],
                annotations: vec![],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.tasks.iter().map(|t| &t.id).collect::<Vec<_>>(), vec![&t3]);

    // FinishTask: the grant succeeded with a GrantManagerServiceGrantResponse, no status…
    let grant_resp = pb::GrantManagerServiceGrantResponse {
        annotations: vec![],
        grants: vec![pb::Grant {
            id: "group:g1:member:user:u1".into(),
            ..Default::default()
        }],
    };
    let success = |status| BatonServiceFinishTaskRequest {
        host_id: HOST_ID.into(),
        task_id: grant_id.clone(),
        status,
        final_state: Some(finish::FinalState::Success(finish::Success {
            annotations: vec![],
            response: Some(prost_types::Any::from_msg(&grant_resp).unwrap()),
        })),
    };
    // (a success with a status is what baton-sdk never sends: refused)
    let err = client
        .finish_task(authed(
            success(Some(baton::c1::rpc::Status {
                code: 0,
                message: String::new(),
                details: vec![],
            })),
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    client
        .finish_task(authed(success(None), &token))
        .await
        .unwrap();
    // …the cancelled sync failed, not retryable.
    client
        .finish_task(authed(
            BatonServiceFinishTaskRequest {
                host_id: HOST_ID.into(),
                task_id: sync_id.clone(),
                status: Some(baton::c1::rpc::Status {
                    code: Code::Cancelled as i32,
                    message: "task cancelled".into(),
                    details: vec![],
                }),
                final_state: Some(finish::FinalState::Error(finish::Error {
                    non_retryable: true,
                    annotations: vec![],
                    response: None,
                })),
            },
            &token,
        ))
        .await
        .unwrap();
    // An unknown task cannot be finished.
    let err = client
        .finish_task(authed(
            BatonServiceFinishTaskRequest {
                host_id: HOST_ID.into(),
                task_id: "0000000000000000000000000Zz".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let done = env
        .fake
        .wait_for_finished(2, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].task_id, grant_id);
    assert!(done[0].is_success());
    assert_eq!(
        done[0].response_as::<pb::GrantManagerServiceGrantResponse>(),
        Some(grant_resp)
    );
    assert_eq!(done[1].task_id, sync_id);
    assert!(!done[1].is_success());
    assert!(done[1].non_retryable());
    assert_eq!(done[1].status_code, Code::Cancelled as i32);
    assert_eq!(done[1].status_message, "task cancelled");
    assert!(matches!(done[1].outcome, FinishOutcome::Error { .. }));
    // Waiting for more than will come times out.
    assert!(
        env.fake
            .wait_for_finished(3, Duration::from_millis(200))
            .await
            .is_err()
    );
    // The log names each RPC's task.
    let log = env.fake.requests();
    let get_tasks: Vec<_> = log
        .iter()
        .filter(|r| r.method == "GetTask")
        .map(|r| r.task_id.clone())
        .collect();
    assert_eq!(
        get_tasks,
        vec![
            sync_id.clone(),
            grant_id.clone(),
            String::new(),
            String::new()
        ]
    );
    assert!(!env.fake.received_anywhere(&env.secret_text));
}

#[tokio::test]
async fn upload_checks_sha256_both_ways() {
    let env = start(|_| {}).await;
    let token = env.token().await;
    let mut client = env.client().await;
    let task_id = env.fake.push_sync_task();
    assert_eq!(get_task(&mut client, &token).await.id, task_id);

    let data = payload(2 * 1024 * 1024 + 1000);
    let good = Sha256::digest(&data).to_vec();

    // A wrong checksum is refused and not recorded.
    let mut wrong = good.clone();
    wrong[0] ^= 0xff;
    let err = upload(
        &mut client,
        &token,
        upload_messages(&task_id, &data, 512 * 1024, wrong),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(env.fake.uploads().is_empty());
    assert_eq!(env.fake.failed_uploads(), 1);
    assert_eq!(
        env.fake.upload_attempts()[0].outcome,
        UploadOutcome::ChecksumMismatch
    );
    assert_eq!(env.fake.upload_attempts()[0].bytes_received, data.len());

    // The right one is recorded with its chunk sizes.
    upload(
        &mut client,
        &token,
        upload_messages(&task_id, &data, 512 * 1024, good.clone()),
    )
    .await
    .unwrap();
    let ups = env
        .fake
        .wait_for_uploads(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].task_id, task_id);
    assert_eq!(ups[0].host_id, HOST_ID);
    assert_eq!(ups[0].sha256, Sha256::digest(&data).to_vec());
    assert_eq!(ups[0].bytes, data);
    assert_eq!(
        ups[0].chunk_sizes,
        vec![524_288, 524_288, 524_288, 524_288, 1000]
    );
    assert_eq!(env.fake.failed_uploads(), 1);

    // Protocol errors: a chunk over 1 MiB, a short checksum, data before metadata, an
    // unknown task, no eof.
    let big = payload(1024 * 1024 + 1);
    let err = upload(
        &mut client,
        &token,
        upload_messages(&task_id, &big, big.len(), Sha256::digest(&big).to_vec()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = upload(
        &mut client,
        &token,
        upload_messages(&task_id, &data, 65536, vec![1; 16]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut msgs = upload_messages(&task_id, b"abc", 3, Sha256::digest(b"abc").to_vec());
    msgs.remove(0);
    let err = upload(&mut client, &token, msgs).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = upload(
        &mut client,
        &token,
        upload_messages(
            "0000000000000000000000000Zz",
            b"abc",
            3,
            Sha256::digest(b"abc").to_vec(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut msgs = upload_messages(&task_id, b"abc", 3, Sha256::digest(b"abc").to_vec());
    msgs.pop();
    let err = upload(&mut client, &token, msgs).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(env.fake.uploads().len(), 1);
    assert_eq!(env.fake.failed_uploads(), 6);
    let outcomes: Vec<_> = env
        .fake
        .upload_attempts()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert!(matches!(outcomes[2], UploadOutcome::Rejected(ref m) if m.contains("data chunk")));
    assert!(matches!(outcomes[6], UploadOutcome::Rejected(ref m) if m.contains("eof")));

    // The upload carried the data, the RPC metadata a token: never the secret.
    assert!(!env.fake.received_anywhere(&env.secret_text));
    // Sanity of the helper itself: it does see what was sent.
    assert!(env.fake.received_anywhere(&token));
    assert!(env.fake.received_anywhere(HOST_ID));
}

#[tokio::test]
async fn scripted_upload_failures() {
    let env = start(|c| c.upload_failures = 2).await;
    let token = env.token().await;
    let mut client = env.client().await;
    let task_id = env.fake.push_sync_task();
    get_task(&mut client, &token).await;
    let data = payload(1_500_000);
    let sum = Sha256::digest(&data).to_vec();

    for attempt in 0..2 {
        let err = upload(
            &mut client,
            &token,
            upload_messages(&task_id, &data, 512 * 1024, sum.clone()),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "attempt {attempt}: {err:?}");
    }
    assert!(env.fake.uploads().is_empty());
    assert_eq!(env.fake.failed_uploads(), 2);
    // Third time lucky (like the Go SDK's 3 attempts).
    upload(
        &mut client,
        &token,
        upload_messages(&task_id, &data, 512 * 1024, sum.clone()),
    )
    .await
    .unwrap();
    let attempts = env.fake.upload_attempts();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.outcome.clone())
            .collect::<Vec<_>>(),
        vec![
            UploadOutcome::ScriptedFailure,
            UploadOutcome::ScriptedFailure,
            UploadOutcome::Completed
        ]
    );
    // The failures happened after some data had arrived.
    assert_eq!(attempts[0].chunk_sizes, vec![512 * 1024]);
    assert_eq!(env.fake.uploads()[0].bytes, data);

    // Scripted at run time.
    env.fake.fail_uploads(1);
    let err = upload(
        &mut client,
        &token,
        upload_messages(&task_id, &data, 512 * 1024, sum),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(env.fake.failed_uploads(), 3);
    assert_eq!(env.fake.uploads().len(), 1);
    env.fake.shutdown().await;
}

/// The server certificate is valid for `localhost` too, and HTTP/1.1 clients reach the token
/// endpoint on the same port as gRPC.
#[tokio::test]
async fn localhost_name_and_http1() {
    let env = start(|_| {}).await;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(env.fake.ca_pem().as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let host = format!("localhost:{}", env.fake.addr().port());
    let assertion = env.assertion();
    let resp = http
        .post(credentials::token_url(&host))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(credentials::token_request_body(&env.id, &assertion))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    let token: credentials::TokenResponse = resp.json().await.unwrap();

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(env.fake.ca_pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(env.fake.url())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = BatonServiceClient::new(channel);
    client
        .hello(authed(hello_request(), &token.access_token))
        .await
        .unwrap();
    assert_eq!(env.fake.hellos().len(), 1);
}

/// baton-sdk answers a hello task with `Hello` alone; a `FinishTask` for one is refused.
#[tokio::test]
async fn hello_tasks_are_answered_not_finished() {
    let env = start(|_| {}).await;
    let token = env.token().await;
    let mut client = env.client().await;
    let id = env.fake.push_task(Task {
        id: String::new(),
        status: task::Status::Pending as i32,
        debug: false,
        task_type: Some(task::TaskType::Hello(task::HelloTask {})),
    });
    assert_eq!(get_task(&mut client, &token).await.id, id);
    let mut hello = hello_request();
    hello.task_id = id.clone();
    client.hello(authed(hello, &token)).await.unwrap();
    let err = client
        .finish_task(authed(
            BatonServiceFinishTaskRequest {
                host_id: HOST_ID.into(),
                task_id: id,
                status: None,
                final_state: Some(finish::FinalState::Success(finish::Success {
                    annotations: vec![],
                    response: None,
                })),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(env.fake.finished().is_empty());
}
