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
    /// Lazy faults sent to the guest as "page not present".
    pub not_present: u64,
    /// "Page ready" notifications sent (the broadcast after enable included).
    pub page_ready: u64,
    /// Faults on a page whose async fetch was still running.
    pub refaults: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "STATS sync_faults={} waited_ns={} hypercalls={} not_present={} page_ready={} refaults={}",
            self.sync_faults,
            counter::nanos(self.waited_ticks),
            self.hypercalls,
            self.not_present,
            self.page_ready,
            self.refaults
        )
    }
}
