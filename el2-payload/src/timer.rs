//! The EL1 virtual timer (`CNTV_*`, PPI 27 on QEMU `virt`) ticking a given number of times:
//! under the host its interrupt arrives at EL2 and is forwarded to the payload as a
//! hardware-linked virtual interrupt, as the real guest's scheduler tick will be.

use super::sysreg::sysreg;
use core::cell::UnsafeCell;

/// `ARCH_TIMER_VIRT_IRQ` (PPI 11).
pub const INTID: u32 = 27;
/// `CNTV_CTL_EL0.ENABLE` (bit 0), `IMASK` (bit 1) clear.
const CTL_ENABLE: u64 = 1;
/// Tick period.
const PERIOD_MICROS: u64 = 1000;
const MICROS_PER_SEC: u64 = 1_000_000;

/// Ticks still to come.
struct Remaining(UnsafeCell<u64>);

// SAFETY: one CPU; the IRQ handler (DAIF masked) and `run` (which reads it between `wfi`s)
// never hold the reference at once.
unsafe impl Sync for Remaining {}

static REMAINING: Remaining = Remaining(UnsafeCell::new(0));

fn period() -> u64 {
    sysreg!(read "cntfrq_el0") * PERIOD_MICROS / MICROS_PER_SEC
}

/// Lets the timer tick `ticks` times, one per millisecond, waiting in `wfi` meanwhile.
pub fn run(ticks: u64) {
    super::gic::cpu_interface_on();
    super::gic::disable_all_ppis();
    super::gic::enable_ppi(INTID);
    let remaining = REMAINING.0.get();
    // SAFETY: the timer is off, so the handler does not run yet.
    unsafe { remaining.write_volatile(ticks) };
    sysreg!(write "cntv_tval_el0", period());
    sysreg!(write "cntv_ctl_el0", CTL_ENABLE);
    // SAFETY: unmasks IRQs; the vector table handles them.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack)) };
    // SAFETY: a volatile read of the counter the handler decrements.
    while unsafe { remaining.read_volatile() } > 0 {
        // SAFETY: waits for the next interrupt; no memory effects.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
    // SAFETY: masks IRQs again.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack)) };
}

/// One tick, from the IRQ handler: re-arm, or stop after the last.
pub fn tick() {
    let remaining = REMAINING.0.get();
    // SAFETY: see `Remaining`.
    let left = unsafe { remaining.read_volatile() }.saturating_sub(1);
    // SAFETY: as above.
    unsafe { remaining.write_volatile(left) };
    if left > 0 {
        sysreg!(write "cntv_tval_el0", period());
    } else {
        sysreg!(write "cntv_ctl_el0", 0);
    }
}
