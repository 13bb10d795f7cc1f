//! The ring-3 side of a system call.
//!
//! Tasks enter the kernel with `int3` through a DPL-3 trap gate, not `syscall`. On our KVM
//! (which emulates all ring-0 code) `syscall` reaches the kernel entry with the emulator
//! still checking memory accesses as ring 3: the entry's first write to a supervisor page
//! faults with the user bit set (error code 0x7), while the same kernel runs correctly under
//! QEMU's full x86 model (TCG). Exceptions taken in ring 3 do enter ring 0 properly here,
//! and `int3` is a one-byte trap whose saved RIP already points past it. `int N` is not an
//! option: it raises #UD on this KVM (`host-facts.md`).

use core::arch::asm;

/// Makes system call `nr`; every register but `rax` (the result) is preserved.
pub fn syscall(nr: u64, a0: u64, a1: u64, a2: u64) -> i64 {
    let ret: i64;
    // SAFETY: the kernel's #BP entry saves and restores every register and returns the
    // result in rax.
    unsafe {
        asm!(
            "int3",
            inlateout("rax") nr => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
        );
    }
    ret
}

/// Raises #DE with a real `div` instruction (Rust's `/` would check and panic instead).
pub fn divide_by_zero() -> u64 {
    let quotient: u64;
    // SAFETY: the fault is the point; the kernel kills the task before `div` completes.
    unsafe {
        asm!(
            "div {zero}",
            zero = in(reg) 0u64,
            inlateout("rax") 1u64 => quotient,
            inlateout("rdx") 0u64 => _,
            options(nomem, nostack),
        );
    }
    quotient
}
