//! The EL2 exception vectors (Arm ARM, "Exception vectors"): every entry saves the
//! interrupted context as a [`Frame`] on the EL2 stack, calls [`el2_exception`] with it and
//! the entry's number, and returns with `eret` to whatever the frame then says, which is
//! how the host resumes, redirects or first enters the guest.

use core::arch::global_asm;
use el2_host::frame::{self, Frame};

// Vector table entries are 0x80 bytes apart, in four groups of four (sync, IRQ, FIQ,
// SError): current EL with SP_EL0, current EL with SP_ELx, lower EL AArch64, lower EL
// AArch32. The entry number is passed to Rust as [`Entry`].
global_asm!(
    r#"
.macro SAVE_GUEST
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
    mrs x2, elr_el2
    stp x30, x2, [sp, #240]
    mrs x2, spsr_el2
    str x2, [sp, #{elr} + 8]
    mrs x2, fpsr
    mrs x3, fpcr
    stp x2, x3, [sp, #{fpsr}]
    add x2, sp, #{q}
    stp q0, q1, [x2], #32
    stp q2, q3, [x2], #32
    stp q4, q5, [x2], #32
    stp q6, q7, [x2], #32
    stp q8, q9, [x2], #32
    stp q10, q11, [x2], #32
    stp q12, q13, [x2], #32
    stp q14, q15, [x2], #32
    stp q16, q17, [x2], #32
    stp q18, q19, [x2], #32
    stp q20, q21, [x2], #32
    stp q22, q23, [x2], #32
    stp q24, q25, [x2], #32
    stp q26, q27, [x2], #32
    stp q28, q29, [x2], #32
    stp q30, q31, [x2], #32
.endm

.macro ENTRY number
.balign 0x80
    sub sp, sp, #{frame_size}
    stp x0, x1, [sp, #0]
    mov x1, #\number
    b el2_save_and_handle
.endm

.section .text.vectors, "ax"
.balign 0x800
.global el2_vectors
el2_vectors:
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

el2_save_and_handle:
    SAVE_GUEST
    mov x0, sp
    bl el2_exception
    mov x0, sp

// x0 = the frame to resume (at the top of the EL2 stack).
.global el2_resume
el2_resume:
    mov sp, x0
    add x2, sp, #{q}
    ldp q0, q1, [x2], #32
    ldp q2, q3, [x2], #32
    ldp q4, q5, [x2], #32
    ldp q6, q7, [x2], #32
    ldp q8, q9, [x2], #32
    ldp q10, q11, [x2], #32
    ldp q12, q13, [x2], #32
    ldp q14, q15, [x2], #32
    ldp q16, q17, [x2], #32
    ldp q18, q19, [x2], #32
    ldp q20, q21, [x2], #32
    ldp q22, q23, [x2], #32
    ldp q24, q25, [x2], #32
    ldp q26, q27, [x2], #32
    ldp q28, q29, [x2], #32
    ldp q30, q31, [x2], #32
    ldp x2, x3, [sp, #{fpsr}]
    msr fpsr, x2
    msr fpcr, x3
    ldp x30, x2, [sp, #240]
    msr elr_el2, x2
    ldr x2, [sp, #{elr} + 8]
    msr spsr_el2, x2
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
"#,
    frame_size = const frame::SIZE,
    elr = const frame::OFFSET_ELR,
    fpsr = const frame::OFFSET_FPSR,
    q = const frame::OFFSET_Q,
);

unsafe extern "C" {
    static el2_vectors: u8;
    fn el2_resume(frame: *mut Frame) -> !;
}

/// Which vector was taken, from its number (group * 4 + kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Synchronous exception from the guest (EL1/EL0, AArch64): hypercalls, stage-2 faults.
    GuestSync,
    /// Physical IRQ while the guest ran (`HCR_EL2.IMO` routes them here).
    GuestIrq,
    /// Anything else: a host bug, an SError, an AArch32 guest.
    Unexpected(u64),
}

/// Vector numbers of the "lower EL using AArch64" group.
const LOWER_AARCH64_SYNC: u64 = 8;
const LOWER_AARCH64_IRQ: u64 = 9;

impl Entry {
    fn from_number(number: u64) -> Self {
        match number {
            LOWER_AARCH64_SYNC => Self::GuestSync,
            LOWER_AARCH64_IRQ => Self::GuestIrq,
            other => Self::Unexpected(other),
        }
    }
}

/// Points `VBAR_EL2` at the vectors.
pub fn install() {
    super::sysreg::write_sysreg!("vbar_el2", &raw const el2_vectors as u64);
    super::sysreg::isb();
}

/// Enters the guest with the registers in `frame`, which must be the frame slot at the top
/// of the EL2 stack ([`super::boot::guest_frame`]); the host's own stack is abandoned.
pub fn enter_guest(frame: *mut Frame) -> ! {
    // SAFETY: `frame` is the reserved slot at the top of the EL2 stack holding a complete
    // guest context; `el2_resume` restores it and `eret`s with SP_EL2 back at the stack top.
    unsafe { el2_resume(frame) }
}

/// Called by every vector with the saved context; returning resumes `frame`.
#[unsafe(no_mangle)]
extern "C" fn el2_exception(frame: &mut Frame, number: u64) {
    crate::host::exception(frame, Entry::from_number(number));
}
