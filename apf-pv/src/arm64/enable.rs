//! The `ASYNC_PF_ENABLE` value (§2.2): the control block's GPA and two flags.

use super::abi::{
    ENABLE_LOW_BITS, KVM_ASYNC_PF_AREA_ALIGN, KVM_ASYNC_PF_DISABLED, KVM_ASYNC_PF_ENABLED,
    KVM_ASYNC_PF_SEND_ALWAYS,
};
/// The same error as on x86: both ABIs keep flags in the low 6 bits of the GPA.
pub use crate::x86::Misaligned;

const _: () = assert!(KVM_ASYNC_PF_AREA_ALIGN == crate::x86::KVM_ASYNC_PF_AREA_ALIGN);

/// A value for `ASYNC_PF_ENABLE`: `GPA[63:6] | SEND_ALWAYS | ENABLED`, or 0 to disable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnableValue(u64);

impl EnableValue {
    /// Turns async PF off: the host drops its completion queue and sends nothing more,
    /// so the guest must release its own waiters.
    pub const DISABLED: Self = Self(KVM_ASYNC_PF_DISABLED);

    /// Enables async PF with the control block at guest-physical `block_gpa`.
    ///
    /// `send_always` asks for not-present also while the vCPU is at EL1; without it the
    /// host sends it only for EL0 faults, so a kernel running everything at EL1 needs it
    /// (§2.9). Gavin Shan called EL1 delivery unsafe and meant to drop the flag.
    pub const fn new(block_gpa: u64, send_always: bool) -> Result<Self, Misaligned> {
        if block_gpa & (KVM_ASYNC_PF_AREA_ALIGN - 1) != 0 {
            return Err(Misaligned { gpa: block_gpa });
        }
        let send_always = if send_always {
            KVM_ASYNC_PF_SEND_ALWAYS
        } else {
            0
        };
        Ok(Self(block_gpa | send_always | KVM_ASYNC_PF_ENABLED))
    }

    /// The whole value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The value as the call passes it: bits 31:0 in `x2`, bits 63:32 in `x3` (the call is
    /// SMC32, whose arguments are 32 bits wide).
    pub const fn registers(self) -> [u64; 2] {
        let low_mask = (1 << ENABLE_LOW_BITS) - 1;
        [self.0 & low_mask, self.0 >> ENABLE_LOW_BITS]
    }
}

#[cfg(test)]
mod tests {
    use super::{EnableValue, Misaligned};

    #[test]
    fn user_only_and_send_always() {
        assert_eq!(
            EnableValue::new(0x4010_0040, false).unwrap().raw(),
            0x4010_0041
        );
        assert_eq!(
            EnableValue::new(0x4010_0040, true).unwrap().raw(),
            0x4010_0043
        );
    }

    #[test]
    fn split_over_x2_and_x3() {
        let value = EnableValue::new(0x0000_0012_3456_7880, true).unwrap();
        assert_eq!(value.registers(), [0x3456_7883, 0x12]);
        let low_only = EnableValue::new(0x8000_0000, false).unwrap();
        assert_eq!(low_only.registers(), [0x8000_0001, 0]);
    }

    #[test]
    fn disabled_is_all_zero() {
        assert_eq!(EnableValue::DISABLED.raw(), 0);
        assert_eq!(EnableValue::DISABLED.registers(), [0, 0]);
    }

    #[test]
    fn misaligned_is_refused() {
        for gpa in [0x1001, 0x1002, 0x1020, 0x103f] {
            assert_eq!(EnableValue::new(gpa, true), Err(Misaligned { gpa }));
        }
    }
}
