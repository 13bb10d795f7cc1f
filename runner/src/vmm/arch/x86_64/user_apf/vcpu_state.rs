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
mod tests;
