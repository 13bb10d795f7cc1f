//! The snapshot file's fixed header (layout in the module doc of `crate::snapshot`): encoded
//! when saving, decoded and checked before a restore trusts any offset in it.

use workloads::pages::PAGE_SIZE;

/// First bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"APFSNAP1";
/// The layout this runner writes and reads; another version is refused, not guessed at.
pub const VERSION: u32 = 1;
/// Bytes of the header proper; the rest of its page is zero.
pub const HEADER_LEN: usize = 32;
/// Where saved RAM starts in files this runner writes: the first page boundary after the
/// header, so guest page `gpa` is file page `1 + gpa / PAGE_SIZE` and can be mapped directly.
pub const DATA_OFFSET: u64 = PAGE;

const PAGE: u64 = PAGE_SIZE as u64;
/// The page size as the header records it.
const PAGE_SIZE_FIELD: u32 = PAGE_SIZE as u32;

/// Byte ranges of the header's fields, all little-endian.
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 8;
const PAGE_SIZE_AT: usize = 12;
const RAM_SIZE_AT: usize = 16;
const DATA_OFFSET_AT: usize = 24;

/// Why a header was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("it is {len} bytes long, shorter than the {HEADER_LEN}-byte snapshot header")]
    TooShort { len: usize },
    #[error(
        "it is not a snapshot file: it starts with \"{}\", not \"{}\"",
        .0.escape_ascii(),
        MAGIC.escape_ascii()
    )]
    BadMagic([u8; 8]),
    #[error("it has snapshot format version {0}; this runner reads version {VERSION}")]
    UnsupportedVersion(u32),
    #[error("it records a page size of {0} bytes; guest pages are {PAGE_SIZE} bytes")]
    PageSize(u32),
    #[error("its RAM size {0:#x} is not a non-zero multiple of the page size")]
    BadRamSize(u64),
    #[error("its data offset {0:#x} is not a page boundary after the header")]
    BadDataOffset(u64),
    #[error("its data offset {data_offset:#x} plus RAM size {ram_size:#x} overflows")]
    Overflow { ram_size: u64, data_offset: u64 },
}

/// What the header says about the RAM image that follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Bytes of guest RAM saved, from guest-physical address 0.
    pub ram_size: u64,
    /// Where in the file guest-physical address 0 is.
    pub data_offset: u64,
}

impl Header {
    /// The header of a file this runner writes for `ram_size` bytes of RAM.
    pub fn new(ram_size: u64) -> Self {
        Header {
            ram_size,
            data_offset: DATA_OFFSET,
        }
    }

    /// The end of the RAM image: the least length of a complete file. Checked by `decode`.
    pub fn data_end(&self) -> u64 {
        self.data_offset + self.ram_size
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[MAGIC_AT..VERSION_AT].copy_from_slice(&MAGIC);
        bytes[VERSION_AT..PAGE_SIZE_AT].copy_from_slice(&VERSION.to_le_bytes());
        bytes[PAGE_SIZE_AT..RAM_SIZE_AT].copy_from_slice(&PAGE_SIZE_FIELD.to_le_bytes());
        bytes[RAM_SIZE_AT..DATA_OFFSET_AT].copy_from_slice(&self.ram_size.to_le_bytes());
        bytes[DATA_OFFSET_AT..HEADER_LEN].copy_from_slice(&self.data_offset.to_le_bytes());
        bytes
    }

    /// Decodes the header at the start of `bytes` (a file's first bytes, however few) and
    /// checks that it describes a page-aligned image this runner can serve pages from.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let Some(bytes) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(Error::TooShort { len: bytes.len() });
        };
        let field = |at: usize| -> [u8; 8] { bytes[at..at + 8].try_into().expect("8 bytes") };
        let half = |at: usize| -> [u8; 4] { bytes[at..at + 4].try_into().expect("4 bytes") };
        let magic = field(MAGIC_AT);
        if magic != MAGIC {
            return Err(Error::BadMagic(magic));
        }
        let version = u32::from_le_bytes(half(VERSION_AT));
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let page_size = u32::from_le_bytes(half(PAGE_SIZE_AT));
        if page_size != PAGE_SIZE_FIELD {
            return Err(Error::PageSize(page_size));
        }
        let ram_size = u64::from_le_bytes(field(RAM_SIZE_AT));
        if ram_size == 0 || !ram_size.is_multiple_of(PAGE) {
            return Err(Error::BadRamSize(ram_size));
        }
        // Page-aligned, so the image maps page for page; not 0, so it cannot overlap us.
        let data_offset = u64::from_le_bytes(field(DATA_OFFSET_AT));
        if data_offset == 0 || !data_offset.is_multiple_of(PAGE) {
            return Err(Error::BadDataOffset(data_offset));
        }
        if data_offset.checked_add(ram_size).is_none() {
            return Err(Error::Overflow {
                ram_size,
                data_offset,
            });
        }
        Ok(Header {
            ram_size,
            data_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn encoded() -> [u8; HEADER_LEN] {
        Header::new(128 * MIB).encode()
    }

    /// `encoded()` with the field at `at` replaced by `value`.
    fn with(at: usize, value: &[u8]) -> [u8; HEADER_LEN] {
        let mut bytes = encoded();
        bytes[at..at + value.len()].copy_from_slice(value);
        bytes
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let bytes = encoded();
        assert_eq!(&bytes[..8], b"APFSNAP1");
        assert_eq!(bytes[8..12], 1u32.to_le_bytes());
        assert_eq!(bytes[12..16], 4096u32.to_le_bytes());
        assert_eq!(bytes[16..24], (128 * MIB).to_le_bytes());
        assert_eq!(bytes[24..32], 4096u64.to_le_bytes());
    }

    #[test]
    fn headers_round_trip() {
        let header = Header::new(3 << 30);
        assert_eq!(Header::decode(&header.encode()), Ok(header));
        assert_eq!(header.data_end(), (3 << 30) + 4096);
        // Trailing bytes (the rest of the file) are not the header's business.
        let mut file = encoded().to_vec();
        file.extend_from_slice(&[0xff; 100]);
        assert_eq!(Header::decode(&file), Ok(Header::new(128 * MIB)));
        let other = Header {
            ram_size: 64 * MIB,
            data_offset: 2 * MIB,
        };
        assert_eq!(Header::decode(&other.encode()), Ok(other), "another offset");
    }

    #[test]
    fn short_inputs_are_refused() {
        for len in [0, 8, HEADER_LEN - 1] {
            assert_eq!(
                Header::decode(&encoded()[..len]),
                Err(Error::TooShort { len })
            );
        }
    }

    #[test]
    fn every_malformed_field_is_refused() {
        let cases = [
            (with(MAGIC_AT, b"APFSNAP2"), Error::BadMagic(*b"APFSNAP2")),
            (with(MAGIC_AT, &[0; 8]), Error::BadMagic([0; 8])),
            (
                with(VERSION_AT, &2u32.to_le_bytes()),
                Error::UnsupportedVersion(2),
            ),
            (
                with(PAGE_SIZE_AT, &65536u32.to_le_bytes()),
                Error::PageSize(65536),
            ),
            (with(RAM_SIZE_AT, &0u64.to_le_bytes()), Error::BadRamSize(0)),
            (
                with(RAM_SIZE_AT, &(MIB + 1).to_le_bytes()),
                Error::BadRamSize(MIB + 1),
            ),
            (
                with(DATA_OFFSET_AT, &0u64.to_le_bytes()),
                Error::BadDataOffset(0),
            ),
            (
                with(DATA_OFFSET_AT, &32u64.to_le_bytes()),
                Error::BadDataOffset(32),
            ),
            (
                with(DATA_OFFSET_AT, &(u64::MAX - 4095).to_le_bytes()),
                Error::Overflow {
                    ram_size: 128 * MIB,
                    data_offset: u64::MAX - 4095,
                },
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(Header::decode(&bytes), Err(error));
        }
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let error = Header::decode(&with(MAGIC_AT, b"\x7fELF\x02\x01\x01\0")).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"it is not a snapshot file: it starts with "\x7fELF\x02\x01\x01\x00", not "APFSNAP1""#
        );
        assert_eq!(
            Header::decode(&[0; 3]).unwrap_err().to_string(),
            "it is 3 bytes long, shorter than the 32-byte snapshot header"
        );
    }
}
