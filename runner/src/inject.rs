//! `--inject`: host misbehaviour the runner can put on purpose into a run, to show the guest
//! stays correct when its host is faulty (a lost or repeated event, a reset, a slow fetch) and
//! says what happened. Each fault is applied at a fixed rate, so runs repeat.

use std::collections::BTreeSet;

/// One kind of host misbehaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Inject {
    /// Every 8th page-ready is sent a second time after the guest acknowledged it.
    DuplicateReady,
    /// Every 8th page-ready is preceded by one for a token never issued.
    UnknownToken,
    /// Every 8th page-ready is held back and sent after the next page that arrives.
    Reorder,
    /// Every 8th page-ready is never sent: its task waits until its watchdog retries.
    DropReady,
    /// After every 16th page-not-present, a broadcast wake (token ~0) although the tokens
    /// stay outstanding; their page-readies still come, for tasks no longer waiting.
    WakeAll,
    /// After every 32nd page-not-present the host forgets its async PF state (as after a
    /// reset or a migration): outstanding tokens are never readied; a broadcast wake follows.
    DisableReenable,
    /// Every 16th fetch takes 100 times its latency.
    Spikes,
    /// The host ignores its limit of 64 outstanding tokens per vCPU.
    Overflow,
}

impl Inject {
    /// The name on the command line and in reports.
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

    /// Whether only the VMM's async PF host can inject it (the others are lazy memory's).
    pub fn needs_userspace_apf(self) -> bool {
        self != Inject::Spikes
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
}

/// The set asked for.
pub type Injections = BTreeSet<Inject>;

/// Counts events of one kind and says which ones an injection applies to: the `one_in`-th,
/// the 2 × `one_in`-th, and so on.
#[derive(Debug, Default)]
pub struct Every {
    seen: u64,
}

impl Every {
    /// Counts an event; whether `inject` (if asked for) applies to it.
    pub fn next(&mut self, inject: Inject, asked: &Injections) -> bool {
        self.seen += 1;
        asked.contains(&inject) && inject.one_in().is_none_or(|n| self.seen.is_multiple_of(n))
    }
}

/// Spikes multiply a fetch's latency by this.
pub const SPIKE_FACTOR: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_match_the_command_line() {
        for inject in Inject::value_variants() {
            let parsed = Inject::from_str(inject.name(), false).expect("parses");
            assert_eq!(parsed, *inject);
        }
    }

    #[test]
    fn every_picks_one_in_n_of_the_asked_for() {
        let asked = Injections::from([Inject::DropReady, Inject::Overflow]);
        let mut every = Every::default();
        let picked: Vec<u64> = (1..=24)
            .filter(|_| every.next(Inject::DropReady, &asked))
            .collect();
        assert_eq!(picked, [8, 16, 24]);
        let mut every = Every::default();
        assert!((0..5).all(|_| every.next(Inject::Overflow, &asked)));
        let mut every = Every::default();
        assert!(
            (0..40).all(|_| !every.next(Inject::WakeAll, &asked)),
            "not asked for"
        );
    }
}
