//! The SDEI entry point: saves what a Rust handler may clobber that the dispatcher does
//! not restore, calls the handler, and issues the completion it returns.
//!
//! On entry (DEN 0054; `arm64-apf-sdei-abi.md` §3.3) the PE runs at EL1 on `SP_EL1` with
//! DAIF masked, `x0` = event number, `x1` = registration argument, `x2` = interrupted PC,
//! `x3` = interrupted PSTATE. The dispatcher saved `x0..x17`, PC and PSTATE of the
//! interrupted context and restores them on completion; everything else is the handler's
//! to preserve. An `extern "C"` Rust function preserves `x19..x29`, `SP` and the low
//! halves of `v8..v15`, but may change `x18` (a temporary on `aarch64-unknown-none`),
//! `x30`, all of `v0..v31`, `FPSR` and `FPCR`: the trampoline saves exactly those.
//!
//! The registration argument is the [`Handler`] to call, so one trampoline serves every
//! event. Preconditions: FP/SIMD access is enabled at EL1 (`CPACR_EL1.FPEN`), and
//! `SP_EL1` at the interruption point is a valid 16-byte aligned stack with room for
//! [`FRAME_SIZE`] bytes plus the handler's needs. When EL1h code is interrupted the
//! frame goes below its live stack, which is safe because AArch64 code has no red zone.

use crate::client::Sdei;
use crate::completion::Completion;
use crate::error::SdeiError;
use crate::event::{EventNumber, Routing};
use crate::smccc::Conduit;
use core::arch::naked_asm;

/// A Rust SDEI handler, called with the event number and the interrupted PC and PSTATE
/// (e.g. for [`Completion::after_handling`]); returns how the event completes.
///
/// It runs with DAIF masked, possibly interrupting code that holds locks or has IRQs
/// masked, and must not fault: a synchronous exception would overwrite `ELR_EL1` and
/// `SPSR_EL1`, which the interrupted context may still need.
pub type Handler =
    extern "C" fn(event: EventNumber, interrupted_pc: u64, interrupted_pstate: u64) -> Completion;

/// The `brk` immediate the trampoline hits if the completion call returns, i.e. the
/// dispatcher refused it (then `ESR_EL1.ISS` holds this and `x0` the SDEI error code).
pub const COMPLETE_FAILED_BRK: u16 = 0x5de1;

/// Size of a saved general-purpose register pair (`x18`, `x30`) or of `FPSR` + `FPCR`.
const PAIR_SIZE: usize = 16;
/// Size of `q0..q31`.
const Q_REGISTERS_SIZE: usize = 32 * 16;
/// Offset of `FPSR`/`FPCR` in the frame; `x18`/`x30` are at 0.
const FP_CONTROL_OFFSET: usize = PAIR_SIZE;
/// Offset of `q0..q31` in the frame.
const Q_OFFSET: usize = FP_CONTROL_OFFSET + PAIR_SIZE;
/// Bytes the trampoline pushes on `SP_EL1`.
pub const FRAME_SIZE: usize = Q_OFFSET + Q_REGISTERS_SIZE;

const _: () = assert!(
    FRAME_SIZE.is_multiple_of(16),
    "SP must stay 16-byte aligned"
);

/// The address to register as the entry point, with a [`Handler`] as the argument.
pub fn entry_point() -> u64 {
    sdei_entry as *const () as u64
}

/// `EVENT_REGISTER` of `event` so that dispatching it calls `handler` through the
/// trampoline; enable it afterwards.
pub fn register_handler<C: Conduit>(
    sdei: &Sdei<C>,
    event: EventNumber,
    handler: Handler,
    routing: Routing,
) -> Result<(), SdeiError> {
    sdei.register(event, entry_point(), handler as usize as u64, routing)
}

/// The trampoline. Never called from Rust: the SDEI dispatcher enters it (see the module
/// documentation for the register state) and it leaves through `EVENT_COMPLETE` or
/// `EVENT_COMPLETE_AND_RESUME`, which restore the interrupted context.
///
/// After the handler returns, `x0`/`x1` hold its [`Completion`] (function ID and
/// argument), already where the `hvc` needs them; the restore code uses only `x9`/`x10`,
/// which the dispatcher restores along with `x0..x17`.
// SAFETY: a naked function is required: the dispatcher's register state is not a Rust
// calling convention, so no compiler-generated prologue may run first. The body is the
// whole function and never returns to a caller.
#[unsafe(naked)]
unsafe extern "C" fn sdei_entry() -> ! {
    naked_asm!(
        "sub sp, sp, #{frame}",
        "stp x18, x30, [sp]",
        "mrs x9, fpsr",
        "mrs x10, fpcr",
        "stp x9, x10, [sp, #{fp_control}]",
        "add x9, sp, #{q}",
        "stp q0, q1, [x9], #32",
        "stp q2, q3, [x9], #32",
        "stp q4, q5, [x9], #32",
        "stp q6, q7, [x9], #32",
        "stp q8, q9, [x9], #32",
        "stp q10, q11, [x9], #32",
        "stp q12, q13, [x9], #32",
        "stp q14, q15, [x9], #32",
        "stp q16, q17, [x9], #32",
        "stp q18, q19, [x9], #32",
        "stp q20, q21, [x9], #32",
        "stp q22, q23, [x9], #32",
        "stp q24, q25, [x9], #32",
        "stp q26, q27, [x9], #32",
        "stp q28, q29, [x9], #32",
        "stp q30, q31, [x9], #32",
        // handler(event = x0, interrupted PC = x2, interrupted PSTATE = x3); x1 is the
        // registration argument, i.e. the handler.
        "mov x9, x1",
        "mov x1, x2",
        "mov x2, x3",
        "blr x9",
        "add x9, sp, #{q}",
        "ldp q0, q1, [x9], #32",
        "ldp q2, q3, [x9], #32",
        "ldp q4, q5, [x9], #32",
        "ldp q6, q7, [x9], #32",
        "ldp q8, q9, [x9], #32",
        "ldp q10, q11, [x9], #32",
        "ldp q12, q13, [x9], #32",
        "ldp q14, q15, [x9], #32",
        "ldp q16, q17, [x9], #32",
        "ldp q18, q19, [x9], #32",
        "ldp q20, q21, [x9], #32",
        "ldp q22, q23, [x9], #32",
        "ldp q24, q25, [x9], #32",
        "ldp q26, q27, [x9], #32",
        "ldp q28, q29, [x9], #32",
        "ldp q30, q31, [x9], #32",
        "ldp x9, x10, [sp, #{fp_control}]",
        "msr fpsr, x9",
        "msr fpcr, x10",
        "ldp x18, x30, [sp]",
        "add sp, sp, #{frame}",
        // x0 = EVENT_COMPLETE or EVENT_COMPLETE_AND_RESUME, x1 = status or address.
        "hvc #0",
        "brk #{complete_failed}",
        frame = const FRAME_SIZE,
        fp_control = const FP_CONTROL_OFFSET,
        q = const Q_OFFSET,
        complete_failed = const COMPLETE_FAILED_BRK,
    )
}
