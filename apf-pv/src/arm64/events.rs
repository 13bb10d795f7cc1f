//! Consuming the two notifications from the control block's slot (§2.5, §2.6).

use super::abi::{KVM_PV_REASON_PAGE_NOT_PRESENT, KVM_PV_REASON_PAGE_READY};
use super::area::Slot;
use crate::waiters::Token;

/// In the async PF SDEI handler: the token of the page the interrupted task faulted on,
/// freeing the slot; `None` if the slot does not hold a not-present (then leave the slot
/// alone and complete the event as failed: the task simply re-faults).
///
/// Token 0 is valid (v4's first token on vCPU 0). The handler must not block in place:
/// record "this task waits for the token" and switch at the next IRQ-enabled point.
pub fn take_not_present(slot: &mut impl Slot) -> Option<Token> {
    take(slot, KVM_PV_REASON_PAGE_NOT_PRESENT)
}

/// In the page-ready PPI handler: the token whose page is ready (the broadcast
/// [`BROADCAST`](crate::waiters::BROADCAST) wakes every waiter of this CPU), freeing the
/// slot; `None` if the slot holds no page-ready.
///
/// Either way, send `ASYNC_PF_IRQ_ACK` afterwards ([`Apf::irq_ack`](super::Apf::irq_ack)):
/// the PPI is level-triggered and stays high until acknowledged, and the host writes the
/// next page-ready only into a free slot, which is why this clears it first. Acknowledging
/// with a busy slot is harmless: the host then holds the next page-ready back. A token
/// nobody waits for is normal (its not-present was never delivered) and must be ignored.
pub fn take_page_ready(slot: &mut impl Slot) -> Option<Token> {
    take(slot, KVM_PV_REASON_PAGE_READY)
}

/// The slot's token if it holds a notification of kind `reason`, clearing it.
fn take(slot: &mut impl Slot, reason: u32) -> Option<Token> {
    if slot.reason() != reason {
        return None;
    }
    let token = slot.token();
    slot.clear();
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::{Slot, take_not_present, take_page_ready};
    use crate::waiters::BROADCAST;

    /// A slot that logs every access, to check what was read and cleared, in which order.
    #[derive(Default)]
    struct FakeSlot {
        reason: u32,
        token: u32,
        log: Vec<&'static str>,
    }

    impl Slot for FakeSlot {
        fn reason(&self) -> u32 {
            self.reason
        }
        fn token(&self) -> u32 {
            self.token
        }
        fn clear(&mut self) {
            self.log.push("clear");
            (self.reason, self.token) = (0, 0);
        }
    }

    fn slot(reason: u32, token: u32) -> FakeSlot {
        FakeSlot {
            reason,
            token,
            log: Vec::new(),
        }
    }

    #[test]
    fn not_present_is_taken_once() {
        let mut s = slot(1, 0x3001);
        assert_eq!(take_not_present(&mut s), Some(0x3001));
        assert_eq!((s.reason, s.token), (0, 0));
        assert_eq!(s.log, ["clear"]);
        assert_eq!(take_not_present(&mut s), None);
        assert_eq!(s.log, ["clear"]);
    }

    #[test]
    fn token_zero_is_a_token() {
        let mut s = slot(1, 0);
        assert_eq!(take_not_present(&mut s), Some(0));
        let mut s = slot(2, 0);
        assert_eq!(take_page_ready(&mut s), Some(0));
    }

    #[test]
    fn page_ready_is_taken_once() {
        let mut s = slot(2, 0x1000);
        assert_eq!(take_page_ready(&mut s), Some(0x1000));
        assert_eq!((s.reason, s.token), (0, 0));
        assert_eq!(take_page_ready(&mut s), None);
    }

    #[test]
    fn broadcast_is_passed_through() {
        let mut s = slot(2, BROADCAST);
        assert_eq!(take_page_ready(&mut s), Some(BROADCAST));
    }

    #[test]
    fn the_other_kind_is_left_alone() {
        let mut s = slot(2, 0x77);
        assert_eq!(take_not_present(&mut s), None);
        assert_eq!((s.reason, s.token), (2, 0x77));
        let mut s = slot(1, 0x77);
        assert_eq!(take_page_ready(&mut s), None);
        assert_eq!((s.reason, s.token), (1, 0x77));
        assert!(s.log.is_empty());
    }

    #[test]
    fn free_or_unknown_slot_is_left_alone() {
        for reason in [0, 3] {
            let mut s = slot(reason, 5);
            assert_eq!(take_not_present(&mut s), None);
            assert_eq!(take_page_ready(&mut s), None);
            assert_eq!((s.reason, s.token), (reason, 5));
        }
    }
}
