//! Every way into the kernel: the exception vector table (VBAR_EL1).
//!
//! All 16 vectors build the same [`TrapFrame`] on the current EL1 stack and call
//! [`trap::dispatch`], which returns the frame to resume: the same one, another task's (a
//! context switch is just a different stack pointer), or the idle frame. Everything returns
//! through `eret`, so a task preempted by the timer and one that made a system call are
//! resumed the same way.
//!
//! A task's frame sits at the top of its kernel stack, and popping it leaves SP_EL1 at that
//! top: the next exception from the task lands on its own, empty, kernel stack.
//!
//! TPIDRRO_EL0 is 1 while EL0 runs and 0 in the kernel ([`super::cpu::in_user_mode`]): EL0
//! can read it, not write it, and no other register tells EL0 code which level it runs at.
//!
//! [`TrapFrame`]: super::trap::TrapFrame
//! [`trap::dispatch`]: super::trap::dispatch

use super::trap::{FRAME_ELR, FRAME_FPCR, FRAME_Q, FRAME_SIZE, FRAME_X30};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{VBAR_EL1, Writeable};
use core::arch::global_asm;

/// SPSR_ELx.M[4:0] of AArch64 EL0 (Arm ARM C5.2.19): the frame returns to a task.
pub const SPSR_MODE_MASK: u64 = 0b1_1111;
pub const SPSR_EL0T: u64 = 0b0000;

/// Whether `spsr` (an SPSR_EL1 or an SDEI-interrupted PSTATE) is of a task, at EL0.
pub fn is_el0(spsr: u64) -> bool {
    spsr & SPSR_MODE_MASK == SPSR_EL0T
}

global_asm!(
    r#"
    .macro VECTOR kind
    .p2align 7
    sub sp, sp, #{frame_size}
    stp x0, x1, [sp, #0]
    mov x1, #\kind
    b trap_common
    .endm

    /* `op` (stp or ldp) each register pair `a`, `b` listed, `reg` a, `reg` b, at
       [`base`, #a * `size`]: the frame's x (8 bytes each, from sp) or q (16 bytes each,
       from x2) array, whose register n is at n * size. */
    .macro PAIRS op, reg, size, base, a, b, rest:vararg
    \op \reg\a, \reg\b, [\base, #(\a * \size)]
    .ifnb \rest
    PAIRS \op, \reg, \size, \base, \rest
    .endif
    .endm

    .section .text
    .p2align 11
    .global exception_vectors
exception_vectors:
    /* current EL with SP_EL0, current EL with SP_ELx, lower EL AArch64, lower EL AArch32;
       each: synchronous, IRQ, FIQ, SError. */
    .set kind, 0
    .rept 16
    VECTOR kind
    .set kind, kind + 1
    .endr

trap_common:
    msr tpidrro_el0, xzr
    PAIRS stp, x, 8, sp, 2,3, 4,5, 6,7, 8,9, 10,11, 12,13, 14,15, 16,17, 18,19, 20,21, 22,23, 24,25, 26,27, 28,29
    mrs x2, sp_el0
    stp x30, x2, [sp, #{x30}]
    mrs x2, elr_el1
    mrs x3, spsr_el1
    stp x2, x3, [sp, #{elr}]
    mrs x2, fpcr
    mrs x3, fpsr
    stp x2, x3, [sp, #{fpcr}]
    add x2, sp, #{q}
    PAIRS stp, q, 16, x2, 0,1, 2,3, 4,5, 6,7, 8,9, 10,11, 12,13, 14,15, 16,17, 18,19, 20,21, 22,23, 24,25, 26,27, 28,29, 30,31
    mov x0, sp
    bl {dispatch}
    mov sp, x0
    .global trap_restore
trap_restore:
    add x2, sp, #{q}
    PAIRS ldp, q, 16, x2, 0,1, 2,3, 4,5, 6,7, 8,9, 10,11, 12,13, 14,15, 16,17, 18,19, 20,21, 22,23, 24,25, 26,27, 28,29, 30,31
    ldp x2, x3, [sp, #{fpcr}]
    msr fpcr, x2
    msr fpsr, x3
    ldp x2, x3, [sp, #{elr}]
    msr elr_el1, x2
    msr spsr_el1, x3
    and x3, x3, #{mode_mask}
    cmp x3, #{el0t}
    cset x3, eq
    msr tpidrro_el0, x3
    ldp x30, x2, [sp, #{x30}]
    msr sp_el0, x2
    PAIRS ldp, x, 8, sp, 0,1, 2,3, 4,5, 6,7, 8,9, 10,11, 12,13, 14,15, 16,17, 18,19, 20,21, 22,23, 24,25, 26,27, 28,29
    add sp, sp, #{frame_size}
    eret

    /* The idle context: an EL1 frame, interrupts unmasked, that waits for the next one. */
    .global idle_loop
idle_loop:
    wfi
    b idle_loop
"#,
    frame_size = const FRAME_SIZE,
    x30 = const FRAME_X30,
    elr = const FRAME_ELR,
    fpcr = const FRAME_FPCR,
    q = const FRAME_Q,
    mode_mask = const SPSR_MODE_MASK,
    el0t = const SPSR_EL0T,
    dispatch = sym super::trap::dispatch,
);

unsafe extern "C" {
    fn exception_vectors();
    fn idle_loop();
}

/// Points VBAR_EL1 at the vector table.
pub fn install_vectors() {
    VBAR_EL1.set(exception_vectors as *const () as u64);
    barrier::isb(barrier::SY);
}

/// Resumes `frame` (a task's or the idle frame) for good, leaving the boot stack.
pub fn restore(frame: *mut super::trap::TrapFrame) -> ! {
    // SAFETY: `frame` is a complete frame built by the kernel; `trap_restore` pops it and
    // returns to it with eret.
    unsafe {
        core::arch::asm!(
            "mov sp, {frame}",
            "b trap_restore",
            frame = in(reg) frame,
            options(noreturn)
        )
    }
}

pub fn idle_loop_address() -> u64 {
    idle_loop as *const () as u64
}
