//! The host misbehaviour our two async PF hosts can put into a run on purpose (`--inject`):
//! the x86 runner's VMM and the arm64 EL2 host take the same names, at the same rates, with
//! the same meanings (README "Fault injection"), so they are defined once, here. Each fault is
//! applied at a fixed 1-in-N rate, so runs repeat. `no_std`: the EL2 host is bare metal.
#![cfg_attr(not(test), no_std)]

/// Defines [`Inject`] from one row per fault: its doc comment, its name, its rate. The doc
/// comment is also [`Inject::about`], the runner's help for the name, so it is written once;
/// its lines are joined as written (each `/// ` line starts with the space that separates it
/// from the previous one).
macro_rules! faults {
    ($($(#[doc = $doc:literal])+ $fault:ident = $name:literal, $one_in:expr;)+) => {
        /// One kind of host misbehaviour.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Inject {
            $($(#[doc = $doc])+ $fault,)+
        }

        impl Inject {
            /// Every fault, in the order hosts list them.
            pub const ALL: [Inject; [$($name),+].len()] = [$(Inject::$fault),+];

            /// The name on the command line and in reports.
            pub fn name(self) -> &'static str {
                match self {
                    $(Inject::$fault => $name,)+
                }
            }

            /// Applied to one event in this many; `None`: to every event.
            pub fn one_in(self) -> Option<u64> {
                match self {
                    $(Inject::$fault => $one_in,)+
                }
            }

            /// What the fault does: its doc comment, on one line.
            pub fn about(self) -> &'static str {
                match self {
                    $(Inject::$fault => concat!($($doc),+).trim_start(),)+
                }
            }
        }
    };
}

faults! {
    /// Every 8th page-ready is sent a second time after the guest acknowledged it.
    DuplicateReady = "duplicate-ready", Some(8);
    /// Every 8th page-ready is preceded by one for a token never issued.
    UnknownToken = "unknown-token", Some(8);
    /// Every 8th page-ready is held back and sent after the next page that arrives.
    Reorder = "reorder", Some(8);
    /// Every 8th page-ready is never sent: its task waits until its watchdog retries.
    DropReady = "drop-ready", Some(8);
    /// After every 16th not-present, a broadcast wake although the tokens stay outstanding;
    /// their page-readies still come, for tasks no longer waiting.
    WakeAll = "wake-all", Some(16);
    /// After every 32nd not-present the host forgets its outstanding tokens (as after a reset
    /// or a migration): they are never readied; a broadcast wake follows.
    DisableReenable = "disable-reenable", Some(32);
    /// Every 16th fetch takes 100 times its latency.
    Spikes = "spikes", Some(16);
    /// The host ignores its limit of 64 outstanding tokens per vCPU.
    Overflow = "overflow", None;
}

impl Inject {
    /// The fault named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|inject| inject.name() == name)
    }

    /// Whether the fault applies to the `nth` event of its kind (counting from 1): the
    /// `one_in`-th, the 2 × `one_in`-th, and so on; every one if it has no rate.
    pub fn applies_to(self, nth: u64) -> bool {
        self.one_in().is_none_or(|n| nth.is_multiple_of(n))
    }
}

/// Spikes multiply a fetch's latency by this.
pub const SPIKE_FACTOR: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_none() {
        for inject in Inject::ALL {
            assert_eq!(Inject::parse(inject.name()), Some(inject));
        }
        assert_eq!(Inject::parse("bogus"), None);
        assert_eq!(Inject::parse("Reorder"), None, "names are lower case");
    }

    #[test]
    fn rates_are_the_readmes() {
        let rates: Vec<_> = Inject::ALL.iter().map(|i| (i.name(), i.one_in())).collect();
        assert_eq!(
            rates,
            [
                ("duplicate-ready", Some(8)),
                ("unknown-token", Some(8)),
                ("reorder", Some(8)),
                ("drop-ready", Some(8)),
                ("wake-all", Some(16)),
                ("disable-reenable", Some(32)),
                ("spikes", Some(16)),
                ("overflow", None)
            ]
        );
    }

    #[test]
    fn about_is_the_doc_comment_on_one_line_and_states_the_rate() {
        assert_eq!(
            Inject::WakeAll.about(),
            "After every 16th not-present, a broadcast wake although the tokens stay \
             outstanding; their page-readies still come, for tasks no longer waiting."
        );
        for inject in Inject::ALL {
            if let Some(n) = inject.one_in() {
                let suffix = match n % 10 {
                    1 => "st",
                    2 => "nd",
                    3 => "rd",
                    _ => "th",
                };
                let nth = format!("{n}{suffix} ");
                assert!(inject.about().contains(&nth), "{inject:?}: {nth}");
            }
        }
        let spikes = format!("{SPIKE_FACTOR} times");
        assert!(Inject::Spikes.about().contains(&spikes));
    }

    #[test]
    fn applies_to_one_in_n_events() {
        let picked: Vec<u64> = (1..=24)
            .filter(|&nth| Inject::DropReady.applies_to(nth))
            .collect();
        assert_eq!(picked, [8, 16, 24]);
        assert!((1..=5).all(|nth| Inject::Overflow.applies_to(nth)));
        let picked: Vec<u64> = (1..=64)
            .filter(|&nth| Inject::DisableReenable.applies_to(nth))
            .collect();
        assert_eq!(picked, [32, 64]);
    }
}
