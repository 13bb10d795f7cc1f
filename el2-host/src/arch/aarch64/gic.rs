//! The GICv3 (GIC architecture spec IHI 0069): the physical interrupts the host takes (its
//! EL2 timer, and the guest's own interrupts, which it forwards), and the virtual CPU
//! interface through which it injects them and the page-ready PPI ("Virtual interrupt handling"; the ICH_* registers). The guest's
//! `ICC_*` accesses reach the virtual interface (`HCR_EL2.IMO`/`FMO`); the host's, at EL2,
//! the physical one. QEMU's `virt` without EL3 implements one security state
//! (`GICD_CTLR.DS` = 1), whose Group 1 interrupts are IRQs.

use super::sysreg::{isb, read_sysreg, write_sysreg};
use el2_host::list_registers::{self, Kind, Plan};
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

/// List registers QEMU implements (`ICH_VTR_EL2.ListRegs` + 1, host-facts.md).
const LIST_REGISTERS: usize = 4;
/// `ICC_CTLR_EL1.EOImode` (bit 1): an EOI only drops the priority; deactivation is
/// separate (`ICC_DIR_EL1`), or, for interrupts forwarded to the guest, done by the guest's
/// EOI of the hardware-linked virtual interrupt.
const ICC_CTLR_EOIMODE_SPLIT: u64 = 1 << 1;

fn mmio(address: u64) -> *mut u32 {
    address as *mut u32
}

/// Enables the virtual CPU interface for the guest, and Group 1 IRQs with PPI `ppi`
/// (the host's timer) at the physical one.
pub fn init(ppi: u32) {
    // SAFETY: CPU 0's redistributor registers: identity-mapped device memory (the host's
    // MMU is off) that no Rust object aliases; the guest is not running.
    unsafe {
        let waker = mmio(GICR.start + GICR_WAKER);
        waker.write_volatile(waker.read_volatile() & !WAKER_PROCESSOR_SLEEP);
        while waker.read_volatile() & WAKER_CHILDREN_ASLEEP != 0 {
            core::hint::spin_loop();
        }
    }
    keep_enabled(ppi);
    write_sysreg!("icc_sre_el2", ICC_SRE_EL2);
    isb();
    write_sysreg!(
        "icc_ctlr_el1",
        read_sysreg!("icc_ctlr_el1") | ICC_CTLR_EOIMODE_SPLIT
    );
    write_sysreg!("icc_pmr_el1", PMR_ALL);
    write_sysreg!("icc_igrpen1_el1", IGRPEN1_ON);
    write_sysreg!("ich_vmcr_el2", 0);
    write_sysreg!("ich_hcr_el2", ICH_HCR_EN);
    isb();
}

/// Makes sure the distributor forwards Group 1 and PPI `ppi` is an enabled Group 1
/// interrupt. The guest programs the distributor and its redistributor as on bare metal
/// (stage 2 passes them through), and a guest that starts by disabling every PPI, as Linux
/// does, would otherwise silence the host's timer; so this runs before each use of it.
pub fn keep_enabled(ppi: u32) {
    let bit = 1 << ppi;
    // SAFETY: GIC distributor and CPU 0's redistributor registers, as in `init`; the guest
    // is stopped while the host runs.
    unsafe {
        let ctlr = mmio(GICD.start + GICD_CTLR);
        let wanted = GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1;
        if ctlr.read_volatile() & wanted != wanted {
            ctlr.write_volatile(ctlr.read_volatile() | wanted);
        }
        let enabled = mmio(GICR.start + GICR_ISENABLER0);
        if enabled.read_volatile() & bit == 0 {
            let group = mmio(GICR.start + GICR_IGROUPR0);
            group.write_volatile(group.read_volatile() | bit);
            enabled.write_volatile(bit);
        }
    }
}

/// Acknowledges the highest-priority physical IRQ: its INTID, or `None` if nothing was
/// pending.
pub fn acknowledge() -> Option<u32> {
    let intid = read_sysreg!("icc_iar1_el1");
    (intid < FIRST_SPECIAL_INTID).then_some(intid as u32)
}

/// Drops the running priority of physical IRQ `intid` (`EOImode` = 1: it stays active).
pub fn drop_priority(intid: u32) {
    write_sysreg!("icc_eoir1_el1", u64::from(intid));
    isb();
}

/// Deactivates physical IRQ `intid` after [`drop_priority`].
pub fn deactivate(intid: u32) {
    write_sysreg!("icc_dir_el1", u64::from(intid));
    isb();
}

fn list_registers() -> [u64; LIST_REGISTERS] {
    [
        read_sysreg!("ich_lr0_el2"),
        read_sysreg!("ich_lr1_el2"),
        read_sysreg!("ich_lr2_el2"),
        read_sysreg!("ich_lr3_el2"),
    ]
}

fn write_list_register(index: usize, value: u64) {
    match index {
        0 => write_sysreg!("ich_lr0_el2", value),
        1 => write_sysreg!("ich_lr1_el2", value),
        2 => write_sysreg!("ich_lr2_el2", value),
        _ => write_sysreg!("ich_lr3_el2", value),
    }
    isb();
}

/// Whether virtual interrupt `intid` is pending or in service in the guest.
pub fn holds(intid: u32) -> bool {
    list_registers::holds(&list_registers(), intid)
}

/// Makes virtual interrupt `intid` pending for the guest (see [`list_registers::plan`]);
/// `false` if every list register is busy.
pub fn raise(intid: u32, kind: Kind) -> bool {
    match list_registers::plan(&list_registers(), intid, kind) {
        Plan::Write { index, value } => {
            write_list_register(index, value);
            true
        }
        Plan::AlreadyPending => true,
        Plan::NoneFree => false,
    }
}
