//! The EL2 physical timer (Arm ARM "The Generic Timer", `CNTHP_CTL_EL2`,
//! `CNTHP_CVAL_EL2`): interrupts the guest when the earliest async fetch completes, so
//! page-ready is sent on time even if the guest never exits by itself. Its PPI in QEMU
//! `virt` is `ARCH_TIMER_NS_EL2_IRQ` (PPI 10, INTID 26).

use super::counter;
use super::sysreg::{isb, write_sysreg};

/// The timer's INTID.
pub const INTID: u32 = 26;
/// `CNTHP_CTL_EL2.ENABLE` (bit 0), with `IMASK` (bit 1) clear.
const CTL_ENABLE: u64 = 1;

/// Fires at counter value `deadline`, or never for `None`.
pub fn arm(deadline: Option<u64>) {
    match deadline {
        Some(deadline) => {
            write_sysreg!("cnthp_cval_el2", deadline);
            write_sysreg!("cnthp_ctl_el2", CTL_ENABLE);
        }
        None => write_sysreg!("cnthp_ctl_el2", 0),
    }
    isb();
}

/// How long before a deadline [`sleep_until`] stops sleeping and spins: QEMU TCG on our
/// machines wakes from `wfi` some 30-40 us after the timer is due (measured: fixed:100us
/// waited ~140 us per fault when sleeping all the way), while a spin ends within a few us.
const SPIN_BEFORE_DEADLINE_NS: u64 = 60_000;

/// Stalls the vCPU until the counter reaches `deadline` (the `off` mode's wait): `wfi` with
/// the timer armed for most of it, so QEMU sleeps instead of burning a host CPU, then a spin
/// for the last [`SPIN_BEFORE_DEADLINE_NS`] to end on time. EL2 runs with IRQs masked, but a
/// pending IRQ still ends `wfi` (Arm ARM "Wait for Interrupt"); disarming the timer
/// drops its level-sensitive PPI, so it never needs acknowledging. Leaves the timer off: the
/// caller re-arms it for async fetches.
pub fn sleep_until(deadline: u64) {
    let wake = deadline.saturating_sub(counter::ticks(SPIN_BEFORE_DEADLINE_NS));
    if counter::now() < wake {
        arm(Some(wake));
        while counter::now() < wake {
            // SAFETY: waits for an interrupt; no memory effects.
            unsafe { core::arch::asm!("wfi", options(nomem, nostack, preserves_flags)) };
        }
        arm(None);
    }
    while counter::now() < deadline {
        core::hint::spin_loop();
    }
}
