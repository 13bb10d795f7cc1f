//! The guest's async PF control decisions that need no hardware: which MSR writes a probe
//! (`apf-test=`) makes, when `apf-cycle=` turns async PF off and on, and how the outcome is
//! named in the result line.
//!
//! A host refuses an MSR value it will not take by injecting #GP (KVM: EN reserved bits
//! 5:4, INT bits 63:8; our VMM also INT vectors below 32). The arch layer survives that #GP
//! in its MSR write and reports it here as [`Refused`].

use crate::cmdline::ApfTest;
use apf_pv::x86::{
    KVM_ASYNC_PF_DELIVERY_AS_INT, KVM_ASYNC_PF_DISABLED, KVM_ASYNC_PF_ENABLED,
    KVM_ASYNC_PF_RESERVED_MASK, MSR_KVM_ASYNC_PF_EN, MSR_KVM_ASYNC_PF_INT, enable_value,
};
use core::fmt;

/// One MSR write, displayed the way the console reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrWrite {
    pub msr: u32,
    pub value: u64,
}

impl fmt::Display for MsrWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wrmsr {:#x} <- {:#x}", self.msr, self.value)
    }
}

/// The host answered an MSR write with #GP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused(pub MsrWrite);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: refused (#GP)", self.0)
    }
}

/// What the host did with a probe's tested write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Refused,
}

impl Outcome {
    /// The result line's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
        }
    }
}

impl<T> From<&Result<T, Refused>> for Outcome {
    fn from(result: &Result<T, Refused>) -> Self {
        match result {
            Ok(_) => Outcome::Accepted,
            Err(_) => Outcome::Refused,
        }
    }
}

/// Whether async PF is on, as the result line reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not asked for (`apf=off`).
    Off,
    /// Enabled and accepted by the host.
    On,
    /// Asked for, but the host refused an enabling write (#GP): the kernel runs without it.
    Refused,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Off => "off",
            State::On => "on",
            State::Refused => "refused",
        }
    }
}

/// The writes of an `apf-test` probe. It registers a scratch area (`area_gpa`) whose token
/// slot is kept busy, so nothing the host queues meanwhile (the broadcast an accepted
/// enable queues, on whatever vector the probe set) is ever delivered; the probe ends with
/// [`DISABLE`], which drops that queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The write under test; its outcome is the probe's.
    pub tested: MsrWrite,
    /// Only if `tested` was accepted: a valid enable, so the host also sees the tested
    /// vector in use.
    pub enable: Option<MsrWrite>,
}

/// Turns async PF off (the last write of an accepted probe, and of each `apf-cycle`).
pub const DISABLE: MsrWrite = MsrWrite {
    msr: MSR_KVM_ASYNC_PF_EN,
    value: KVM_ASYNC_PF_DISABLED,
};

/// The lowest reserved EN bit (4), which `apf-test=bad-area` sets (KVM refuses it with #GP).
const EN_RESERVED_BIT: u64 = 1 << KVM_ASYNC_PF_RESERVED_MASK.trailing_zeros();

impl Probe {
    /// The probe for `test` with the scratch area at `area_gpa` (64-byte aligned).
    pub fn new(test: ApfTest, area_gpa: u64) -> Self {
        let valid = enable_value(area_gpa, false).expect("the probe area is 64-byte aligned");
        match test {
            ApfTest::BadArea => Probe {
                tested: MsrWrite {
                    msr: MSR_KVM_ASYNC_PF_EN,
                    value: area_gpa
                        | EN_RESERVED_BIT
                        | KVM_ASYNC_PF_ENABLED
                        | KVM_ASYNC_PF_DELIVERY_AS_INT,
                },
                enable: None,
            },
            ApfTest::Int(value) => Probe {
                tested: MsrWrite {
                    msr: MSR_KVM_ASYNC_PF_INT,
                    value,
                },
                enable: Some(MsrWrite {
                    msr: MSR_KVM_ASYNC_PF_EN,
                    value: valid,
                }),
            },
        }
    }
}

/// `apf-cycle=N`: counts not-present events down to the next one after which async PF is
/// turned off and on again. A countdown rather than a remainder of the event count: on the
/// not-present path it is a decrement and a branch not taken.
#[derive(Clone, Copy, Debug)]
pub struct CycleCountdown {
    every: u64,
    left: u64,
}

impl CycleCountdown {
    /// Without `apf-cycle` the count starts at `u64::MAX` events: never reached.
    pub const fn new(every: Option<u64>) -> Self {
        let every = match every {
            Some(every) => every,
            None => u64::MAX,
        };
        Self { every, left: every }
    }

    /// One not-present event: whether a cycle is due after it.
    #[inline]
    pub fn step(&mut self) -> bool {
        self.left -= 1;
        if self.left != 0 {
            return false;
        }
        self.left = self.every;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const AREA: u64 = 0x12_3440;

    #[test]
    fn bad_area_sets_reserved_bit_4_on_a_valid_enable() {
        let probe = Probe::new(ApfTest::BadArea, AREA);
        assert_eq!(probe.tested.msr, MSR_KVM_ASYNC_PF_EN);
        assert_eq!(probe.tested.value, AREA | 0x10 | 0b1001);
        assert_eq!(probe.enable, None);
    }

    #[test]
    fn vector_writes_the_raw_int_value_then_a_valid_enable() {
        for value in [0, 16, 0xF3, 0x1F3, u64::MAX] {
            let probe = Probe::new(ApfTest::Int(value), AREA);
            assert_eq!(
                probe.tested,
                MsrWrite {
                    msr: MSR_KVM_ASYNC_PF_INT,
                    value
                }
            );
            assert_eq!(
                probe.enable,
                Some(MsrWrite {
                    msr: MSR_KVM_ASYNC_PF_EN,
                    value: AREA | 0b1001
                })
            );
        }
    }

    #[test]
    fn disable_clears_en() {
        assert_eq!(DISABLE.msr, 0x4b56_4d02);
        assert_eq!(DISABLE.value, 0);
    }

    #[test]
    fn refusals_name_the_msr_and_the_value() {
        let refused = Refused(MsrWrite {
            msr: MSR_KVM_ASYNC_PF_EN,
            value: 0x12_3459,
        });
        assert_eq!(
            refused.to_string(),
            "wrmsr 0x4b564d02 <- 0x123459: refused (#GP)"
        );
        assert_eq!(Outcome::from(&Err::<(), _>(refused)), Outcome::Refused);
        assert_eq!(Outcome::from(&Ok::<(), Refused>(())), Outcome::Accepted);
        assert_eq!(Outcome::Refused.as_str(), "refused");
        assert_eq!(Outcome::Accepted.as_str(), "accepted");
    }

    #[test]
    fn state_names() {
        assert_eq!(State::Off.as_str(), "off");
        assert_eq!(State::On.as_str(), "on");
        assert_eq!(State::Refused.as_str(), "refused");
    }

    #[test]
    fn cycles_after_every_nth_not_present() {
        let due = |every| {
            let mut countdown = CycleCountdown::new(every);
            (1..=12u64)
                .filter(|_| countdown.step())
                .collect::<alloc::vec::Vec<_>>()
        };
        assert_eq!(due(Some(5)), [5, 10]);
        assert_eq!(due(Some(1)), (1..=12).collect::<alloc::vec::Vec<_>>());
        assert!(due(None).is_empty());
    }
}
