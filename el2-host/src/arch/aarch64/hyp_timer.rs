//! The EL2 physical timer (Arm ARM "The Generic Timer", `CNTHP_CTL_EL2`,
//! `CNTHP_CVAL_EL2`): interrupts the guest when the earliest async fetch completes, so
//! page-ready is sent on time even if the guest never exits by itself. Its PPI in QEMU
//! `virt` is `ARCH_TIMER_NS_EL2_IRQ` (PPI 10, INTID 26).

use super::sysreg::{isb, read_sysreg, write_sysreg};
use super::{counter, gic};

/// The timer's INTID.
pub const INTID: u32 = 26;
/// `CNTHP_CTL_EL2.ENABLE` (bit 0), with `IMASK` (bit 1) clear.
const CTL_ENABLE: u64 = 1;
/// `CNTx_CTL.IMASK` (bit 1): the timer's condition no longer asserts its interrupt.
const CTL_IMASK: u64 = 1 << 1;

/// Fires at counter value `deadline`, or never for `None`.
pub fn arm(deadline: Option<u64>) {
    match deadline {
        Some(deadline) => {
            gic::keep_enabled(INTID);
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
        // The guest's virtual timer coming due during the stall would keep its PPI pending
        // and end every `wfi` at once: mask it while the guest cannot run (restoring the
        // guest's own `CNTV_CTL_EL0` re-asserts it if it is due).
        let guest_timer = read_sysreg!("cntv_ctl_el0");
        write_sysreg!("cntv_ctl_el0", guest_timer | CTL_IMASK);
        arm(Some(wake));
        while counter::now() < wake {
            // SAFETY: waits for an interrupt; no memory effects.
            unsafe { core::arch::asm!("wfi", options(nomem, nostack, preserves_flags)) };
        }
        arm(None);
        write_sysreg!("cntv_ctl_el0", guest_timer);
    }
    while counter::now() < deadline {
        core::hint::spin_loop();
    }
}
