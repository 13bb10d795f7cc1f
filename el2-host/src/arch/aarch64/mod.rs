//! The hardware side of the host: boot, exception vectors, system registers and devices of
//! QEMU's `virt` board with an Armv8-A CPU at EL2.

pub mod boot;
pub mod console;
pub mod counter;
pub mod gic;
pub mod hyp_timer;
pub mod stage2;
pub mod sysreg;
pub mod vcpu;
pub mod vectors;
