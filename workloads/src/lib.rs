//! Workloads the guest runs in ring 3 / EL0, with answers that can be checked.
//!
//! `no_std` and free of any kernel dependency, so each workload is unit-tested on the host
//! with the same code the guest runs.
#![cfg_attr(not(test), no_std)]

pub mod cpu;
pub mod kv;
pub mod mem;
pub mod pages;
