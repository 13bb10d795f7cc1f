//! Ending the VM with a status: the semihosting call SYS_EXIT_EXTENDED (Arm "Semihosting
//! for AArch32 and AArch64", `hlt #0xf000`), which QEMU serves with `-semihosting`.
//!
//! The status travels as `(status << 1) | 1`, the code QEMU's x86 `isa-debug-exit` produces,
//! so the runner reads both arches the same way and QEMU's own exit code 0 (power-off, a
//! reset with `-no-reboot`) is never taken for a guest that succeeded.

use crate::exit_status::ExitStatus;
use crate::{console, println};
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

/// SYS_EXIT_EXTENDED: x1 points to {reason, exit code}.
const SYS_EXIT_EXTENDED: u64 = 0x20;
/// ADP_Stopped_ApplicationExit: the reason for a normal exit with a code.
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

/// Set by the first [`exit`]: without semihosting `hlt` does nothing or is undefined (the
/// kernel takes the exception and exits again), and the kernel must stop then.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Reports `status` to QEMU and stops the CPU.
pub fn exit(status: ExitStatus) -> ! {
    if !EXITING.swap(true, Ordering::Relaxed) {
        let block = [ADP_STOPPED_APPLICATION_EXIT, (status as u64) << 1 | 1];
        // SAFETY: the semihosting call only reads the block and ends the VM.
        unsafe {
            asm!(
                "hlt #0xf000",
                in("x0") SYS_EXIT_EXTENDED,
                in("x1") block.as_ptr(),
                options(nostack, readonly)
            )
        };
    }
    console::force_unlock();
    println!("kernel: no semihosting to exit through (QEMU: -semihosting); halting");
    loop {
        aarch64_cpu::asm::wfi();
    }
}
