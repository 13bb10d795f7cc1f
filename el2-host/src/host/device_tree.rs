//! The device tree QEMU put at the start of RAM, adjusted for the guest before it is loaded
//! (see `el2_host::dtb`): a guest kernel that reads it sees its own RAM and command line.

use crate::arch::aarch64::console::println;
use el2_host::dtb;
use el2_host::memory_map::{GUEST_RAM, RAM_BASE};

/// Most QEMU lets a bare-metal image's tree take (`virt`'s limit for the DTB, 1 MiB).
const DTB_MAX: usize = 1 << 20;

/// Patches the tree; a missing tree is only reported (a guest may load over it).
pub fn patch() {
    // SAFETY: the first MiB of guest RAM, which the host does not otherwise use and the guest
    // has not been loaded into yet.
    let memory = unsafe { core::slice::from_raw_parts_mut(RAM_BASE as *mut u8, DTB_MAX) };
    let result =
        dtb::total_size(memory).and_then(|size| dtb::patch(&mut memory[..size], GUEST_RAM.end));
    match result {
        Ok(patched) => println!("device tree: {patched:?}"),
        Err(error) => println!("device tree left alone: {error:?}"),
    }
}
