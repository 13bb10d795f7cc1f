//! The boot information QEMU leaves a bare-metal image: the device tree at the start of RAM
//! ([`DTB_ADDRESS`]), whose `/memory` node gives RAM and whose `/chosen/bootargs` is the
//! `-append` command line.

use super::platform::{DTB_ADDRESS, DTB_MAX};
use core::fmt;
use fdt::{Fdt, FdtError};

/// Why the device tree is unusable.
#[derive(Debug)]
pub enum Error {
    /// No device tree at the address (or a malformed header).
    Tree(FdtError),
    /// No `/memory` region holds the kernel image.
    NoRam,
    /// `/chosen/bootargs` is not UTF-8.
    BadBootargs,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tree(e) => write!(f, "no device tree at {DTB_ADDRESS:#x}: {e}"),
            Error::NoRam => f.write_str("no /memory region in the device tree holds the kernel"),
            Error::BadBootargs => f.write_str("/chosen/bootargs is not UTF-8"),
        }
    }
}

/// The end of the RAM region holding the kernel, and the command line, from the device tree
/// at `dtb`.
pub fn boot_info(dtb: u64) -> Result<(u64, &'static str), Error> {
    // SAFETY: `dtb` is the start of RAM, mapped by the boot map; the image starts above
    // DTB_MAX, and nothing writes this memory.
    let bytes = unsafe { core::slice::from_raw_parts(dtb as *const u8, DTB_MAX) };
    let tree = Fdt::new(bytes).map_err(Error::Tree)?;
    let kernel = crate::arch::image().0.start;
    let ram_end = tree
        .find_node("/memory")
        .and_then(|memory| memory.reg())
        .into_iter()
        .flatten()
        .filter_map(|region| {
            let start = region.starting_address as u64;
            Some(start..start + region.size? as u64)
        })
        .find(|region| region.contains(&kernel))
        .ok_or(Error::NoRam)?
        .end;
    let line = match tree
        .find_node("/chosen")
        .and_then(|chosen| chosen.property("bootargs"))
    {
        Some(bootargs) => bootargs.as_str().ok_or(Error::BadBootargs)?,
        None => "",
    };
    Ok((ram_end, line))
}
