//! Live counts of a sync, updated by the engine and read by whoever shows progress.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Progress {
    phase: AtomicUsize,
    pub resources: AtomicU64,
    pub entitlements: AtomicU64,
    pub grants: AtomicU64,
    pub calls: AtomicU64,
}

pub const PHASES: [&str; 6] = [
    "validating",
    "resource types",
    "resources",
    "entitlements",
    "grants",
    "expanding grants",
];

impl Progress {
    pub fn set_phase(&self, index: usize) {
        self.phase.store(index, Relaxed);
    }

    pub fn phase(&self) -> &'static str {
        PHASES
            .get(self.phase.load(Relaxed))
            .copied()
            .unwrap_or("done")
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    pub fn line(&self, requests: u64) -> String {
        format!(
            "{:<17} resources {:>6}  entitlements {:>6}  grants {:>7}  requests {:>6}",
            self.phase(),
            self.resources.load(Relaxed),
            self.entitlements.load(Relaxed),
            self.grants.load(Relaxed),
            requests
        )
    }
}
