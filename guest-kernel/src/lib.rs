//! Arch-neutral, hardware-free pieces of the guest kernel.
//!
//! Everything here is plain data and logic so that it is unit-tested on the host
//! (`cargo test -p guest-kernel`); the kernel binary (`main.rs`) wires it to the hardware.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

pub mod abi;
pub mod apf;
pub mod bits;
pub mod clock;
pub mod cmdline;
pub mod exit_status;
pub mod hold;
pub mod keyed_waits;
pub mod psci;
pub mod pvh;
mod run_queue;
pub mod sched;
pub mod task_table;
pub mod user_arena;
pub mod virtq;
pub mod watchdog;
