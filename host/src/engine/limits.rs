//! Memory and table limits of one component instance. Unlike wasmtime's `StoreLimits`, the
//! memory cap is over the sum of all the instance's linear memories (a component with several
//! memories gets one budget, not one per memory), and the peak is recorded for metrics.

use std::time::Duration;
use wasmtime::ResourceLimiter;

#[derive(Debug, Clone)]
pub struct GuestLimits {
    pub max_memory_bytes: usize,
    pub max_table_elements: usize,
    pub max_instances: usize,
    pub max_tables: usize,
    pub max_memories: usize,
    current_bytes: usize,
    peak_bytes: usize,
}

impl GuestLimits {
    pub fn new(max_memory_bytes: usize) -> GuestLimits {
        GuestLimits {
            max_memory_bytes,
            max_table_elements: 100_000,
            max_instances: 64,
            max_tables: 64,
            max_memories: 8,
            current_bytes: 0,
            peak_bytes: 0,
        }
    }

    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
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
        let total = self
            .current_bytes
            .saturating_sub(current)
            .saturating_add(desired);
        if total > self.max_memory_bytes {
            // An error (not `Ok(false)`) traps at once instead of letting the guest's allocator
            // see a failed grow; either way the instance cannot go on.
            wasmtime::bail!(
                "{MEMORY_LIMIT_MESSAGE} of {} MiB (asked for {} MiB)",
                self.max_memory_bytes >> 20,
                total >> 20
            );
        }
        self.current_bytes = total;
        self.peak_bytes = self.peak_bytes.max(total);
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
}
