//! The KVM x86 async page fault protocol (see the x86 APF ABI spec, sections 1–5).
//!
//! Pure logic: the kernel executes `cpuid` and `wrmsr` and owns the shared area; these
//! functions decide what to do with what it reads. The usual sequence:
//! 1. [`detect`] the KVM CPUID leaves with async PF and interrupt-based page-ready;
//! 2. write the page-ready vector to [`MSR_KVM_ASYNC_PF_INT`], then [`enable_value`] of the
//!    [`ApfArea`]'s physical address to [`MSR_KVM_ASYNC_PF_EN`] (in this order, or the
//!    broadcast that enabling queues could arrive on vector 0);
//! 3. on every #PF, first [`classify`] it (this consumes the area's flag);
//! 4. on every page-ready interrupt, [`take_ready_token`], then write [`ACK`] to
//!    [`MSR_KVM_ASYNC_PF_ACK`] so the host sends the next one.

mod abi;
mod area;
mod cpuid;
mod enable;
mod events;

pub use abi::*;
pub use area::{ApfArea, SharedArea};
pub use cpuid::{CpuidResult, Unavailable, detect};
pub use enable::{Misaligned, enable_value};
pub use events::{PageFault, classify, take_ready_token};
