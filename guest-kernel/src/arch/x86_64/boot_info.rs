//! The boot information a PVH loader leaves in low memory: the memory map (for the end of
//! RAM) and the command line.

use guest_kernel::pvh;

/// The end of the RAM region holding the kernel, and the command line, from the
/// `hvm_start_info` at `start_info`.
pub fn boot_info(start_info: u64) -> Result<(u64, &'static str), pvh::Error> {
    // SAFETY: the PVH loader put `hvm_start_info` at `start_info`, in RAM mapped by the boot
    // page tables.
    let si = pvh::parse_start_info(unsafe { physical(start_info, pvh::START_INFO_LEN) })?;
    let table_len = si.memmap_entries as usize * pvh::MEMMAP_ENTRY_LEN;
    // SAFETY: the memory map is where the start info says, with the entries it says.
    let table = unsafe { physical(si.memmap_paddr, table_len) };
    let ram_end = pvh::ram_end_from(table, crate::arch::image().0.start)?;
    let line = match si.cmdline_paddr {
        0 => "",
        // SAFETY: the command line is a NUL-terminated string in low RAM; the parser stops at
        // the NUL or at the limit.
        paddr => pvh::cmdline(unsafe { physical(paddr, pvh::CMDLINE_MAX + 1) })?,
    };
    Ok((ram_end, line))
}

/// `len` bytes of physical memory at `paddr` (identity-mapped below 1 GiB during boot).
///
/// # Safety
/// The range must be RAM the VMM initialised, not modified while the slice lives.
unsafe fn physical(paddr: u64, len: usize) -> &'static [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { core::slice::from_raw_parts(paddr as *const u8, len) }
}
