//! The guest's async PF control block as the host writes it (`arm64-apf-sdei-abi.md` §2.3):
//! `reason` (u32 at 0) and `token` (u32 at 4) of one notification slot; the host writes the
//! token first, and sends nothing while either field is non-zero.

use apf_pv::arm64::{KVM_PV_REASON_NONE, KVM_PV_REASON_PAGE_NOT_PRESENT, KVM_PV_REASON_PAGE_READY};

/// Offsets of the slot's fields.
const REASON: u64 = 0;
const TOKEN: u64 = 4;

/// The slot at a guest-physical address checked at enable (`GuestMemory::is_plain_ram`).
pub struct ControlBlock(u64);

/// Which notification to write.
#[derive(Clone, Copy)]
pub enum Notification {
    NotPresent,
    PageReady,
}

impl ControlBlock {
    pub fn at(gpa: u64) -> Self {
        Self(gpa)
    }

    fn field(&self, offset: u64) -> *mut u32 {
        (self.0 + offset) as *mut u32
    }

    /// Whether the guest consumed the last notification (both fields zero).
    pub fn is_free(&self) -> bool {
        // SAFETY: the block lies in mapped, non-lazy guest RAM (checked at enable), 64-byte
        // aligned; the guest is stopped while the host runs, so the reads do not race.
        unsafe {
            self.field(REASON).read_volatile() == KVM_PV_REASON_NONE
                && self.field(TOKEN).read_volatile() == 0
        }
    }

    /// Writes `token`, then the reason.
    pub fn write(&self, notification: Notification, token: u32) {
        let reason = match notification {
            Notification::NotPresent => KVM_PV_REASON_PAGE_NOT_PRESENT,
            Notification::PageReady => KVM_PV_REASON_PAGE_READY,
        };
        // SAFETY: as in `is_free`.
        unsafe {
            self.field(TOKEN).write_volatile(token);
            self.field(REASON).write_volatile(reason);
        }
    }
}
