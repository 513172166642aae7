//! Memory and table limits of one component instance. Unlike wasmtime's `StoreLimits`, the
//! memory cap is over the sum of all the instance's linear memories (a component with several
//! memories gets one budget, not one per memory) and of the host memory the instance keeps
//! alive on purpose (the response headers it holds, see [`MemoryAccount::charge`]); the peak is
//! recorded for metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::ResourceLimiter;

/// One instance's memory: its linear memories and what the host holds for it, against one
/// limit. Shared by the store's limiter and the sandbox's hooks (which run on other threads).
#[derive(Debug)]
pub struct MemoryAccount {
    max: usize,
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    linear: usize,
    host: usize,
    peak: usize,
}

impl MemoryAccount {
    pub fn new(max: usize) -> Arc<MemoryAccount> {
        Arc::new(MemoryAccount {
            max,
            used: Mutex::new(Used::default()),
        })
    }

    fn used(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn max_bytes(&self) -> usize {
        self.max
    }

    /// Host memory held for the guest now.
    pub fn host_bytes(&self) -> usize {
        self.used().host
    }

    pub fn peak_bytes(&self) -> usize {
        self.used().peak
    }

    /// Counts `bytes` of host memory kept for the guest until the returned charge is dropped;
    /// `None` when they would take the instance past its limit.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let mut used = self.used();
        let total = used.linear.saturating_add(used.host).saturating_add(bytes);
        if total > self.max {
            return None;
        }
        used.host += bytes;
        used.peak = used.peak.max(total);
        Some(Charge {
            account: self.clone(),
            bytes,
        })
    }

    /// Linear memory growing from `current` to `desired` bytes: `Err` with the total it would
    /// reach when that is over the limit.
    fn grow(&self, current: usize, desired: usize) -> Result<(), (usize, usize)> {
        let mut used = self.used();
        let linear = used.linear.saturating_sub(current).saturating_add(desired);
        let total = linear.saturating_add(used.host);
        if total > self.max {
            return Err((total, used.host));
        }
        used.linear = linear;
        used.peak = used.peak.max(total);
        Ok(())
    }
}

/// Host memory counted against an instance while this lives.
#[derive(Debug)]
pub struct Charge {
    account: Arc<MemoryAccount>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut used = self.account.used();
        used.host = used.host.saturating_sub(self.bytes);
    }
}

#[derive(Debug, Clone)]
pub struct GuestLimits {
    pub max_memory_bytes: usize,
    pub max_table_elements: usize,
    pub max_instances: usize,
    pub max_tables: usize,
    pub max_memories: usize,
    account: Arc<MemoryAccount>,
}

impl GuestLimits {
    pub fn new(max_memory_bytes: usize) -> GuestLimits {
        GuestLimits {
            max_memory_bytes,
            max_table_elements: 100_000,
            max_instances: 64,
            max_tables: 64,
            max_memories: 8,
            account: MemoryAccount::new(max_memory_bytes),
        }
    }

    /// The account the sandbox charges host memory kept for the guest to.
    pub fn account(&self) -> Arc<MemoryAccount> {
        self.account.clone()
    }

    /// The most the instance used at once: linear memory and host memory kept for it.
    pub fn peak_bytes(&self) -> usize {
        self.account.peak_bytes()
    }
}

/// The message a trap carries when the guest asks for more memory than it may have.
pub const MEMORY_LIMIT_MESSAGE: &str = "the component exceeded its memory limit";

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if let Err((total, host)) = self.account.grow(current, desired) {
            // An error (not `Ok(false)`) traps at once instead of letting the guest's allocator
            // see a failed grow; either way the instance cannot go on.
            let kept = if host > 0 {
                format!(", {} KiB of it response headers it keeps", host >> 10)
            } else {
                String::new()
            };
            wasmtime::bail!(
                "{MEMORY_LIMIT_MESSAGE} of {} MiB (asked for {} MiB{kept})",
                self.max_memory_bytes >> 20,
                total >> 20
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_tables
    }

    fn memories(&self) -> usize {
        self.max_memories
    }
}

/// The limits of one component instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceLimits {
    /// Linear memory, over all the instance's memories.
    pub memory_bytes: usize,
    /// Guest execution time per call (not counting time waiting on the host).
    pub cpu_per_call: Duration,
    /// Time per call, including waiting for HTTP (but not the pauses Segment asks for).
    pub wall_per_call: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_over_all_memories_together() {
        let mut l = GuestLimits::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        // A second memory may not take what the first already holds.
        assert!(l.memory_growing(0, 60, None).is_err());
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert_eq!(l.peak_bytes(), 100);
        // Growing the first memory from 60 to 50 is a shrink in total terms.
        assert!(l.memory_growing(60, 50, None).unwrap());
    }

    #[test]
    fn host_memory_kept_for_the_guest_counts_until_it_is_released() {
        let mut l = GuestLimits::new(100);
        let account = l.account();
        assert!(l.memory_growing(0, 60, None).unwrap());
        let kept = account.charge(30).expect("room for 30");
        assert!(account.charge(20).is_none(), "60 + 30 + 20 > 100");
        let err = l.memory_growing(60, 80, None).unwrap_err().to_string();
        assert!(err.contains(MEMORY_LIMIT_MESSAGE), "{err}");
        drop(kept);
        assert_eq!(account.host_bytes(), 0);
        assert!(l.memory_growing(60, 80, None).unwrap());
        assert_eq!(l.peak_bytes(), 90);
    }
}
