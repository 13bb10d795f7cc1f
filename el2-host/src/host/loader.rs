//! Copies the guest ELF that QEMU staged raw (`-device loader,...,force-raw=on`) into guest
//! RAM and returns its entry point; tells the guest how much RAM it has.

use core::fmt;
use core::ops::Range;
use el2_host::device_tree::{self, HEADER_SIZE};
use el2_host::elf::{self, Elf};
use el2_host::memory_map::{GUEST_DEVICE_TREE, GUEST_ELF_STAGING, GUEST_RAM, in_guest_ram};

/// Why the guest could not be loaded.
pub enum Error {
    Elf(elf::Error),
    /// A segment lies outside guest RAM or inside the lazy region (which must start out
    /// unmapped and unwritten).
    Placement(Range<u64>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Elf(error) => write!(f, "staged guest ELF: {error:?}"),
            Self::Placement(range) => write!(
                f,
                "segment {:#x}..{:#x} is not in guest RAM below the lazy region",
                range.start, range.end
            ),
        }
    }
}

/// Loads the staged guest below `lazy`; returns its entry point.
pub fn load(lazy: &Range<u64>) -> Result<u64, Error> {
    let size = (GUEST_ELF_STAGING.end - GUEST_ELF_STAGING.start) as usize;
    // SAFETY: the staging area is RAM in the host's region that nothing else uses (link.ld
    // ends the image below it), read-only here; QEMU wrote it before the CPU started.
    let file = unsafe { core::slice::from_raw_parts(GUEST_ELF_STAGING.start as *const u8, size) };
    let elf = Elf::parse(file).map_err(Error::Elf)?;
    for segment in elf.segments() {
        let segment = segment.map_err(Error::Elf)?;
        let target = segment.paddr..segment.paddr.saturating_add(segment.memsz);
        let overlaps_lazy = target.start < lazy.end && lazy.start < target.end;
        if !in_guest_ram(&target) || overlaps_lazy || (segment.file.len() as u64) > segment.memsz {
            return Err(Error::Placement(target));
        }
        let bytes = elf.bytes(&segment);
        // SAFETY: `target` lies in guest RAM (checked above), which the host does not use
        // and the guest does not run yet; it cannot overlap the staging area (host region).
        let memory = unsafe {
            core::slice::from_raw_parts_mut(target.start as *mut u8, segment.memsz as usize)
        };
        let (data, bss) = memory.split_at_mut(bytes.len());
        data.copy_from_slice(bytes);
        bss.fill(0);
    }
    Ok(elf.entry)
}

/// Makes the `/memory` node of QEMU's device tree (which describes all of `-m`) describe
/// guest RAM only, without the host's region at the top.
pub fn describe_guest_memory() -> Result<(), device_tree::Error> {
    // SAFETY: the start of guest RAM, which the guest does not run yet; only the header is
    // read before its size is known.
    let header =
        unsafe { core::slice::from_raw_parts(GUEST_DEVICE_TREE as *const u8, HEADER_SIZE) };
    let size = device_tree::total_size(header)?;
    let end = GUEST_DEVICE_TREE.saturating_add(size as u64);
    if !in_guest_ram(&(GUEST_DEVICE_TREE..end)) {
        return Err(device_tree::Error::Header);
    }
    // SAFETY: as above: the blob lies in guest RAM (checked), which nothing else uses
    // before the guest is loaded.
    let blob = unsafe { core::slice::from_raw_parts_mut(GUEST_DEVICE_TREE as *mut u8, size) };
    device_tree::limit_memory(blob, &GUEST_RAM)
}
