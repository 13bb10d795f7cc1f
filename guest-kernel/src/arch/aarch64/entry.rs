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

/// SPSR_ELx.M[3:0] of EL0 (Arm ARM C5.2.19): the frame returns to a task.
pub const SPSR_MODE_MASK: u64 = 0b1111;
pub const SPSR_EL0T: u64 = 0b0000;

global_asm!(
    r#"
    .macro VECTOR kind
    .p2align 7
    sub sp, sp, #{frame_size}
    stp x0, x1, [sp, #0]
    mov x1, #\kind
    b trap_common
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
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x19, [sp, #144]
    stp x20, x21, [sp, #160]
    stp x22, x23, [sp, #176]
    stp x24, x25, [sp, #192]
    stp x26, x27, [sp, #208]
    stp x28, x29, [sp, #224]
    mrs x2, sp_el0
    stp x30, x2, [sp, #{x30}]
    mrs x2, elr_el1
    mrs x3, spsr_el1
    stp x2, x3, [sp, #{elr}]
    mrs x2, fpcr
    mrs x3, fpsr
    stp x2, x3, [sp, #{fpcr}]
    add x2, sp, #{q}
    stp q0, q1, [x2, #0]
    stp q2, q3, [x2, #32]
    stp q4, q5, [x2, #64]
    stp q6, q7, [x2, #96]
    stp q8, q9, [x2, #128]
    stp q10, q11, [x2, #160]
    stp q12, q13, [x2, #192]
    stp q14, q15, [x2, #224]
    stp q16, q17, [x2, #256]
    stp q18, q19, [x2, #288]
    stp q20, q21, [x2, #320]
    stp q22, q23, [x2, #352]
    stp q24, q25, [x2, #384]
    stp q26, q27, [x2, #416]
    stp q28, q29, [x2, #448]
    stp q30, q31, [x2, #480]
    mov x0, sp
    bl {dispatch}
    mov sp, x0
    .global trap_restore
trap_restore:
    add x2, sp, #{q}
    ldp q0, q1, [x2, #0]
    ldp q2, q3, [x2, #32]
    ldp q4, q5, [x2, #64]
    ldp q6, q7, [x2, #96]
    ldp q8, q9, [x2, #128]
    ldp q10, q11, [x2, #160]
    ldp q12, q13, [x2, #192]
    ldp q14, q15, [x2, #224]
    ldp q16, q17, [x2, #256]
    ldp q18, q19, [x2, #288]
    ldp q20, q21, [x2, #320]
    ldp q22, q23, [x2, #352]
    ldp q24, q25, [x2, #384]
    ldp q26, q27, [x2, #416]
    ldp q28, q29, [x2, #448]
    ldp q30, q31, [x2, #480]
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
    ldp x0, x1, [sp, #0]
    ldp x2, x3, [sp, #16]
    ldp x4, x5, [sp, #32]
    ldp x6, x7, [sp, #48]
    ldp x8, x9, [sp, #64]
    ldp x10, x11, [sp, #80]
    ldp x12, x13, [sp, #96]
    ldp x14, x15, [sp, #112]
    ldp x16, x17, [sp, #128]
    ldp x18, x19, [sp, #144]
    ldp x20, x21, [sp, #160]
    ldp x22, x23, [sp, #176]
    ldp x24, x25, [sp, #192]
    ldp x26, x27, [sp, #208]
    ldp x28, x29, [sp, #224]
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
