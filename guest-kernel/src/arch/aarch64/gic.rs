//! GICv3 (Arm IHI 0069): the distributor, each CPU's redistributor and system-register CPU
//! interface, set up for Group 1 interrupts at EL1 (QEMU `virt` without EL3 has one security
//! state, GICD_CTLR.DS = 1). CPU i's redistributor is the i-th of the contiguous region
//! (`virt` lays them out in CPU order); each CPU checks that it names its affinity.

use super::platform::{GICD_BASE, GICR_BASE, GICR_SIZE};
use core::arch::asm;
use core::ptr::NonNull;
use volatile::VolatilePtr;

/// GICD_CTLR (IHI 0069 12.9.4, DS = 1 layout): ARE (bit 4) and EnableGrp1 (bit 1); RWP
/// (bit 31) is set while a write is taking effect.
const GICD_CTLR: u64 = 0x0000;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_RWP: u32 = 1 << 31;
/// GICR_TYPER (12.11.37): bits [63:32] are the affinity of the CPU the redistributor serves.
const GICR_TYPER: u64 = 0x0008;
const TYPER_AFFINITY_SHIFT: u32 = 32;
/// GICR_WAKER (12.11.43): clear ProcessorSleep, then wait for ChildrenAsleep to clear.
const GICR_WAKER: u64 = 0x0014;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// The redistributor's second frame (SGI_base) holds the SGI/PPI registers.
const SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = SGI_BASE + 0x0080;
const GICR_ISENABLER0: u64 = SGI_BASE + 0x0100;
/// One priority byte per INTID.
const GICR_IPRIORITYR: u64 = SGI_BASE + 0x0400;
/// Priority of the interrupts we use: any value below the PMR's passes.
const PRIORITY: u8 = 0x80;
/// ICC_SRE_EL1: SRE, DFB, DIB (system-register interface, bypasses disabled).
const ICC_SRE_ENABLE: u64 = 0b111;
/// ICC_PMR_EL1: let every priority through.
const ICC_PMR_ALL: u64 = 0xFF;
/// ICC_IGRPEN1_EL1: Group 1 interrupts on.
const ICC_IGRPEN1_ENABLE: u64 = 1;
/// INTID field of ICC_IAR1_EL1.
const INTID_MASK: u64 = 0xFF_FFFF;
/// INTIDs 1020-1023 are special (spurious): nothing to handle or end.
const SPECIAL_INTIDS: core::ops::RangeInclusive<u32> = 1020..=1023;
/// PPIs are INTIDs 16-31, all in the redistributor's first 32-bit registers.
pub const PPIS: core::ops::RangeInclusive<u32> = 16..=31;
/// SGIs (0-15) and PPIs: the interrupts private to each CPU, its redistributor's.
const PRIVATE: core::ops::RangeInclusive<u32> = 0..=31;
/// ICC_SGI1R_EL1 (12.2.23): the INTID field, bits [27:24]; the target list, bits [15:0], is
/// a bit per Aff0 of the CPUs with the Aff3.Aff2.Aff1 given (all 0 here), RS 0: Aff0 0-15.
const SGI1R_INTID_SHIFT: u32 = 24;

/// A GIC register at `addr`, mapped as a device by the boot map and the final tables.
fn register<T>(addr: u64) -> VolatilePtr<'static, T> {
    let ptr = NonNull::new(addr as *mut T).expect("GIC registers are not at address 0");
    // SAFETY: `addr` is a GIC register of the virt machine, device-mapped for EL1, aligned
    // for `T`, and nothing else in the kernel accesses the GIC.
    unsafe { VolatilePtr::new(ptr) }
}

/// Enables the distributor (affinity routing, Group 1), then sets up the boot CPU's side
/// (see [`init_cpu`]). Every interrupt stays disabled until [`enable_private`].
pub fn init() {
    register::<u32>(GICD_BASE + GICD_CTLR).write(GICD_CTLR_ARE);
    wait_for_distributor();
    register::<u32>(GICD_BASE + GICD_CTLR).write(GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
    wait_for_distributor();
    init_cpu(0);
}

/// The redistributor of CPU `cpu` (RD_base).
fn redistributor(cpu: usize) -> u64 {
    GICR_BASE + GICR_SIZE * cpu as u64
}

/// Wakes the running CPU `cpu`'s redistributor and turns on its CPU interface; a
/// redistributor that serves another CPU ends the boot with the reason.
pub fn init_cpu(cpu: usize) {
    let rd = redistributor(cpu);
    let affinity = register::<u64>(rd + GICR_TYPER).read() >> TYPER_AFFINITY_SHIFT;
    if affinity != cpu as u64 {
        crate::println!(
            "kernel: redistributor {cpu} serves the CPU with affinity {affinity:#x}, not CPU {cpu}"
        );
        super::exit(crate::exit_status::ExitStatus::Unsupported);
    }
    let waker = register::<u32>(rd + GICR_WAKER);
    waker.update(|w| w & !WAKER_PROCESSOR_SLEEP);
    while waker.read() & WAKER_CHILDREN_ASLEEP != 0 {
        core::hint::spin_loop();
    }
    // SAFETY: GICv3 CPU interface registers (present: `missing_feature` checked); they only
    // affect interrupt delivery to this CPU, which is masked in the kernel.
    unsafe {
        asm!(
            "msr ICC_SRE_EL1, {sre}",
            "isb",
            "msr ICC_PMR_EL1, {pmr}",
            "msr ICC_IGRPEN1_EL1, {grpen}",
            "isb",
            sre = in(reg) ICC_SRE_ENABLE,
            pmr = in(reg) ICC_PMR_ALL,
            grpen = in(reg) ICC_IGRPEN1_ENABLE,
            options(nostack)
        );
    }
}

fn wait_for_distributor() {
    while register::<u32>(GICD_BASE + GICD_CTLR).read() & GICD_CTLR_RWP != 0 {
        core::hint::spin_loop();
    }
}

/// Enables private interrupt `intid` (an SGI or a PPI) in Group 1 on the running CPU.
pub fn enable_private(intid: u32) {
    assert!(
        PRIVATE.contains(&intid),
        "INTID {intid} is not an SGI or a PPI"
    );
    let rd = redistributor(super::cpu_index());
    register::<u8>(rd + GICR_IPRIORITYR + u64::from(intid)).write(PRIORITY);
    register::<u32>(rd + GICR_IGROUPR0).update(|groups| groups | 1 << intid);
    register::<u32>(rd + GICR_ISENABLER0).write(1 << intid);
}

/// Sends software-generated interrupt `intid` to CPU `cpu` (MPIDR affinity `cpu`, below 16).
pub fn send_sgi(cpu: usize, intid: u32) {
    assert!(intid < 16 && cpu < 16, "SGI {intid} to CPU {cpu}");
    let value = u64::from(intid) << SGI1R_INTID_SHIFT | 1 << cpu;
    // SAFETY: writing ICC_SGI1R_EL1 only raises the SGI at the target; the barrier first
    // makes this CPU's earlier stores visible to it (as Linux's `gic_ipi_send_mask`).
    unsafe {
        asm!(
            "dsb ishst",
            "msr S3_0_C12_C11_5, {}",
            "isb",
            in(reg) value,
            options(nostack)
        )
    };
}

/// Takes the highest-priority pending interrupt; `None` if it was spurious.
pub fn acknowledge() -> Option<u32> {
    let iar: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges the interrupt; the caller ends it.
    unsafe { asm!("mrs {}, ICC_IAR1_EL1", out(reg) iar, options(nostack)) };
    let intid = (iar & INTID_MASK) as u32;
    (!SPECIAL_INTIDS.contains(&intid)).then_some(intid)
}

/// Ends interrupt `intid` (priority drop and deactivation: ICC_CTLR_EL1.EOImode is 0).
pub fn end_of_interrupt(intid: u32) {
    // SAFETY: `intid` was acknowledged and not yet ended.
    unsafe { asm!("msr ICC_EOIR1_EL1, {}", in(reg) u64::from(intid), options(nostack)) };
}
