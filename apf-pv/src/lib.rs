//! Guest side of the KVM asynchronous page fault (APF) paravirtual protocol.
//!
//! The crate is pure logic so it can be unit-tested on the host: the kernel performs the
//! `cpuid`, `wrmsr`, hypercall and shared-memory accesses and hands the results to these
//! functions. [`x86`] is KVM's mainline protocol, [`arm64`] the never-merged v4 series.
//! Nothing here allocates, because it runs in the #PF and interrupt paths.
#![cfg_attr(not(test), no_std)]

pub mod arm64;
pub mod waiters;
pub mod x86;
