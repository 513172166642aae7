//! `--demo` serves a recording of the fake Segment API's answers for the demo workspace
//! (`host/src/demo/responses.json`), so that nothing of the fakes ships in the product. This
//! test syncs the fake's demo workspace, asks the fake every request the sync made, and checks
//! that the recording holds exactly those answers: the demo cannot drift from the fake.
//!
//! After a change to the fake or to the connector's requests, record again with
//! `BATON_RECORD_DEMO=1 cargo test -p fakes --test demo_recording`.

mod common;

use baton_segment::demo::{self, Recorded, Recording};
use common::*;
use fakes::segment::FakeConfig;
use std::collections::BTreeMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_recording_is_what_the_fake_answers() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    let job = job(
        &fake,
        &FakeConfig::demo().token,
        &dir.path().join("demo.c1z"),
    );
    baton_segment::commands::sync::sync_on(runtime(), job)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut recording = BTreeMap::new();
    for request in fake.requests() {
        assert_eq!(request.method, "GET", "a sync only reads");
        let key = demo::key("GET", &request.path, request.query.as_deref());
        let url = format!("{}{}", fake.base_url(), &key["GET ".len()..]);
        let answer = http.get(url).bearer_auth(demo::TOKEN).send().await.unwrap();
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().await.unwrap();
        recording.insert(key, Recorded { status, body });
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/demo/responses.json");
    if std::env::var_os("BATON_RECORD_DEMO").is_some() {
        let text = serde_json::to_string_pretty(&recording).unwrap();
        std::fs::write(&path, text + "\n").unwrap();
        return;
    }
    let shipped: Recording = serde_json::from_str(demo::RESPONSES).unwrap();
    let shipped: BTreeMap<_, _> = shipped.into_iter().collect();
    assert_eq!(
        shipped.keys().collect::<Vec<_>>(),
        recording.keys().collect::<Vec<_>>(),
        "the demo recording's requests differ from a sync's: record again (see the module comment)"
    );
    for (key, answer) in &recording {
        assert_eq!(
            &shipped[key], answer,
            "{key}: record again (see the module comment)"
        );
    }
}
