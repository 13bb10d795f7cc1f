//! Reading the guest's exit status out of QEMU's: `isa-debug-exit` makes QEMU exit with
//! `(status << 1) | 1` (the aarch64 guest passes the same code to its semihosting exit), so
//! an odd code carries a status and an even one means the guest
//! stopped some other way (QEMU exits 0 on power-off and, with `-no-reboot`, on a reset or
//! triple fault).

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("guest stopped without an exit status (QEMU exited with {0})")]
pub struct NoExitStatus(pub i32);

/// The guest's exit status from QEMU's exit code. Process exit codes have 8 bits, so statuses
/// above 127 cannot be told apart through QEMU.
pub fn guest_status(qemu_code: i32) -> Result<u8, NoExitStatus> {
    if qemu_code & 1 == 0 {
        return Err(NoExitStatus(qemu_code));
    }
    u8::try_from(qemu_code >> 1).map_err(|_| NoExitStatus(qemu_code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_codes_carry_the_status() {
        assert_eq!(guest_status(1), Ok(0));
        assert_eq!(guest_status(15), Ok(7));
        assert_eq!(guest_status(9), Ok(4));
        assert_eq!(guest_status(255), Ok(127));
    }

    #[test]
    fn even_codes_mean_no_status() {
        assert_eq!(guest_status(0), Err(NoExitStatus(0)));
        assert_eq!(guest_status(2), Err(NoExitStatus(2)));
    }

    #[test]
    fn codes_outside_a_byte_are_not_statuses() {
        assert_eq!(guest_status(-1), Err(NoExitStatus(-1)));
        assert_eq!(guest_status(513), Err(NoExitStatus(513)));
    }
}
