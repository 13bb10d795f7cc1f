//! The memory and async PF set-ups `serve-bench` compares, and what each means for the VM
//! and the guest.

use std::fmt;

use crate::apf::ApfMode;
use crate::cli::VmmKind;

/// One set-up of guest memory and async PF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum ServeMode {
    /// All memory present, async PF off: the baseline no fault slows.
    Present,
    /// Lazy memory, async PF off: a cold request stalls its vCPU for the whole fetch.
    Off,
    /// Lazy memory (QEMU: all present), KVM's async PF.
    Kvm,
    /// Lazy memory, async PF delivered by our VMM.
    Vmm,
    /// Lazy memory, our VMM choosing per fault between sync and async.
    Adaptive,
}

impl ServeMode {
    /// The modes QEMU can run: it has no lazy memory here, so only async PF varies.
    pub const QEMU: [ServeMode; 2] = [ServeMode::Present, ServeMode::Kvm];

    pub fn apf(self) -> ApfMode {
        match self {
            ServeMode::Present | ServeMode::Off => ApfMode::Off,
            ServeMode::Kvm => ApfMode::Kvm,
            ServeMode::Vmm => ApfMode::Vmm,
            ServeMode::Adaptive => ApfMode::Adaptive,
        }
    }

    /// Whether the host serves guest memory lazily, after `--latency`, in this mode.
    pub fn lazy(self, vmm: VmmKind) -> bool {
        vmm == VmmKind::Builtin && self != ServeMode::Present
    }

    pub fn name(self) -> &'static str {
        match self {
            ServeMode::Present => "present",
            ServeMode::Off => "off",
            ServeMode::Kvm => "kvm",
            ServeMode::Vmm => "vmm",
            ServeMode::Adaptive => "adaptive",
        }
    }
}

impl fmt::Display for ServeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_are_clap_names() {
        for mode in ServeMode::value_variants() {
            let value = mode.to_possible_value().expect("not skipped");
            assert_eq!(value.get_name(), mode.name());
        }
    }

    #[test]
    fn only_present_has_all_memory_under_our_vmm() {
        assert!(!ServeMode::Present.lazy(VmmKind::Builtin));
        assert!(ServeMode::Off.lazy(VmmKind::Builtin));
        assert!(!ServeMode::Kvm.lazy(VmmKind::Qemu));
        assert_eq!(ServeMode::Present.apf(), ApfMode::Off);
        assert_eq!(ServeMode::Adaptive.apf(), ApfMode::Adaptive);
    }
}
