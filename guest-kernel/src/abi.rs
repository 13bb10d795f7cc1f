//! The system-call interface between ring-3 tasks and the kernel.
//!
//! Number in `rax` (x86_64) / `x8` (aarch64), arguments in the first argument registers,
//! result in `rax` / `x0`. Errors are negative values, as on Linux.

/// System call numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Syscall {
    /// Give up the rest of the time slice.
    Yield = 0,
    /// End the calling task with `status` (arg 0). Does not return.
    Exit = 1,
    /// Write `len` (arg 1) bytes at `ptr` (arg 0) to the console; returns the count.
    Write = 2,
    /// Nanoseconds since the vCPU's TSC started, from the calibrated TSC.
    Time = 3,
    /// Park the calling task on `key` (arg 0) until [`Syscall::Wake`] with the same key;
    /// returns at once if that wake came first.
    Park = 4,
    /// Wake every task parked on `key` (arg 0), or remember the wake for the next park.
    Wake = 5,
    /// Record the calling task's [`TaskReport`] (arg 0 points to it) for the result line.
    Report = 6,
    /// Wait at the migration gate (`hold=console`) until the host releases it; returns at
    /// once without `hold=console` or once released. Workload tasks call it between writing
    /// their pages and their timed phase.
    Hold = 7,
}

/// What a workload task reports about its run, for the machine-readable result line.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskReport {
    /// When the work started and ended, from the `time` system call.
    pub start_ns: u64,
    pub end_ns: u64,
    /// The computed answer (the CPU workload's chain value), for the host to check.
    pub result: u64,
    /// Pages touched and pages whose contents matched the page generator.
    pub pages_touched: u64,
    pub pages_verified: u64,
}

impl Syscall {
    /// Decodes a raw number; `None` for numbers the kernel does not know.
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            0 => Self::Yield,
            1 => Self::Exit,
            2 => Self::Write,
            3 => Self::Time,
            4 => Self::Park,
            5 => Self::Wake,
            6 => Self::Report,
            7 => Self::Hold,
            _ => return None,
        })
    }
}

/// Returned for an unknown system call number.
pub const ENOSYS: i64 = -38;
/// Returned for a console write that is not UTF-8.
pub const EINVAL: i64 = -22;
/// Returned when a pointer argument does not lie in task-accessible memory.
pub const EFAULT: i64 = -14;
/// Largest single console write; longer writes are cut (the count returned says so).
pub const WRITE_MAX: usize = 4096;

/// Exit status of a task killed by CPU exception `vector` (as shells report signals).
pub fn fault_status(vector: u64) -> i64 {
    128 + vector as i64
}

/// Exit status of a task that panicked (as Rust programs do).
pub const PANIC_STATUS: i64 = 101;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for call in [
            Syscall::Yield,
            Syscall::Exit,
            Syscall::Write,
            Syscall::Time,
            Syscall::Park,
            Syscall::Wake,
            Syscall::Report,
            Syscall::Hold,
        ] {
            assert_eq!(Syscall::from_raw(call as u64), Some(call));
        }
        assert_eq!(Syscall::from_raw(8), None);
        assert_eq!(Syscall::from_raw(u64::MAX), None);
    }
}
