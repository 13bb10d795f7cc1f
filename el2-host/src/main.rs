//! The EL2 host: QEMU TCG boots it at EL2 (`-machine virt,virtualization=on`), it loads the
//! guest ELF QEMU staged, and runs the guest at EL1 with stage-2 lazy memory, the KVM
//! vendor hypercalls, SDEI and async page faults (README "arm64 EL2 host").
//!
//! Built for `aarch64-unknown-none`; on the build host the binary only explains that, and
//! the logic is tested through the library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod host;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "el2-host is a bare-metal hypervisor: build it with `scripts/guest-cargo build -p el2-host \
         --release --target aarch64-unknown-none --target-dir target/guest` and boot it in \
         qemu-system-aarch64 (README \"arm64 EL2 host\")"
    );
    std::process::exit(2);
}
