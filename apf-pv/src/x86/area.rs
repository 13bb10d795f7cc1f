//! The per-vCPU area KVM writes the async PF events into (`struct kvm_vcpu_pv_apf_data`).

use core::ptr;

/// What the protocol logic needs from the shared area: its two host-written fields.
///
/// A trait so that [`classify`](super::classify) and
/// [`take_ready_token`](super::take_ready_token) can be tested against a fake that records
/// the order of accesses.
pub trait SharedArea {
    /// The `flags` field: [`KVM_PV_REASON_PAGE_NOT_PRESENT`](super::KVM_PV_REASON_PAGE_NOT_PRESENT)
    /// while a not-present #PF has not been consumed.
    fn flags(&self) -> u32;
    /// Consumes the flags, so the next ordinary #PF is not mistaken for an async one.
    fn clear_flags(&mut self);
    /// The `token` field: the token of the pending page-ready, 0 if none.
    fn token(&self) -> u32;
    /// Frees the token slot: the host delivers the next page-ready only into an empty slot.
    fn clear_token(&mut self);
}

/// The shared area, laid out as the UAPI struct (68 bytes, 64-byte aligned).
///
/// Register its physical address with [`enable_value`](super::enable_value). The host
/// writes `flags` and `token` whenever this vCPU is outside guest mode, i.e. behind the
/// compiler's back like a device register, so every access is volatile.
#[repr(C, align(64))]
pub struct ApfArea {
    flags: u32,
    token: u32,
    /// Reserved by the UAPI; keeps `enabled` at its offset.
    pad: [u8; 56],
    /// Linux's private "async PF is on" flag; the host never touches it. Kept for the UAPI
    /// layout only.
    enabled: u32,
}

impl ApfArea {
    /// A zeroed area: no event pending. `const` so it can live in a `static`.
    pub const fn new() -> Self {
        Self {
            flags: 0,
            token: 0,
            pad: [0; 56],
            enabled: 0,
        }
    }
}

impl Default for ApfArea {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedArea for ApfArea {
    fn flags(&self) -> u32 {
        // SAFETY: the pointer comes from a live reference, so it is valid, aligned and
        // initialised; volatile because the host writes the field asynchronously.
        unsafe { ptr::read_volatile(&raw const self.flags) }
    }

    fn clear_flags(&mut self) {
        // SAFETY: the pointer comes from a live exclusive reference, so it is valid and
        // aligned; volatile so the store is not elided or deferred past the host's next write.
        unsafe { ptr::write_volatile(&raw mut self.flags, 0) }
    }

    fn token(&self) -> u32 {
        // SAFETY: as in `flags`.
        unsafe { ptr::read_volatile(&raw const self.token) }
    }

    fn clear_token(&mut self) {
        // SAFETY: as in `clear_flags`.
        unsafe { ptr::write_volatile(&raw mut self.token, 0) }
    }
}

/// The UAPI offsets the host relies on (flags 0, token 4, pad 8, enabled 64).
const _: () = {
    use core::mem::{align_of, offset_of};
    assert!(offset_of!(ApfArea, flags) == 0);
    assert!(offset_of!(ApfArea, token) == 4);
    assert!(offset_of!(ApfArea, pad) == 8);
    assert!(offset_of!(ApfArea, enabled) == 64);
    assert!(align_of::<ApfArea>() as u64 == super::KVM_ASYNC_PF_AREA_ALIGN);
};

#[cfg(test)]
mod tests {
    use super::{ApfArea, SharedArea};

    /// Stands in for the host, which stores into the fields without the guest's accessors.
    fn host_write(area: &mut ApfArea, flags: u32, token: u32) {
        area.flags = flags;
        area.token = token;
    }

    #[test]
    fn new_area_is_empty() {
        let area = ApfArea::new();
        assert_eq!((area.flags(), area.token()), (0, 0));
        assert_eq!(area.enabled, 0);
        assert!(area.pad.iter().all(|&b| b == 0));
    }

    #[test]
    fn accessors_see_and_clear_host_writes() {
        let mut area = ApfArea::default();
        host_write(&mut area, 1, 0x5001);
        assert_eq!((area.flags(), area.token()), (1, 0x5001));
        area.clear_flags();
        assert_eq!((area.flags(), area.token()), (0, 0x5001));
        area.clear_token();
        assert_eq!((area.flags(), area.token()), (0, 0));
    }

    #[test]
    fn area_is_aligned_for_the_en_msr() {
        let area = ApfArea::new();
        assert_eq!(&raw const area as usize % 64, 0);
    }
}
