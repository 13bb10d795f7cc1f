//! The system calls: what a task may ask of the kernel, checked against the memory it may
//! pass.

use super::{HOLD_KEY, KERNEL_KEYS, Kernel, Next, handle, keyed, this_cpu};
use crate::abi::{self, Syscall, TaskReport};
use crate::arch;
use crate::console;

/// Handles system call `nr`; returns its result and what runs next.
///
/// The arch layer stores the result in the calling task's saved frame, which is right even
/// when the call parked or ended the task: the value is there when (if) it resumes.
pub fn syscall(nr: u64, args: [u64; 3]) -> (i64, Next) {
    let mut result = abi::ENOSYS;
    let next = handle(this_cpu(), |k| {
        let Some(call) = Syscall::from_raw(nr) else {
            return;
        };
        result = match call {
            Syscall::Yield => {
                k.sched.yield_current();
                0
            }
            Syscall::Exit => {
                k.exit_current(args[0] as i64);
                0
            }
            Syscall::Write => k.write(args[0], args[1]),
            Syscall::Time => k.clock.ns(arch::timestamp()) as i64,
            Syscall::Park if args[0] & KERNEL_KEYS != 0 => abi::EINVAL,
            Syscall::Park => {
                keyed::park(k, args[0]);
                0
            }
            Syscall::Wake => {
                keyed::wake(k, args[0]);
                0
            }
            Syscall::Report => k.report(args[0]),
            Syscall::Hold => {
                if k.hold.arrive() {
                    k.sched.park_current(HOLD_KEY);
                    k.check_hold_ready();
                }
                0
            }
        };
    });
    (result, next)
}

impl Kernel {
    /// `len` bytes at `ptr`, if they lie in memory a task may pass to the kernel.
    fn user_bytes(&self, ptr: u64, len: u64) -> Option<&[u8]> {
        let end = ptr.checked_add(len)?;
        self.user_ranges
            .iter()
            .any(|r| r.start <= ptr && end <= r.end)
            // SAFETY: the range lies in memory mapped for tasks (checked just above).
            .then(|| unsafe { core::slice::from_raw_parts(ptr as *const u8, len as usize) })
    }

    /// Copies a task's buffer to the console.
    fn write(&self, ptr: u64, len: u64) -> i64 {
        let len = len.min(abi::WRITE_MAX as u64);
        let Some(bytes) = self.user_bytes(ptr, len) else {
            return abi::EFAULT;
        };
        match core::str::from_utf8(bytes) {
            Ok(text) => {
                console::write_str(text);
                len as i64
            }
            Err(_) => abi::EINVAL,
        }
    }

    /// Keeps the calling task's report for the result line.
    fn report(&mut self, ptr: u64) -> i64 {
        let Some(bytes) = self.user_bytes(ptr, size_of::<TaskReport>() as u64) else {
            return abi::EFAULT;
        };
        // SAFETY: the bytes are a `TaskReport` the task wrote; any bit pattern is valid for
        // its plain integer fields, and the read may be unaligned.
        let report = unsafe { (bytes.as_ptr() as *const TaskReport).read_unaligned() };
        let id = self
            .sched
            .current()
            .expect("a system call comes from a task");
        self.reports[id] = Some(report);
        0
    }
}
