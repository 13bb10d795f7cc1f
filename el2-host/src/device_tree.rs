//! The guest's view of RAM in the device tree QEMU leaves at the start of RAM (for a
//! bare-metal `-kernel`; the guest kernel reads it there): QEMU describes all of `-m`, but
//! the top of it is the host's ([`crate::memory_map::HOST_REGION`]), so the host shrinks
//! the `/memory` node's size in place before the guest starts, as a boot loader would.
//!
//! Flattened device tree format: Devicetree Specification v0.4, chapter 5 (big-endian
//! header, then a structure block of 4-byte-aligned tokens; property names live in the
//! strings block). QEMU `virt` uses two address and two size cells at the root, so `reg`
//! of `/memory@...` is one 16-byte (base, size) pair.

use core::ops::Range;

/// Header fields (byte offsets) and the magic number.
const MAGIC: u32 = 0xd00d_feed;
const OFF_MAGIC: usize = 0;
const OFF_TOTALSIZE: usize = 4;
const OFF_DT_STRUCT: usize = 8;
const OFF_DT_STRINGS: usize = 12;
/// Bytes of the header this module reads.
pub const HEADER_SIZE: usize = 16;

/// Structure block tokens.
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Tokens and property values are padded to this.
const ALIGN: usize = 4;

/// The `/memory` node's name (unit address after `@`) and its property.
const MEMORY_NODE: &str = "memory";
const REG: &[u8] = b"reg";
/// `reg` with two address and two size cells.
const REG_LEN: usize = 16;
const REG_SIZE_OFFSET: usize = 8;

/// Why the device tree was left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No device tree magic, or offsets outside the blob.
    Header,
    /// The structure block ended early or holds an unknown token.
    Structure,
    /// No `/memory` node with a 16-byte `reg`.
    NoMemory,
    /// `/memory` does not start where guest RAM does or is smaller than it.
    Mismatch { base: u64, size: u64 },
}

fn be32(blob: &[u8], at: usize) -> Result<u32, Error> {
    let bytes = blob.get(at..at + 4).ok_or(Error::Structure)?;
    Ok(u32::from_be_bytes(bytes.try_into().expect("4 bytes")))
}

/// A 64-bit cell pair as two 32-bit reads: values are only 4-byte aligned, and the host
/// reads the blob with its MMU off, as Device memory, where unaligned accesses fault.
fn be64(blob: &[u8], at: usize) -> Result<u64, Error> {
    Ok(u64::from(be32(blob, at)?) << 32 | u64::from(be32(blob, at + 4)?))
}

fn set_be64(blob: &mut [u8], at: usize, value: u64) {
    blob[at..at + 4].copy_from_slice(&((value >> 32) as u32).to_be_bytes());
    blob[at + 4..at + 8].copy_from_slice(&(value as u32).to_be_bytes());
}

/// The blob's total size from its header (the first [`HEADER_SIZE`] bytes), to know how
/// much memory to look at.
pub fn total_size(header: &[u8]) -> Result<usize, Error> {
    if be32(header, OFF_MAGIC).map_err(|_| Error::Header)? != MAGIC {
        return Err(Error::Header);
    }
    be32(header, OFF_TOTALSIZE)
        .map(|size| size as usize)
        .map_err(|_| Error::Header)
}

/// Shrinks the size of the `/memory` node in `blob` to `ram`, which must start where it
/// does and fit inside it.
pub fn limit_memory(blob: &mut [u8], ram: &Range<u64>) -> Result<(), Error> {
    let reg = memory_reg(blob)?;
    let base = be64(blob, reg)?;
    let size = be64(blob, reg + REG_SIZE_OFFSET)?;
    let wanted = ram.end - ram.start;
    if base != ram.start || size < wanted {
        return Err(Error::Mismatch { base, size });
    }
    set_be64(blob, reg + REG_SIZE_OFFSET, wanted);
    Ok(())
}

/// Offset of the value of `reg` in the root's `memory` child.
fn memory_reg(blob: &[u8]) -> Result<usize, Error> {
    if total_size(blob)? > blob.len() {
        return Err(Error::Header);
    }
    let strings = be32(blob, OFF_DT_STRINGS).map_err(|_| Error::Header)? as usize;
    let mut at = be32(blob, OFF_DT_STRUCT).map_err(|_| Error::Header)? as usize;
    let mut depth = 0usize;
    let mut in_memory = false;
    loop {
        let token = be32(blob, at)?;
        at += ALIGN;
        match token {
            FDT_BEGIN_NODE => {
                let name_len = blob
                    .get(at..)
                    .and_then(|rest| rest.iter().position(|&b| b == 0))
                    .ok_or(Error::Structure)?;
                let name = &blob[at..at + name_len];
                depth += 1;
                // The name without its unit address (`memory@40000000`).
                let node = name.split(|&b| b == b'@').next().unwrap_or_default();
                in_memory = depth == 2 && node == MEMORY_NODE.as_bytes();
                at = (at + name_len + 1).next_multiple_of(ALIGN);
            }
            FDT_END_NODE => {
                depth = depth.checked_sub(1).ok_or(Error::Structure)?;
                in_memory = false;
            }
            FDT_PROP => {
                let len = be32(blob, at)? as usize;
                let name_offset = be32(blob, at + 4)? as usize;
                let value = at + 8;
                let name = blob
                    .get(strings + name_offset..)
                    .and_then(|rest| rest.split(|&b| b == 0).next())
                    .ok_or(Error::Structure)?;
                if in_memory && name == REG && len == REG_LEN && value + len <= blob.len() {
                    return Ok(value);
                }
                at = (value + len).next_multiple_of(ALIGN);
            }
            FDT_NOP => {}
            FDT_END => return Err(Error::NoMemory),
            _ => return Err(Error::Structure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob with `/`, `/chosen` (bootargs) and `/memory@40000000` (reg = base, size),
    /// laid out as QEMU does: header, structure block, strings block.
    fn blob(base: u64, size: u64) -> Vec<u8> {
        let strings = b"bootargs\0reg\0";
        let mut s = Vec::new();
        let word = |s: &mut Vec<u8>, w: u32| s.extend_from_slice(&w.to_be_bytes());
        let name = |s: &mut Vec<u8>, n: &[u8]| {
            s.extend_from_slice(n);
            s.push(0);
            while !s.len().is_multiple_of(4) {
                s.push(0);
            }
        };
        word(&mut s, FDT_BEGIN_NODE);
        name(&mut s, b"");
        word(&mut s, FDT_BEGIN_NODE);
        name(&mut s, b"chosen");
        word(&mut s, FDT_PROP);
        word(&mut s, 6);
        word(&mut s, 0);
        name(&mut s, b"a=b c");
        word(&mut s, FDT_END_NODE);
        word(&mut s, FDT_NOP);
        word(&mut s, FDT_BEGIN_NODE);
        name(&mut s, b"memory@40000000");
        word(&mut s, FDT_PROP);
        word(&mut s, 16);
        word(&mut s, 9);
        s.extend_from_slice(&base.to_be_bytes());
        s.extend_from_slice(&size.to_be_bytes());
        word(&mut s, FDT_END_NODE);
        word(&mut s, FDT_END_NODE);
        word(&mut s, FDT_END);
        let header = 40;
        let mut b = Vec::new();
        for w in [
            MAGIC,
            (header + s.len() + strings.len()) as u32,
            header as u32,
            (header + s.len()) as u32,
        ] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.resize(header, 0);
        b.extend_from_slice(&s);
        b.extend_from_slice(strings);
        b
    }

    const RAM: Range<u64> = 0x4000_0000..0x5f00_0000;

    #[test]
    fn shrinks_the_memory_size_in_place() {
        let mut b = blob(0x4000_0000, 0x2000_0000);
        assert_eq!(total_size(&b), Ok(b.len()));
        let before = b.clone();
        assert_eq!(limit_memory(&mut b, &RAM), Ok(()));
        let changed: Vec<usize> = (0..b.len()).filter(|&i| b[i] != before[i]).collect();
        assert_eq!(changed.len(), 1, "only the size's 0x20 -> 0x1f byte");
        assert_eq!(b[changed[0]], 0x1f);
    }

    #[test]
    fn refuses_other_bases_and_smaller_memory() {
        let mut b = blob(0x8000_0000, 0x2000_0000);
        assert!(matches!(
            limit_memory(&mut b, &RAM),
            Err(Error::Mismatch { .. })
        ));
        let mut b = blob(0x4000_0000, 0x1000_0000);
        assert!(matches!(
            limit_memory(&mut b, &RAM),
            Err(Error::Mismatch { .. })
        ));
    }

    #[test]
    fn no_blob_or_a_cut_one() {
        assert_eq!(total_size(&[0; HEADER_SIZE]), Err(Error::Header));
        let mut b = blob(0x4000_0000, 0x2000_0000);
        b.truncate(60);
        assert_eq!(limit_memory(&mut b, &RAM), Err(Error::Header));
    }
}
