//! Turns stage-2 translation on for the guest (Arm ARM: the stage 2 translation regime,
//! `VTCR_EL2`, `VTTBR_EL2`) and keeps TLBs coherent with table changes.

use super::sysreg::{isb, write_sysreg};

/// `VTCR_EL2` fields for the geometry `el2_host::stage2` encodes: 32-bit IPA space
/// (`T0SZ` = 32), walks start at level 1 (`SL0` = 1), inner/outer write-back
/// write-allocate cacheable, inner shareable walks, 4 KiB granule (`TG0` = 0), 40-bit PA
/// (`PS` = 2), and bit 31 RES1.
const VTCR_T0SZ: u64 = 64 - el2_host::stage2::IPA_BITS as u64;
const VTCR_SL0_LEVEL1: u64 = 0b01 << 6;
const VTCR_IRGN0_WBWA: u64 = 0b01 << 8;
const VTCR_ORGN0_WBWA: u64 = 0b01 << 10;
const VTCR_SH0_INNER: u64 = 0b11 << 12;
const VTCR_PS_40BIT: u64 = 0b010 << 16;
const VTCR_RES1: u64 = 1 << 31;
const VTCR: u64 = VTCR_RES1
    | VTCR_PS_40BIT
    | VTCR_SH0_INNER
    | VTCR_ORGN0_WBWA
    | VTCR_IRGN0_WBWA
    | VTCR_SL0_LEVEL1
    | VTCR_T0SZ;
const _: () = assert!(VTCR == 0x8002_3560, "the value host-facts.md shows working");

/// `VTTBR_EL2.VMID` (bits 63:48): the one guest is VMID 1.
const VMID: u64 = 1 << 48;

/// Points stage 2 at the tables rooted at `root` (a physical address).
pub fn install(root: u64) {
    write_sysreg!("vtcr_el2", VTCR);
    write_sysreg!("vttbr_el2", VMID | root);
    isb();
    // SAFETY: invalidates this VMID's stale TLB entries (none yet); no memory effects.
    unsafe { core::arch::asm!("tlbi vmalls12e1", "dsb sy", "isb", options(nostack)) };
}

/// Makes new table entries visible to the guest's walks: a new valid entry replaces an
/// invalid one, which no TLB holds, so only the store must complete (Arm ARM
/// "Translation Lookaside Buffers").
pub fn publish() {
    // SAFETY: a barrier has no effect besides ordering.
    unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
}
