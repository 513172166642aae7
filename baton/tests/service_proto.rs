//! Wire-level checks of the generated `c1.connectorapi.baton.v1` messages: field numbers as
//! published, type URLs, connector types shared with `baton::pb`, and tolerance of task
//! types this crate does not know.

use baton::c1::service::baton_service_finish_task_request as finish;
use baton::c1::service::baton_service_upload_asset_request as upload;
use baton::c1::service::{self, Task, task};
use baton::pb;
use prost::{Message, Name};

/// The bytes of a protobuf tag (field number + wire type) as a varint.
fn tag(field: u32, wire_type: u32) -> Vec<u8> {
    let mut v = (field << 3) | wire_type;
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn task_field_numbers() {
    let task = Task {
        id: "2xEmpty000000000000000000ab".into(),
        status: task::Status::Pending as i32,
        debug: true,
        task_type: Some(task::TaskType::Grant(task::GrantTask {
            entitlement: Some(pb::Entitlement {
                id: "group:g1:member".into(),
                ..Default::default()
            }),
            principal: Some(pb::Resource {
                display_name: "Ann".into(),
                ..Default::default()
            }),
            annotations: vec![],
            duration: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        })),
    };
    let bytes = task.encode_to_vec();
    // id=1 (LEN), status=2 (VARINT 1), debug=3 (VARINT 1), grant=103 (LEN).
    assert_eq!(&bytes[..2], &[0x0a, 27]);
    assert!(contains(&bytes, &[0x10, 0x01, 0x18, 0x01]));
    assert!(contains(&bytes, &tag(103, 2)));
    assert_eq!(Task::decode(bytes.as_slice()).unwrap(), task);

    for (tt, field) in [
        (task::TaskType::None(Default::default()), 100),
        (task::TaskType::Hello(Default::default()), 101),
        (task::TaskType::SyncFull(Default::default()), 102),
        (task::TaskType::Revoke(Default::default()), 104),
        (task::TaskType::CreateAccount(Default::default()), 105),
        (task::TaskType::CreateResource(Default::default()), 106),
        (task::TaskType::DeleteResource(Default::default()), 107),
        (task::TaskType::RotateCredentials(Default::default()), 108),
        (task::TaskType::EventFeed(Default::default()), 109),
        (task::TaskType::CreateSyncDiff(Default::default()), 119),
        (task::TaskType::ListEvents(Default::default()), 122),
        (task::TaskType::IssueCredential(Default::default()), 123),
    ] {
        let t = Task {
            task_type: Some(tt),
            ..Default::default()
        };
        // An empty sub-message: tag then length 0.
        let mut want = tag(field, 2);
        want.push(0);
        assert_eq!(t.encode_to_vec(), want, "field {field}");
    }
}

#[test]
fn sync_full_fields() {
    let t = task::SyncFullTask {
        annotations: vec![],
        skip_expand_grants: true,
        skip_entitlements_and_grants: true,
        targeted_sync_resources: vec![pb::Resource::default()],
        sync_resource_type_ids: vec!["user".into()],
        skip_grants: true,
        storage_engine: "sqlite".into(),
    };
    let b = t.encode_to_vec();
    assert!(contains(&b, &[0x10, 1, 0x18, 1]));
    assert!(contains(&b, &[0x22, 0])); // 4: an empty Resource
    assert!(contains(&b, &[0x2a, 4, b'u', b's', b'e', b'r']));
    assert!(contains(&b, &[0x30, 1]));
    assert!(contains(&b, &[0x3a, 6, b's', b'q', b'l']));
}

/// A task type this crate has no arm for (or a newer one) still decodes: the id survives and
/// `task_type` is `None`, so a client can answer "unimplemented".
#[test]
fn unknown_task_type_decodes() {
    let mut bytes = Task {
        id: "2xUnknown0000000000000000ab".into(),
        ..Default::default()
    }
    .encode_to_vec();
    bytes.extend(tag(150, 2));
    bytes.extend([3, 0x0a, 1, b'x']);
    let t = Task::decode(bytes.as_slice()).unwrap();
    assert_eq!(t.id, "2xUnknown0000000000000000ab");
    assert_eq!(t.task_type, None);
}

#[test]
fn upload_and_finish_oneofs() {
    let m = service::BatonServiceUploadAssetRequest {
        msg: Some(upload::Msg::Metadata(upload::UploadMetadata {
            host_id: "h".into(),
            task_id: "t".into(),
            annotations: vec![],
        })),
    };
    let b = m.encode_to_vec();
    assert_eq!(&b[..2], tag(100, 2).as_slice());
    let d = service::BatonServiceUploadAssetRequest {
        msg: Some(upload::Msg::Data(upload::UploadData { data: vec![9; 3] })),
    };
    assert_eq!(
        d.encode_to_vec(),
        [tag(101, 2), vec![5, 0x0a, 3, 9, 9, 9]].concat()
    );
    let e = service::BatonServiceUploadAssetRequest {
        msg: Some(upload::Msg::Eof(upload::UploadEof {
            sha256_checksum: vec![0; 32],
            annotations: vec![],
        })),
    };
    assert_eq!(&e.encode_to_vec()[..2], tag(102, 2).as_slice());

    let resp = pb::GrantManagerServiceGrantResponse {
        annotations: vec![],
        grants: vec![pb::Grant::default()],
    };
    let f = service::BatonServiceFinishTaskRequest {
        host_id: "h".into(),
        task_id: "t".into(),
        status: Some(baton::c1::rpc::Status {
            code: 0,
            message: String::new(),
            details: vec![],
        }),
        final_state: Some(finish::FinalState::Success(finish::Success {
            annotations: vec![],
            response: Some(prost_types::Any::from_msg(&resp).unwrap()),
        })),
    };
    let b = f.encode_to_vec();
    assert!(contains(&b, &[0x1a, 0])); // status=3, all defaults
    assert!(contains(&b, &tag(101, 2)));
    let back = service::BatonServiceFinishTaskRequest::decode(b.as_slice()).unwrap();
    let Some(finish::FinalState::Success(s)) = back.final_state else {
        panic!("not a success: {back:?}");
    };
    let any = s.response.unwrap();
    assert_eq!(
        any.type_url,
        "type.googleapis.com/c1.connector.v2.GrantManagerServiceGrantResponse"
    );
    assert_eq!(
        any.to_msg::<pb::GrantManagerServiceGrantResponse>()
            .unwrap(),
        resp
    );

    let err = finish::Error {
        non_retryable: true,
        annotations: vec![],
        response: None,
    };
    assert_eq!(err.encode_to_vec(), vec![0x08, 1]);
}

#[test]
fn hello_heartbeat_get_task_field_numbers() {
    let hello = service::BatonServiceHelloRequest {
        host_id: "h".into(),
        task_id: String::new(),
        build_info: Some(service::baton_service_hello_request::BuildInfo {
            lang_version: "rust".into(),
            package: "p".into(),
            package_version: "v".into(),
        }),
        os_info: Some(service::baton_service_hello_request::OsInfo {
            virtualization_system: "z".into(),
            ..Default::default()
        }),
        connector_metadata: Some(pb::ConnectorMetadata {
            display_name: "Segment".into(),
            ..Default::default()
        }),
        annotations: vec![],
    };
    let b = hello.encode_to_vec();
    assert!(contains(&b, &[0x0a, 1, b'h']));
    assert!(contains(&b, &[0x1a])); // build_info=3
    assert!(contains(&b, &[0x22, 3, 0x42, 1, b'z'])); // os_info=4 {virtualization_system=8}
    assert!(contains(&b, &[0x2a, 9, 0x0a, 7])); // connector_metadata=5 {display_name=1}

    let hb = service::BatonServiceHeartbeatResponse {
        next_heartbeat: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
        cancelled: true,
        annotations: vec![],
        cancelled_task_ids: vec!["t".into()],
    };
    assert_eq!(
        hb.encode_to_vec(),
        vec![0x0a, 2, 0x08, 1, 0x10, 1, 0x22, 1, b't']
    );
    let gt = service::BatonServiceGetTaskResponse {
        task: Some(Task::default()),
        next_poll: Some(prost_types::Duration {
            seconds: 0,
            nanos: 100_000_000,
        }),
        next_heartbeat: None,
        annotations: vec![],
    };
    let b = gt.encode_to_vec();
    assert_eq!(&b[..2], &[0x0a, 0]);
    assert_eq!(b[2], 0x12);
}

#[test]
fn names_and_type_urls() {
    assert_eq!(
        Task::type_url(),
        "type.googleapis.com/c1.connectorapi.baton.v1.Task"
    );
    assert_eq!(
        baton::c1::rpc::Status::type_url(),
        "type.googleapis.com/google.rpc.Status"
    );
    assert_eq!(
        pb::DeleteResourceResponse::full_name(),
        "c1.connector.v2.DeleteResourceResponse"
    );
    assert_eq!(
        pb::GrantManagerServiceRevokeResponse::type_url(),
        "type.googleapis.com/c1.connector.v2.GrantManagerServiceRevokeResponse"
    );
    assert_eq!(
        service::baton_service_server::SERVICE_NAME,
        "c1.connectorapi.baton.v1.BatonService"
    );
}
