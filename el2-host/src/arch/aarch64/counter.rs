//! The generic timer's physical counter, the host's clock for fetch latencies (QEMU's
//! `virt` counts at `CNTFRQ_EL0`, 1 GHz for `-cpu max` in QEMU 10, in host real time).

use super::sysreg::{isb, read_sysreg};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Reads `CNTPCT_EL0`, after an `isb` so the read is not hoisted above earlier work.
pub fn now() -> u64 {
    isb();
    read_sysreg!("cntpct_el0")
}

/// Ticks per second.
pub fn frequency() -> u64 {
    read_sysreg!("cntfrq_el0")
}

/// Nanoseconds as counter ticks (rounded down).
pub fn ticks(nanos: u64) -> u64 {
    (u128::from(nanos) * u128::from(frequency()) / NANOS_PER_SEC) as u64
}

/// Counter ticks as nanoseconds.
pub fn nanos(ticks: u64) -> u64 {
    (u128::from(ticks) * NANOS_PER_SEC / u128::from(frequency())) as u64
}
