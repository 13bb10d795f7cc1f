//! What the host counts, printed as one `el2: STATS ...` line at exit for tests and tools.

use crate::arch::aarch64::counter;
use core::fmt;

#[derive(Default)]
pub struct Stats {
    /// Lazy pages served synchronously (the vCPU waited).
    pub sync_faults: u64,
    /// Counter ticks the vCPU spent waiting for fetches.
    pub waited_ticks: u64,
    /// Hypercalls handled (HVC and trapped SMC).
    pub hypercalls: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "STATS sync_faults={} waited_ns={} hypercalls={}",
            self.sync_faults,
            counter::nanos(self.waited_ticks),
            self.hypercalls
        )
    }
}
