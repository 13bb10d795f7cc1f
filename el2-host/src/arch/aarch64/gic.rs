//! The GICv3 virtual CPU interface (GIC architecture spec IHI 0069, §6 "Virtual interrupt
//! handling"; ICH_* registers §12.4): the guest's `ICC_*` accesses reach the virtual
//! interface (`HCR_EL2.IMO`/`FMO`), and the host injects interrupts through list registers.

use super::sysreg::{isb, write_sysreg};

/// `ICC_SRE_EL2`: `SRE` (system register interface), `DFB`, `DIB` (FIQ/IRQ bypass off) and
/// `Enable` (EL1 may use `ICC_SRE_EL1`).
const ICC_SRE_EL2: u64 = 0b1111;
/// `ICH_HCR_EL2.En` (bit 0): the virtual CPU interface is on.
const ICH_HCR_EN: u64 = 1;

/// Enables the virtual CPU interface for the guest.
pub fn init() {
    write_sysreg!("icc_sre_el2", ICC_SRE_EL2);
    isb();
    write_sysreg!("ich_vmcr_el2", 0);
    write_sysreg!("ich_hcr_el2", ICH_HCR_EN);
    isb();
}
