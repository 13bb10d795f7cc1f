//! The EL2 physical timer (Arm ARM D12.8 "The Generic Timer", `CNTHP_CTL_EL2`,
//! `CNTHP_CVAL_EL2`): interrupts the guest when the earliest async fetch completes, so
//! page-ready is sent on time even if the guest never exits by itself. Its PPI in QEMU
//! `virt` is `ARCH_TIMER_NS_EL2_IRQ` (PPI 10, INTID 26).

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
