//! The protocol version the `ASYNC_PF_VERSION` sub-function returns in `x1` (§2.2).

use super::abi::{
    ASYNC_PF_VERSION_MAJOR_SHIFT, ASYNC_PF_VERSION_MINOR_SHIFT, ASYNC_PF_VERSION_RESERVED_MASK,
};
use core::fmt;

/// An async PF protocol version: one byte each for major, minor and revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApfVersion {
    pub major: u8,
    pub minor: u8,
    pub revision: u8,
}

impl ApfVersion {
    /// The lowest major version this guest speaks (v4 reports 1.0.0).
    pub const MIN_MAJOR: u8 = 1;

    /// Decodes `x1`; `None` if bits 63:24 are set, i.e. it is not an async PF version
    /// (e.g. another function answering at the same ID).
    pub const fn from_x1(x1: u64) -> Option<Self> {
        if x1 & ASYNC_PF_VERSION_RESERVED_MASK != 0 {
            return None;
        }
        Some(Self {
            major: (x1 >> ASYNC_PF_VERSION_MAJOR_SHIFT) as u8,
            minor: (x1 >> ASYNC_PF_VERSION_MINOR_SHIFT) as u8,
            revision: x1 as u8,
        })
    }

    /// Whether this guest can use the protocol.
    pub const fn is_supported(&self) -> bool {
        self.major >= Self::MIN_MAJOR
    }
}

impl fmt::Display for ApfVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::ApfVersion;

    #[test]
    fn v1_0_0() {
        let v = ApfVersion::from_x1(0x01_0000).unwrap();
        assert_eq!((v.major, v.minor, v.revision), (1, 0, 0));
        assert!(v.is_supported());
        assert_eq!(v.to_string(), "1.0.0");
    }

    #[test]
    fn fields() {
        let v = ApfVersion::from_x1(0x02_0304).unwrap();
        assert_eq!((v.major, v.minor, v.revision), (2, 3, 4));
        assert!(!ApfVersion::from_x1(0x00_0900).unwrap().is_supported());
    }

    #[test]
    fn reserved_bits_reject() {
        assert_eq!(ApfVersion::from_x1(0x0100_0000), None);
        assert_eq!(ApfVersion::from_x1(1 << 63 | 0x01_0000), None);
    }
}
