//! Fetches in flight for async PF, each named by a token (`arm64-apf-sdei-abi.md` §2.4):
//! `token = (id << 12) | vcpu_id` with a u16 `id` counting from 0, exactly as v4 does, so
//! the first token is 0 (a guest must accept it); at most [`SLOTS`] at once.

/// `ASYNC_PF_PER_VCPU`: outstanding fetches per vCPU; beyond it faults are synchronous.
pub const SLOTS: usize = 64;
/// Fetches the table holds: twice [`SLOTS`], so `inject=overflow` can go past the limit.
pub const TABLE: usize = 2 * SLOTS;
/// Token bits 11:0 hold the vCPU id.
const ID_SHIFT: u32 = 12;
/// Our only vCPU.
const VCPU_ID: u32 = 0;
/// The highest vCPU id a token can name (bits 11:0 all set).
const LAST_VCPU_ID: u32 = (1 << ID_SHIFT) - 1;
/// A token this host never issues, for `inject=unknown-token`: it names vCPU 4095 (as the
/// x86 runner's does), and every token here names vCPU 0.
pub const UNKNOWN_TOKEN: u32 = (1 << ID_SHIFT) | LAST_VCPU_ID;

/// One fetch in flight: its page and when its latency has elapsed (counter ticks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub token: u32,
    pub page: u64,
    pub deadline: u64,
    /// Its page-ready is due; cleared when the host forgets its tokens
    /// (`inject=disable-reenable`), while the fetch itself runs on.
    pub announce: bool,
}

/// The fetches in flight.
pub struct Outstanding {
    slots: [Option<Fetch>; TABLE],
    next_id: u16,
}

impl Outstanding {
    pub const fn new() -> Self {
        Self {
            slots: [None; TABLE],
            next_id: 0,
        }
    }

    /// Fetches in flight.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fetch of `page`, if one is in flight.
    pub fn find(&self, page: u64) -> Option<&Fetch> {
        self.slots.iter().flatten().find(|f| f.page == page)
    }

    /// Starts a fetch of `page` ending at `deadline`; `None` when the table is full (the
    /// caller keeps to [`SLOTS`] unless asked to overflow).
    pub fn start(&mut self, page: u64, deadline: u64) -> Option<Fetch> {
        let slot = self.slots.iter_mut().find(|s| s.is_none())?;
        let token = (u32::from(self.next_id) << ID_SHIFT) | VCPU_ID;
        self.next_id = self.next_id.wrapping_add(1);
        let fetch = Fetch {
            token,
            page,
            deadline,
            announce: true,
        };
        *slot = Some(fetch);
        Some(fetch)
    }

    /// Removes and returns one fetch whose deadline is at or before `now`.
    pub fn take_due(&mut self, now: u64) -> Option<Fetch> {
        self.slots
            .iter_mut()
            .find(|s| s.is_some_and(|f| f.deadline <= now))?
            .take()
    }

    /// The earliest deadline in flight, for the host's timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.slots.iter().flatten().map(|f| f.deadline).min()
    }

    /// Forgets every token in flight, as a host reset does: the fetches complete without a
    /// page-ready.
    pub fn forget_tokens(&mut self) {
        for fetch in self.slots.iter_mut().flatten() {
            fetch.announce = false;
        }
    }
}

impl Default for Outstanding {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_count_from_zero_in_bits_above_the_vcpu() {
        let mut fetches = Outstanding::new();
        let tokens: Vec<u32> = (0..3)
            .map(|i| fetches.start(0x1000 * i, 10).unwrap().token)
            .collect();
        assert_eq!(tokens, [0, 0x1000, 0x2000]);
    }

    #[test]
    fn at_most_table_in_flight() {
        let mut fetches = Outstanding::new();
        for i in 0..TABLE as u64 {
            assert!(fetches.start(i << 12, i).is_some());
        }
        assert_eq!(fetches.len(), TABLE);
        assert_eq!(fetches.start(1 << 40, 0), None);
        assert_eq!(fetches.take_due(0).map(|f| f.page), Some(0));
        assert!(
            fetches.start(1 << 40, 0).is_some(),
            "a freed slot is reused"
        );
    }

    #[test]
    fn due_fetches_come_out_and_the_next_deadline_moves() {
        let mut fetches = Outstanding::new();
        fetches.start(0x1000, 50);
        fetches.start(0x2000, 20);
        assert_eq!(fetches.find(0x2000).map(|f| f.deadline), Some(20));
        assert_eq!(fetches.next_deadline(), Some(20));
        assert_eq!(fetches.take_due(19), None);
        assert_eq!(fetches.take_due(20).map(|f| f.page), Some(0x2000));
        assert_eq!(fetches.next_deadline(), Some(50));
        fetches.forget_tokens();
        let last = fetches.take_due(50).unwrap();
        assert!(!last.announce, "forgotten, still completing");
        assert_eq!(fetches.next_deadline(), None);
    }

    #[test]
    fn the_id_wraps_at_16_bits() {
        let mut fetches = Outstanding::new();
        for _ in 0..=u16::MAX {
            let fetch = fetches.start(0, 0).unwrap();
            fetches.take_due(0).unwrap();
            assert_eq!(fetch.token & 0xfff, 0);
        }
        assert_eq!(fetches.start(0, 0).unwrap().token, 0, "id 65536 wraps to 0");
    }
}
