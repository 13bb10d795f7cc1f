//! An EL2 hypervisor that plays KVM's part for our arm64 guest under QEMU TCG (our machines
//! have no arm64 KVM): stage-2 lazy memory, the KVM vendor hypercalls, SDEI and the v4 async
//! page fault protocol (`arm64-apf-sdei-abi.md`).
//!
//! This library is the hardware-free logic, unit-tested on the build host, plus the two
//! devices the test payload (`el2-payload`) shares with the host: the PL011 console and
//! semihosting. The bare-metal binary (`src/main.rs`, `src/arch/aarch64/`) owns registers,
//! vectors and the rest of the hardware.
#![cfg_attr(not(test), no_std)]

pub mod apf;
pub mod dtb;
pub mod elf;
pub mod esr;
pub mod frame;
pub mod hypercall;
pub mod inject;
pub mod list_registers;
pub mod memory_map;
pub mod params;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod pl011;
pub mod sdei_dispatcher;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod semihosting;
pub mod stage2;
