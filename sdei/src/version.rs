//! The `SDEI_VERSION` result (DEN 0054 §5.1.1).

use core::fmt;

/// Result bits 62:48: major version (bit 63 is zero, so a version is never an error code).
const MAJOR_SHIFT: u32 = 48;
/// Mask of the major version after the shift.
const MAJOR_MASK: u64 = 0x7fff;
/// Result bits 47:32: minor version.
const MINOR_SHIFT: u32 = 32;
/// Mask of the minor version after the shift.
const MINOR_MASK: u64 = 0xffff;
/// Result bits 31:0: vendor-defined (KVM's SDEI series returns "KVM", 0x4b564d).
const VENDOR_MASK: u64 = 0xffff_ffff;

/// An implementation's SDEI version and vendor word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdeiVersion {
    pub major: u16,
    pub minor: u16,
    pub vendor: u32,
}

impl SdeiVersion {
    /// The only major version this client speaks (1.0 and 1.1 share it), as in Linux.
    pub const SUPPORTED_MAJOR: u16 = 1;

    /// Decodes a successful `SDEI_VERSION` result.
    pub const fn from_x0(x0: u64) -> Self {
        Self {
            major: ((x0 >> MAJOR_SHIFT) & MAJOR_MASK) as u16,
            minor: ((x0 >> MINOR_SHIFT) & MINOR_MASK) as u16,
            vendor: (x0 & VENDOR_MASK) as u32,
        }
    }

    /// Whether this client can use the implementation.
    pub const fn is_supported(&self) -> bool {
        self.major == Self::SUPPORTED_MAJOR
    }
}

impl fmt::Display for SdeiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} (vendor {:#x})",
            self.major, self.minor, self.vendor
        )
    }
}

#[cfg(test)]
mod tests {
    use super::SdeiVersion;

    #[test]
    fn kvm_v1_1() {
        let v = SdeiVersion::from_x0(0x0001_0001_004b_564d);
        assert_eq!(
            v,
            SdeiVersion {
                major: 1,
                minor: 1,
                vendor: 0x4b_564d
            }
        );
        assert!(v.is_supported());
        assert_eq!(v.to_string(), "1.1 (vendor 0x4b564d)");
    }

    #[test]
    fn fields_are_masked() {
        let v = SdeiVersion::from_x0(0x7fff_ffff_ffff_ffff);
        assert_eq!((v.major, v.minor, v.vendor), (0x7fff, 0xffff, 0xffff_ffff));
        assert!(!v.is_supported());
        assert!(!SdeiVersion::from_x0(0x0002_0000_0000_0000).is_supported());
    }
}
