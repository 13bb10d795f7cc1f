//! `inject=NAME[,NAME...]`: host misbehaviour put into a run on purpose, to show the guest
//! stays correct when its host is faulty. The names, rates and meanings are the x86 runner's
//! `--inject` (`runner/src/inject.rs`) as they apply to the arm64 protocol; each fault is
//! applied at a fixed 1-in-N rate, so runs repeat.

use core::fmt;

/// One kind of host misbehaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    /// Every 8th page-ready is sent a second time after the guest's `IRQ_ACK`.
    DuplicateReady,
    /// Every 8th page-ready is preceded by one for a token never issued.
    UnknownToken,
    /// Every 8th page-ready is held back and sent after the next page that arrives.
    Reorder,
    /// Every 8th page-ready is never sent.
    DropReady,
    /// After every 16th not-present, a broadcast wake (token `~0`, §2.4) although the
    /// tokens stay outstanding; their page-readies still come.
    WakeAll,
    /// After every 32nd not-present the host forgets its outstanding tokens (as a reset
    /// would; their fetches still complete, unannounced) and, as `ENABLE` does, queues the
    /// broadcast.
    DisableReenable,
    /// Every 16th fetch takes 100 times its latency.
    Spikes,
    /// The host ignores its limit of 64 outstanding tokens (up to its tables' size).
    Overflow,
}

/// How many kinds there are.
pub const KINDS: usize = 8;

impl Inject {
    pub const ALL: [Inject; KINDS] = [
        Inject::DuplicateReady,
        Inject::UnknownToken,
        Inject::Reorder,
        Inject::DropReady,
        Inject::WakeAll,
        Inject::DisableReenable,
        Inject::Spikes,
        Inject::Overflow,
    ];

    /// The name on the command line and in the `STATS` line.
    pub fn name(self) -> &'static str {
        match self {
            Inject::DuplicateReady => "duplicate-ready",
            Inject::UnknownToken => "unknown-token",
            Inject::Reorder => "reorder",
            Inject::DropReady => "drop-ready",
            Inject::WakeAll => "wake-all",
            Inject::DisableReenable => "disable-reenable",
            Inject::Spikes => "spikes",
            Inject::Overflow => "overflow",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Applied to one event in this many; `None`: to every event.
    pub fn one_in(self) -> Option<u64> {
        match self {
            Inject::DuplicateReady | Inject::UnknownToken | Inject::DropReady | Inject::Reorder => {
                Some(8)
            }
            Inject::WakeAll | Inject::Spikes => Some(16),
            Inject::DisableReenable => Some(32),
            Inject::Overflow => None,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The set asked for (a bit per [`Inject`]: no allocation at EL2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Injections(u8);

impl Injections {
    /// Parses `NAME[,NAME...]`; the unknown name is the error.
    pub fn parse(list: &str) -> Result<Self, &str> {
        list.split(',').try_fold(Self::default(), |set, name| {
            Inject::parse(name)
                .map(|inject| Self(set.0 | inject.bit()))
                .ok_or(name)
        })
    }

    pub fn contains(self, inject: Inject) -> bool {
        self.0 & inject.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Inject> {
        Inject::ALL.into_iter().filter(move |&i| self.contains(i))
    }
}

impl fmt::Display for Injections {
    /// `name,name` (or `none`), as parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, inject) in self.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma}{}", inject.name())?;
        }
        Ok(())
    }
}

/// The faults asked for, an event counter per kind (each fault counts its own kind of
/// event: page-readies, not-presents, fetches) and how often each was applied.
#[derive(Clone, Debug, Default)]
pub struct Faulty {
    asked: Injections,
    seen: [u64; KINDS],
    applied: [u64; KINDS],
}

impl Faulty {
    pub fn new(asked: Injections) -> Self {
        Self {
            asked,
            ..Self::default()
        }
    }

    /// Counts an event for `inject`; whether it applies to this one (the `one_in`-th, the
    /// 2 × `one_in`-th, ...), counting the application if so. Not asked for: never.
    pub fn apply(&mut self, inject: Inject) -> bool {
        let i = inject as usize;
        self.seen[i] += 1;
        let applies = self.asked.contains(inject)
            && inject
                .one_in()
                .is_none_or(|n| self.seen[i].is_multiple_of(n));
        if applies {
            self.applied[i] += 1;
        }
        applies
    }

    pub fn asked(&self) -> Injections {
        self.asked
    }

    /// A fetch's latency in nanoseconds: `nanos`, or [`SPIKE_FACTOR`] times it for every
    /// 16th fetch under `inject=spikes`.
    pub fn fetch_latency(&mut self, nanos: u64) -> u64 {
        if self.apply(Inject::Spikes) {
            nanos.saturating_mul(SPIKE_FACTOR)
        } else {
            nanos
        }
    }

    /// How often `inject` was applied.
    pub fn applied(&self, inject: Inject) -> u64 {
        self.applied[inject as usize]
    }
}

impl fmt::Display for Faulty {
    /// ` name=applied` for each fault asked for (nothing if none), for the `STATS` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for inject in self.asked.iter() {
            write!(f, " {}={}", inject.name(), self.applied(inject))?;
        }
        Ok(())
    }
}

/// Spikes multiply a fetch's latency by this.
pub const SPIKE_FACTOR: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_the_error() {
        for inject in Inject::ALL {
            assert_eq!(Inject::parse(inject.name()), Some(inject));
        }
        let set = Injections::parse("reorder,drop-ready").unwrap();
        assert!(set.contains(Inject::Reorder) && set.contains(Inject::DropReady));
        assert!(!set.contains(Inject::Spikes));
        assert_eq!(set.to_string(), "reorder,drop-ready");
        assert_eq!(Injections::default().to_string(), "none");
        assert_eq!(Injections::parse("reorder,bogus"), Err("bogus"));
        assert_eq!(Injections::parse(""), Err(""));
    }

    #[test]
    fn rates_match_the_x86_runner() {
        let rates: Vec<_> = Inject::ALL.iter().map(|i| i.one_in()).collect();
        assert_eq!(
            rates,
            [
                Some(8),
                Some(8),
                Some(8),
                Some(8),
                Some(16),
                Some(32),
                Some(16),
                None
            ]
        );
    }

    #[test]
    fn applies_one_in_n_of_the_asked_for_and_counts() {
        let mut faulty = Faulty::new(Injections::parse("drop-ready,overflow").unwrap());
        let picked: Vec<u64> = (1..=24)
            .filter(|_| faulty.apply(Inject::DropReady))
            .collect();
        assert_eq!(picked, [8, 16, 24]);
        assert_eq!(faulty.applied(Inject::DropReady), 3);
        assert!((0..5).all(|_| faulty.apply(Inject::Overflow)));
        assert!(
            (0..40).all(|_| !faulty.apply(Inject::WakeAll)),
            "not asked for"
        );
        assert_eq!(faulty.applied(Inject::WakeAll), 0);
        assert_eq!(faulty.to_string(), " drop-ready=3 overflow=5");
        assert_eq!(Faulty::default().to_string(), "");
    }

    #[test]
    fn every_16th_fetch_spikes() {
        let mut faulty = Faulty::new(Injections::parse("spikes").unwrap());
        let latencies: Vec<u64> = (0..32).map(|_| faulty.fetch_latency(7)).collect();
        assert_eq!(latencies[15], 700);
        assert_eq!(latencies[31], 700);
        assert_eq!(latencies.iter().filter(|&&l| l == 7).count(), 30);
        assert_eq!(Faulty::default().fetch_latency(7), 7, "not asked for");
    }
}
