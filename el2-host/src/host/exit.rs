//! How the host ends QEMU: semihosting `SYS_EXIT_EXTENDED` with one of these statuses (QEMU
//! exits with it). A guest that exits through semihosting itself bypasses the host and
//! decides the status alone; a guest that powers off (PSCI `SYSTEM_OFF`) gets 0.

use super::stats::Stats;
use crate::arch::aarch64::console::println;
use el2_host::semihosting;

/// The host's exit statuses. 3-5 mean what the guest kernel's do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// The guest powered off (PSCI `SYSTEM_OFF`).
    GuestOff = 0,
    /// The host's command line was malformed; the error was printed.
    BadCommandLine = 3,
    /// The host panicked or took an exception itself.
    HostPanic = 4,
    /// Not started at EL2 (QEMU lacks `virtualization=on`).
    Unsupported = 5,
    /// No loadable guest ELF in the staging area.
    BadGuest = 6,
    /// The guest did something the host cannot serve (an access outside its memory, an
    /// unknown exception); the reason was printed.
    GuestError = 7,
}

/// Prints the summary line and ends QEMU with `status`.
pub fn exit(status: Status, stats: Option<&Stats>) -> ! {
    if let Some(stats) = stats {
        println!("{stats}");
    }
    println!("exit {}", status as u32);
    semihosting::exit(status as u32)
}
