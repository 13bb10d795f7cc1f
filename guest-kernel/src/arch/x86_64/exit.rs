//! Ending the VM with a status: QEMU's `isa-debug-exit` port, which our VMM implements too.

use crate::exit_status::ExitStatus;
use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xF4;

/// Reports `status` to the VMM and stops the CPU.
pub fn exit(status: ExitStatus) -> ! {
    // SAFETY: the exit port has no effect other than ending the VM.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(status as u32) };
    // Only reached if the VMM ignored the port.
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
