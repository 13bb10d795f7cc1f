//! The host side of the v4 async PF protocol (`arm64-apf-sdei-abi.md` §2): the `0x86000002`
//! sub-functions, which faults may become "page not present", and the page-ready queue.
//! The guest's control block and the GIC are the arch side's; this decides what to write.

mod ready_queue;
mod tokens;

pub use ready_queue::ReadyQueue;
pub use tokens::{Fetch, Outstanding, SLOTS};

use apf_pv::arm64::{
    ASYNC_PF_ENABLE, ASYNC_PF_IRQ, ASYNC_PF_IRQ_ACK, ASYNC_PF_SDEI, ASYNC_PF_SLOTS,
    ASYNC_PF_VERSION, ASYNC_PF_VERSION_1_0, KVM_ASYNC_PF_AREA_ALIGN, KVM_ASYNC_PF_ENABLED,
    KVM_ASYNC_PF_SEND_ALWAYS, KVM_SDEI_ASYNC_PF_NUM,
};
use sdei::smccc::{INVALID_PARAMETER, NOT_REQUIRED, NOT_SUPPORTED, SUCCESS};

/// The SDEI event of "page not present": v4's `KVM_SDEI_ASYNC_PF_NUM`.
pub const SDEI_EVENT: u32 = KVM_SDEI_ASYNC_PF_NUM;
/// The PPI of "page ready": INTID 22 (PPI 6), which QEMU's `virt` leaves unused (its PPIs
/// are 23 PMU, 25 GIC maintenance, 26-30 timers). v4 left the number to the VMM.
pub const PAGE_READY_INTID: u32 = 22;
/// The page-ready token that wakes every waiter of the vCPU, sent after each enable.
pub const BROADCAST: u32 = u32::MAX;
/// `ENABLE` takes the value's bits 31:0 in `x2` and 63:32 in `x3`.
const ENABLE_HIGH_SHIFT: u32 = 32;
const LOW_32_BITS: u64 = 0xffff_ffff;

/// An enabled guest's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// Guest-physical address of the control block (64-byte aligned).
    pub block: u64,
    /// Not-present may interrupt EL1 too.
    pub send_always: bool,
}

/// A sub-function's answer: SMCCC status in `x0`, value in `x1`.
pub type Answer = (i64, u64);

/// Async PF state of the one vCPU.
#[derive(Default)]
pub struct AsyncPf {
    control: Option<Control>,
    pub fetches: Outstanding,
    ready: ReadyQueue,
    /// A page-ready was sent and not yet acknowledged: the PPI line is "high".
    page_ready_pending: bool,
}

impl AsyncPf {
    pub fn control(&self) -> Option<Control> {
        self.control
    }

    pub fn page_ready_pending(&self) -> bool {
        self.page_ready_pending
    }

    /// Handles sub-function `sub` with arguments `x2`, `x3`. `is_ram(gpa)` tells whether a
    /// control block may live at `gpa` (the host writes it directly).
    pub fn call(&mut self, sub: u64, x2: u64, x3: u64, is_ram: impl Fn(u64) -> bool) -> Answer {
        match sub {
            ASYNC_PF_VERSION => (SUCCESS, ASYNC_PF_VERSION_1_0),
            ASYNC_PF_SLOTS => (SUCCESS, SLOTS as u64),
            ASYNC_PF_SDEI => (SUCCESS, u64::from(SDEI_EVENT)),
            ASYNC_PF_IRQ => (SUCCESS, u64::from(PAGE_READY_INTID)),
            ASYNC_PF_ENABLE => {
                let value = (x2 & LOW_32_BITS) | ((x3 & LOW_32_BITS) << ENABLE_HIGH_SHIFT);
                (self.enable(value, is_ram), 0)
            }
            ASYNC_PF_IRQ_ACK => {
                self.page_ready_pending = false;
                (SUCCESS, 0)
            }
            _ => (NOT_SUPPORTED, 0),
        }
    }

    /// `ENABLE` (§2.2): NOT_REQUIRED if the enabled bit does not change; disabling drops
    /// the page-ready queue; enabling checks the block and queues a broadcast.
    fn enable(&mut self, value: u64, is_ram: impl Fn(u64) -> bool) -> i64 {
        let enable = value & KVM_ASYNC_PF_ENABLED != 0;
        if enable == self.control.is_some() {
            return NOT_REQUIRED;
        }
        self.ready.clear();
        self.page_ready_pending = false;
        if !enable {
            self.control = None;
            return SUCCESS;
        }
        let block = value & !(KVM_ASYNC_PF_AREA_ALIGN - 1);
        if !is_ram(block) {
            return INVALID_PARAMETER;
        }
        self.control = Some(Control {
            block,
            send_always: value & KVM_ASYNC_PF_SEND_ALWAYS != 0,
        });
        self.ready.push(BROADCAST);
        SUCCESS
    }

    /// Whether a fault taken at EL0 (`at_el0`) or EL1 may be sent as not-present, as far as
    /// this state goes (§2.7; the caller also checks the control block's slot and SDEI).
    pub fn may_send_not_present(&self, at_el0: bool) -> bool {
        self.control.is_some_and(|c| at_el0 || c.send_always) && !self.fetches.is_full()
    }

    /// A fetch's page is in place: announce it if async PF is still on.
    pub fn completed(&mut self, fetch: Fetch) {
        if self.control.is_some() {
            self.ready.push(fetch.token);
        }
    }

    /// The next page-ready token to send, if none is awaiting its ACK; marks it pending.
    /// The caller has checked that the control block's slot is free.
    pub fn next_page_ready(&mut self) -> Option<u32> {
        if self.page_ready_pending {
            return None;
        }
        let token = self.ready.pop()?;
        self.page_ready_pending = true;
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: u64 = 0x4010_0040;

    fn enabled(send_always: bool) -> AsyncPf {
        let mut apf = AsyncPf::default();
        let value = BLOCK
            | KVM_ASYNC_PF_ENABLED
            | if send_always {
                KVM_ASYNC_PF_SEND_ALWAYS
            } else {
                0
            };
        assert_eq!(
            apf.call(ASYNC_PF_ENABLE, value & LOW_32_BITS, value >> 32, |_| true),
            (SUCCESS, 0)
        );
        apf
    }

    #[test]
    fn discovery_answers() {
        let mut apf = AsyncPf::default();
        let mut call = |sub| apf.call(sub, 0, 0, |_| true);
        assert_eq!(call(ASYNC_PF_VERSION), (SUCCESS, 0x01_0000));
        assert_eq!(call(ASYNC_PF_SLOTS), (SUCCESS, 64));
        assert_eq!(call(ASYNC_PF_SDEI), (SUCCESS, 0x4040_0001));
        assert_eq!(call(ASYNC_PF_IRQ), (SUCCESS, 22));
        assert_eq!(call(6), (NOT_SUPPORTED, 0));
    }

    #[test]
    fn enable_twice_is_not_required_and_disable_drops_the_queue() {
        let mut apf = enabled(true);
        assert_eq!(
            apf.control(),
            Some(Control {
                block: BLOCK,
                send_always: true
            })
        );
        let value = BLOCK | KVM_ASYNC_PF_ENABLED;
        assert_eq!(
            apf.call(ASYNC_PF_ENABLE, value, 0, |_| true).0,
            NOT_REQUIRED
        );
        assert_eq!(apf.call(ASYNC_PF_ENABLE, 0, 0, |_| true).0, SUCCESS);
        assert_eq!(apf.control(), None);
        assert_eq!(apf.next_page_ready(), None);
        assert_eq!(apf.call(ASYNC_PF_ENABLE, 0, 0, |_| true).0, NOT_REQUIRED);
    }

    #[test]
    fn enable_refuses_a_block_outside_ram() {
        let mut apf = AsyncPf::default();
        let answer = apf.call(ASYNC_PF_ENABLE, 0x100 | KVM_ASYNC_PF_ENABLED, 0, |gpa| {
            gpa >= 0x4000_0000
        });
        assert_eq!(answer.0, INVALID_PARAMETER);
        assert_eq!(apf.control(), None);
    }

    #[test]
    fn the_block_address_spans_both_registers() {
        let mut apf = AsyncPf::default();
        apf.call(ASYNC_PF_ENABLE, 0x40 | KVM_ASYNC_PF_ENABLED, 0x1, |_| true);
        assert_eq!(apf.control().unwrap().block, 0x1_0000_0040);
    }

    #[test]
    fn page_ready_one_at_a_time_broadcast_first() {
        let mut apf = enabled(false);
        let fetch = apf.fetches.start(0x4400_0000, 5).unwrap();
        let due = apf.fetches.take_due(5).unwrap();
        apf.completed(due);
        assert_eq!(apf.next_page_ready(), Some(BROADCAST));
        assert_eq!(apf.next_page_ready(), None, "waits for the ACK");
        assert_eq!(apf.call(ASYNC_PF_IRQ_ACK, 0, 0, |_| true), (SUCCESS, 0));
        assert_eq!(apf.next_page_ready(), Some(fetch.token));
        assert!(apf.page_ready_pending());
    }

    #[test]
    fn el1_faults_need_send_always() {
        assert!(!enabled(false).may_send_not_present(false));
        assert!(enabled(false).may_send_not_present(true));
        assert!(enabled(true).may_send_not_present(false));
        assert!(!AsyncPf::default().may_send_not_present(true));
    }
}
