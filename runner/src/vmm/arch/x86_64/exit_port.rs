//! The exit port: QEMU's `isa-debug-exit` device at port 0xf4, four bytes wide. The guest
//! writes its exit status there to end the VM (`guest-kernel/src/arch/x86_64/exit.rs`).

/// The port's address, as QEMU's `iobase`.
pub const PORT: u16 = 0xf4;
/// The port's width in bytes, as QEMU's `iosize`.
pub const WIDTH: usize = 4;
/// Guest exit statuses are process exit statuses.
const MAX_STATUS: u32 = u8::MAX as u32;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the guest wrote {0} bytes to the exit port; it takes 1, 2 or 4")]
    Width(usize),
    #[error("the guest wrote exit status {0}, outside 0..=255")]
    OutOfRange(u32),
}

/// The exit status in a guest write of 1, 2 or 4 bytes (little-endian) to the port.
pub fn decode(data: &[u8]) -> Result<u8, Error> {
    let value = match *data {
        [b0] => u32::from(b0),
        [b0, b1] => u32::from(u16::from_le_bytes([b0, b1])),
        [b0, b1, b2, b3] => u32::from_le_bytes([b0, b1, b2, b3]),
        _ => return Err(Error::Width(data.len())),
    };
    if value > MAX_STATUS {
        return Err(Error::OutOfRange(value));
    }
    Ok(u8::try_from(value).expect("checked above"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_word_and_dword_writes() {
        assert_eq!(decode(&[7]), Ok(7));
        assert_eq!(decode(&[0]), Ok(0));
        assert_eq!(decode(&[255, 0]), Ok(255));
        assert_eq!(decode(&[3, 0, 0, 0]), Ok(3));
    }

    #[test]
    fn other_widths_are_refused() {
        assert_eq!(decode(&[]), Err(Error::Width(0)));
        assert_eq!(decode(&[1, 0, 0]), Err(Error::Width(3)));
        assert_eq!(decode(&[1; 8]), Err(Error::Width(8)));
    }

    #[test]
    fn statuses_above_255_are_refused() {
        assert_eq!(decode(&[0, 1]), Err(Error::OutOfRange(256)));
        assert_eq!(decode(&[0x2c, 1, 0, 0]), Err(Error::OutOfRange(300)));
        assert_eq!(
            decode(&[0, 0, 0, 0x80]),
            Err(Error::OutOfRange(0x8000_0000))
        );
    }
}
