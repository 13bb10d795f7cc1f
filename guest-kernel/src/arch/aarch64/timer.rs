//! Preemption from the EL1 virtual timer (CNTV, Arm ARM D11 "The Generic Timer"): the one a
//! guest owns under a hypervisor too. The counter frequency is CNTFRQ_EL0, set by firmware.

use aarch64_cpu::registers::{
    CNTFRQ_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTVCT_EL0, Readable, Writeable,
};
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// The virtual timer's interrupt on `virt`: PPI 11 (`ARCH_TIMER_VIRT_IRQ`), INTID 16 + 11.
pub const INTID: u32 = 27;
const HZ_PER_KHZ: u64 = 1000;

/// Counter ticks between timer interrupts, set once by [`start`].
static PERIOD: AtomicU64 = AtomicU64::new(0);

/// The generic timer's frequency.
pub struct Calibration {
    /// Frequency of the counter [`super::timestamp`] reads (CNTVCT_EL0), which also drives
    /// the timer; named like x86's TSC for the arch-neutral code.
    pub tsc_khz: u64,
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "generic timer {} kHz", self.tsc_khz)
    }
}

pub fn calibration() -> Calibration {
    Calibration {
        tsc_khz: CNTFRQ_EL0.get() / HZ_PER_KHZ,
    }
}

/// Starts the timer: an interrupt every 1/`hz` s.
pub fn start(calibration: &Calibration, hz: u32) {
    let period = (calibration.tsc_khz * HZ_PER_KHZ / u64::from(hz)).max(1);
    PERIOD.store(period, Ordering::Relaxed);
    CNTV_CVAL_EL0.set(CNTVCT_EL0.get() + period);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
}

/// Sets the next deadline one period after the last, or after now if that has passed
/// already (the CPU was not running, e.g. the host descheduled it): no burst of late ticks.
pub fn rearm() {
    let period = PERIOD.load(Ordering::Relaxed);
    let now = CNTVCT_EL0.get();
    let next = CNTV_CVAL_EL0.get() + period;
    CNTV_CVAL_EL0.set(if next > now { next } else { now + period });
}
