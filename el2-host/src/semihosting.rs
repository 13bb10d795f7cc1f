//! Arm semihosting (Arm "Semihosting for AArch32 and AArch64"): how the host
//! reads its command line and reports its exit status to QEMU (`-semihosting`).

/// `SYS_GET_CMDLINE`: copies the command line into a buffer.
const SYS_GET_CMDLINE: u64 = 0x15;
/// `SYS_EXIT_EXTENDED`: ends the simulation with a reason and a status code.
const SYS_EXIT_EXTENDED: u64 = 0x20;
/// `ADP_Stopped_ApplicationExit`: a normal exit; QEMU exits with the subcode.
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// Issues a semihosting call: `hlt #0xf000` with the operation in `x0` and the parameter
/// block's address in `x1`; the result comes back in `x0`.
fn call(operation: u64, block: *mut u64) -> u64 {
    let result: u64;
    // SAFETY: QEMU handles the trap and only accesses the parameter block and the buffers it
    // names, all of which the caller keeps alive across the call.
    unsafe {
        core::arch::asm!("hlt #0xf000", inlateout("x0") operation => result, in("x1") block, options(nostack))
    };
    result
}

/// The command line into `buffer`; `None` if QEMU has none or it does not fit.
pub fn command_line(buffer: &mut [u8]) -> Option<&str> {
    let mut block = [buffer.as_mut_ptr() as u64, buffer.len() as u64];
    if call(SYS_GET_CMDLINE, block.as_mut_ptr()) != 0 {
        return None;
    }
    let length = usize::try_from(block[1]).ok()?;
    core::str::from_utf8(buffer.get(..length)?).ok()
}

/// Ends QEMU with `status` as its exit code.
pub fn exit(status: u32) -> ! {
    let mut block = [ADP_STOPPED_APPLICATION_EXIT, u64::from(status)];
    call(SYS_EXIT_EXTENDED, block.as_mut_ptr());
    // Without `-semihosting` the call traps instead; nothing else can end the machine.
    loop {
        core::hint::spin_loop();
    }
}
