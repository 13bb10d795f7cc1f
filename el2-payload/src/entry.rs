//! EL1 entry: the host enters at `_start` in EL1h with DAIF masked and the MMU off.
//! Enables SIMD/FP (Rust uses it), installs vectors that report any exception, and calls
//! `payload_main` on the payload's own stack.

use core::arch::global_asm;

/// `CPACR_EL1.FPEN` (bits 21:20) = 0b11: SIMD/FP instructions do not trap at EL1 or EL0.
const CPACR_FPEN: u64 = 0b11 << 20;

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
    ENTRY 5
    ENTRY 6
    ENTRY 7
    ENTRY 8
    ENTRY 9
    ENTRY 10
    ENTRY 11
    ENTRY 12
    ENTRY 13
    ENTRY 14
    ENTRY 15
"#,
    fpen = const CPACR_FPEN,
);
