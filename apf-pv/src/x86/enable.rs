//! The value written to `MSR_KVM_ASYNC_PF_EN` to turn async PF on.

use super::abi::{
    KVM_ASYNC_PF_AREA_ALIGN, KVM_ASYNC_PF_DELIVERY_AS_INT, KVM_ASYNC_PF_ENABLED,
    KVM_ASYNC_PF_SEND_ALWAYS,
};
use core::fmt;

/// The shared area's address is not 64-byte aligned: its low bits would be read as flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Misaligned {
    /// The offending guest-physical address.
    pub gpa: u64,
}

impl fmt::Display for Misaligned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "async PF area at {:#x} is not {KVM_ASYNC_PF_AREA_ALIGN}-byte aligned",
            self.gpa
        )
    }
}

/// The EN value registering the area at guest-physical `area_gpa`, with page-ready by
/// interrupt (without it the host delivers nothing).
///
/// `send_always` asks for not-present also when the fault happens at CPL0; without it the
/// host handles kernel-mode faults with the halt fallback only.
pub fn enable_value(area_gpa: u64, send_always: bool) -> Result<u64, Misaligned> {
    if area_gpa & (KVM_ASYNC_PF_AREA_ALIGN - 1) != 0 {
        return Err(Misaligned { gpa: area_gpa });
    }
    let send_always = if send_always {
        KVM_ASYNC_PF_SEND_ALWAYS
    } else {
        0
    };
    Ok(area_gpa | KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_DELIVERY_AS_INT | send_always)
}

#[cfg(test)]
mod tests {
    use super::{Misaligned, enable_value};
    use crate::x86::{KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT, KVM_ASYNC_PF_RESERVED_MASK};

    #[test]
    fn user_only() {
        assert_eq!(enable_value(0x12_3440, false), Ok(0x12_3440 | 0b1001));
    }

    #[test]
    fn send_always() {
        assert_eq!(enable_value(0x12_3440, true), Ok(0x12_3440 | 0b1011));
    }

    #[test]
    fn high_address_is_kept() {
        let gpa = 0xffff_ffff_ffc0;
        assert_eq!(enable_value(gpa, true), Ok(gpa | 0b1011));
    }

    #[test]
    fn never_sets_reserved_or_vmexit_bits() {
        for send_always in [false, true] {
            let value = enable_value(0x1000, send_always).unwrap();
            assert_eq!(value & KVM_ASYNC_PF_RESERVED_MASK, 0);
            assert_eq!(value & KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT, 0);
        }
    }

    #[test]
    fn misaligned_is_refused() {
        for gpa in [0x1001, 0x1020, 0x103f, 0x1004] {
            assert_eq!(enable_value(gpa, false), Err(Misaligned { gpa }));
        }
        assert!(Misaligned { gpa: 0x1020 }.to_string().contains("0x1020"));
    }
}
