//! The SMC Calling Convention (Arm DEN 0028) as far as SDEI and the KVM vendor hypercalls
//! need it: how a call is made ([`Conduit`]), how function IDs are built, the version
//! query and the generic return codes.

use core::fmt;

/// Makes one SMCCC call: `x0..x5` in, `x0..x3` out (DEN 0028 §2.6: SMC64/HVC64 calls take
/// up to six argument registers after the function ID and return up to four results).
///
/// A trait so that all protocol logic can be tested on the host against a fake firmware;
/// the guest uses [`arch::aarch64::Hvc`](crate::arch) (KVM's conduit is `hvc`).
pub trait Conduit {
    /// Issues the call with `args[0]` = function ID in `x0` and `args[1..]` in `x1..x5`,
    /// returning `x0..x3` as the callee left them.
    fn call(&self, args: [u64; 6]) -> [u64; 4];
}

/// A shared reference is a conduit too, so a caller can keep the conduit (e.g. a test's
/// recording fake) and lend it to a client.
impl<C: Conduit + ?Sized> Conduit for &C {
    fn call(&self, args: [u64; 6]) -> [u64; 4] {
        (**self).call(args)
    }
}

/// Function ID bit 31: a fast call (atomic, runs to completion); every call here is one
/// (DEN 0028 §2.5).
pub const FAST_CALL: u32 = 1 << 31;
/// Function ID bit 30: the SMC64/HVC64 convention (64-bit registers); clear for SMC32.
pub const SMC64: u32 = 1 << 30;
/// Function ID bits 29:24 name the service that owns the call.
pub const OWNER_SHIFT: u32 = 24;

/// Which register width a call uses (function ID bit 30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// 32-bit arguments and results in `w0..w7`.
    Smc32,
    /// 64-bit arguments and results in `x0..x17`.
    Smc64,
}

/// The owning entities this crate and apf-pv call (DEN 0028 §6.2, table 6-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Owner {
    /// Arm architecture calls (`SMCCC_VERSION`, ...).
    Arm = 0,
    /// Standard secure service calls: PSCI, SDEI (0x20..=0x3F), ...
    StandardSecure = 4,
    /// Vendor-specific hypervisor calls: KVM's UID, features and PV calls.
    VendorHypervisor = 6,
}

/// The ID of fast call `function` of `owner` with the given convention.
pub const fn fast_call_id(convention: Convention, owner: Owner, function: u16) -> u32 {
    let width = match convention {
        Convention::Smc32 => 0,
        Convention::Smc64 => SMC64,
    };
    FAST_CALL | width | ((owner as u32) << OWNER_SHIFT) | function as u32
}

/// `SMCCC_VERSION` (DEN 0028 §7.2): the implemented SMCCC version; mandatory from 1.1.
pub const SMCCC_VERSION: u32 = fast_call_id(Convention::Smc32, Owner::Arm, 0);

/// Generic return code (DEN 0028 §7.1, SMC32 values sign-extended): call succeeded.
pub const SUCCESS: i64 = 0;
/// Generic return code: the function is not implemented.
pub const NOT_SUPPORTED: i64 = -1;
/// Generic return code: the call was unnecessary (e.g. a state change to the current state).
pub const NOT_REQUIRED: i64 = -2;
/// Generic return code: an argument is invalid.
pub const INVALID_PARAMETER: i64 = -3;

/// A generic SMCCC failure in `x0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmcccError {
    /// [`NOT_SUPPORTED`].
    NotSupported,
    /// [`NOT_REQUIRED`].
    NotRequired,
    /// [`INVALID_PARAMETER`].
    InvalidParameter,
    /// A status the convention does not define, kept raw for the log.
    Unexpected(u64),
}

impl SmcccError {
    /// `Ok` for [`SUCCESS`], the error otherwise. SMC32 calls return a 32-bit status, so
    /// only `w0` is looked at: callees need not sign-extend it into `x0`.
    pub const fn check(x0: u64) -> Result<(), Self> {
        match x0 as u32 as i32 as i64 {
            SUCCESS => Ok(()),
            NOT_SUPPORTED => Err(Self::NotSupported),
            NOT_REQUIRED => Err(Self::NotRequired),
            INVALID_PARAMETER => Err(Self::InvalidParameter),
            _ => Err(Self::Unexpected(x0)),
        }
    }
}

impl fmt::Display for SmcccError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported => write!(f, "NOT_SUPPORTED ({NOT_SUPPORTED})"),
            Self::NotRequired => write!(f, "NOT_REQUIRED ({NOT_REQUIRED})"),
            Self::InvalidParameter => write!(f, "INVALID_PARAMETER ({INVALID_PARAMETER})"),
            Self::Unexpected(x0) => write!(f, "undefined SMCCC status {x0:#x}"),
        }
    }
}

/// `SMCCC_VERSION` result bits 30:16: major version.
const VERSION_MAJOR_SHIFT: u32 = 16;
/// Mask of the major version after the shift (bit 31 is zero in a version).
const VERSION_MAJOR_MASK: u32 = 0x7fff;
/// `SMCCC_VERSION` result bits 15:0: minor version.
const VERSION_MINOR_MASK: u32 = 0xffff;

/// An SMCCC version; ordered, so `version >= SmcccVersion::V1_1` reads as it should.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SmcccVersion {
    pub major: u16,
    pub minor: u16,
}

impl SmcccVersion {
    /// The original convention, implied when `SMCCC_VERSION` is not implemented.
    pub const V1_0: Self = Self { major: 1, minor: 0 };
    /// The first version where `SMCCC_VERSION` is mandatory; the arm64 KVM paravirtual
    /// interfaces require it.
    pub const V1_1: Self = Self { major: 1, minor: 1 };

    /// Decodes `x0` of [`SMCCC_VERSION`]. `NOT_SUPPORTED` means 1.0, where the call was
    /// optional (DEN 0028 §7.2); the caller must already know SMCCC exists (e.g. from
    /// `PSCI_FEATURES`).
    pub const fn from_x0(x0: u64) -> Self {
        let w0 = x0 as u32;
        if w0 as i32 as i64 == NOT_SUPPORTED {
            return Self::V1_0;
        }
        Self {
            major: ((w0 >> VERSION_MAJOR_SHIFT) & VERSION_MAJOR_MASK) as u16,
            minor: (w0 & VERSION_MINOR_MASK) as u16,
        }
    }

    /// Asks the firmware or hypervisor behind `conduit`.
    pub fn query(conduit: &impl Conduit) -> Self {
        let [x0, ..] = conduit.call([SMCCC_VERSION as u64, 0, 0, 0, 0, 0]);
        Self::from_x0(x0)
    }
}

impl fmt::Display for SmcccVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MockConduit;

    #[test]
    fn function_ids_match_the_published_values() {
        assert_eq!(SMCCC_VERSION, 0x8000_0000);
        // SDEI_VERSION and KVM's vendor UID call, from the SDEI and KVM headers.
        assert_eq!(
            fast_call_id(Convention::Smc64, Owner::StandardSecure, 0x20),
            0xC400_0020
        );
        assert_eq!(
            fast_call_id(Convention::Smc32, Owner::VendorHypervisor, 0xFF01),
            0x8600_FF01
        );
    }

    #[test]
    fn status_codes() {
        assert_eq!(SmcccError::check(0), Ok(()));
        assert_eq!(
            SmcccError::check(-1i64 as u64),
            Err(SmcccError::NotSupported)
        );
        assert_eq!(
            SmcccError::check(-2i64 as u64),
            Err(SmcccError::NotRequired)
        );
        assert_eq!(
            SmcccError::check(-3i64 as u64),
            Err(SmcccError::InvalidParameter)
        );
        assert_eq!(SmcccError::check(7), Err(SmcccError::Unexpected(7)));
    }

    #[test]
    fn smc32_status_need_not_be_sign_extended() {
        assert_eq!(
            SmcccError::check(0xffff_ffff),
            Err(SmcccError::NotSupported)
        );
        assert_eq!(SmcccError::check(0xdead_0000_0000_0000), Ok(()));
    }

    #[test]
    fn error_display_names_the_code() {
        assert!(SmcccError::NotRequired.to_string().contains("-2"));
        assert!(SmcccError::Unexpected(9).to_string().contains("0x9"));
    }

    #[test]
    fn version_decoding() {
        assert_eq!(SmcccVersion::from_x0(0x1_0001), SmcccVersion::V1_1);
        assert_eq!(
            SmcccVersion::from_x0(0x1_0002),
            SmcccVersion { major: 1, minor: 2 }
        );
        assert_eq!(SmcccVersion::from_x0(-1i64 as u64), SmcccVersion::V1_0);
        assert_eq!(SmcccVersion::from_x0(0xffff_ffff), SmcccVersion::V1_0);
        assert_eq!(SmcccVersion::V1_1.to_string(), "1.1");
    }

    #[test]
    fn versions_are_ordered() {
        assert!(SmcccVersion::V1_0 < SmcccVersion::V1_1);
        assert!(SmcccVersion { major: 1, minor: 2 } >= SmcccVersion::V1_1);
        assert!(SmcccVersion { major: 2, minor: 0 } >= SmcccVersion::V1_1);
    }

    #[test]
    fn version_query_makes_one_call() {
        let firmware = MockConduit::replying([0x1_0002, 0, 0, 0]);
        let version = SmcccVersion::query(&firmware);
        assert_eq!(version, SmcccVersion { major: 1, minor: 2 });
        assert_eq!(firmware.calls(), [[0x8000_0000, 0, 0, 0, 0, 0]]);
    }
}
