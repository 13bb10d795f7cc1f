//! `--inject`: host misbehaviour the runner can put on purpose into a run, to show the guest
//! stays correct when its host is faulty (a lost or repeated event, a reset, a slow fetch) and
//! says what happened. The faults, their names, rates and meanings are `host-faults`', which
//! the arm64 EL2 host shares; here is what is the runner's own: which of its hosts injects
//! each, the command line's parser, and the event counter its x86 VMM and lazy memory use.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
pub use host_faults::{Inject, SPIKE_FACTOR};

/// What the runner adds to a fault (an extension trait: `Inject` is `host-faults`').
pub trait InjectExt {
    /// Whether only the VMM's async PF host can inject it (the others are lazy memory's).
    fn needs_userspace_apf(self) -> bool;
}

impl InjectExt for Inject {
    fn needs_userspace_apf(self) -> bool {
        self != Inject::Spikes
    }
}

/// The parser of `--inject`'s values (`run` and `compare`): the fault names, each listed with
/// what it does in `--help`; another name is a usage error that lists them.
pub fn value_parser() -> impl TypedValueParser<Value = Inject> {
    let names = Inject::ALL.map(|inject| {
        // As clap shows a doc comment's help: without the final period.
        PossibleValue::new(inject.name()).help(inject.about().trim_end_matches('.'))
    });
    PossibleValuesParser::new(names)
        .map(|name| Inject::parse(&name).expect("a possible value is a fault's name"))
}

/// The set asked for.
pub type Injections = BTreeSet<Inject>;

/// `injects` as `--inject` and the EL2 host's `inject=` take them: `name,name,...`.
pub fn names<'a>(injects: impl IntoIterator<Item = &'a Inject>) -> String {
    injects
        .into_iter()
        .map(|inject| inject.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// How often each fault was applied, as a host reports it (`injected_faults`).
pub type Applied = BTreeMap<Inject, u64>;

/// `applied` for a run report: `{"name": count, ...}`.
pub fn applied_json(applied: &Applied) -> serde_json::Value {
    applied
        .iter()
        .map(|(inject, n)| (inject.name().to_owned(), serde_json::json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `applied` for `-v`: `; injected NAME xN` for each.
pub fn write_applied(f: &mut fmt::Formatter<'_>, applied: &Applied) -> fmt::Result {
    applied
        .iter()
        .try_for_each(|(inject, count)| write!(f, "; injected {} x{count}", inject.name()))
}

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
        asked.contains(&inject) && inject.applies_to(self.seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
