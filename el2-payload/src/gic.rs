//! The payload's GICv3 set-up, as on bare metal: the CPU interface through system registers
//! (virtual under the host) and one PPI enabled in the redistributor (physical, passed
//! through by the host's stage 2), GIC architecture spec IHI 0069.

use super::sysreg::sysreg;
use el2_host::memory_map::GICR;

/// `ICC_SRE_EL1`: system register interface on, FIQ/IRQ bypass disabled.
const ICC_SRE_EL1: u64 = 0b111;
/// `ICC_PMR_EL1`: let every priority through.
const PMR_ALL: u64 = 0xff;
/// `ICC_IGRPEN1_EL1.Enable`.
const GROUP1_ON: u64 = 1;
/// In the redistributor's SGI_base frame (RD_base + 64 KiB): `GICR_IGROUPR0` (0x80) and
/// `GICR_ISENABLER0` (0x100), one bit per SGI/PPI.
const GICR_IGROUPR0: u64 = 0x1_0080;
const GICR_ISENABLER0: u64 = 0x1_0100;
/// `GICR_ICENABLER0` (0x180): writing 1s disables SGIs/PPIs.
const GICR_ICENABLER0: u64 = 0x1_0180;
/// The PPI bits (INTIDs 16-31) of the SGI/PPI registers.
const ALL_PPIS: u32 = 0xffff_0000;

/// Turns the (virtual) CPU interface on for Group 1.
pub fn cpu_interface_on() {
    sysreg!(write "icc_sre_el1", ICC_SRE_EL1);
    sysreg!(write "icc_pmr_el1", PMR_ALL);
    sysreg!(write "icc_igrpen1_el1", GROUP1_ON);
}

/// Disables every PPI, as Linux's GICv3 driver does when a CPU comes up (the host must
/// cope: its own timer is a PPI of the same redistributor).
pub fn disable_all_ppis() {
    // SAFETY: as in `enable_ppi`.
    unsafe { ((GICR.start + GICR_ICENABLER0) as *mut u32).write_volatile(ALL_PPIS) };
}

/// Makes PPI `intid` a Group 1 interrupt and enables it.
pub fn enable_ppi(intid: u32) {
    let group = (GICR.start + GICR_IGROUPR0) as *mut u32;
    // SAFETY: CPU 0's redistributor registers, device memory mapped for the guest, which no
    // Rust object aliases.
    unsafe {
        group.write_volatile(group.read_volatile() | 1 << intid);
        ((GICR.start + GICR_ISENABLER0) as *mut u32).write_volatile(1 << intid);
    }
}
