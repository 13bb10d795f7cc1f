//! Finding KVM's CPUID leaves and the async PF features this guest needs.

use super::abi::{
    KVM_CPUID_BASE_STEP, KVM_CPUID_FEATURES_OFFSET, KVM_CPUID_SIGNATURE, KVM_CPUID_SIGNATURE_LAST,
    KVM_FEATURE_ASYNC_PF, KVM_FEATURE_ASYNC_PF_INT, KVM_SIGNATURE_EBX, KVM_SIGNATURE_ECX,
    KVM_SIGNATURE_EDX,
};
use core::fmt;

/// The registers one `cpuid` returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Why async PF cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No KVM signature in the hypervisor CPUID range.
    NotKvm,
    /// KVM without `KVM_FEATURE_ASYNC_PF` (or without a feature leaf).
    NoAsyncPf,
    /// KVM without interrupt-based page-ready, which the host requires to deliver anything.
    NoAsyncPfInt,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotKvm => write!(
                f,
                "not running on KVM (no \"KVMKVMKVM\" signature in CPUID leaves \
                 {KVM_CPUID_SIGNATURE:#x}..={KVM_CPUID_SIGNATURE_LAST:#x})"
            ),
            Self::NoAsyncPf => write!(
                f,
                "the hypervisor does not advertise KVM_FEATURE_ASYNC_PF \
                 (CPUID KVM base + 1, EAX bit {KVM_FEATURE_ASYNC_PF})"
            ),
            Self::NoAsyncPfInt => write!(
                f,
                "the hypervisor does not advertise KVM_FEATURE_ASYNC_PF_INT \
                 (CPUID KVM base + 1, EAX bit {KVM_FEATURE_ASYNC_PF_INT})"
            ),
        }
    }
}

/// Finds the KVM base leaf and checks that async PF with interrupt delivery is advertised;
/// returns the base (0x4000_0000 unless another hypervisor interface sits there).
///
/// `cpuid` executes the instruction for a leaf (subleaf 0). Like Linux, the first base with
/// the KVM signature is used. Its EAX is the highest KVM leaf; old hosts report 0, which
/// means the feature leaf exists.
pub fn detect(cpuid: impl Fn(u32) -> CpuidResult) -> Result<u32, Unavailable> {
    let base = (KVM_CPUID_SIGNATURE..=KVM_CPUID_SIGNATURE_LAST)
        .step_by(KVM_CPUID_BASE_STEP as usize)
        .find(|&leaf| is_kvm_signature(&cpuid(leaf)))
        .ok_or(Unavailable::NotKvm)?;
    let features_leaf = base + KVM_CPUID_FEATURES_OFFSET;
    let max_leaf = match cpuid(base).eax {
        0 => features_leaf,
        max => max,
    };
    if max_leaf < features_leaf {
        return Err(Unavailable::NoAsyncPf);
    }
    let features = cpuid(features_leaf).eax;
    if !has_bit(features, KVM_FEATURE_ASYNC_PF) {
        return Err(Unavailable::NoAsyncPf);
    }
    if !has_bit(features, KVM_FEATURE_ASYNC_PF_INT) {
        return Err(Unavailable::NoAsyncPfInt);
    }
    Ok(base)
}

fn is_kvm_signature(r: &CpuidResult) -> bool {
    (r.ebx, r.ecx, r.edx) == (KVM_SIGNATURE_EBX, KVM_SIGNATURE_ECX, KVM_SIGNATURE_EDX)
}

fn has_bit(value: u32, bit: u32) -> bool {
    value & (1 << bit) != 0
}

#[cfg(test)]
mod tests {
    use super::{CpuidResult, Unavailable, detect};
    use crate::x86::{KVM_FEATURE_ASYNC_PF, KVM_FEATURE_ASYNC_PF_INT};
    use std::collections::HashMap;

    /// "Microsoft Hv" as Hyper-V reports it in EBX/ECX/EDX.
    const HYPERV: CpuidResult = CpuidResult {
        eax: 0x4000_0006,
        ebx: 0x7263_694d,
        ecx: 0x666f_736f,
        edx: 0x7648_2074,
    };
    const APF: u32 = 1 << KVM_FEATURE_ASYNC_PF;
    const APF_INT: u32 = 1 << KVM_FEATURE_ASYNC_PF_INT;
    /// What current KVM advertises besides async PF (clocksource bits, PV EOI, ...).
    const OTHER_FEATURES: u32 = 0b1_0000_0110_1110_1111;

    fn kvm_signature(max_leaf: u32) -> CpuidResult {
        CpuidResult {
            eax: max_leaf,
            ebx: 0x4b4d_564b,
            ecx: 0x564b_4d56,
            edx: 0x4d,
        }
    }

    fn features(eax: u32) -> CpuidResult {
        CpuidResult {
            eax,
            ..CpuidResult::default()
        }
    }

    /// A CPU whose listed leaves return the given values and all others zero.
    fn cpu(leaves: &[(u32, CpuidResult)]) -> impl Fn(u32) -> CpuidResult + use<> {
        let leaves: HashMap<_, _> = leaves.iter().copied().collect();
        move |leaf| leaves.get(&leaf).copied().unwrap_or_default()
    }

    #[test]
    fn kvm_with_both_features() {
        let cpu = cpu(&[
            (0x4000_0000, kvm_signature(0x4000_0001)),
            (0x4000_0001, features(APF | APF_INT | OTHER_FEATURES)),
        ]);
        assert_eq!(detect(cpu), Ok(0x4000_0000));
    }

    #[test]
    fn no_hypervisor_leaves() {
        assert_eq!(detect(cpu(&[])), Err(Unavailable::NotKvm));
    }

    #[test]
    fn other_hypervisor_only() {
        let cpu = cpu(&[
            (0x4000_0000, HYPERV),
            (0x4000_0001, features(APF | APF_INT)),
        ]);
        assert_eq!(detect(cpu), Err(Unavailable::NotKvm));
    }

    #[test]
    fn kvm_behind_hyperv() {
        let cpu = cpu(&[
            (0x4000_0000, HYPERV),
            (0x4000_0001, features(0)),
            (0x4000_0100, kvm_signature(0x4000_0101)),
            (0x4000_0101, features(APF | APF_INT)),
        ]);
        assert_eq!(detect(cpu), Ok(0x4000_0100));
    }

    #[test]
    fn kvm_at_the_last_base() {
        let cpu = cpu(&[
            (0x4000_FF00, kvm_signature(0x4000_FF01)),
            (0x4000_FF01, features(APF | APF_INT)),
        ]);
        assert_eq!(detect(cpu), Ok(0x4000_FF00));
    }

    #[test]
    fn missing_async_pf() {
        let cpu = cpu(&[
            (0x4000_0000, kvm_signature(0x4000_0001)),
            (0x4000_0001, features(APF_INT | OTHER_FEATURES)),
        ]);
        assert_eq!(detect(cpu), Err(Unavailable::NoAsyncPf));
    }

    #[test]
    fn missing_async_pf_int() {
        let cpu = cpu(&[
            (0x4000_0000, kvm_signature(0x4000_0001)),
            (0x4000_0001, features(APF | OTHER_FEATURES)),
        ]);
        assert_eq!(detect(cpu), Err(Unavailable::NoAsyncPfInt));
    }

    #[test]
    fn max_leaf_zero_means_features_leaf_exists() {
        let cpu = cpu(&[
            (0x4000_0100, kvm_signature(0)),
            (0x4000_0101, features(APF | APF_INT)),
        ]);
        assert_eq!(detect(cpu), Ok(0x4000_0100));
    }

    #[test]
    fn max_leaf_below_features_leaf() {
        let cpu = cpu(&[
            (0x4000_0100, kvm_signature(0x4000_0100)),
            (0x4000_0101, features(APF | APF_INT)),
        ]);
        assert_eq!(detect(cpu), Err(Unavailable::NoAsyncPf));
    }

    #[test]
    fn reasons_name_the_missing_piece() {
        assert!(Unavailable::NotKvm.to_string().contains("KVMKVMKVM"));
        let no_apf = Unavailable::NoAsyncPf.to_string();
        assert!(no_apf.contains("KVM_FEATURE_ASYNC_PF ") && no_apf.contains("bit 4"));
        let no_int = Unavailable::NoAsyncPfInt.to_string();
        assert!(no_int.contains("KVM_FEATURE_ASYNC_PF_INT") && no_int.contains("bit 14"));
    }
}
