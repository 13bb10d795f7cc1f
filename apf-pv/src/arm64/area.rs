//! The per-vCPU control block the host writes notifications into (v4
//! `struct kvm_vcpu_pv_apf_data`, §2.3).
//!
//! Unlike x86, one (`reason`, `token`) slot carries both kinds of notification: the host
//! writes `token`, then `reason`, and sends nothing new (of either kind) until the guest
//! has zeroed both.

use super::abi::KVM_ASYNC_PF_AREA_ALIGN;
use core::ptr;

/// What the protocol logic needs from the control block: the notification slot.
///
/// A trait so that [`take_not_present`](super::take_not_present) and
/// [`take_page_ready`](super::take_page_ready) can be tested against a fake that records
/// the order of accesses.
pub trait Slot {
    /// The `reason` field: [`KVM_PV_REASON_NONE`](super::KVM_PV_REASON_NONE) or the kind of
    /// the pending notification.
    fn reason(&self) -> u32;
    /// The `token` field: the token of the pending notification (0 is a valid token).
    fn token(&self) -> u32;
    /// Zeroes `token` and `reason`, freeing the slot for the next notification.
    fn clear(&mut self);
}

/// The control block, laid out as v4's struct (68 bytes, 64-byte aligned).
///
/// Register its physical address with [`EnableValue`](super::EnableValue). The host
/// writes `reason` and `token` while this vCPU is outside the guest, i.e. behind the
/// compiler's back like a device register, so every access is volatile. No barrier is
/// needed: host and guest take turns on the same vCPU, and the `hvc` that ends a turn
/// (e.g. `IRQ_ACK`) is a compiler barrier and a trap.
#[repr(C, align(64))]
pub struct ControlBlock {
    reason: u32,
    token: u32,
    /// Reserved; keeps `enabled` at its offset.
    pad: [u8; 56],
    /// Linux's private "async PF is on" flag; the host never touches it. Kept for the
    /// layout only.
    enabled: u32,
}

impl ControlBlock {
    /// A zeroed block: the slot is free. `const` so it can live in a `static`.
    pub const fn new() -> Self {
        Self {
            reason: 0,
            token: 0,
            pad: [0; 56],
            enabled: 0,
        }
    }
}

impl Default for ControlBlock {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot for ControlBlock {
    fn reason(&self) -> u32 {
        // SAFETY: the pointer comes from a live reference, so it is valid, aligned and
        // initialised; volatile because the host writes the field asynchronously.
        unsafe { ptr::read_volatile(&raw const self.reason) }
    }

    fn token(&self) -> u32 {
        // SAFETY: as in `reason`.
        unsafe { ptr::read_volatile(&raw const self.token) }
    }

    fn clear(&mut self) {
        // SAFETY: the pointers come from a live exclusive reference, so they are valid and
        // aligned; volatile so the stores are neither elided nor merged nor deferred past
        // the next hypercall. Token first: the host writes it first, so the slot reads as
        // busy (reason set) until both are zero.
        unsafe {
            ptr::write_volatile(&raw mut self.token, 0);
            ptr::write_volatile(&raw mut self.reason, 0);
        }
    }
}

/// The offsets the host relies on (reason 0, token 4, pad 8, enabled 64; size 68 padded
/// to the 64-byte alignment the enable value needs).
const _: () = {
    use core::mem::{align_of, offset_of};
    assert!(offset_of!(ControlBlock, reason) == 0);
    assert!(offset_of!(ControlBlock, token) == 4);
    assert!(offset_of!(ControlBlock, pad) == 8);
    assert!(offset_of!(ControlBlock, enabled) == 64);
    assert!(align_of::<ControlBlock>() as u64 == KVM_ASYNC_PF_AREA_ALIGN);
};

#[cfg(test)]
mod tests {
    use super::{ControlBlock, Slot};

    /// Stands in for the host, which stores into the fields without the guest's accessors.
    fn host_write(block: &mut ControlBlock, reason: u32, token: u32) {
        block.token = token;
        block.reason = reason;
    }

    #[test]
    fn new_block_is_free() {
        let block = ControlBlock::new();
        assert_eq!((block.reason(), block.token()), (0, 0));
        assert_eq!(block.enabled, 0);
        assert!(block.pad.iter().all(|&b| b == 0));
    }

    #[test]
    fn accessors_see_and_clear_host_writes() {
        let mut block = ControlBlock::default();
        host_write(&mut block, 2, 0x5001);
        assert_eq!((block.reason(), block.token()), (2, 0x5001));
        block.clear();
        assert_eq!((block.reason(), block.token()), (0, 0));
    }

    #[test]
    fn block_is_aligned_for_the_enable_value() {
        let block = ControlBlock::new();
        assert_eq!(&raw const block as usize % 64, 0);
    }
}
