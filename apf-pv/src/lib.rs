//! Guest side of the KVM asynchronous page fault (APF) paravirtual protocol.
//!
//! The crate is pure logic so it can be unit-tested on the host: the kernel performs the
//! `cpuid`, `wrmsr` and shared-memory accesses and hands the results to these functions.
//! Nothing here allocates, because it runs in the #PF and interrupt paths.
#![cfg_attr(not(test), no_std)]

pub mod waiters;
pub mod x86;
