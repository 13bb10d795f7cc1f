//! The host side of the v4 async PF protocol (`arm64-apf-sdei-abi.md` §2): the `0x86000002`
//! sub-functions, which faults may become "page not present", and the page-ready queue.
//! The guest's control block and the GIC are the arch side's; this decides what to write,
//! including the misbehaviour `inject=` asks for (see [`crate::inject`]).

mod ready_queue;
mod tokens;

pub use ready_queue::ReadyQueue;
pub use tokens::{Fetch, Outstanding, SLOTS, TABLE, UNKNOWN_TOKEN};

use crate::inject::{Faulty, Inject, Injections};

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
    /// The last page-ready sent, until its ACK (`inject=duplicate-ready` repeats it).
    last_sent: Option<u32>,
    /// A page-ready held back by `inject=reorder` until the next page arrives.
    held: Option<u32>,
    faulty: Faulty,
}

impl AsyncPf {
    /// A host that misbehaves as `inject` asks (well-behaved if it is empty).
    pub fn new(inject: Injections) -> Self {
        Self {
            faulty: Faulty::new(inject),
            ..Self::default()
        }
    }

    /// The faults asked for and how often each was applied; fetch faults (`spikes`) are
    /// decided here too, for the host's one count.
    pub fn faulty(&mut self) -> &mut Faulty {
        &mut self.faulty
    }

    /// The faults asked for and their counts, for the summary.
    pub fn injected(&self) -> &Faulty {
        &self.faulty
    }

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
                if let Some(token) = self.last_sent.take()
                    && token != BROADCAST
                    && self.faulty.apply(Inject::DuplicateReady)
                {
                    self.ready.push_front(token);
                }
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
        self.last_sent = None;
        self.held = None;
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
    /// As in KVM, a fetch counts against the [`SLOTS`] limit until its page-ready is sent,
    /// which also bounds the page-ready queue; `inject=overflow` goes on to the [`TABLE`].
    pub fn may_send_not_present(&self, at_el0: bool) -> bool {
        let limit = if self.faulty.asked().contains(Inject::Overflow) {
            TABLE
        } else {
            SLOTS
        };
        self.control.is_some_and(|c| at_el0 || c.send_always) && self.in_flight() < limit
    }

    /// Fetches and page-readies not yet sent, as counted against the limit.
    fn in_flight(&self) -> usize {
        self.fetches.len() + self.ready.len() + usize::from(self.held.is_some())
    }

    /// Starts the fetch of `page` (due at `deadline`) that a not-present announces; the
    /// caller has checked [`AsyncPf::may_send_not_present`]. Returns its token.
    pub fn not_present(&mut self, page: u64, deadline: u64) -> u32 {
        if self.in_flight() >= SLOTS {
            self.faulty.apply(Inject::Overflow);
        }
        let Some(fetch) = self.fetches.start(page, deadline) else {
            unreachable!("may_send_not_present kept within the table");
        };
        if self.faulty.apply(Inject::WakeAll) {
            self.ready.push(BROADCAST);
        }
        if self.faulty.apply(Inject::DisableReenable) {
            // Forgotten, as by a host reset (this token too); enabling again broadcasts.
            self.fetches.forget_tokens();
            self.ready.clear();
            self.held = None;
            self.ready.push(BROADCAST);
        }
        fetch.token
    }

    /// A fetch's page is in place: announce it if async PF is still on and the token was
    /// not forgotten. Returns the token if `inject=drop-ready` dropped its page-ready.
    /// Any completion releases a held page-ready, a forgotten fetch's too.
    pub fn completed(&mut self, fetch: Fetch) -> Option<u32> {
        self.control?;
        let held = self.held.take();
        let mut dropped = None;
        if !fetch.announce {
            // Forgotten by `inject=disable-reenable`: no page-ready.
        } else if self.faulty.apply(Inject::DropReady) {
            dropped = Some(fetch.token);
        } else if !self.fetches.is_empty() && self.faulty.apply(Inject::Reorder) {
            // Held only while another page is still coming, whose arrival releases it.
            self.held = Some(fetch.token);
        } else {
            self.ready.push(fetch.token);
        }
        if let Some(token) = held {
            self.ready.push(token);
        }
        dropped
    }

    /// The next page-ready token to send, if none is awaiting its ACK; marks it pending.
    /// The caller has checked that the control block's slot is free.
    pub fn next_page_ready(&mut self) -> Option<u32> {
        if self.page_ready_pending || self.ready.is_empty() {
            return None;
        }
        let token = if self.faulty.apply(Inject::UnknownToken) {
            UNKNOWN_TOKEN
        } else {
            self.ready.pop()?
        };
        self.page_ready_pending = true;
        self.last_sent = Some(token);
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
    fn fetches_count_until_their_page_ready_is_sent() {
        let mut apf = enabled(false);
        assert_eq!(apf.next_page_ready(), Some(BROADCAST));
        apf.call(ASYNC_PF_IRQ_ACK, 0, 0, |_| true);
        for i in 0..SLOTS as u64 {
            assert!(apf.may_send_not_present(true));
            apf.fetches.start(i << 12, 0).unwrap();
        }
        assert!(!apf.may_send_not_present(true));
        let due = apf.fetches.take_due(0).unwrap();
        apf.completed(due);
        assert!(
            !apf.may_send_not_present(true),
            "completed but not announced"
        );
        assert!(apf.next_page_ready().is_some());
        assert!(apf.may_send_not_present(true));
    }

    /// An enabled host injecting `names`, the enabling broadcast sent and acknowledged.
    fn faulty(names: &str) -> AsyncPf {
        let mut apf = AsyncPf::new(Injections::parse(names).unwrap());
        let value = BLOCK | KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_SEND_ALWAYS;
        apf.call(ASYNC_PF_ENABLE, value, 0, |_| true);
        assert_eq!(apf.next_page_ready(), Some(BROADCAST));
        ack(&mut apf);
        apf
    }

    fn ack(apf: &mut AsyncPf) {
        assert_eq!(apf.call(ASYNC_PF_IRQ_ACK, 0, 0, |_| true), (SUCCESS, 0));
    }

    /// Sends `n` not-presents, completes them in order and sends every page-ready, each
    /// acknowledged: (tokens issued, page-readies sent, page-readies dropped).
    fn round(apf: &mut AsyncPf, n: u64) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let tokens: Vec<u32> = (0..n).map(|i| apf.not_present(i << 12, 0)).collect();
        let mut dropped = Vec::new();
        while let Some(fetch) = apf.fetches.take_due(0) {
            dropped.extend(apf.completed(fetch));
        }
        let mut sent = Vec::new();
        while let Some(token) = apf.next_page_ready() {
            sent.push(token);
            ack(apf);
        }
        (tokens, sent, dropped)
    }

    #[test]
    fn a_well_behaved_host_readies_every_token_once() {
        let mut apf = faulty("spikes");
        let (tokens, sent, dropped) = round(&mut apf, 40);
        assert_eq!(sent, tokens);
        assert!(dropped.is_empty());
    }

    #[test]
    fn drop_ready_loses_every_8th_page_ready() {
        let mut apf = faulty("drop-ready");
        let (tokens, sent, dropped) = round(&mut apf, 16);
        assert_eq!(dropped, [tokens[7], tokens[15]]);
        let kept: Vec<u32> = tokens
            .into_iter()
            .filter(|t| !dropped.contains(t))
            .collect();
        assert_eq!(sent, kept);
        assert_eq!(apf.faulty().applied(Inject::DropReady), 2);
    }

    #[test]
    fn duplicate_ready_repeats_every_8th_after_its_ack() {
        let mut apf = faulty("duplicate-ready");
        let (tokens, sent, _) = round(&mut apf, 8);
        assert_eq!(sent.len(), 9);
        assert_eq!(sent[7], tokens[7]);
        assert_eq!(sent[8], tokens[7], "sent again");
        assert_eq!(apf.faulty().applied(Inject::DuplicateReady), 1);
    }

    #[test]
    fn unknown_token_precedes_every_8th() {
        let mut apf = faulty("unknown-token");
        let (tokens, sent, _) = round(&mut apf, 8);
        // The enabling broadcast was the first page-ready, so the 8th is the 7th here.
        assert_eq!(sent.len(), 9);
        assert_eq!(sent[6], UNKNOWN_TOKEN);
        assert!(!tokens.contains(&UNKNOWN_TOKEN));
        assert_eq!(&sent[7..], &tokens[6..]);
    }

    #[test]
    fn reorder_holds_every_8th_until_the_next_page_arrives() {
        let mut apf = faulty("reorder");
        let (tokens, sent, _) = round(&mut apf, 10);
        let mut expected = tokens.clone();
        expected.swap(7, 8);
        assert_eq!(sent, expected);
        assert_eq!(apf.faulty().applied(Inject::Reorder), 1);
    }

    #[test]
    fn reorder_never_holds_the_last_page_ready() {
        let mut apf = faulty("reorder");
        let (tokens, sent, _) = round(&mut apf, 8);
        assert_eq!(sent, tokens, "nothing else was coming: the 8th went out");
        // One fault at a time, as a single-threaded guest makes them: never held.
        for _ in 0..16 {
            let token = apf.not_present(0, 0);
            let fetch = apf.fetches.take_due(0).unwrap();
            apf.completed(fetch);
            assert_eq!(apf.next_page_ready(), Some(token));
            ack(&mut apf);
        }
        assert_eq!(apf.faulty().applied(Inject::Reorder), 0);
    }

    #[test]
    fn wake_all_broadcasts_while_tokens_stay_outstanding() {
        let mut apf = faulty("wake-all");
        let (tokens, sent, _) = round(&mut apf, 16);
        assert_eq!(
            sent[0], BROADCAST,
            "after the 16th not-present, before any ready"
        );
        assert_eq!(&sent[1..], &tokens[..]);
        assert_eq!(apf.faulty().applied(Inject::WakeAll), 1);
    }

    #[test]
    fn disable_reenable_forgets_outstanding_tokens_and_broadcasts() {
        let mut apf = faulty("disable-reenable");
        let (tokens, sent, _) = round(&mut apf, 33);
        assert_eq!(sent, [BROADCAST, tokens[32]], "the first 32 were forgotten");
        assert_eq!(apf.faulty().applied(Inject::DisableReenable), 1);
    }

    #[test]
    fn overflow_goes_past_64_in_flight_up_to_the_table() {
        let mut apf = faulty("overflow");
        for i in 0..TABLE as u64 {
            assert!(apf.may_send_not_present(false));
            apf.not_present(i << 12, 0);
        }
        assert!(!apf.may_send_not_present(false), "the table is full");
        assert_eq!(
            apf.faulty().applied(Inject::Overflow),
            (TABLE - SLOTS) as u64
        );
        let (_, sent, _) = round(&mut apf, 0);
        assert_eq!(sent.len(), TABLE, "every one readied");
    }

    #[test]
    fn el1_faults_need_send_always() {
        assert!(!enabled(false).may_send_not_present(false));
        assert!(enabled(false).may_send_not_present(true));
        assert!(enabled(true).may_send_not_present(false));
        assert!(!AsyncPf::default().may_send_not_present(true));
    }
}
