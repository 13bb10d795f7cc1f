//! Finding the v4 async PF interface (§2.1): SMCCC 1.1, KVM's vendor UID, the feature
//! bit, and a version answer that only async PF gives.

use super::abi::{
    ARM_SMCCC_KVM_FUNC_ASYNC_PF, ARM_SMCCC_VENDOR_HYP_CALL_UID, ARM_SMCCC_VENDOR_HYP_KVM_FEATURES,
    KVM_UID,
};
use super::hypercall::Apf;
use super::version::ApfVersion;
use core::fmt;
use sdei::smccc::{Conduit, SmcccError, SmcccVersion};

/// Why async PF cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// SMCCC older than 1.1: no vendor hypervisor calls to rely on.
    OldSmccc(SmcccVersion),
    /// The vendor UID is not KVM's.
    NotKvm,
    /// KVM without the async PF feature bit.
    NoAsyncPf,
    /// The version call failed (e.g. no APF state for this vCPU).
    VersionCall(SmcccError),
    /// The version call answered something that is not a usable async PF version: a
    /// host whose function 2 is another call (pKVM's `HYP_MEMINFO`) or major 0.
    BadVersion(u64),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OldSmccc(version) => {
                write!(f, "SMCCC {version} is older than {}", SmcccVersion::V1_1)
            }
            Self::NotKvm => write!(f, "the vendor hypervisor UID is not KVM's"),
            Self::NoAsyncPf => write!(
                f,
                "KVM does not advertise async PF (KVM_FEATURES bit {ARM_SMCCC_KVM_FUNC_ASYNC_PF})"
            ),
            Self::VersionCall(error) => write!(f, "the async PF VERSION call failed: {error}"),
            Self::BadVersion(x1) => write!(
                f,
                "the async PF VERSION call returned {x1:#x}, not a version >= {}.0.0",
                ApfVersion::MIN_MAJOR
            ),
        }
    }
}

/// Checks that the hypervisor behind `conduit` speaks the v4 async PF protocol; returns
/// its version. Call with the PSCI conduit (`hvc` for KVM guests).
///
/// The feature bit alone is not trusted: newer kernels give vendor function 2 to pKVM, so
/// the version call must also succeed with bits 63:24 of `x1` clear.
pub fn detect(conduit: &impl Conduit) -> Result<ApfVersion, Unavailable> {
    let smccc = SmcccVersion::query(conduit);
    if smccc < SmcccVersion::V1_1 {
        return Err(Unavailable::OldSmccc(smccc));
    }
    let uid = conduit.call([ARM_SMCCC_VENDOR_HYP_CALL_UID.into(), 0, 0, 0, 0, 0]);
    // SMC32 results live in w0..w3: the upper halves are not part of the UID.
    if uid.map(|x| x as u32) != KVM_UID {
        return Err(Unavailable::NotKvm);
    }
    let [features, ..] = conduit.call([ARM_SMCCC_VENDOR_HYP_KVM_FEATURES.into(), 0, 0, 0, 0, 0]);
    // Bit n of the bitmap advertises KVM vendor function n.
    if features & (1 << ARM_SMCCC_KVM_FUNC_ASYNC_PF) == 0 {
        return Err(Unavailable::NoAsyncPf);
    }
    let x1 = Apf::new(conduit)
        .version()
        .map_err(Unavailable::VersionCall)?;
    match ApfVersion::from_x1(x1) {
        Some(version) if version.is_supported() => Ok(version),
        _ => Err(Unavailable::BadVersion(x1)),
    }
}

#[cfg(test)]
mod tests {
    use super::{Unavailable, detect};
    use crate::arm64::ApfVersion;
    use sdei::MockConduit;
    use sdei::smccc::{SmcccError, SmcccVersion};

    /// A scripted hypervisor: what each discovery call returns.
    #[derive(Clone, Copy)]
    struct Host {
        smccc_version: u64,
        uid: [u64; 4],
        features: u64,
        apf_version: [u64; 2],
    }

    const KVM_UID: [u64; 4] = [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];
    /// KVM_FEATURES with FEATURES, PTP and ASYNC_PF.
    const V4_FEATURES: u64 = 0b111;

    const V4_HOST: Host = Host {
        smccc_version: 0x1_0001,
        uid: KVM_UID,
        features: V4_FEATURES,
        apf_version: [0, 0x01_0000],
    };

    fn run(host: Host) -> (Result<ApfVersion, Unavailable>, Vec<u64>) {
        let conduit = MockConduit::new(move |args| match args[0] {
            0x8000_0000 => [host.smccc_version, 0, 0, 0],
            0x8600_FF01 => host.uid,
            0x8600_0000 => [host.features, 0, 0, 0],
            0x8600_0002 => [host.apf_version[0], host.apf_version[1], 0, 0],
            _ => [-1i64 as u64, 0, 0, 0],
        });
        let result = detect(&conduit);
        let ids = conduit.calls().iter().map(|args| args[0]).collect();
        (result, ids)
    }

    #[test]
    fn v4_host() {
        let (result, ids) = run(V4_HOST);
        assert_eq!(
            result,
            Ok(ApfVersion {
                major: 1,
                minor: 0,
                revision: 0
            })
        );
        assert_eq!(ids, [0x8000_0000, 0x8600_FF01, 0x8600_0000, 0x8600_0002]);
    }

    #[test]
    fn smccc_1_0_is_too_old() {
        for smccc_version in [-1i64 as u64, 0x1_0000] {
            let (result, ids) = run(Host {
                smccc_version,
                ..V4_HOST
            });
            assert_eq!(result, Err(Unavailable::OldSmccc(SmcccVersion::V1_0)));
            assert_eq!(ids.len(), 1);
        }
    }

    #[test]
    fn newer_smccc_is_fine() {
        let (result, _) = run(Host {
            smccc_version: 0x1_0004,
            ..V4_HOST
        });
        assert!(result.is_ok());
    }

    #[test]
    fn other_hypervisor_is_not_kvm() {
        let mut uid = KVM_UID;
        uid[3] ^= 1;
        let (result, ids) = run(Host { uid, ..V4_HOST });
        assert_eq!(result, Err(Unavailable::NotKvm));
        assert_eq!(ids.len(), 2);
        let (result, _) = run(Host {
            uid: [-1i64 as u64, 0, 0, 0],
            ..V4_HOST
        });
        assert_eq!(result, Err(Unavailable::NotKvm));
    }

    #[test]
    fn uid_upper_halves_are_ignored() {
        let uid = KVM_UID.map(|w| w | 0xffff_ffff_0000_0000);
        assert!(run(Host { uid, ..V4_HOST }).0.is_ok());
    }

    #[test]
    fn kvm_without_the_feature_bit() {
        let (result, ids) = run(Host {
            features: 0b011,
            ..V4_HOST
        });
        assert_eq!(result, Err(Unavailable::NoAsyncPf));
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn version_call_failure() {
        let (result, _) = run(Host {
            apf_version: [-1i64 as u64, 0],
            ..V4_HOST
        });
        assert_eq!(
            result,
            Err(Unavailable::VersionCall(SmcccError::NotSupported))
        );
    }

    /// A pKVM host: bit 2 is HYP_MEMINFO, which answers the "version" call with the page
    /// size in x0 (not a status) or, with SUCCESS, junk in x1.
    #[test]
    fn pkvm_function_2_clash_is_rejected() {
        let (result, _) = run(Host {
            apf_version: [4096, 0],
            ..V4_HOST
        });
        assert_eq!(
            result,
            Err(Unavailable::VersionCall(SmcccError::Unexpected(4096)))
        );
        let (result, _) = run(Host {
            apf_version: [0, 0x1000_0000],
            ..V4_HOST
        });
        assert_eq!(result, Err(Unavailable::BadVersion(0x1000_0000)));
    }

    #[test]
    fn major_zero_is_rejected() {
        let (result, _) = run(Host {
            apf_version: [0, 0x00_0100],
            ..V4_HOST
        });
        assert_eq!(result, Err(Unavailable::BadVersion(0x100)));
    }

    #[test]
    fn reasons_name_the_missing_piece() {
        assert!(
            Unavailable::OldSmccc(SmcccVersion::V1_0)
                .to_string()
                .contains("1.0 is older than 1.1")
        );
        assert!(Unavailable::NotKvm.to_string().contains("KVM"));
        assert!(Unavailable::NoAsyncPf.to_string().contains("bit 2"));
        assert!(
            Unavailable::VersionCall(SmcccError::NotSupported)
                .to_string()
                .contains("NOT_SUPPORTED")
        );
        assert!(
            Unavailable::BadVersion(0x1000_0000)
                .to_string()
                .contains("0x10000000")
        );
    }
}
