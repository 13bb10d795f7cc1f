//! `--apf`: which side delivers async page faults to the guest, and what that means for the
//! guest's CPUID, its command line and QEMU's CPU model. The guest is the same in every mode:
//! it sees KVM's interface whether KVM or this VMM plays the host's part.

/// KVM's paravirtual feature leaf.
pub const KVM_FEATURES_LEAF: u32 = 0x4000_0001;
/// KVM_FEATURE_ASYNC_PF, KVM_FEATURE_ASYNC_PF_VMEXIT and KVM_FEATURE_ASYNC_PF_INT.
pub const ASYNC_PF_FEATURES: u32 = (1 << 4) | (1 << 10) | (1 << 14);

/// How page faults on missing guest memory reach the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ApfMode {
    /// No async PF: the async PF CPUID bits are hidden and the guest is told `apf=off`.
    Off,
    /// KVM's in-kernel async PF: the bits are advertised and the guest is told `apf=on`.
    Kvm,
    /// This VMM plays KVM's part from userspace (builtin VMM with --latency): every ring-3
    /// fault on a lazy page becomes async.
    Vmm,
    /// As `vmm`, but a fault whose page is expected within --async-threshold stays
    /// synchronous (cheaper than the not-present/ready round trip).
    Adaptive,
    /// The arm64 EL2 host (`--vmm el2`) delivers them with the v4 protocol (SDEI and a PPI)
    /// for faults taken at EL0; the guest is told `apf=on`.
    El2,
}

impl ApfMode {
    /// The guest command-line word that selects the same mode in the guest.
    pub fn guest_word(self) -> &'static str {
        match self {
            ApfMode::Off => "apf=off",
            ApfMode::Kvm | ApfMode::Vmm | ApfMode::Adaptive | ApfMode::El2 => "apf=on",
        }
    }

    /// Whether this VMM, not KVM, delivers the events (it needs lazy memory to know faults).
    pub fn is_userspace(self) -> bool {
        matches!(self, ApfMode::Vmm | ApfMode::Adaptive)
    }

    /// QEMU `-cpu` properties for the mode; `None` for the modes only the builtin VMM has.
    pub fn qemu_cpu_properties(self) -> Option<&'static str> {
        match self {
            ApfMode::Off => Some("kvm-asyncpf=off,kvm-asyncpf-int=off"),
            ApfMode::Kvm => Some("kvm-asyncpf=on,kvm-asyncpf-int=on"),
            ApfMode::Vmm | ApfMode::Adaptive | ApfMode::El2 => None,
        }
    }

    /// `eax` of the KVM feature leaf as the guest should see it. The userspace modes show
    /// KVM's bits too: the guest's MSR accesses come to this VMM instead of KVM. `el2` is
    /// arm64's and never reaches an x86 VMM (`run` refuses it there).
    pub fn kvm_features(self, supported: u32) -> u32 {
        match self {
            ApfMode::Off | ApfMode::El2 => supported & !ASYNC_PF_FEATURES,
            ApfMode::Kvm | ApfMode::Vmm | ApfMode::Adaptive => supported,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_hides_exactly_the_async_pf_bits() {
        // What KVM reports on our hosts (host-facts.md).
        let supported = 0x0100_7efb;
        assert_eq!(ApfMode::Kvm.kvm_features(supported), supported);
        let off = ApfMode::Off.kvm_features(supported);
        assert_eq!(off & ASYNC_PF_FEATURES, 0);
        assert_eq!(off | (supported & ASYNC_PF_FEATURES), supported);
    }

    #[test]
    fn guest_and_qemu_agree() {
        assert_eq!(ApfMode::Kvm.guest_word(), "apf=on");
        assert!(
            ApfMode::Off
                .qemu_cpu_properties()
                .is_some_and(|p| p.contains("kvm-asyncpf-int=off"))
        );
    }

    #[test]
    fn userspace_modes_look_like_kvm_to_the_guest_and_are_not_for_qemu() {
        let supported = 0x0100_7efb;
        for mode in [ApfMode::Vmm, ApfMode::Adaptive] {
            assert!(mode.is_userspace());
            assert_eq!(mode.guest_word(), "apf=on");
            assert_eq!(mode.kvm_features(supported), supported);
            assert_eq!(mode.qemu_cpu_properties(), None);
        }
        assert!(!ApfMode::Kvm.is_userspace() && !ApfMode::Off.is_userspace());
    }
}
