//! `inject=NAME[,NAME...]`: host misbehaviour put into a run on purpose, to show the guest
//! stays correct when its host is faulty. The faults, their names, rates and meanings are
//! `host-faults`' [`Inject`], shared with the x86 runner's `--inject`; each is applied at a
//! fixed 1-in-N rate, so runs repeat. As they apply to the arm64 protocol: the guest
//! acknowledges a page-ready with `IRQ_ACK`; the broadcast is token `~0` (§2.4); under
//! `disable-reenable` the forgotten tokens' fetches still complete, unannounced, and the
//! broadcast is queued as `ENABLE` queues it; `overflow` goes up to the host's tables' size.
//! Here: the set asked for, and the counters that apply it.

use core::fmt;

pub use host_faults::Inject;
use host_faults::SPIKE_FACTOR;

/// How many kinds there are.
const KINDS: usize = Inject::ALL.len();

/// `inject`'s bit in [`Injections`].
fn bit(inject: Inject) -> u8 {
    1 << inject as u8
}

/// The set asked for (a bit per [`Inject`]: no allocation at EL2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Injections(u8);

impl Injections {
    /// Parses `NAME[,NAME...]`; the unknown name is the error.
    pub fn parse(list: &str) -> Result<Self, &str> {
        list.split(',').try_fold(Self::default(), |set, name| {
            Inject::parse(name)
                .map(|inject| Self(set.0 | bit(inject)))
                .ok_or(name)
        })
    }

    pub fn contains(self, inject: Inject) -> bool {
        self.0 & bit(inject) != 0
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
        let applies = self.asked.contains(inject) && inject.applies_to(self.seen[i]);
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
            nanos.saturating_mul(u64::from(SPIKE_FACTOR))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_unknown_names_are_the_error() {
        let set = Injections::parse("reorder,drop-ready").unwrap();
        assert!(set.contains(Inject::Reorder) && set.contains(Inject::DropReady));
        assert!(!set.contains(Inject::Spikes));
        assert_eq!(set.to_string(), "reorder,drop-ready");
        assert_eq!(Injections::default().to_string(), "none");
        assert_eq!(Injections::parse("reorder,bogus"), Err("bogus"));
        assert_eq!(Injections::parse(""), Err(""));
    }

    #[test]
    fn every_kind_has_its_own_bit() {
        let all = Inject::ALL.map(|i| i.name()).join(",");
        let set = Injections::parse(&all).unwrap();
        assert!(set.iter().eq(Inject::ALL));
        assert_eq!(set.to_string(), all);
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
