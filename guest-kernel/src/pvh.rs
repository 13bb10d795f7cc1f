//! Reading the Xen PVH boot information (`struct hvm_start_info`, version 1) that both our VMM
//! and QEMU hand to the kernel in `ebx`: the command line and the E820-style memory map.
//!
//! The parser works on byte slices copied out of guest memory so it can be tested on the host.

use core::fmt;

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const MAGIC: u32 = 0x336e_c578;
/// Size of `hvm_start_info` up to and including the version-1 memory-map fields.
pub const START_INFO_LEN: usize = 56;
/// Size of one `hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_LEN: usize = 24;
/// Memory-map entry type for usable RAM (`XEN_HVM_MEMMAP_TYPE_RAM`).
pub const MEMMAP_TYPE_RAM: u32 = 1;
/// Entries beyond this are refused: a real map has a handful, a huge count is corruption.
pub const MEMMAP_MAX_ENTRIES: u32 = 128;
/// Longest command line accepted.
pub const CMDLINE_MAX: usize = 2048;

/// The fields of `hvm_start_info` the kernel uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo {
    pub cmdline_paddr: u64,
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
}

/// One memory-map entry, as a half-open range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub kind: u32,
}

/// Why the boot information could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadMagic(u32),
    /// Version 0 has no memory map; the kernel needs one.
    NoMemoryMap {
        version: u32,
    },
    TooManyRegions(u32),
    /// No RAM region contains the given address.
    NoRamAt(u64),
    CmdlineNotTerminated,
    CmdlineNotUtf8,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "PVH start info is truncated"),
            Error::BadMagic(m) => write!(f, "PVH start info magic {m:#x}, expected {MAGIC:#x}"),
            Error::NoMemoryMap { version } => {
                write!(f, "PVH start info version {version} carries no memory map")
            }
            Error::TooManyRegions(n) => write!(f, "PVH memory map claims {n} entries"),
            Error::NoRamAt(a) => write!(f, "the memory map has no RAM at {a:#x}"),
            Error::CmdlineNotTerminated => {
                write!(f, "command line longer than {CMDLINE_MAX} bytes")
            }
            Error::CmdlineNotUtf8 => write!(f, "command line is not UTF-8"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Parses the fixed part of `hvm_start_info`.
pub fn parse_start_info(b: &[u8]) -> Result<StartInfo, Error> {
    if b.len() < START_INFO_LEN {
        return Err(Error::Truncated);
    }
    let magic = u32_at(b, 0);
    if magic != MAGIC {
        return Err(Error::BadMagic(magic));
    }
    let version = u32_at(b, 4);
    let memmap_entries = u32_at(b, 48);
    if version < 1 || memmap_entries == 0 {
        return Err(Error::NoMemoryMap { version });
    }
    if memmap_entries > MEMMAP_MAX_ENTRIES {
        return Err(Error::TooManyRegions(memmap_entries));
    }
    Ok(StartInfo {
        cmdline_paddr: u64_at(b, 24),
        memmap_paddr: u64_at(b, 40),
        memmap_entries,
    })
}

/// Decodes the memory-map table (`memmap_entries` × [`MEMMAP_ENTRY_LEN`] bytes).
pub fn regions(table: &[u8]) -> impl Iterator<Item = Region> + '_ {
    table.chunks_exact(MEMMAP_ENTRY_LEN).map(|e| {
        let start = u64_at(e, 0);
        Region {
            start,
            end: start.saturating_add(u64_at(e, 8)),
            kind: u32_at(e, 16),
        }
    })
}

/// End of the RAM that is contiguous from `addr` (the kernel's load address), merging
/// adjacent RAM entries, which some VMMs emit split.
pub fn ram_end_from(table: &[u8], addr: u64) -> Result<u64, Error> {
    let mut end = addr;
    // Entries may come in any order: extend until no entry reaches further.
    loop {
        let before = end;
        for r in regions(table).filter(|r| r.kind == MEMMAP_TYPE_RAM) {
            if r.start <= end && r.end > end {
                end = r.end;
            }
        }
        if end == before {
            break;
        }
    }
    if end > addr {
        Ok(end)
    } else {
        Err(Error::NoRamAt(addr))
    }
}

/// The command line: bytes up to the first NUL.
pub fn cmdline(b: &[u8]) -> Result<&str, Error> {
    let len = b
        .iter()
        .take(CMDLINE_MAX + 1)
        .position(|&c| c == 0)
        .ok_or(Error::CmdlineNotTerminated)?;
    core::str::from_utf8(&b[..len]).map_err(|_| Error::CmdlineNotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn start_info(magic: u32, version: u32, entries: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(magic.to_le_bytes());
        b.extend(version.to_le_bytes());
        b.extend([0u8; 16]); // flags, nr_modules, modlist_paddr
        b.extend(0x2_0000u64.to_le_bytes()); // cmdline
        b.extend(0u64.to_le_bytes()); // rsdp
        b.extend(0x7000u64.to_le_bytes()); // memmap
        b.extend(entries.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b
    }

    fn table(entries: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        for &(addr, size, kind) in entries {
            b.extend(addr.to_le_bytes());
            b.extend(size.to_le_bytes());
            b.extend(kind.to_le_bytes());
            b.extend(0u32.to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_a_version_1_start_info() {
        let si = parse_start_info(&start_info(MAGIC, 1, 2)).unwrap();
        assert_eq!(
            si,
            StartInfo {
                cmdline_paddr: 0x2_0000,
                memmap_paddr: 0x7000,
                memmap_entries: 2
            }
        );
    }

    #[test]
    fn refuses_bad_start_info() {
        assert_eq!(
            parse_start_info(&start_info(MAGIC, 1, 1)[..40]),
            Err(Error::Truncated)
        );
        assert_eq!(
            parse_start_info(&start_info(0x1234, 1, 1)),
            Err(Error::BadMagic(0x1234))
        );
        assert_eq!(
            parse_start_info(&start_info(MAGIC, 0, 1)),
            Err(Error::NoMemoryMap { version: 0 })
        );
        assert_eq!(
            parse_start_info(&start_info(MAGIC, 1, 0)),
            Err(Error::NoMemoryMap { version: 1 })
        );
        assert_eq!(
            parse_start_info(&start_info(MAGIC, 1, 100_000)),
            Err(Error::TooManyRegions(100_000))
        );
    }

    #[test]
    fn finds_contiguous_ram_from_the_kernel() {
        const M: u64 = 1 << 20;
        // QEMU-like: low RAM, reserved hole, RAM from 1 MiB, a reserved BIOS area.
        let t = table(&[
            (0, 0x9fc00, 1),
            (0x9fc00, 0x400, 2),
            (0xf0000, 0x10000, 2),
            (M, 511 * M, 1),
            (0xfffc_0000, 0x4_0000, 2),
        ]);
        assert_eq!(ram_end_from(&t, M), Ok(512 * M));
        // Split and out of order entries are merged.
        let t = table(&[(3 * M, 5 * M, 1), (M, 2 * M, 1), (8 * M, M, 2)]);
        assert_eq!(ram_end_from(&t, M), Ok(8 * M));
        // A gap stops the region.
        let t = table(&[(M, M, 1), (3 * M, M, 1)]);
        assert_eq!(ram_end_from(&t, M), Ok(2 * M));
        // No RAM at the kernel.
        let t = table(&[(0, 0x9fc00, 1), (2 * M, M, 1)]);
        assert_eq!(ram_end_from(&t, M), Err(Error::NoRamAt(M)));
    }

    #[test]
    fn reads_the_command_line() {
        assert_eq!(cmdline(b"hz=100 ms=3\0garbage"), Ok("hz=100 ms=3"));
        assert_eq!(cmdline(b"\0"), Ok(""));
        assert_eq!(cmdline(b"no terminator"), Err(Error::CmdlineNotTerminated));
        assert_eq!(cmdline(b"\xff\xfe\0"), Err(Error::CmdlineNotUtf8));
        let long = [b'a'; CMDLINE_MAX + 10];
        assert_eq!(cmdline(&long), Err(Error::CmdlineNotTerminated));
    }
}
