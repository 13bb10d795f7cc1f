//! Which service a guest hypercall (HVC, or SMC trapped by `HCR_EL2.TSC`) is for, and the
//! answers of the simple ones: SMCCC (DEN 0028), PSCI (DEN 0022) and KVM's vendor calls
//! (`arm64-apf-sdei-abi.md` §2.1). SDEI and async PF have their own state machines
//! ([`crate::sdei_dispatcher`], [`crate::apf`]).

use crate::sdei_dispatcher::Dispatcher;
use apf_pv::arm64::{
    ARM_SMCCC_KVM_FUNC_ASYNC_PF, ARM_SMCCC_VENDOR_HYP_CALL_UID, ARM_SMCCC_VENDOR_HYP_KVM_FEATURES,
    ASYNC_PF_FUNC_ID, KVM_UID,
};
use sdei::smccc::{NOT_SUPPORTED, SMCCC_VERSION};

/// `PSCI_VERSION` and `SYSTEM_OFF` (DEN 0022; SMC32 IDs).
pub const PSCI_VERSION: u32 = 0x8400_0000;
pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
/// The SMCCC version we implement: 1.1 (major in bits 30:16), the minimum for KVM's vendor
/// calls.
pub const SMCCC_VERSION_1_1: u64 = 0x1_0001;
/// The PSCI version we report: 1.0, of which only `SYSTEM_OFF` is implemented.
pub const PSCI_VERSION_1_0: u64 = 0x1_0000;
/// `KVM_FEATURES` bit 0 (`ARM_SMCCC_KVM_FUNC_FEATURES`): the call itself.
const KVM_FEATURE_FEATURES: u64 = 1 << 0;

/// A guest hypercall by service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    SmcccVersion,
    PsciVersion,
    SystemOff,
    VendorUid,
    KvmFeatures,
    AsyncPf,
    Sdei,
    Unknown,
}

impl Call {
    /// Classifies by the function ID in `w0` (SMCCC: the upper half of `x0` is ignored).
    pub fn classify(x0: u64) -> Self {
        match x0 as u32 {
            SMCCC_VERSION => Self::SmcccVersion,
            PSCI_VERSION => Self::PsciVersion,
            PSCI_SYSTEM_OFF => Self::SystemOff,
            ARM_SMCCC_VENDOR_HYP_CALL_UID => Self::VendorUid,
            ARM_SMCCC_VENDOR_HYP_KVM_FEATURES => Self::KvmFeatures,
            ASYNC_PF_FUNC_ID => Self::AsyncPf,
            id if Dispatcher::owns(u64::from(id)) => Self::Sdei,
            _ => Self::Unknown,
        }
    }

    /// `x0..x3` of the calls answered without state; `apf_offered` is whether this run
    /// offers async PF (`mode=apf`). Stateful calls answer NOT_SUPPORTED here.
    pub fn answer(self, apf_offered: bool) -> [u64; 4] {
        let not_supported = [NOT_SUPPORTED as u64, 0, 0, 0];
        match self {
            Self::SmcccVersion => [SMCCC_VERSION_1_1, 0, 0, 0],
            Self::PsciVersion => [PSCI_VERSION_1_0, 0, 0, 0],
            Self::VendorUid => KVM_UID.map(u64::from),
            Self::KvmFeatures => {
                let apf = if apf_offered {
                    1 << ARM_SMCCC_KVM_FUNC_ASYNC_PF
                } else {
                    0
                };
                [KVM_FEATURE_FEATURES | apf, 0, 0, 0]
            }
            Self::SystemOff | Self::AsyncPf | Self::Sdei | Self::Unknown => not_supported,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_by_function_id() {
        let table = [
            (0x8000_0000, Call::SmcccVersion),
            (0x8400_0000, Call::PsciVersion),
            (0x8400_0008, Call::SystemOff),
            (0xffff_ffff_8400_0008, Call::SystemOff),
            (0x8600_ff01, Call::VendorUid),
            (0x8600_0000, Call::KvmFeatures),
            (0x8600_0002, Call::AsyncPf),
            (0xc400_0020, Call::Sdei),
            (0xc400_0025, Call::Sdei),
            (0x8600_0001, Call::Unknown),
            (0xc600_0001, Call::Unknown),
        ];
        for (x0, call) in table {
            assert_eq!(Call::classify(x0), call, "{x0:#x}");
        }
    }

    #[test]
    fn answers_the_guest_crates_accept() {
        assert_eq!(
            sdei::smccc::SmcccVersion::from_x0(Call::SmcccVersion.answer(false)[0]),
            sdei::smccc::SmcccVersion::V1_1
        );
        assert_eq!(
            Call::VendorUid.answer(false),
            [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d]
        );
        assert_eq!(Call::KvmFeatures.answer(false)[0], 0b001);
        assert_eq!(Call::KvmFeatures.answer(true)[0], 0b101);
        assert_eq!(Call::Unknown.answer(true)[0], u64::MAX);
    }
}
