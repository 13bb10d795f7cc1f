//! Running a function at EL0, the way the real guest runs its tasks, so that faults are
//! taken from EL0: async PF then needs no `SEND_ALWAYS`, and "page not present" resumes
//! through the lower-EL IRQ vector. With the EL1&0 MMU off, EL0 may touch all memory.
//!
//! `payload_run_el0` saves the EL1 callee-saved registers and stack pointer, and `eret`s to
//! the function at EL0 (IRQs unmasked) on its own stack; when the function returns, its
//! `svc #0` comes back through the lower-EL sync vector, which restores the EL1 state and
//! returns from `payload_run_el0`.

use core::arch::global_asm;

/// EC of `ESR_EL1` for an SVC from AArch64.
const EC_SVC64: u64 = 0x15;
/// `ESR_EL1.EC` position.
const EC_SHIFT: u64 = 26;
/// Bytes of the EL0 stack.
const EL0_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; EL0_STACK_SIZE]);

/// EL0's stack: only EL0 code uses it, through `SP_EL0`.
static mut EL0_STACK: Stack = Stack([0; EL0_STACK_SIZE]);

global_asm!(
    r#"
.section .text, "ax"
// x0 = function, x1 = its argument, x2 = EL0 stack top.
.global payload_run_el0
payload_run_el0:
    stp x29, x30, [sp, #-16]!
    stp x27, x28, [sp, #-16]!
    stp x25, x26, [sp, #-16]!
    stp x23, x24, [sp, #-16]!
    stp x21, x22, [sp, #-16]!
    stp x19, x20, [sp, #-16]!
    mov x9, sp
    adrp x10, el1_saved_sp
    str x9, [x10, :lo12:el1_saved_sp]
    msr sp_el0, x2
    msr elr_el1, x0
    msr spsr_el1, xzr
    mov x0, x1
    adr x30, payload_el0_return
    eret
payload_el0_return:
    svc #0

// Lower-EL sync vector: an SVC ends the EL0 run, anything else is a failure.
.global payload_el0_sync
payload_el0_sync:
    mrs x9, esr_el1
    lsr x9, x9, #{ec_shift}
    cmp x9, #{ec_svc}
    b.ne 1f
    adrp x10, el1_saved_sp
    ldr x9, [x10, :lo12:el1_saved_sp]
    mov sp, x9
    ldp x19, x20, [sp], #16
    ldp x21, x22, [sp], #16
    ldp x23, x24, [sp], #16
    ldp x25, x26, [sp], #16
    ldp x27, x28, [sp], #16
    ldp x29, x30, [sp], #16
    ret
1:  mov x0, #8
    mrs x1, esr_el1
    mrs x2, elr_el1
    mrs x3, far_el1
    b payload_exception

.section .bss
.balign 8
el1_saved_sp:
    .quad 0
"#,
    ec_shift = const EC_SHIFT,
    ec_svc = const EC_SVC64,
);

unsafe extern "C" {
    fn payload_run_el0(function: extern "C" fn(u64), argument: u64, stack_top: u64);
}

/// Runs `function(argument)` at EL0 and returns when it does.
pub fn run(function: extern "C" fn(u64), argument: u64) {
    let stack_top = &raw const EL0_STACK as u64 + EL0_STACK_SIZE as u64;
    // SAFETY: `payload_run_el0` preserves the EL1 callee-saved registers and stack, and
    // the function runs on a stack nothing else uses; `argument` is the function's to
    // interpret (it is the address of a live local of the caller).
    unsafe { payload_run_el0(function, argument, stack_top) };
}
