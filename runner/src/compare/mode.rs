//! The async PF modes `compare` can run. The names are a contract: later issues make more
//! of them runnable, but all are recognised now so a typo is told apart from "not yet".

use std::fmt;
use std::str::FromStr;

use crate::guest_arch::GuestArch;

/// How page faults reach the guest in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Async PF off: every fault stalls the vCPU until its page is fetched.
    Off,
    /// KVM's in-kernel async PF, delivered to the guest.
    Kvm,
    /// Async PF driven by our VMM from userspace.
    Vmm,
    /// Our VMM decides per fault between a synchronous and an async fault.
    Adaptive,
    /// arm64: our EL2 host delivers async PF (SDEI + PPI) to the aarch64 guest.
    El2,
}

const NAMES: [(&str, Mode); 5] = [
    ("off", Mode::Off),
    ("kvm", Mode::Kvm),
    ("vmm", Mode::Vmm),
    ("adaptive", Mode::Adaptive),
    ("el2", Mode::El2),
];

impl Mode {
    /// Whether our own host (the x86 VMM or the arm64 EL2 host), not KVM, delivers this
    /// mode's async page faults: only ours can be made to misbehave (`--inject`).
    pub fn is_our_host(self) -> bool {
        matches!(self, Mode::Vmm | Mode::Adaptive | Mode::El2)
    }

    /// The modes this build can run for `arch`, `off` first.
    pub fn supported(arch: GuestArch) -> &'static [Mode] {
        match arch {
            GuestArch::X86_64 => &[Mode::Off, Mode::Kvm, Mode::Vmm, Mode::Adaptive],
            GuestArch::Aarch64 => &[Mode::Off, Mode::El2],
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = NAMES.iter().find(|(_, m)| m == self).map(|(n, _)| *n);
        f.write_str(name.expect("every mode has a name"))
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode '{0}' (known: off, kvm, vmm, adaptive, el2)")]
pub struct UnknownMode(String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, m)| *m)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_typos_are_refused() {
        for (name, mode) in NAMES {
            assert_eq!(name.parse::<Mode>(), Ok(mode));
            assert_eq!(mode.to_string(), name);
        }
        let err = "kvmm".parse::<Mode>().unwrap_err().to_string();
        assert!(err.contains("'kvmm'") && err.contains("adaptive"), "{err}");
    }

    #[test]
    fn off_is_supported_first() {
        assert_eq!(Mode::supported(GuestArch::X86_64).first(), Some(&Mode::Off));
        assert_eq!(Mode::supported(GuestArch::Aarch64), [Mode::Off, Mode::El2]);
        assert!(Mode::El2.is_our_host() && !Mode::Kvm.is_our_host());
    }
}
