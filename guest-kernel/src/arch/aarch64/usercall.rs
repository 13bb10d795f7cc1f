//! The EL0 side of a system call: `svc #0`, number in x8, arguments in x0-x2, result in x0.

use core::arch::asm;

/// BRK immediate for an integer divide by zero (the value Windows on Arm uses).
const BRK_DIVIDE_BY_ZERO: u16 = 0xF004;

/// Makes system call `nr`; every register but x0 (the result) is preserved.
pub fn syscall(nr: u64, a0: u64, a1: u64, a2: u64) -> i64 {
    let ret: i64;
    // SAFETY: the kernel's vectors save and restore every register and return the result in
    // x0.
    unsafe {
        asm!(
            "svc #0",
            in("x8") nr,
            inlateout("x0") a0 => ret,
            in("x1") a1,
            in("x2") a2,
        );
    }
    ret
}

/// Divides by zero the way a trapping divide would. AArch64's UDIV does not trap (dividing
/// by zero gives 0, Arm ARM C6.2 "UDIV"), so the check it lacks raises BRK instead, and the
/// `div0` scenario still shows a task killed by an exception.
pub fn divide_by_zero() -> u64 {
    let quotient: u64;
    // SAFETY: the exception is the point; the kernel kills the task at the BRK.
    unsafe {
        asm!(
            "cbnz {divisor}, 1f",
            "brk #{brk}",
            "1: udiv {quotient}, {dividend}, {divisor}",
            divisor = in(reg) 0u64,
            dividend = in(reg) 1u64,
            quotient = lateout(reg) quotient,
            brk = const BRK_DIVIDE_BY_ZERO,
            options(nomem, nostack),
        );
    }
    quotient
}
