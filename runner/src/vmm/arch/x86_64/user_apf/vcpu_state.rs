//! One vCPU's side of the async PF protocol as the VMM plays it (the part KVM plays with
//! guest APF on): what the guest enabled, the fault being kicked, the tokens outstanding
//! and the page-ready queue. Pure: the caller does the ioctls and guest memory accesses.

use std::collections::{BTreeMap, VecDeque};

use apf_pv::waiters::{BROADCAST, Token};
use apf_pv::x86::{ACK, MSR_KVM_ASYNC_PF_ACK, MSR_KVM_ASYNC_PF_EN, MSR_KVM_ASYNC_PF_INT};

use super::msr::{self, Enable, Place, Refused};
use super::tokens::{MAX_VCPUS, Tokens};
use crate::inject::{Every, Inject, Injections};

/// Most "page not present" tokens a vCPU has outstanding: KVM's `ASYNC_PF_PER_VCPU`, and the
/// guest's waiter table size.
pub const MAX_OUTSTANDING: usize = 64;

/// Why a fault was left to complete synchronously (the vCPU waits for its page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncReason {
    /// The guest has not enabled async PF (or disabled it).
    Disabled,
    /// The policy expects the page soon enough that waiting is cheaper (`adaptive`).
    Fast,
    /// A kick for an earlier fault of this vCPU is still on its way.
    KickPending,
    /// [`MAX_OUTSTANDING`] tokens are outstanding.
    Full,
    /// The page arrived before the kick took the vCPU out of the guest.
    Present,
    /// The vCPU was in ring 0 (only ring-3 faults are async without SEND_ALWAYS, and a
    /// ring-0 access cannot be kicked out of KVM's emulator).
    Ring0,
    /// Interrupts were off or shadowed: the guest could not take the page-ready.
    InterruptsOff,
    /// An exception or interrupt was already being delivered.
    EventPending,
}

impl SyncReason {
    pub const ALL: [SyncReason; 8] = [
        SyncReason::Disabled,
        SyncReason::Fast,
        SyncReason::KickPending,
        SyncReason::Full,
        SyncReason::Present,
        SyncReason::Ring0,
        SyncReason::InterruptsOff,
        SyncReason::EventPending,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            SyncReason::Disabled => "disabled",
            SyncReason::Fast => "fast",
            SyncReason::KickPending => "kick_pending",
            SyncReason::Full => "full",
            SyncReason::Present => "present",
            SyncReason::Ring0 => "ring0",
            SyncReason::InterruptsOff => "interrupts_off",
            SyncReason::EventPending => "event_pending",
        }
    }
}

/// What an accepted MSR write changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrEffect {
    /// Nothing the VMM must act on.
    None,
    /// Async PF is on; a broadcast wake may be queued.
    Enabled,
    /// Async PF is off; this many outstanding tokens were dropped without a page-ready, as
    /// KVM drops them (the guest wakes its own waiters).
    Disabled { dropped: usize },
    /// The guest consumed the page-ready: the next may be sent.
    Acked,
}

#[derive(Debug)]
pub struct VcpuApf {
    tokens: Tokens,
    /// The raw `MSR_KVM_ASYNC_PF_EN` value, for reads.
    en: u64,
    /// The page-ready vector: all `MSR_KVM_ASYNC_PF_INT` holds (other bits are refused), so
    /// also what that MSR reads back.
    vector: Option<u8>,
    /// The area's guest-physical address while async PF is on.
    area: Option<u64>,
    /// The page of the fault whose kick is on its way.
    kick: Option<u64>,
    /// Tokens sent as "page not present", with their pages.
    outstanding: Vec<(Token, u64)>,
    /// Tokens whose pages arrived, oldest first, to send as "page ready".
    ready: VecDeque<Token>,
    /// A page-ready was sent and not yet acknowledged.
    ready_unacked: bool,
    /// The last page-ready sent.
    last_ready: Option<Token>,
    /// A page-ready held back by `--inject reorder` until the next page arrives.
    held: Option<Token>,
    /// A page this vCPU must wait for synchronously, and why: the guest could not take a
    /// not-present for it (ring 0, interrupts off), and re-kicking every repeated fault on it
    /// would only spin. Cleared when the page arrives.
    stay_sync: Option<(u64, SyncReason)>,
    faulty: FaultyHost,
}

/// The misbehaviour asked for with `--inject`, and how often each was applied.
#[derive(Debug, Default)]
struct FaultyHost {
    asked: Injections,
    applied: BTreeMap<Inject, u64>,
    /// The events each injection picks from, counted by kind (one kind per injection).
    seen: BTreeMap<Inject, Every>,
}

impl FaultyHost {
    /// Whether `inject` applies to this event of its kind, counting it if so.
    fn apply(&mut self, inject: Inject) -> bool {
        let applies = self
            .seen
            .entry(inject)
            .or_default()
            .next(inject, &self.asked);
        if applies {
            *self.applied.entry(inject).or_default() += 1;
        }
        applies
    }

    fn count(&mut self, inject: Inject) {
        *self.applied.entry(inject).or_default() += 1;
    }
}

/// The token `--inject unknown-token` sends: it names vCPU 4095, which has no tokens here
/// (the VMM runs fewer vCPUs), so no vCPU was ever given it.
const UNKNOWN_TOKEN: Token = (1 << 12) | (MAX_VCPUS as Token - 1);

impl VcpuApf {
    /// A well-behaved host for vCPU `vcpu_id`, or one that misbehaves as `inject` asks.
    pub fn new(vcpu_id: u16, inject: Injections) -> Self {
        assert!(
            vcpu_id < MAX_VCPUS - 1,
            "vCPU {vcpu_id} would own the unknown token"
        );
        VcpuApf {
            tokens: Tokens::new(vcpu_id),
            en: 0,
            vector: None,
            area: None,
            kick: None,
            outstanding: Vec::with_capacity(MAX_OUTSTANDING),
            ready: VecDeque::new(),
            ready_unacked: false,
            last_ready: None,
            held: None,
            stay_sync: None,
            faulty: FaultyHost {
                asked: inject,
                ..Default::default()
            },
        }
    }

    /// How often each injected misbehaviour was applied.
    pub fn injected(&self) -> &BTreeMap<Inject, u64> {
        &self.faulty.applied
    }

    /// The area's address while async PF is on.
    pub fn area(&self) -> Option<u64> {
        self.area
    }

    /// The page-ready vector (set whenever async PF is on).
    pub fn vector(&self) -> Option<u8> {
        self.vector
    }

    /// This vCPU waits for `gpa_page`. `Ok`: kick it out of the guest to make the fault
    /// async; `wants_async` is the policy's verdict.
    pub fn fault(&mut self, gpa_page: u64, wants_async: bool) -> Result<(), SyncReason> {
        if self.area.is_none() {
            return Err(SyncReason::Disabled);
        }
        if !wants_async {
            return Err(SyncReason::Fast);
        }
        if let Some((page, reason)) = self.stay_sync
            && page == gpa_page
        {
            return Err(reason);
        }
        if self.kick.is_some() {
            return Err(SyncReason::KickPending);
        }
        if self.in_guest() >= MAX_OUTSTANDING {
            if !self.faulty.asked.contains(&Inject::Overflow) {
                return Err(SyncReason::Full);
            }
            self.faulty.count(Inject::Overflow);
        }
        self.kick = Some(gpa_page);
        Ok(())
    }

    /// Faults the guest is still waiting for, as KVM counts them against its limit: a token
    /// leaves only once its page-ready was sent and acknowledged.
    fn in_guest(&self) -> usize {
        let ready = self.ready.iter().filter(|&&t| t != BROADCAST).count();
        let unacked = self.ready_unacked && self.last_ready != Some(BROADCAST);
        self.outstanding.len() + ready + usize::from(self.held.is_some()) + usize::from(unacked)
    }

    /// The vCPU is out of the guest after a kick: the page it was kicked for, if any.
    pub fn take_kick(&mut self) -> Option<u64> {
        self.kick.take()
    }

    /// The guest could not take a not-present for `gpa_page` for `reason`: its repeated
    /// faults on that page stay synchronous until the page arrives (transient reasons, such
    /// as an event being delivered, are worth another kick and are not remembered).
    pub fn stay_synchronous(&mut self, gpa_page: u64, reason: SyncReason) {
        if matches!(reason, SyncReason::Ring0 | SyncReason::InterruptsOff) {
            self.stay_sync = Some((gpa_page, reason));
        }
    }

    /// The page-ready `token` could not be delivered (the guest's APIC refused the MSI):
    /// it goes back to the front of the queue, to be sent on the next occasion.
    pub fn undeliverable(&mut self, token: Token) {
        self.ready_unacked = false;
        self.last_ready = None;
        self.ready.push_front(token);
    }

    /// Sends "page not present" for `gpa_page`: the token to inject.
    pub fn not_present(&mut self, gpa_page: u64) -> Token {
        debug_assert!(self.area.is_some(), "async PF is off");
        let token = self.tokens.next();
        self.outstanding.push((token, gpa_page));
        if self.faulty.apply(Inject::WakeAll) {
            self.ready.push_back(BROADCAST);
        }
        if self.faulty.apply(Inject::DisableReenable) {
            // Forgotten, as by a host reset; enabling again after it sends the broadcast.
            self.outstanding.clear();
            self.ready.clear();
            self.held = None;
            self.ready.push_back(BROADCAST);
        }
        token
    }

    /// `gpa_page` is in guest RAM: its tokens become page-ready. Returns how many.
    pub fn served(&mut self, gpa_page: u64) -> usize {
        if self.stay_sync.is_some_and(|(page, _)| page == gpa_page) {
            self.stay_sync = None;
        }
        // In place: `outstanding` keeps its buffer, and only arrivals are collected.
        let arrived: Vec<_> = self
            .outstanding
            .extract_if(.., |(_, page)| *page == gpa_page)
            .collect();
        let held = self.held.take();
        let mut readied = 0;
        for (token, _) in arrived {
            if self.faulty.apply(Inject::DropReady) {
                continue;
            }
            // Held only while another page is still coming, whose arrival releases it.
            if self.held.is_none()
                && !self.outstanding.is_empty()
                && self.faulty.apply(Inject::Reorder)
            {
                self.held = Some(token);
                continue;
            }
            self.ready.push_back(token);
            readied += 1;
        }
        if let Some(token) = held {
            self.ready.push_back(token);
            readied += 1;
        }
        readied
    }

    /// The next page-ready to send, if the last was acknowledged and the guest's token slot
    /// is free (`slot_free`: the area's token reads 0, which is KVM's condition too).
    pub fn next_ready(&mut self, slot_free: bool) -> Option<Token> {
        if self.ready_unacked || !slot_free || self.area.is_none() || self.ready.is_empty() {
            return None;
        }
        let token = if self.faulty.apply(Inject::UnknownToken) {
            UNKNOWN_TOKEN
        } else {
            self.ready.pop_front()?
        };
        self.ready_unacked = true;
        self.last_ready = Some(token);
        Some(token)
    }

    /// A guest write to one of the async PF MSRs; `Err` means #GP, with nothing changed.
    pub fn write_msr(
        &mut self,
        index: u32,
        value: u64,
        place: impl Fn(u64, u64) -> Place,
    ) -> Result<MsrEffect, Refused> {
        match index {
            MSR_KVM_ASYNC_PF_INT => {
                self.vector = Some(msr::check_vector(value)?);
                Ok(MsrEffect::None)
            }
            MSR_KVM_ASYNC_PF_EN => {
                let enable = msr::check_enable(value, self.vector, place)?;
                self.en = value;
                Ok(match enable {
                    Enable::On { area } => {
                        self.area = Some(area);
                        // KVM's broadcast on every enabling write, unless completions are
                        // queued already (they wake their waiters anyway).
                        if self.ready.is_empty() {
                            self.ready.push_back(BROADCAST);
                        }
                        MsrEffect::Enabled
                    }
                    Enable::Off => {
                        self.area = None;
                        self.kick = None;
                        self.held = None;
                        self.stay_sync = None;
                        self.ready.clear();
                        self.ready_unacked = false;
                        let dropped = self.outstanding.len();
                        self.outstanding.clear();
                        MsrEffect::Disabled { dropped }
                    }
                })
            }
            MSR_KVM_ASYNC_PF_ACK if value & ACK != 0 => {
                self.ready_unacked = false;
                if let Some(token) = self.last_ready.take()
                    && token != BROADCAST
                    && self.faulty.apply(Inject::DuplicateReady)
                {
                    self.ready.push_front(token);
                }
                Ok(MsrEffect::Acked)
            }
            _ => Ok(MsrEffect::None),
        }
    }

    /// A guest read of one of the async PF MSRs: what was written (ACK reads 0).
    pub fn read_msr(&self, index: u32) -> u64 {
        match index {
            MSR_KVM_ASYNC_PF_EN => self.en,
            MSR_KVM_ASYNC_PF_INT => self.vector.map_or(0, u64::from),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apf_pv::x86::{KVM_ASYNC_PF_DELIVERY_AS_INT, KVM_ASYNC_PF_ENABLED};

    const AREA: u64 = 0x8000;
    const EN: u64 = AREA | KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_DELIVERY_AS_INT;
    const PAGE: u64 = 0x400_0000;

    fn ram(_: u64, _: u64) -> Place {
        Place::Ram
    }

    /// A vCPU with async PF enabled and the enabling broadcast sent and acknowledged.
    fn enabled() -> VcpuApf {
        faulty(&[])
    }

    /// As [`enabled`], injecting `inject`.
    fn faulty(inject: &[Inject]) -> VcpuApf {
        let mut vcpu = VcpuApf::new(0, inject.iter().copied().collect());
        assert_eq!(
            vcpu.write_msr(MSR_KVM_ASYNC_PF_INT, 0xf3, ram),
            Ok(MsrEffect::None)
        );
        assert_eq!(
            vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, EN, ram),
            Ok(MsrEffect::Enabled)
        );
        assert_eq!(vcpu.next_ready(true), Some(BROADCAST));
        assert_eq!(
            vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram),
            Ok(MsrEffect::Acked)
        );
        vcpu
    }

    #[test]
    fn a_fault_goes_from_kick_to_not_present_to_ready() {
        let mut vcpu = enabled();
        assert_eq!(vcpu.fault(PAGE, true), Ok(()));
        assert_eq!(vcpu.take_kick(), Some(PAGE));
        assert_eq!(vcpu.take_kick(), None, "one kick, taken once");
        let token = vcpu.not_present(PAGE);
        assert_eq!(vcpu.next_ready(true), None, "not arrived yet");
        assert_eq!(vcpu.served(PAGE + 0x1000), 0, "another page");
        assert_eq!(vcpu.served(PAGE), 1);
        assert_eq!(vcpu.served(PAGE), 0, "its token was readied once");
        assert_eq!(vcpu.next_ready(true), Some(token));
    }

    #[test]
    fn page_ready_waits_for_the_ack_and_the_free_slot() {
        let mut vcpu = enabled();
        let tokens: Vec<_> = (0..3)
            .map(|i| vcpu.not_present(PAGE + i * 0x1000))
            .collect();
        for i in (0..3).rev() {
            vcpu.served(PAGE + i * 0x1000);
        }
        assert_eq!(vcpu.next_ready(false), None, "slot busy");
        assert_eq!(
            vcpu.next_ready(true),
            Some(tokens[2]),
            "in order of arrival"
        );
        assert_eq!(vcpu.next_ready(true), None, "not acknowledged");
        vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, 0, ram).unwrap();
        assert_eq!(vcpu.next_ready(true), None, "ACK without bit 0 is no ACK");
        vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram).unwrap();
        assert_eq!(vcpu.next_ready(true), Some(tokens[1]));
        vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram).unwrap();
        assert_eq!(vcpu.next_ready(true), Some(tokens[0]));
    }

    #[test]
    fn two_faults_on_one_page_get_two_tokens_both_readied() {
        let mut vcpu = enabled();
        let first = vcpu.not_present(PAGE);
        let second = vcpu.not_present(PAGE);
        assert_ne!(first, second);
        assert_eq!(vcpu.served(PAGE), 2);
    }

    #[test]
    fn faults_stay_synchronous_when_async_pf_cannot_be_used() {
        let mut off = VcpuApf::new(0, Injections::new());
        assert_eq!(off.fault(PAGE, true), Err(SyncReason::Disabled));
        let mut vcpu = enabled();
        assert_eq!(vcpu.fault(PAGE, false), Err(SyncReason::Fast));
        vcpu.fault(PAGE, true).unwrap();
        assert_eq!(
            vcpu.fault(PAGE + 0x1000, true),
            Err(SyncReason::KickPending)
        );
        vcpu.take_kick();
        for i in 0..MAX_OUTSTANDING as u64 {
            vcpu.not_present(PAGE + i * 0x1000);
        }
        assert_eq!(vcpu.fault(PAGE, true), Err(SyncReason::Full));
        vcpu.served(PAGE);
        assert!(vcpu.next_ready(true).is_some());
        ack(&mut vcpu);
        assert_eq!(vcpu.fault(PAGE, true), Ok(()), "a slot freed up");
    }

    #[test]
    fn disabling_drops_everything_and_reenabling_broadcasts() {
        let mut vcpu = enabled();
        vcpu.not_present(PAGE);
        vcpu.not_present(PAGE + 0x1000);
        vcpu.served(PAGE);
        vcpu.fault(PAGE + 0x2000, true).unwrap();
        assert_eq!(
            vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, 0, ram),
            Ok(MsrEffect::Disabled { dropped: 1 })
        );
        assert_eq!(vcpu.take_kick(), None);
        assert_eq!(
            vcpu.next_ready(true),
            None,
            "the ready token was dropped too"
        );
        assert_eq!(vcpu.served(PAGE + 0x1000), 0);
        assert_eq!(
            vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, EN, ram),
            Ok(MsrEffect::Enabled)
        );
        assert_eq!(vcpu.next_ready(true), Some(BROADCAST));
    }

    #[test]
    fn reenabling_while_on_broadcasts_only_without_queued_completions() {
        let mut vcpu = enabled();
        let token = vcpu.not_present(PAGE);
        vcpu.served(PAGE);
        vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, EN, ram).unwrap();
        assert_eq!(vcpu.next_ready(true), Some(token));
        vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram).unwrap();
        assert_eq!(vcpu.next_ready(true), None, "no broadcast queued behind it");
    }

    #[test]
    fn refused_writes_change_nothing_and_reads_return_what_was_written() {
        let mut vcpu = enabled();
        assert!(vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, EN | 0x10, ram).is_err());
        assert!(vcpu.write_msr(MSR_KVM_ASYNC_PF_INT, 16, ram).is_err());
        assert_eq!(vcpu.read_msr(MSR_KVM_ASYNC_PF_EN), EN);
        assert_eq!(vcpu.read_msr(MSR_KVM_ASYNC_PF_INT), 0xf3);
        assert_eq!(vcpu.read_msr(MSR_KVM_ASYNC_PF_ACK), 0);
        assert_eq!((vcpu.area(), vcpu.vector()), (Some(AREA), Some(0xf3)));
        let mut fresh = VcpuApf::new(1, Injections::new());
        assert_eq!(
            fresh.write_msr(MSR_KVM_ASYNC_PF_EN, EN, ram),
            Err(Refused::NoVector)
        );
        assert_eq!(fresh.area(), None);
    }

    fn ack(vcpu: &mut VcpuApf) {
        vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram).unwrap();
    }

    /// Sends `n` faults on pages 0..n, serves them all, and returns the page-readies sent.
    fn round(vcpu: &mut VcpuApf, n: u64) -> (Vec<Token>, Vec<Token>) {
        let tokens: Vec<_> = (0..n)
            .map(|i| vcpu.not_present(PAGE + i * 0x1000))
            .collect();
        for i in 0..n {
            vcpu.served(PAGE + i * 0x1000);
        }
        let mut sent = Vec::new();
        while let Some(token) = vcpu.next_ready(true) {
            sent.push(token);
            ack(vcpu);
        }
        (tokens, sent)
    }

    #[test]
    fn drop_ready_loses_every_8th_page_ready() {
        let mut vcpu = faulty(&[Inject::DropReady]);
        let (tokens, sent) = round(&mut vcpu, 16);
        let expected: Vec<_> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| (i + 1) % 8 != 0)
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(sent, expected);
        assert_eq!(vcpu.injected()[&Inject::DropReady], 2);
    }

    #[test]
    fn duplicate_ready_repeats_every_8th_after_its_ack() {
        let mut vcpu = faulty(&[Inject::DuplicateReady]);
        let (tokens, sent) = round(&mut vcpu, 8);
        assert_eq!(sent.len(), 9);
        assert_eq!(sent[7], tokens[7]);
        assert_eq!(sent[8], tokens[7], "sent again");
    }

    #[test]
    fn unknown_token_precedes_every_8th() {
        let mut vcpu = faulty(&[Inject::UnknownToken]);
        let (tokens, sent) = round(&mut vcpu, 8);
        // The enabling broadcast was the first page-ready, so the 8th is the 7th here.
        assert_eq!(sent.len(), 9);
        assert_eq!(sent[6], UNKNOWN_TOKEN);
        assert!(!tokens.contains(&UNKNOWN_TOKEN));
        assert_eq!(&sent[7..], &tokens[6..]);
    }

    #[test]
    fn reorder_holds_every_8th_until_the_next_page_arrives() {
        let mut vcpu = faulty(&[Inject::Reorder]);
        let (tokens, sent) = round(&mut vcpu, 10);
        let mut expected = tokens.clone();
        expected.swap(7, 8);
        assert_eq!(sent, expected);
        assert_eq!(vcpu.injected()[&Inject::Reorder], 1);
    }

    #[test]
    fn reorder_never_holds_the_last_page_ready() {
        let mut vcpu = faulty(&[Inject::Reorder]);
        let (tokens, sent) = round(&mut vcpu, 8);
        assert_eq!(sent, tokens, "nothing else was coming: the 8th went out");
    }

    #[test]
    fn wake_all_broadcasts_while_tokens_stay_outstanding() {
        let mut vcpu = faulty(&[Inject::WakeAll]);
        let (tokens, sent) = round(&mut vcpu, 16);
        assert_eq!(
            sent[0], BROADCAST,
            "after the 16th not-present, before any ready"
        );
        assert_eq!(&sent[1..], &tokens[..]);
    }

    #[test]
    fn disable_reenable_forgets_outstanding_tokens_and_broadcasts() {
        let mut vcpu = faulty(&[Inject::DisableReenable]);
        let (_, sent) = round(&mut vcpu, 32);
        assert_eq!(sent, [BROADCAST], "the first 32 were forgotten");
        assert_eq!(vcpu.injected()[&Inject::DisableReenable], 1);
    }

    #[test]
    fn overflow_goes_past_64_outstanding() {
        let mut vcpu = faulty(&[Inject::Overflow]);
        for i in 0..MAX_OUTSTANDING as u64 + 2 {
            assert_eq!(vcpu.fault(PAGE + i * 0x1000, true), Ok(()));
            vcpu.take_kick();
            vcpu.not_present(PAGE + i * 0x1000);
        }
        assert_eq!(vcpu.injected()[&Inject::Overflow], 2);
    }

    #[test]
    fn tokens_count_against_the_limit_until_their_page_ready_is_acknowledged() {
        let mut vcpu = enabled();
        for i in 0..MAX_OUTSTANDING as u64 {
            vcpu.not_present(PAGE + i * 0x1000);
        }
        for i in 0..MAX_OUTSTANDING as u64 {
            vcpu.served(PAGE + i * 0x1000);
        }
        // Every page arrived, but the guest still waits for 64 page-readies.
        assert_eq!(vcpu.fault(PAGE, true), Err(SyncReason::Full));
        assert!(vcpu.next_ready(true).is_some());
        assert_eq!(
            vcpu.fault(PAGE, true),
            Err(SyncReason::Full),
            "sent, not yet acknowledged"
        );
        ack(&mut vcpu);
        assert_eq!(vcpu.fault(PAGE, true), Ok(()), "one slot is free");
    }

    #[test]
    fn a_page_the_guest_cannot_take_async_stays_synchronous_until_it_arrives() {
        let mut vcpu = enabled();
        vcpu.stay_synchronous(PAGE, SyncReason::Ring0);
        assert_eq!(
            vcpu.fault(PAGE, true),
            Err(SyncReason::Ring0),
            "no kick storm"
        );
        assert_eq!(
            vcpu.fault(PAGE + 0x1000, true),
            Ok(()),
            "other pages still go async"
        );
        vcpu.take_kick();
        vcpu.served(PAGE);
        assert_eq!(vcpu.fault(PAGE, true), Ok(()));
        vcpu.take_kick();
        vcpu.stay_synchronous(PAGE, SyncReason::EventPending);
        assert_eq!(
            vcpu.fault(PAGE, true),
            Ok(()),
            "a transient reason is worth a new kick"
        );
    }

    #[test]
    fn an_undeliverable_page_ready_is_sent_again_first() {
        let mut vcpu = enabled();
        let first = vcpu.not_present(PAGE);
        let second = vcpu.not_present(PAGE + 0x1000);
        vcpu.served(PAGE);
        vcpu.served(PAGE + 0x1000);
        assert_eq!(vcpu.next_ready(true), Some(first));
        vcpu.undeliverable(first);
        assert_eq!(vcpu.next_ready(true), Some(first));
        ack(&mut vcpu);
        assert_eq!(vcpu.next_ready(true), Some(second));
    }
}
