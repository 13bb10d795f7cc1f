//! The one PSCI call the kernel makes (Arm DEN 0022, "Power State Coordination Interface"):
//! `CPU_ON`, which starts another CPU at an entry point with one argument.

use core::fmt;
use sdei::smccc::{Conduit, Convention, Owner, fast_call_id};

/// `CPU_ON`, SMC64 (DEN 0022 §5.1.4, function 3 of the standard secure service).
pub const CPU_ON: u32 = fast_call_id(Convention::Smc64, Owner::StandardSecure, 3);

/// Why `CPU_ON` failed: the error codes of DEN 0022 table 6 that it may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The host has no PSCI `CPU_ON` (the return value the SMCCC gives unknown calls).
    NotSupported,
    /// No CPU with that MPIDR.
    InvalidParameters,
    AlreadyOn,
    OnPending,
    InternalFailure,
    /// The entry point is not a physical address the CPU can start at.
    InvalidAddress,
    Denied,
    /// A value DEN 0022 does not define for `CPU_ON`.
    Other(i64),
}

impl Error {
    /// The outcome of a call that returned `x0`.
    pub fn check(x0: u64) -> Result<(), Self> {
        Err(match x0 as i64 {
            0 => return Ok(()),
            -1 => Self::NotSupported,
            -2 => Self::InvalidParameters,
            -3 => Self::Denied,
            -4 => Self::AlreadyOn,
            -5 => Self::OnPending,
            -6 => Self::InternalFailure,
            -9 => Self::InvalidAddress,
            other => Self::Other(other),
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSupported => f.write_str("the host does not implement PSCI CPU_ON"),
            Self::InvalidParameters => f.write_str("no such CPU (INVALID_PARAMETERS)"),
            Self::Denied => f.write_str("the host refused (DENIED)"),
            Self::AlreadyOn => f.write_str("the CPU is already on (ALREADY_ON)"),
            Self::OnPending => f.write_str("the CPU is already starting (ON_PENDING)"),
            Self::InternalFailure => f.write_str("the host failed (INTERNAL_FAILURE)"),
            Self::InvalidAddress => f.write_str("the entry point is refused (INVALID_ADDRESS)"),
            Self::Other(value) => write!(f, "an undefined return value {value}"),
        }
    }
}

/// Starts the CPU whose MPIDR affinity is `mpidr` at the physical address `entry`, with the
/// MMU off and `x0 = context`. Returns once the host has accepted: the CPU runs soon after.
pub fn cpu_on(conduit: &impl Conduit, mpidr: u64, entry: u64, context: u64) -> Result<(), Error> {
    let [x0, ..] = conduit.call([u64::from(CPU_ON), mpidr, entry, context, 0, 0]);
    Error::check(x0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdei::MockConduit;

    #[test]
    fn cpu_on_is_the_smc64_function_id_linux_uses() {
        // include/uapi/linux/psci.h: PSCI_0_2_FN64_CPU_ON = 0xc4000003.
        assert_eq!(CPU_ON, 0xC400_0003);
    }

    #[test]
    fn cpu_on_passes_target_entry_and_context_in_order() {
        let host = MockConduit::replying([0, 0, 0, 0]);
        assert_eq!(cpu_on(&host, 1, 0x4020_0000, 0x4030_0000), Ok(()));
        assert_eq!(
            host.calls(),
            vec![[0xC400_0003, 1, 0x4020_0000, 0x4030_0000, 0, 0]]
        );
    }

    #[test]
    fn every_defined_error_is_named_and_others_are_kept() {
        let cases = [
            (-1, Error::NotSupported),
            (-2, Error::InvalidParameters),
            (-3, Error::Denied),
            (-4, Error::AlreadyOn),
            (-5, Error::OnPending),
            (-6, Error::InternalFailure),
            (-9, Error::InvalidAddress),
            (-7, Error::Other(-7)),
            (1, Error::Other(1)),
        ];
        for (value, error) in cases {
            let host = MockConduit::replying([value as u64, 0, 0, 0]);
            assert_eq!(cpu_on(&host, 1, 0, 0), Err(error), "return value {value}");
        }
    }

    #[test]
    fn errors_say_what_went_wrong() {
        assert!(Error::InvalidParameters.to_string().contains("no such CPU"));
        assert!(Error::Other(-7).to_string().contains("-7"));
    }
}
