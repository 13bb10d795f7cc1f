//! Which task waits for which async page fault token, independent of the architecture.
//!
//! The host reports two events per fault: "page not present" (the faulting task should
//! wait) and "page ready" (it may run again), matched by a [`Token`]. The kernel calls
//! [`WaiterTable::wait`] from its not-present handler and [`WaiterTable::wake`] from its
//! page-ready handler; a broadcast ready ([`BROADCAST`]) goes to [`WaiterTable::wake_all`].
//! The table is a pair of fixed arrays so that neither handler allocates.
//!
//! # Rules
//!
//! * [`wait`](WaiterTable::wait) counts `not_present`. If a ready for the token already
//!   arrived (an *early* token, see below) it is consumed, `wake_before_wait` is counted and
//!   the result is [`Wait::AlreadyReady`]: the task must not park. Otherwise, if
//!   [`MAX_OUTSTANDING`] waiters are parked, `full` is counted and the result is
//!   [`Wait::Full`]: the task must not park either (it resumes, re-faults, and the host halts
//!   the vCPU until the page is there). Otherwise the waiter is stored, `max_parked` is
//!   updated and the result is [`Wait::Park`].
//! * [`wake`](WaiterTable::wake) counts `ready`. The first-parked waiter with the token is
//!   removed and returned as [`Wake::Woke`]. With no such waiter the ready beat its wait (a
//!   handler ordering the kernel must survive), so the token is remembered as early — once,
//!   however often it is repeated — and the result is [`Wake::Early`]. When the early set
//!   is already full its oldest token is forgotten and counted in `unknown_tokens`: the host
//!   sends a ready only after the not-present for it, so a token nobody waited for during
//!   [`MAX_OUTSTANDING`] later early readies is stale (e.g. a ready for a fault that hit
//!   [`Wait::Full`]) rather than merely early.
//! * [`wake_all`](WaiterTable::wake_all) counts `broadcasts`, hands every parked waiter to
//!   the caller and forgets all early tokens: the host broadcasts when it (re)enables the
//!   protocol, e.g. after migration, and a broadcast means "nothing is outstanding any more".
//! * [`release_all`](WaiterTable::release_all) is `wake_all` without a host event (the guest
//!   turned async PF off itself), so it counts nothing.
//! * [`cancel`](WaiterTable::cancel) removes a waiter without any event (a task that exits,
//!   or one a watchdog retries) and returns the token it waited for.
//!
//! The host gives every fault its own token, but two waiters with the same token are still
//! handled: each [`wake`](WaiterTable::wake) for that token wakes one of them, the one that
//! parked first, and a broadcast wakes all of them.
//!
//! [`wait`](WaiterTable::wait) and [`wake`](WaiterTable::wake) run in the guest's trap
//! handlers, where (on our KVM) every instruction is emulated at about a microsecond, so
//! neither scans: parked waiters sit in an open-addressing hash table keyed by token, twice
//! as large as [`MAX_OUTSTANDING`] so that a probe rarely passes more than one other entry.
//! Removal shifts the entries behind it back (no tombstones), which keeps waiters with the
//! same token in parking order along their probe run. Each entry has a parking sequence
//! number, so the rare whole-table operations (a broadcast, a release, a cancel by waiter)
//! still go in parking order. Early tokens are a short list that a wait checks only when it
//! is not empty.

/// How many faults may wait at once: KVM's `ASYNC_PF_PER_VCPU`. The host never has more
/// outstanding on one vCPU, so more waiters than this means tokens were lost.
pub const MAX_OUTSTANDING: usize = 64;

/// The host's name for one async page fault (CR2 of the not-present #PF on x86).
pub type Token = u32;

/// The token of a page-ready that means "wake everything" (KVM's `~0`).
pub const BROADCAST: Token = u32::MAX;

/// What the not-present handler must do with the faulting task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The waiter is stored: suspend the task until a wake returns it.
    Park,
    /// The page-ready came first: resume the task, the page is there.
    AlreadyReady,
    /// [`MAX_OUTSTANDING`] waiters are parked: do not park; resume the task, and the host
    /// halts the vCPU on its repeated fault until the page is ready.
    Full,
}

/// What a page-ready did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake<W> {
    /// This waiter was parked on the token and is now removed: make it runnable.
    Woke(W),
    /// Nobody waits for the token yet; it is remembered for the coming wait.
    Early,
}

/// Event counts since the table was created, for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Calls of [`WaiterTable::wait`].
    pub not_present: u64,
    /// Calls of [`WaiterTable::wake`].
    pub ready: u64,
    /// Waits that found their ready already there.
    pub wake_before_wait: u64,
    /// Calls of [`WaiterTable::wake_all`].
    pub broadcasts: u64,
    /// Early tokens evicted without a wait ever claiming them.
    pub unknown_tokens: u64,
    /// Waits refused because [`MAX_OUTSTANDING`] waiters were parked.
    pub full: u64,
    /// The most waiters ever parked at once.
    pub max_parked: u64,
}

/// Slots of the hash table: a power of two, twice [`MAX_OUTSTANDING`].
const SLOT_BITS: u32 = 7;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: usize = SLOTS - 1;
const _: () = assert!(SLOTS == 2 * MAX_OUTSTANDING);

/// Where a token's probe run starts: Fibonacci hashing, so tokens that differ only in
/// high bits (KVM's are a counter shifted left by 12) spread over the slots.
fn home(token: Token) -> usize {
    (token.wrapping_mul(0x9E37_79B9) >> (Token::BITS - SLOT_BITS)) as usize
}

/// The sequence number of a free slot: parks count from 1.
const FREE: u64 = 0;

/// What the table parks: copied in and out, compared by [`cancel`](WaiterTable::cancel),
/// and with a value that fills free slots, so that the table is a constant when empty
/// (for a kernel whose per-CPU state is a `static`).
pub trait Waiter: Copy + Eq {
    /// Fills free slots; never handed out.
    const VACANT: Self;
}

/// Task ids.
impl Waiter for usize {
    const VACANT: Self = usize::MAX;
}

impl Waiter for u32 {
    const VACANT: Self = u32::MAX;
}

/// Parked waiters and early tokens.
pub struct WaiterTable<W: Waiter> {
    /// The slots, a field per array: each waiter's parking sequence number (or [`FREE`]),
    /// its token and itself. The not-present and page-ready paths each touch one or two
    /// slots, and with elements of at most eight bytes each access is one instruction, the
    /// slot scaled in its address (a slot of one 32-byte struct needed a shift for it).
    ///
    /// Linear probing by [`home`]: every waiter lies in the run of occupied slots that
    /// starts at its token's home, after any waiter with its token that parked earlier.
    seqs: [u64; SLOTS],
    tokens: [Token; SLOTS],
    waiters: [W; SLOTS],
    /// How many slots are occupied.
    parked_count: usize,
    /// The next parking sequence number.
    next_seq: u64,
    /// `early[..early_len]` are tokens whose ready came before any wait for them, oldest
    /// first.
    early: [Token; MAX_OUTSTANDING],
    early_len: usize,
    counters: Counters,
}

impl<W: Waiter> WaiterTable<W> {
    /// An empty table, usable in a `static`.
    pub const fn new() -> Self {
        Self {
            seqs: [FREE; SLOTS],
            tokens: [0; SLOTS],
            waiters: [W::VACANT; SLOTS],
            parked_count: 0,
            next_seq: FREE + 1,
            early: [0; MAX_OUTSTANDING],
            early_len: 0,
            counters: Counters {
                not_present: 0,
                ready: 0,
                wake_before_wait: 0,
                broadcasts: 0,
                unknown_tokens: 0,
                full: 0,
                max_parked: 0,
            },
        }
    }

    /// A not-present fault for `token` taken by `waiter`.
    #[inline]
    pub fn wait(&mut self, token: Token, waiter: W) -> Wait {
        if self.early_len != 0
            && let Some(claimed) = self.claim_early(token)
        {
            return claimed;
        }
        if self.parked_count == MAX_OUTSTANDING {
            self.counters.full += 1;
            return Wait::Full;
        }
        let mut slot = home(token);
        while self.seqs[slot] != FREE {
            slot = (slot + 1) & SLOT_MASK;
        }
        self.seqs[slot] = self.next_seq;
        self.tokens[slot] = token;
        self.waiters[slot] = waiter;
        self.next_seq += 1;
        self.parked_count += 1;
        if self.parked_count as u64 > self.counters.max_parked {
            self.new_max_parked();
        }
        Wait::Park
    }

    /// The wait for `token` finds its ready already there, if it is among the early
    /// tokens: out of line, as early tokens are rare.
    #[cold]
    #[inline(never)]
    fn claim_early(&mut self, token: Token) -> Option<Wait> {
        let index = self.early_tokens().iter().position(|&t| t == token)?;
        self.remove_early(index);
        self.counters.wake_before_wait += 1;
        Some(Wait::AlreadyReady)
    }

    /// A page-ready for `token` (not [`BROADCAST`]: callers route BROADCAST to
    /// [`wake_all`](Self::wake_all)).
    #[inline]
    pub fn wake(&mut self, token: Token) -> Wake<W> {
        debug_assert_ne!(token, BROADCAST, "a broadcast goes to wake_all");
        self.counters.ready += 1;
        let mut slot = home(token);
        while self.seqs[slot] != FREE {
            if self.tokens[slot] == token {
                let waiter = self.waiters[slot];
                self.remove_slot(slot);
                return Wake::Woke(waiter);
            }
            slot = (slot + 1) & SLOT_MASK;
        }
        if !self.early_tokens().contains(&token) {
            if self.early_len == MAX_OUTSTANDING {
                self.remove_early(0);
                self.counters.unknown_tokens += 1;
            }
            self.early[self.early_len] = token;
            self.early_len += 1;
        }
        Wake::Early
    }

    /// Broadcast: every waiter is passed to `f` (in parking order) and removed, early tokens
    /// are forgotten; returns how many were woken.
    pub fn wake_all(&mut self, f: impl FnMut(W)) -> usize {
        self.counters.broadcasts += 1;
        self.release_all(f)
    }

    /// [`wake_all`](Self::wake_all) without a page-ready, so no broadcast is counted: the
    /// guest itself turned async PF off, and the host dropped everything outstanding.
    pub fn release_all(&mut self, mut f: impl FnMut(W)) -> usize {
        let mut order = [(0u64, 0u8); MAX_OUTSTANDING];
        let mut woken = 0;
        for (slot, &seq) in self.seqs.iter().enumerate() {
            if seq != FREE {
                order[woken] = (seq, slot as u8);
                woken += 1;
            }
        }
        let order = &mut order[..woken];
        order.sort_unstable_by_key(|&(seq, _)| seq);
        for &(_, slot) in order.iter() {
            let slot = usize::from(slot);
            self.seqs[slot] = FREE;
            f(self.waiters[slot]);
        }
        self.parked_count = 0;
        self.early_len = 0;
        woken
    }

    /// Removes `waiter` (e.g. a task that exits or is retried by a watchdog later); returns
    /// its token, or `None` if it is not parked. Of several entries for one waiter, the
    /// first parked goes.
    pub fn cancel(&mut self, waiter: W) -> Option<Token> {
        let slot = (0..SLOTS)
            .filter(|&slot| self.seqs[slot] != FREE && self.waiters[slot] == waiter)
            .min_by_key(|&slot| self.seqs[slot])?;
        let token = self.tokens[slot];
        self.remove_slot(slot);
        Some(token)
    }

    /// How many waiters are parked.
    pub fn parked(&self) -> usize {
        self.parked_count
    }

    /// How many early tokens are held: readies no wait has claimed yet. At the end of a run
    /// these are stale (e.g. the ready of a wait a watchdog gave up on), not early.
    pub fn unclaimed(&self) -> usize {
        self.early_len
    }

    /// The event counts so far. Every wait parks, finds its ready early or finds the table
    /// full, and each park takes a sequence number: so `not_present` is their sum rather
    /// than one more increment on the not-present path.
    pub fn counters(&self) -> Counters {
        Counters {
            not_present: (self.next_seq - 1) + self.counters.wake_before_wait + self.counters.full,
            ..self.counters
        }
    }

    /// Out of line, so the park's check is a compare and a branch not taken, not a
    /// conditional move and a store on every park.
    #[cold]
    #[inline(never)]
    fn new_max_parked(&mut self) {
        self.counters.max_parked = self.parked_count as u64;
    }

    fn early_tokens(&self) -> &[Token] {
        &self.early[..self.early_len]
    }

    /// Empties `slot`. The next slot is nearly always free (the table is twice as large
    /// as it can be full), which ends the probe run there; otherwise the run behind is
    /// closed up, out of line.
    #[inline]
    fn remove_slot(&mut self, slot: usize) {
        self.seqs[slot] = FREE;
        self.parked_count -= 1;
        let next = (slot + 1) & SLOT_MASK;
        if self.seqs[next] != FREE {
            self.close_gap(slot, next);
        }
    }

    /// Moves back every entry of the run from `next` on that may sit in the hole at `slot`
    /// (backward-shift deletion), so every probe run stays unbroken.
    #[cold]
    #[inline(never)]
    fn close_gap(&mut self, slot: usize, mut next: usize) {
        let mut hole = slot;
        while self.seqs[next] != FREE {
            // The entry may fill the hole if the hole lies between its home and it.
            let from_home = next.wrapping_sub(home(self.tokens[next])) & SLOT_MASK;
            let from_hole = next.wrapping_sub(hole) & SLOT_MASK;
            if from_home >= from_hole {
                self.seqs[hole] = self.seqs[next];
                self.tokens[hole] = self.tokens[next];
                self.waiters[hole] = self.waiters[next];
                self.seqs[next] = FREE;
                hole = next;
            }
            next = (next + 1) & SLOT_MASK;
        }
    }

    /// Removes the early token at `index`, keeping the rest in arrival order.
    fn remove_early(&mut self, index: usize) {
        self.early.copy_within(index + 1..self.early_len, index);
        self.early_len -= 1;
    }
}

impl<W: Waiter> Default for WaiterTable<W> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod interleavings;
#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
