//! The guest kernel: a small unikernel whose tasks run in ring 3 (x86_64) so that the host
//! can deliver asynchronous page faults to them, and whose kernel paths are short because
//! our KVM emulates every ring-0 instruction.
//!
//! Built for `x86_64-unknown-none` (the runner does it; see the README). On the host the
//! binary only explains that; the hardware-free parts live in the library and are unit-tested.
#![cfg_attr(target_os = "none", no_std, no_main)]
// Trap handlers that save nothing themselves: the entry stubs already saved every register.
#![cfg_attr(
    all(target_os = "none", target_arch = "x86_64"),
    feature(rust_preserve_none_cc)
)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod apf_start;
#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
mod report;
#[cfg(target_os = "none")]
mod scenarios;
#[cfg(target_os = "none")]
mod start;
#[cfg(target_os = "none")]
mod userland;

#[cfg(target_os = "none")]
use guest_kernel::{abi, exit_status};
#[cfg(target_os = "none")]
use start::kernel_main;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "guest-kernel is a bare-metal kernel: boot it with `cargo run -p runner -- run` \
         (which builds it for x86_64-unknown-none)"
    );
    std::process::exit(2);
}
