//! Reading the two async PF events out of the shared area.

use super::abi::KVM_PV_REASON_PAGE_NOT_PRESENT;
use super::area::SharedArea;
use crate::waiters::Token;

/// What a #PF is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageFault {
    /// KVM's "page not present": the faulting task should wait for this token's page-ready.
    NotPresent(Token),
    /// A real page fault, for the ordinary handler.
    Ordinary,
}

/// Classifies a #PF from the area's flags and the faulting CR2; call it first in the #PF
/// handler, with interrupts off, before anything that could fault again.
///
/// The flags are consumed at once: the host sets them without checking they were
/// cleared, and a nested #PF must not see a stale "not present". They are cleared even
/// when already clear (an ordinary fault): the host writes them only while this vCPU is
/// outside guest mode, so the store races with nothing, and it spares every async PF a
/// test and a branch. The token is CR2's low 32 bits (KVM zero-extends it; the error code
/// is meaningless for async PF).
pub fn classify(area: &mut impl SharedArea, cr2: u64) -> PageFault {
    let flags = area.flags();
    area.clear_flags();
    if flags & KVM_PV_REASON_PAGE_NOT_PRESENT != 0 {
        PageFault::NotPresent(cr2 as Token)
    } else {
        PageFault::Ordinary
    }
}

/// Takes the token of a page-ready interrupt, freeing the slot; `None` if the slot is empty
/// (a spurious interrupt, nothing to acknowledge).
///
/// After waking the waiter(s), write [`ACK`](super::ACK) to
/// [`MSR_KVM_ASYNC_PF_ACK`](super::MSR_KVM_ASYNC_PF_ACK): the host injects the next
/// page-ready only once the slot is zero, which is why it is cleared here, before the ACK.
pub fn take_ready_token(area: &mut impl SharedArea) -> Option<Token> {
    let token = area.token();
    if token == 0 {
        return None;
    }
    area.clear_token();
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::{PageFault, SharedArea, classify, take_ready_token};
    use crate::waiters::BROADCAST;

    /// An area that logs every access, to check what was read and cleared, in which order.
    #[derive(Default)]
    struct FakeArea {
        flags: u32,
        token: u32,
        log: Vec<&'static str>,
    }

    impl SharedArea for FakeArea {
        fn flags(&self) -> u32 {
            self.flags
        }
        fn clear_flags(&mut self) {
            self.log.push("clear_flags");
            self.flags = 0;
        }
        fn token(&self) -> u32 {
            self.token
        }
        fn clear_token(&mut self) {
            self.log.push("clear_token");
            self.token = 0;
        }
    }

    fn area(flags: u32, token: u32) -> FakeArea {
        FakeArea {
            flags,
            token,
            log: Vec::new(),
        }
    }

    #[test]
    fn ordinary_fault_only_clears_the_clear_flags() {
        let mut a = area(0, 0x77);
        assert_eq!(classify(&mut a, 0xdead_b000), PageFault::Ordinary);
        assert_eq!(a.log, ["clear_flags"]);
        assert_eq!(
            a.token, 0x77,
            "the page-ready slot is not the #PF's business"
        );
    }

    #[test]
    fn not_present_is_consumed_and_carries_cr2() {
        let mut a = area(1, 0);
        assert_eq!(classify(&mut a, 0x0000_1001), PageFault::NotPresent(0x1001));
        assert_eq!(a.flags, 0);
        assert_eq!(a.log, ["clear_flags"]);
        // The flag is gone, so a following real fault is ordinary.
        assert_eq!(classify(&mut a, 0x4000), PageFault::Ordinary);
    }

    #[test]
    fn token_is_the_low_32_bits_of_cr2() {
        let mut a = area(1, 0);
        let cr2 = 0xffff_ffff_8000_2001;
        assert_eq!(classify(&mut a, cr2), PageFault::NotPresent(0x8000_2001));
    }

    #[test]
    fn unknown_flag_bits_are_consumed_but_ordinary() {
        let mut a = area(2, 0);
        assert_eq!(classify(&mut a, 0x1001), PageFault::Ordinary);
        assert_eq!(a.flags, 0);
    }

    #[test]
    fn ready_token_is_taken_once() {
        let mut a = area(0, 0x3001);
        assert_eq!(take_ready_token(&mut a), Some(0x3001));
        assert_eq!(a.token, 0);
        assert_eq!(a.log, ["clear_token"]);
        assert_eq!(take_ready_token(&mut a), None);
    }

    #[test]
    fn broadcast_token_is_passed_through() {
        let mut a = area(0, BROADCAST);
        assert_eq!(take_ready_token(&mut a), Some(BROADCAST));
        assert_eq!(a.token, 0);
    }

    #[test]
    fn spurious_interrupt_touches_nothing() {
        let mut a = area(1, 0);
        assert_eq!(take_ready_token(&mut a), None);
        assert!(a.log.is_empty());
        assert_eq!(
            a.flags, 1,
            "the not-present flag is the #PF handler's business"
        );
    }
}
