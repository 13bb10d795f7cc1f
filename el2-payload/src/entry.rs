//! EL1 entry: the host enters at `_start` in EL1h with DAIF masked and the MMU off.
//! Enables SIMD/FP (Rust uses it), installs vectors (IRQs from EL1h and EL0 go to
//! `payload_irq`, SVC from EL0 ends an EL0 run (`el0`), any other exception is reported as a
//! failure), and calls `payload_main` on the payload's own stack.

use core::arch::global_asm;

/// `CPACR_EL1.FPEN` (bits 21:20) = 0b11: SIMD/FP instructions do not trap at EL1 or EL0.
const CPACR_FPEN: u64 = 0b11 << 20;

/// The IRQ entry's frame: x0-x18, x29, x30, FPSR, FPCR (23 words, padded to 192 bytes),
/// then q0-q31.
const IRQ_FRAME_Q: usize = 192;
const IRQ_FRAME_SIZE: usize = IRQ_FRAME_Q + 32 * 16;

global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    adrp x0, __stack_top
    add x0, x0, :lo12:__stack_top
    mov sp, x0
    mov x0, #{fpen}
    msr cpacr_el1, x0
    adrp x0, payload_vectors
    add x0, x0, :lo12:payload_vectors
    msr vbar_el1, x0
    isb
    bl payload_main

.macro ENTRY number
.balign 0x80
    mov x0, #\number
    mrs x1, esr_el1
    mrs x2, elr_el1
    mrs x3, far_el1
    b payload_exception
.endm

.section .text, "ax"
.balign 0x800
payload_vectors:
    ENTRY 0
    ENTRY 1
    ENTRY 2
    ENTRY 3
    ENTRY 4
.balign 0x80
    b payload_irq_entry
    ENTRY 6
    ENTRY 7
.balign 0x80
    b payload_el0_sync
.balign 0x80
    b payload_irq_entry
    ENTRY 10
    ENTRY 11
    ENTRY 12
    ENTRY 13
    ENTRY 14
    ENTRY 15

// IRQ from EL1h: saves what an extern "C" function may clobber (x0-x18, x29, x30, all of
// q0-q31 to keep it simple, FPSR, FPCR), calls payload_irq, and returns to the interrupted
// code. Nothing nests (DAIF stays masked), so ELR_EL1/SPSR_EL1 survive.
payload_irq_entry:
    sub sp, sp, #{irq_frame}
    stp x0, x1, [sp, #0]
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x29, [sp, #144]
    mrs x0, fpsr
    mrs x1, fpcr
    stp x30, x0, [sp, #160]
    str x1, [sp, #176]
    add x0, sp, #{q}
    stp q0, q1, [x0], #32
    stp q2, q3, [x0], #32
    stp q4, q5, [x0], #32
    stp q6, q7, [x0], #32
    stp q8, q9, [x0], #32
    stp q10, q11, [x0], #32
    stp q12, q13, [x0], #32
    stp q14, q15, [x0], #32
    stp q16, q17, [x0], #32
    stp q18, q19, [x0], #32
    stp q20, q21, [x0], #32
    stp q22, q23, [x0], #32
    stp q24, q25, [x0], #32
    stp q26, q27, [x0], #32
    stp q28, q29, [x0], #32
    stp q30, q31, [x0], #32
    bl payload_irq
    add x0, sp, #{q}
    ldp q0, q1, [x0], #32
    ldp q2, q3, [x0], #32
    ldp q4, q5, [x0], #32
    ldp q6, q7, [x0], #32
    ldp q8, q9, [x0], #32
    ldp q10, q11, [x0], #32
    ldp q12, q13, [x0], #32
    ldp q14, q15, [x0], #32
    ldp q16, q17, [x0], #32
    ldp q18, q19, [x0], #32
    ldp q20, q21, [x0], #32
    ldp q22, q23, [x0], #32
    ldp q24, q25, [x0], #32
    ldp q26, q27, [x0], #32
    ldp q28, q29, [x0], #32
    ldp q30, q31, [x0], #32
    ldr x1, [sp, #176]
    ldp x30, x0, [sp, #160]
    msr fpsr, x0
    msr fpcr, x1
    ldp x18, x29, [sp, #144]
    ldp x16, x17, [sp, #128]
    ldp x14, x15, [sp, #112]
    ldp x12, x13, [sp, #96]
    ldp x10, x11, [sp, #80]
    ldp x8, x9, [sp, #64]
    ldp x6, x7, [sp, #48]
    ldp x4, x5, [sp, #32]
    ldp x2, x3, [sp, #16]
    ldp x0, x1, [sp, #0]
    add sp, sp, #{irq_frame}
    eret
"#,
    fpen = const CPACR_FPEN,
    irq_frame = const IRQ_FRAME_SIZE,
    q = const IRQ_FRAME_Q,
);
