//! The guest's writes to the async PF MSRs, checked as KVM checks them (x86 APF ABI spec
//! §2), plus two checks KVM does not make, because the VMM would otherwise deliver
//! page-ready on a vector that cannot work.

use apf_pv::x86::{
    KVM_ASYNC_PF_AREA_ALIGN, KVM_ASYNC_PF_DELIVERY_AS_INT, KVM_ASYNC_PF_ENABLED,
    KVM_ASYNC_PF_RESERVED_MASK,
};

/// Bits of `MSR_KVM_ASYNC_PF_INT` that hold the vector; the rest are reserved.
const INT_VECTOR_MASK: u64 = 0xff;
/// Vectors below this are the CPU's exceptions: an interrupt there is not a page-ready.
pub const FIRST_INTERRUPT_VECTOR: u8 = 32;
/// KVM maps this much of the area (`flags` and `token`).
pub const AREA_USED_BYTES: u64 = 8;

/// Why a write is refused; the guest gets a #GP, as from KVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("reserved bits 5:4 of MSR_KVM_ASYNC_PF_EN are set in {0:#x}")]
    EnReservedBits(u64),
    #[error("the async PF area at {0:#x} is not guest RAM")]
    AreaNotRam(u64),
    #[error("the async PF area at {0:#x} is in lazy memory, which the VMM cannot write at once")]
    AreaInLazyMemory(u64),
    #[error("async PF enabled before MSR_KVM_ASYNC_PF_INT set a vector (KVM would use vector 0)")]
    NoVector,
    #[error("reserved bits 63:8 of MSR_KVM_ASYNC_PF_INT are set in {0:#x}")]
    IntReservedBits(u64),
    #[error("page-ready vector {0} is an exception vector (below 32)")]
    ExceptionVector(u8),
}

impl Refused {
    /// Whether KVM itself refuses the same write; the others are this VMM's stricter rules.
    pub fn kvm_refuses_too(self) -> bool {
        matches!(
            self,
            Refused::EnReservedBits(_) | Refused::AreaNotRam(_) | Refused::IntReservedBits(_)
        )
    }
}

/// Where a guest-physical range lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Ram,
    /// RAM whose pages the lazy memory server supplies: the VMM's own write there would
    /// wait for a fetch while holding the async PF state.
    LazyRam,
    NotRam,
}

/// What an accepted `MSR_KVM_ASYNC_PF_EN` value asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enable {
    /// Async PF on, with the area at this guest-physical address.
    On { area: u64 },
    /// Off: ENABLED or DELIVERY_AS_INT is clear (without interrupt delivery, KVM sends
    /// nothing, so this is off too).
    Off,
}

/// Checks a write of `value` to `MSR_KVM_ASYNC_PF_EN`. `vector` is the page-ready vector
/// set so far; `place` says where a guest-physical range (start, length) lies.
pub fn check_enable(
    value: u64,
    vector: Option<u8>,
    place: impl Fn(u64, u64) -> Place,
) -> Result<Enable, Refused> {
    if value & KVM_ASYNC_PF_RESERVED_MASK != 0 {
        return Err(Refused::EnReservedBits(value));
    }
    let on = KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_DELIVERY_AS_INT;
    if value & on != on {
        return Ok(Enable::Off);
    }
    let area = value & !(KVM_ASYNC_PF_AREA_ALIGN - 1);
    match place(area, AREA_USED_BYTES) {
        Place::Ram => {}
        Place::LazyRam => return Err(Refused::AreaInLazyMemory(area)),
        Place::NotRam => return Err(Refused::AreaNotRam(area)),
    }
    if vector.is_none() {
        return Err(Refused::NoVector);
    }
    Ok(Enable::On { area })
}

/// Checks a write of `value` to `MSR_KVM_ASYNC_PF_INT` and gives the vector.
pub fn check_vector(value: u64) -> Result<u8, Refused> {
    let vector = u8::try_from(value & INT_VECTOR_MASK).expect("masked to 8 bits");
    if value & !INT_VECTOR_MASK != 0 {
        return Err(Refused::IntReservedBits(value));
    }
    if vector < FIRST_INTERRUPT_VECTOR {
        return Err(Refused::ExceptionVector(vector));
    }
    Ok(vector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apf_pv::x86::{KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT, KVM_ASYNC_PF_SEND_ALWAYS};

    const AREA: u64 = 0x1_2340;
    const ON: u64 = KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_DELIVERY_AS_INT;

    /// RAM below 1 MiB, lazy from 512 KiB.
    fn below_1m(gpa: u64, len: u64) -> Place {
        match gpa + len {
            end if end > 1 << 20 => Place::NotRam,
            end if end > 512 << 10 => Place::LazyRam,
            _ => Place::Ram,
        }
    }

    #[test]
    fn enabling_gives_the_area() {
        assert_eq!(
            check_enable(AREA | ON, Some(0xf3), below_1m),
            Ok(Enable::On { area: AREA })
        );
        // SEND_ALWAYS and DELIVERY_AS_PF_VMEXIT are accepted, as KVM does.
        let extra = KVM_ASYNC_PF_SEND_ALWAYS | KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT;
        assert_eq!(
            check_enable(AREA | ON | extra, Some(0xf3), below_1m),
            Ok(Enable::On { area: AREA })
        );
    }

    #[test]
    fn without_both_enable_bits_it_is_off() {
        for value in [
            0,
            AREA | KVM_ASYNC_PF_ENABLED,
            AREA | KVM_ASYNC_PF_DELIVERY_AS_INT,
        ] {
            assert_eq!(check_enable(value, None, below_1m), Ok(Enable::Off));
        }
    }

    #[test]
    fn reserved_bits_and_areas_outside_ram_are_refused_as_kvm_does() {
        for bits in [0x10, 0x20, 0x30] {
            let refused = check_enable(AREA | ON | bits, Some(0xf3), below_1m).unwrap_err();
            assert_eq!(refused, Refused::EnReservedBits(AREA | ON | bits));
            assert!(refused.kvm_refuses_too());
            // Even when disabling: KVM checks the bits first.
            assert!(check_enable(bits, None, below_1m).is_err());
        }
        let outside = 1 << 20;
        let refused = check_enable(outside | ON, Some(0xf3), below_1m).unwrap_err();
        assert_eq!(refused, Refused::AreaNotRam(outside));
        assert!(refused.kvm_refuses_too());
    }

    #[test]
    fn areas_in_lazy_memory_are_refused_here_only() {
        let lazy = 600 << 10;
        let refused = check_enable(lazy | ON, Some(0xf3), below_1m).unwrap_err();
        assert_eq!(refused, Refused::AreaInLazyMemory(lazy));
        assert!(!refused.kvm_refuses_too());
    }

    #[test]
    fn enabling_before_the_vector_is_refused_here_only() {
        let refused = check_enable(AREA | ON, None, below_1m).unwrap_err();
        assert_eq!(refused, Refused::NoVector);
        assert!(!refused.kvm_refuses_too());
    }

    #[test]
    fn vectors() {
        assert_eq!(check_vector(0xf3), Ok(0xf3));
        assert_eq!(check_vector(32), Ok(32));
        assert_eq!(check_vector(0x1f3), Err(Refused::IntReservedBits(0x1f3)));
        assert!(Refused::IntReservedBits(0x1f3).kvm_refuses_too());
        for vector in [0, 14, 31] {
            let refused = check_vector(vector).unwrap_err();
            assert_eq!(refused, Refused::ExceptionVector(vector as u8));
            assert!(!refused.kvm_refuses_too());
        }
    }
}
