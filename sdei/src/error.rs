//! SDEI error codes (DEN 0054 §5.1, table "SDEI return codes").

use core::fmt;

/// `x0` of a successful call that has no result.
pub const SUCCESS: i64 = 0;
/// The call or the event is not implemented.
pub const NOT_SUPPORTED: i64 = -1;
/// An argument is invalid (e.g. an unknown event number or a bad entry point).
pub const INVALID_PARAMETERS: i64 = -2;
/// The call is not allowed in the event's or the PE's current state.
pub const DENIED: i64 = -3;
/// The request is queued: e.g. unregistering while the handler runs.
pub const PENDING: i64 = -5;
/// No resources left (e.g. no free interrupt binding slot).
pub const OUT_OF_RESOURCE: i64 = -10;

/// A failed SDEI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdeiError {
    /// [`NOT_SUPPORTED`].
    NotSupported,
    /// [`INVALID_PARAMETERS`].
    InvalidParameters,
    /// [`DENIED`].
    Denied,
    /// [`PENDING`].
    Pending,
    /// [`OUT_OF_RESOURCE`].
    OutOfResource,
    /// `x0` was neither an error code nor what the call returns on success (e.g. a
    /// non-zero "success" of a status-only call, or a return from `EVENT_COMPLETE`).
    Unexpected(u64),
}

impl SdeiError {
    /// The error `x0` encodes, `None` for any other value.
    pub const fn from_code(x0: u64) -> Option<Self> {
        match x0 as i64 {
            NOT_SUPPORTED => Some(Self::NotSupported),
            INVALID_PARAMETERS => Some(Self::InvalidParameters),
            DENIED => Some(Self::Denied),
            PENDING => Some(Self::Pending),
            OUT_OF_RESOURCE => Some(Self::OutOfResource),
            _ => None,
        }
    }

    /// The raw value this error was decoded from.
    pub const fn code(self) -> i64 {
        match self {
            Self::NotSupported => NOT_SUPPORTED,
            Self::InvalidParameters => INVALID_PARAMETERS,
            Self::Denied => DENIED,
            Self::Pending => PENDING,
            Self::OutOfResource => OUT_OF_RESOURCE,
            Self::Unexpected(x0) => x0 as i64,
        }
    }

    /// `x0` of a call that returns a value: an error code is an error, anything else the
    /// value (as Linux's `invoke_sdei_fn` reads it).
    pub(crate) const fn value(x0: u64) -> Result<u64, Self> {
        match Self::from_code(x0) {
            Some(error) => Err(error),
            None => Ok(x0),
        }
    }

    /// `x0` of a call that returns only a status: [`SUCCESS`] or an error.
    pub(crate) const fn status(x0: u64) -> Result<(), Self> {
        match Self::value(x0) {
            Ok(x0) if x0 as i64 == SUCCESS => Ok(()),
            Ok(other) => Err(Self::Unexpected(other)),
            Err(error) => Err(error),
        }
    }
}

impl TryFrom<u64> for SdeiError {
    type Error = u64;

    /// The error in a raw `x0`; the value itself back if it is not an error code.
    fn try_from(x0: u64) -> Result<Self, u64> {
        Self::from_code(x0).ok_or(x0)
    }
}

impl fmt::Display for SdeiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::NotSupported => "NOT_SUPPORTED",
            Self::InvalidParameters => "INVALID_PARAMETERS",
            Self::Denied => "DENIED",
            Self::Pending => "PENDING",
            Self::OutOfResource => "OUT_OF_RESOURCE",
            Self::Unexpected(x0) => return write!(f, "unexpected SDEI result {x0:#x}"),
        };
        write!(f, "SDEI {name} ({})", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::SdeiError;

    const CODES: [(i64, SdeiError); 5] = [
        (-1, SdeiError::NotSupported),
        (-2, SdeiError::InvalidParameters),
        (-3, SdeiError::Denied),
        (-5, SdeiError::Pending),
        (-10, SdeiError::OutOfResource),
    ];

    #[test]
    fn codes_map_both_ways() {
        for (code, error) in CODES {
            assert_eq!(SdeiError::from_code(code as u64), Some(error));
            assert_eq!(SdeiError::try_from(code as u64), Ok(error));
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn other_values_are_not_errors() {
        for x0 in [0, 1, -4i64 as u64, -6i64 as u64, 0x1_0000_0000_0000] {
            assert_eq!(SdeiError::from_code(x0), None);
            assert_eq!(SdeiError::try_from(x0), Err(x0));
        }
    }

    #[test]
    fn value_and_status_results() {
        assert_eq!(SdeiError::value(42), Ok(42));
        assert_eq!(SdeiError::value(-3i64 as u64), Err(SdeiError::Denied));
        assert_eq!(SdeiError::status(0), Ok(()));
        assert_eq!(SdeiError::status(-5i64 as u64), Err(SdeiError::Pending));
        assert_eq!(SdeiError::status(3), Err(SdeiError::Unexpected(3)));
        assert_eq!(SdeiError::Unexpected(3).code(), 3);
    }

    #[test]
    fn display_names_the_code() {
        assert_eq!(
            SdeiError::OutOfResource.to_string(),
            "SDEI OUT_OF_RESOURCE (-10)"
        );
        assert!(SdeiError::Unexpected(0).to_string().contains("0x0"));
    }
}
