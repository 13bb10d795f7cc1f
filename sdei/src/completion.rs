//! How an SDEI handler ends (DEN 0054 §5.1.5–5.1.6; `arm64-apf-sdei-abi.md` §3.3).
//!
//! A handler ends with `EVENT_COMPLETE` (resume the interrupted context exactly) or
//! `EVENT_COMPLETE_AND_RESUME` (resume it through an exception vector, as if an exception
//! had been taken there). [`Completion`] is that choice as the two registers of the final
//! call, so a handler can return it and the entry trampoline can issue it.

use crate::function::{EVENT_COMPLETE, EVENT_COMPLETE_AND_RESUME};

/// `EVENT_COMPLETE` status argument (Linux `SDEI_EV_HANDLED` / `SDEI_EV_FAILED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum CompleteStatus {
    /// The event was handled.
    Handled = 0,
    /// The handler could not handle the event (KVM ignores the status).
    Failed = 1,
}

/// The final call of a handler: `x0` = function ID, `x1` = its argument.
///
/// `repr(C)` with two `u64`s, so an `extern "C"` handler returns it in `x0`/`x1` (AAPCS64
/// returns composites of up to 16 bytes in registers), exactly where the call needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Completion {
    pub function: u64,
    pub argument: u64,
}

/// `SPSR`/`PSTATE` bit 4 (M[4]): the interrupted context was AArch32 (Arm ARM, `SPSR_EL1`).
const PSTATE_AARCH32: u64 = 1 << 4;
/// `SPSR`/`PSTATE` bits 3:0 (M[3:0]): exception level and stack pointer selection.
const PSTATE_MODE_MASK: u64 = 0xf;
/// M[3:0] for EL0 (AArch64 `EL0t`, AArch32 User).
const MODE_EL0: u64 = 0b0000;
/// M[3:0] for EL1 using `SP_EL0`.
const MODE_EL1T: u64 = 0b0100;
/// M[3:0] for EL1 using `SP_EL1`.
const MODE_EL1H: u64 = 0b0101;
/// `PSTATE.I` (bit 7): IRQs masked.
const PSTATE_I: u64 = 1 << 7;

/// IRQ entry of the vector table for the current EL with `SP_EL0` (Arm ARM, "Vector
/// offsets from vector table base address").
pub const IRQ_CURRENT_EL_SP0: u64 = 0x080;
/// IRQ entry for the current EL with `SP_ELx`.
pub const IRQ_CURRENT_EL_SPX: u64 = 0x280;
/// IRQ entry for a lower EL running AArch64.
pub const IRQ_LOWER_EL_AARCH64: u64 = 0x480;
/// IRQ entry for a lower EL running AArch32.
pub const IRQ_LOWER_EL_AARCH32: u64 = 0x680;

impl Completion {
    /// `EVENT_COMPLETE` with `status`.
    pub const fn complete(status: CompleteStatus) -> Self {
        Self {
            function: EVENT_COMPLETE as u64,
            argument: status as u64,
        }
    }

    /// `EVENT_COMPLETE(Handled)`.
    pub const fn handled() -> Self {
        Self::complete(CompleteStatus::Handled)
    }

    /// `EVENT_COMPLETE(Failed)`.
    pub const fn failed() -> Self {
        Self::complete(CompleteStatus::Failed)
    }

    /// `EVENT_COMPLETE_AND_RESUME` at `address`: the interrupted PC and PSTATE go to
    /// `ELR_EL1`/`SPSR_EL1` and execution continues at `address` with DAIF masked.
    pub const fn resume_at(address: u64) -> Self {
        Self {
            function: EVENT_COMPLETE_AND_RESUME as u64,
            argument: address,
        }
    }

    /// A handled event's completion that lets an interrupt the handler made pending (e.g.
    /// a reschedule IPI to this PE) be taken at once, as Linux's SDEI glue does: resume
    /// through the IRQ vector matching the interrupted context, unless that context (at
    /// EL1) had IRQs masked, in which case it resumes exactly and takes the IRQ when it
    /// unmasks. `vbar` is `VBAR_EL1`. An interrupted EL0 always resumes through the vector.
    ///
    /// The IRQ vector must cope with "nothing pending" (KVM's SDEI series ignores the
    /// address and injects an IRQ exception itself, to the same vector).
    pub const fn after_handling(interrupted_pstate: u64, vbar: u64) -> Self {
        let offset = if interrupted_pstate & PSTATE_AARCH32 != 0 {
            // An EL1 client sees AArch32 only at EL0.
            IRQ_LOWER_EL_AARCH32
        } else {
            match interrupted_pstate & PSTATE_MODE_MASK {
                MODE_EL0 => IRQ_LOWER_EL_AARCH64,
                _ if interrupted_pstate & PSTATE_I != 0 => return Self::handled(),
                MODE_EL1T => IRQ_CURRENT_EL_SP0,
                MODE_EL1H => IRQ_CURRENT_EL_SPX,
                // Not a context an EL1 client can interrupt: resume it unchanged.
                _ => return Self::handled(),
            }
        };
        Self::resume_at(vbar + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VBAR: u64 = 0xffff_0000_0008_0000;
    /// `SPSR` values as KVM/TF-A report an interrupted context (DAIF bits 9:6).
    const EL1H_IRQS_ON: u64 = 0x5;
    const EL1H_IRQS_OFF: u64 = 0x3c5;
    const EL1T_IRQS_ON: u64 = 0x4;
    const EL0_AARCH64: u64 = 0x0;
    const EL0_AARCH32_USER: u64 = 0x10;

    #[test]
    fn complete_calls() {
        assert_eq!(
            Completion::handled(),
            Completion {
                function: 0xC400_0025,
                argument: 0
            }
        );
        assert_eq!(
            Completion::failed(),
            Completion {
                function: 0xC400_0025,
                argument: 1
            }
        );
        assert_eq!(
            Completion::resume_at(0x1234),
            Completion {
                function: 0xC400_0026,
                argument: 0x1234
            }
        );
    }

    #[test]
    fn is_two_registers() {
        assert_eq!(core::mem::size_of::<Completion>(), 16);
        assert_eq!(core::mem::offset_of!(Completion, argument), 8);
    }

    #[test]
    fn el1_with_irqs_masked_resumes_exactly() {
        assert_eq!(
            Completion::after_handling(EL1H_IRQS_OFF, VBAR),
            Completion::handled()
        );
        assert_eq!(
            Completion::after_handling(EL1T_IRQS_ON | PSTATE_I, VBAR),
            Completion::handled()
        );
    }

    #[test]
    fn el1_with_irqs_unmasked_resumes_through_the_current_el_irq_vector() {
        assert_eq!(
            Completion::after_handling(EL1H_IRQS_ON, VBAR),
            Completion::resume_at(VBAR + 0x280)
        );
        assert_eq!(
            Completion::after_handling(EL1T_IRQS_ON, VBAR),
            Completion::resume_at(VBAR + 0x080)
        );
    }

    #[test]
    fn el0_resumes_through_the_lower_el_irq_vector() {
        assert_eq!(
            Completion::after_handling(EL0_AARCH64, VBAR),
            Completion::resume_at(VBAR + 0x480)
        );
        assert_eq!(
            Completion::after_handling(EL0_AARCH32_USER, VBAR),
            Completion::resume_at(VBAR + 0x680)
        );
        assert_eq!(
            Completion::after_handling(EL0_AARCH64 | PSTATE_I, VBAR),
            Completion::resume_at(VBAR + 0x480)
        );
    }

    #[test]
    fn impossible_modes_resume_exactly() {
        // EL2h, as it would read if a misbehaving dispatcher reported it.
        assert_eq!(Completion::after_handling(0x9, VBAR), Completion::handled());
    }

    #[test]
    fn condition_flags_do_not_matter() {
        let nzcv = 0xf000_0000;
        assert_eq!(
            Completion::after_handling(EL1H_IRQS_ON | nzcv, VBAR),
            Completion::resume_at(VBAR + 0x280)
        );
    }
}
