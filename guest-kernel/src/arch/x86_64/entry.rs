//! Every way into the kernel: 256 interrupt/exception stubs (system calls arrive as #BP,
//! see [`super::usercall`]).
//!
//! All of them build the same [`TrapFrame`] on the current task's kernel stack and call
//! [`trap::dispatch`], which returns the frame to resume: the same one, another task's
//! (a context switch is just a different stack pointer), or the idle frame. Everything
//! returns through `iretq`, so a task preempted by the timer and one that made a system
//! call are resumed the same way.
//!
//! [`TrapFrame`]: super::trap::TrapFrame
//! [`trap::dispatch`]: super::trap::dispatch

use core::arch::global_asm;

/// Bytes per interrupt stub; [`stub_address`] relies on it.
const STUB_SIZE: u64 = 16;

global_asm!(
    r#"
    .section .text
    .p2align 4
    .global trap_stubs
trap_stubs:
    .set vector, 0
    .rept 256
    .p2align 4
    /* Exceptions that push an error code: #DF #TS #NP #SS #GP #PF #AC #CP #VC #SX. */
    .if (vector == 8) || (vector >= 10 && vector <= 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    pushq $0
    .endif
    pushq $vector
    jmp trap_common
    .set vector, vector + 1
    .endr
    .p2align 4
    .global trap_stubs_end
trap_stubs_end:

trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    call {dispatch}
    movq %rax, %rsp
    .global trap_restore
trap_restore:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp              /* vector and error code */
    iretq

    /* The idle context: a ring-0 frame that halts until the next interrupt. */
    .global idle_loop
idle_loop:
    hlt
    jmp idle_loop
"#,
    dispatch = sym super::trap::dispatch,
    options(att_syntax)
);

unsafe extern "C" {
    fn trap_stubs();
    fn trap_stubs_end();
    fn idle_loop();
}

/// Resumes `frame` (a task's or the idle frame) for good, leaving the boot stack.
pub fn restore(frame: *mut super::trap::TrapFrame) -> ! {
    // SAFETY: `frame` is a complete frame built by the kernel; `trap_restore` pops it and
    // returns to it with iretq.
    unsafe {
        core::arch::asm!(
            "mov rsp, {frame}",
            "jmp trap_restore",
            frame = in(reg) frame,
            options(noreturn)
        )
    }
}

/// True if every stub fits its slot. The assembler cannot check this (jumps may be
/// relaxed), so the IDT set-up checks it once.
pub fn stubs_fit() -> bool {
    trap_stubs_end as *const () as u64 - trap_stubs as *const () as u64 == 256 * STUB_SIZE
}

/// Address of the stub for `vector`.
pub fn stub_address(vector: u8) -> u64 {
    trap_stubs as *const () as u64 + u64::from(vector) * STUB_SIZE
}

pub fn idle_loop_address() -> u64 {
    idle_loop as *const () as u64
}
