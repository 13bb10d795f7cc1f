//! The GICv3 (GIC architecture spec IHI 0069): the physical interrupt the host takes (its
//! EL2 timer), and the virtual CPU interface through which it injects the guest's
//! page-ready PPI ("Virtual interrupt handling"; the ICH_* registers). The guest's
//! `ICC_*` accesses reach the virtual interface (`HCR_EL2.IMO`/`FMO`); the host's, at EL2,
//! the physical one. QEMU's `virt` without EL3 implements one security state
//! (`GICD_CTLR.DS` = 1), whose Group 1 interrupts are IRQs.
//!
//! The guest's own timer interrupt is physical (the guest enables it in the redistributor
//! it programs directly) and, with `IMO`, reaches EL2: the host forwards it as a virtual
//! interrupt linked to the physical one (list register `HW` bit), so the guest's EOI
//! deactivates the physical interrupt, which cannot fire again until then. That needs
//! `EOImode` = 1 at the physical interface: the host's EOI only drops priority, and its
//! own interrupts are deactivated explicitly (`ICC_DIR_EL1`).

use super::sysreg::{isb, read_sysreg, write_sysreg};
use el2_host::memory_map::{GICD, GICR};

/// `ICC_SRE_EL2`: `SRE` (system register interface), `DFB`, `DIB` (FIQ/IRQ bypass off) and
/// `Enable` (EL1 may use `ICC_SRE_EL1`).
const ICC_SRE_EL2: u64 = 0b1111;
/// `ICH_HCR_EL2.En` (bit 0): the virtual CPU interface is on.
const ICH_HCR_EN: u64 = 1;
/// `ICC_PMR_EL1`: let every priority through.
const PMR_ALL: u64 = 0xff;
/// `ICC_IGRPEN1_EL1.Enable`.
const IGRPEN1_ON: u64 = 1;
/// `ICC_CTLR_EL1.EOImode` (bit 1): `ICC_EOIR1_EL1` drops priority only, `ICC_DIR_EL1`
/// deactivates.
const ICC_CTLR_EOIMODE_SPLIT: u64 = 1 << 1;

/// `GICD_CTLR` (offset 0): `EnableGrp1` (bit 1) and `ARE` (bit 4, affinity routing, which
/// the system register interface needs), with `DS` = 1.
const GICD_CTLR: u64 = 0x0000;
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
/// `GICR_WAKER` (RD_base + 0x14): clear `ProcessorSleep` (bit 1), then wait for
/// `ChildrenAsleep` (bit 2) to clear, before the redistributor forwards interrupts.
const GICR_WAKER: u64 = 0x0014;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// The SGI_base frame follows RD_base, 64 KiB on; its `GICR_IGROUPR0` (0x80) and
/// `GICR_ISENABLER0` (0x100) have one bit per SGI/PPI.
const SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = SGI_BASE + 0x0080;
const GICR_ISENABLER0: u64 = SGI_BASE + 0x0100;

/// `ICC_IAR1_EL1` values 1020-1023 are special: nothing to acknowledge.
const FIRST_SPECIAL_INTID: u64 = 1020;

/// `ICH_LR<n>_EL2` fields: `State` bits 63:62 (0b01 pending), `Group` bit 60 (Group 1),
/// `Priority` bits 55:48, `vINTID` bits 31:0; `HW` (bit 61) clear: a purely virtual
/// interrupt the guest deactivates with its EOI.
const LR_STATE_SHIFT: u32 = 62;
const LR_STATE_FREE: u64 = 0b00;
const LR_STATE_ACTIVE: u64 = 0b10;
const LR_PENDING: u64 = 0b01 << LR_STATE_SHIFT;
const LR_PENDING_ACTIVE: u64 = 0b11 << LR_STATE_SHIFT;
const LR_VINTID_MASK: u64 = 0xffff_ffff;
const LR_GROUP1: u64 = 1 << 60;
const LR_PRIORITY: u64 = 0xa0 << 48;
/// `HW` (bit 61): the virtual interrupt is linked to physical `pINTID` (bits 44:32), which
/// the guest's deactivation of the virtual one deactivates.
const LR_HW: u64 = 1 << 61;
const LR_PINTID_SHIFT: u32 = 32;

/// The guest's virtual timer (`ARCH_TIMER_VIRT_IRQ` in QEMU `virt`: PPI 11, INTID 27), the
/// one physical interrupt the host forwards.
pub const GUEST_TIMER_INTID: u32 = 27;

fn mmio(address: u64) -> *mut u32 {
    address as *mut u32
}

/// Enables the virtual CPU interface for the guest, and Group 1 IRQs with PPI `ppi`
/// (the host's timer) at the physical one.
pub fn init(ppi: u32) {
    // SAFETY: GIC distributor and CPU 0's redistributor registers: identity-mapped device
    // memory (the host's MMU is off) that no Rust object aliases; the guest is not running.
    unsafe {
        let ctlr = mmio(GICD.start + GICD_CTLR);
        ctlr.write_volatile(ctlr.read_volatile() | GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
        let waker = mmio(GICR.start + GICR_WAKER);
        waker.write_volatile(waker.read_volatile() & !WAKER_PROCESSOR_SLEEP);
        while waker.read_volatile() & WAKER_CHILDREN_ASLEEP != 0 {
            core::hint::spin_loop();
        }
        let group = mmio(GICR.start + GICR_IGROUPR0);
        group.write_volatile(group.read_volatile() | 1 << ppi);
        mmio(GICR.start + GICR_ISENABLER0).write_volatile(1 << ppi);
    }
    write_sysreg!("icc_sre_el2", ICC_SRE_EL2);
    isb();
    write_sysreg!("icc_pmr_el1", PMR_ALL);
    write_sysreg!("icc_ctlr_el1", ICC_CTLR_EOIMODE_SPLIT);
    write_sysreg!("icc_igrpen1_el1", IGRPEN1_ON);
    write_sysreg!("ich_vmcr_el2", 0);
    write_sysreg!("ich_hcr_el2", ICH_HCR_EN);
    isb();
}

/// Acknowledges the highest-priority physical IRQ: its INTID, or `None` if nothing was
/// pending.
pub fn acknowledge() -> Option<u32> {
    let intid = read_sysreg!("icc_iar1_el1");
    (intid < FIRST_SPECIAL_INTID).then_some(intid as u32)
}

/// Ends a physical IRQ of the host's own: priority drop, then deactivation (`EOImode` = 1).
pub fn end(intid: u32) {
    write_sysreg!("icc_eoir1_el1", u64::from(intid));
    write_sysreg!("icc_dir_el1", u64::from(intid));
    isb();
}

/// Hands the acknowledged physical IRQ `intid` to the guest: drops its priority, leaving it
/// active, and makes the same INTID pending for the guest through list register 1
/// (register 0 carries the page-ready PPI), linked to the physical one. The register is
/// free: the physical interrupt stays active, so cannot be taken again, until the guest
/// ends the last one forwarded.
pub fn forward(intid: u32) {
    write_sysreg!("icc_eoir1_el1", u64::from(intid));
    write_sysreg!(
        "ich_lr1_el2",
        LR_PENDING
            | LR_HW
            | LR_GROUP1
            | LR_PRIORITY
            | u64::from(intid) << LR_PINTID_SHIFT
            | u64::from(intid)
    );
    isb();
}

/// Whether list register 0 holds nothing: the last injected interrupt was taken and
/// ended by the guest.
pub fn list_register_free() -> bool {
    read_sysreg!("ich_lr0_el2") >> LR_STATE_SHIFT == LR_STATE_FREE
}

/// Makes `intid` pending for the guest through list register 0 (the only one the host
/// uses): pending if the register is free, pending and active if the guest is still
/// handling `intid` (it is taken again after the guest's EOI), unchanged if already pending.
pub fn raise(intid: u32) {
    let lr = read_sysreg!("ich_lr0_el2");
    let state = match lr >> LR_STATE_SHIFT {
        LR_STATE_FREE => LR_PENDING,
        LR_STATE_ACTIVE if lr & LR_VINTID_MASK == u64::from(intid) => LR_PENDING_ACTIVE,
        _ => return,
    };
    write_sysreg!(
        "ich_lr0_el2",
        state | LR_GROUP1 | LR_PRIORITY | u64::from(intid)
    );
    isb();
}
