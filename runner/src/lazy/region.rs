//! Which guest-physical range is lazy (`--lazy`). Everything the VMM writes before boot (boot
//! structures, command line, kernel image) lies below it, so registering it with userfaultfd
//! after loading never hides data the guest needs.

use std::ops::Range;

/// Where the guest kernel puts workload data: at and above this guest-physical address,
/// identity-mapped. A contract with the guest kernel, so `--lazy workload` makes exactly the
/// workload's data lazy.
pub const WORKLOAD_BASE: u64 = 0x400_0000;
/// `--lazy all` starts on a 2 MiB boundary above the kernel image: a transparent huge page that
/// loading the kernel populates cannot reach into the lazy range.
const IMAGE_ALIGN: u64 = 2 << 20;

const MIB: u64 = 1 << 20;

/// Which part of guest RAM is lazy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LazyRegion {
    /// From 64 MiB, where the guest kernel puts workload data, to the end of RAM.
    Workload,
    /// From the end of the kernel image (rounded up to 2 MiB) to the end of RAM: the kernel's
    /// heap and stacks too.
    All,
}

impl LazyRegion {
    fn name(self) -> &'static str {
        match self {
            LazyRegion::Workload => "workload",
            LazyRegion::All => "all",
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "--lazy {region} starts at {start:#x} but guest RAM ends at {mem_end:#x}: \
         give --mem more than {} MiB",
        start.div_ceil(MIB)
    )]
    NoRoom {
        region: &'static str,
        start: u64,
        mem_end: u64,
    },
    #[error("the kernel image ends at {0:#x}, too close to the top of the address space")]
    ImageEndOverflow(u64),
}

/// The lazy guest-physical range for `region` in RAM ending at `mem_end`, above a kernel image
/// ending at `image_end` (the highest `PT_LOAD` `p_paddr + p_memsz`).
pub fn range(region: LazyRegion, image_end: u64, mem_end: u64) -> Result<Range<u64>, Error> {
    let start = match region {
        LazyRegion::Workload => WORKLOAD_BASE,
        LazyRegion::All => image_end
            .checked_next_multiple_of(IMAGE_ALIGN)
            .ok_or(Error::ImageEndOverflow(image_end))?,
    };
    if mem_end <= start {
        return Err(Error::NoRoom {
            region: region.name(),
            start,
            mem_end,
        });
    }
    Ok(start..mem_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guest kernel's image ends here today (its data segment's end).
    const IMAGE_END: u64 = 0x13_c000;

    #[test]
    fn workload_starts_at_64_mib() {
        assert_eq!(
            range(LazyRegion::Workload, IMAGE_END, 512 * MIB),
            Ok(0x400_0000..0x2000_0000)
        );
    }

    #[test]
    fn all_starts_at_the_image_end_rounded_to_2_mib() {
        assert_eq!(
            range(LazyRegion::All, IMAGE_END, 128 * MIB),
            Ok(0x20_0000..0x800_0000)
        );
        assert_eq!(
            range(LazyRegion::All, 0x40_0000, 128 * MIB),
            Ok(0x40_0000..0x800_0000),
            "already aligned"
        );
        assert_eq!(
            range(LazyRegion::All, 0x40_0001, 128 * MIB),
            Ok(0x60_0000..0x800_0000)
        );
    }

    #[test]
    fn ram_must_extend_past_the_start() {
        assert_eq!(
            range(LazyRegion::Workload, IMAGE_END, 64 * MIB),
            Err(Error::NoRoom {
                region: "workload",
                start: WORKLOAD_BASE,
                mem_end: 64 * MIB
            })
        );
        assert!(range(LazyRegion::Workload, IMAGE_END, 64 * MIB + 4096).is_ok());
        assert_eq!(
            range(LazyRegion::All, 31 * MIB, 32 * MIB),
            Err(Error::NoRoom {
                region: "all",
                start: 32 * MIB,
                mem_end: 32 * MIB
            })
        );
    }

    #[test]
    fn no_room_message_names_the_memory_needed() {
        let error = range(LazyRegion::Workload, IMAGE_END, 32 * MIB).expect_err("no room");
        assert_eq!(
            error.to_string(),
            "--lazy workload starts at 0x4000000 but guest RAM ends at 0x2000000: \
             give --mem more than 64 MiB"
        );
    }

    #[test]
    fn image_end_near_the_top_overflows() {
        assert_eq!(
            range(LazyRegion::All, u64::MAX - 1, u64::MAX),
            Err(Error::ImageEndOverflow(u64::MAX - 1))
        );
    }
}
