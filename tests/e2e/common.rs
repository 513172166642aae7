//! Shared by the end-to-end tests: one compiled runtime per test binary, a fake Segment, and
//! helpers to run a sync and read the `.c1z` it wrote.

#![allow(dead_code)]

use baton::c1z::StoredGrant;
use baton::{C1zReader, pb};
use baton_segment::commands::connection::{Connection, segment_runtime};
use baton_segment::commands::summary::SyncSummary;
use baton_segment::commands::sync::{self as app, SyncJob};
use baton_segment::engine::Runtime;
use baton_segment::sandbox::Secret;
use fakes::segment::{FakeConfig, FakeSegment};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Compiling the component takes a moment; every test in a binary shares one runtime.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| segment_runtime(64).expect("the bundled component compiles"))
}

pub async fn fake(cfg: FakeConfig) -> FakeSegment {
    FakeSegment::start(cfg)
        .await
        .expect("the fake Segment API starts")
}

pub fn job(fake: &FakeSegment, token: &str, output: &Path) -> SyncJob {
    SyncJob::with(
        Connection::to(&fake.base_url(), Secret::new(token)).unwrap(),
        output,
    )
}

/// The token `FakeConfig::demo()` expects.
pub const TOKEN: &str = "demo-token";

/// A sync of the fake with the right token.
pub async fn sync(fake: &FakeSegment, output: &Path) -> anyhow::Result<SyncSummary> {
    app::sync_on(runtime(), job(fake, TOKEN, output)).await
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temp dir")
}

pub fn out(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("sync.c1z")
}

/// The latest sync of a `.c1z`.
pub struct Synced {
    pub reader: C1zReader,
    pub sync_id: String,
}

impl Synced {
    pub fn open(path: &Path) -> Synced {
        let reader = C1zReader::open(path).expect("the .c1z opens");
        let sync_id = reader.latest_sync().expect("it holds a sync").sync_id;
        Synced { reader, sync_id }
    }

    pub fn resources(&self) -> Vec<pb::Resource> {
        self.reader.resources(&self.sync_id).unwrap()
    }

    pub fn entitlements(&self) -> Vec<pb::Entitlement> {
        self.reader.entitlements(&self.sync_id).unwrap()
    }

    pub fn grants(&self) -> Vec<StoredGrant> {
        self.reader.grants(&self.sync_id).unwrap()
    }

    pub fn resource_keys(&self) -> Vec<String> {
        self.resources()
            .iter()
            .map(|r| key(r.id.as_ref()))
            .collect()
    }

    pub fn entitlement_ids(&self) -> Vec<String> {
        self.entitlements().iter().map(|e| e.id.clone()).collect()
    }

    pub fn grant_ids(&self) -> Vec<String> {
        self.grants().iter().map(|g| g.grant.id.clone()).collect()
    }
}

pub fn key(id: Option<&pb::ResourceId>) -> String {
    id.map(|i| format!("{}:{}", i.resource_type, i.resource))
        .unwrap_or_default()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

pub fn strings(v: &[&str]) -> Vec<String> {
    sorted(v.iter().map(|s| s.to_string()).collect())
}
