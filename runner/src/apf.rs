//! `--apf`: which side delivers async page faults to the guest, and what that means for the
//! guest's CPUID, its command line and QEMU's CPU model.

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
}

impl ApfMode {
    /// The guest command-line word that selects the same mode in the guest.
    pub fn guest_word(self) -> &'static str {
        match self {
            ApfMode::Off => "apf=off",
            ApfMode::Kvm => "apf=on",
        }
    }

    /// QEMU `-cpu` properties for the mode.
    pub fn qemu_cpu_properties(self) -> &'static str {
        match self {
            ApfMode::Off => "kvm-asyncpf=off,kvm-asyncpf-int=off",
            ApfMode::Kvm => "kvm-asyncpf=on,kvm-asyncpf-int=on",
        }
    }

    /// `eax` of the KVM feature leaf as the guest should see it.
    pub fn kvm_features(self, supported: u32) -> u32 {
        match self {
            ApfMode::Off => supported & !ASYNC_PF_FEATURES,
            ApfMode::Kvm => supported,
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
                .contains("kvm-asyncpf-int=off")
        );
    }
}
