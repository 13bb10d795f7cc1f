//! CPU feature checks, the counter, and which exception level runs.

use aarch64_cpu::registers::{CNTVCT_EL0, ID_AA64PFR0_EL1, Readable, TPIDRRO_EL0};

/// ID_AA64PFR0_EL1.GIC, bits [27:24]: nonzero when the GICv3 system registers exist.
const PFR0_GIC_SHIFT: u64 = 24;
const PFR0_GIC_MASK: u64 = 0xF;

/// The reason the kernel cannot run on this CPU, if any.
pub fn missing_feature() -> Option<&'static str> {
    let gic = (ID_AA64PFR0_EL1.get() >> PFR0_GIC_SHIFT) & PFR0_GIC_MASK;
    (gic == 0).then_some("the GICv3 CPU interface (ID_AA64PFR0_EL1.GIC; QEMU: gic-version=3)")
}

/// The virtual counter now (CNTVCT_EL0).
pub fn timestamp() -> u64 {
    CNTVCT_EL0.get()
}

/// True when running at EL0 (the panic handler needs to know which side it is on): the
/// vectors keep TPIDRRO_EL0 at 1 while a task runs and 0 in the kernel.
pub fn in_user_mode() -> bool {
    TPIDRRO_EL0.get() != 0
}
