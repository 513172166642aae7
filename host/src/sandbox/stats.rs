//! Counters of what a run's components asked of the network, for progress, summaries and
//! per-tenant metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct NetStats {
    /// Requests the component made (each counted once, however often the host retried it).
    pub requests: AtomicU64,
    /// Extra attempts the host made after a 429, a 5xx or a dropped connection.
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub server_errors: AtomicU64,
    /// Requests refused by the sandbox (origin, budget).
    pub denied: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Milliseconds spent waiting because Segment asked to slow down.
    pub rate_limit_wait_ms: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetSnapshot {
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub denied: u64,
    pub bytes_received: u64,
    pub rate_limit_wait_ms: u64,
}

impl NetStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> NetSnapshot {
        NetSnapshot {
            requests: self.requests.load(Relaxed),
            retries: self.retries.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
            server_errors: self.server_errors.load(Relaxed),
            denied: self.denied.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            rate_limit_wait_ms: self.rate_limit_wait_ms.load(Relaxed),
        }
    }
}
