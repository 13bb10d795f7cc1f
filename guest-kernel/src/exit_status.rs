//! Exit statuses the guest reports through the exit port; the runner passes them on as its
//! own process status, so they are part of the guest's interface.

/// Why the guest stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Every task exited with status 0.
    Success = 0,
    /// At least one task exited non-zero or was killed by an exception.
    TaskFailed = 1,
    /// The command line was malformed; the error was printed.
    BadCommandLine = 3,
    /// The kernel itself panicked or took an exception.
    KernelPanic = 4,
    /// The machine lacks something the kernel needs (e.g. x2APIC); the reason was printed.
    Unsupported = 5,
}
