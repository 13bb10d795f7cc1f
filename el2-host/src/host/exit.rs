//! How the host ends QEMU: semihosting `SYS_EXIT_EXTENDED` with one of these statuses, which
//! QEMU's exit code carries as `(status << 1) | 1`, as the guests' do. A guest that exits
//! through semihosting itself (the aarch64 guest kernel) bypasses the host and decides the
//! status alone; a guest that powers off (PSCI `SYSTEM_OFF`) gets 0.

use super::Host;
use crate::arch::aarch64::console::println;
use el2_host::semihosting;

/// The host's exit statuses. 3-5 mean what the guest kernel's do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
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

/// Prints the summary line (the host's counts, then each injected fault's) and ends QEMU
/// with `status`.
pub fn exit(status: Status, host: Option<&Host>) -> ! {
    if let Some(host) = host {
        println!("{}{}", host.stats, host.apf.injected());
    }
    println!("exit {}", status as u8);
    semihosting::exit(status as u8)
}
