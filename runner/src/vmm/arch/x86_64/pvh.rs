//! The PVH boot information the guest finds through `ebx`: `hvm_start_info` (version 1, with a
//! memory map) and the command line, written with linux-loader's PVH configurator.

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_start_info};
use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};

use super::layout::{
    CMDLINE_ADDR, HIGH_RAM_START, LOW_RAM_END, PVH_MEMMAP_ADDR, PVH_START_INFO_ADDR,
};
use crate::guest_cmdline;

/// `XEN_HVM_START_MAGIC_VALUE`.
const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Version 1 adds the memory map fields.
const START_INFO_VERSION: u32 = 1;
/// `XEN_HVM_MEMMAP_TYPE_RAM`, the E820 type for usable RAM.
const MEMMAP_TYPE_RAM: u32 = 1;
/// Entries in the memory map `memory_map` builds.
const MEMMAP_ENTRIES: usize = 2;

// The boot information must not overlap itself or leave low RAM.
const _: () = assert!(PVH_START_INFO_ADDR + size_of::<hvm_start_info>() as u64 <= PVH_MEMMAP_ADDR);
const _: () = assert!(
    PVH_MEMMAP_ADDR + (MEMMAP_ENTRIES * size_of::<hvm_memmap_table_entry>()) as u64 <= CMDLINE_ADDR
);
// The command line's last byte is its NUL, at `CMDLINE_ADDR + MAX_LEN` at most.
const _: () = assert!(CMDLINE_ADDR + (guest_cmdline::MAX_LEN as u64) < LOW_RAM_END);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the PVH start info and memory map")]
    StartInfo(#[source] linux_loader::configurator::Error),
    #[error(
        "the guest command line is {len} bytes; the VMM reserves {} for it",
        guest_cmdline::MAX_LEN
    )]
    CmdlineTooLong { len: usize },
    #[error("cannot write the guest command line")]
    Cmdline(#[source] GuestMemoryError),
}

/// Writes the start info, memory map and command line for a guest with `mem_size` bytes of
/// RAM, and returns the start info's address (the guest's `ebx`).
pub fn write_boot_info(
    memory: &GuestMemoryMmap,
    mem_size: u64,
    cmdline: &str,
) -> Result<GuestAddress, Error> {
    write_cmdline(memory, cmdline)?;
    let memmap = memory_map(mem_size);
    let start_info = hvm_start_info {
        magic: START_INFO_MAGIC,
        version: START_INFO_VERSION,
        cmdline_paddr: CMDLINE_ADDR,
        memmap_paddr: PVH_MEMMAP_ADDR,
        memmap_entries: u32::try_from(memmap.len()).expect("a two-entry map"),
        ..Default::default()
    };
    let start_info_addr = GuestAddress(PVH_START_INFO_ADDR);
    let mut params = BootParams::new(&start_info, start_info_addr);
    params.set_sections(&memmap, GuestAddress(PVH_MEMMAP_ADDR));
    PvhBootConfigurator::write_bootparams(&params, memory).map_err(Error::StartInfo)?;
    Ok(start_info_addr)
}

/// RAM below the legacy hole and RAM from 1 MiB to the end; 640 KiB..1 MiB is left out, as
/// on a PC.
fn memory_map(mem_size: u64) -> [hvm_memmap_table_entry; MEMMAP_ENTRIES] {
    let ram = |addr: u64, end: u64| hvm_memmap_table_entry {
        addr,
        size: end - addr,
        type_: MEMMAP_TYPE_RAM,
        reserved: 0,
    };
    [ram(0, LOW_RAM_END), ram(HIGH_RAM_START, mem_size)]
}

fn write_cmdline(memory: &GuestMemoryMmap, cmdline: &str) -> Result<(), Error> {
    // Checked on the command line already; the check here keeps the reserved area intact.
    if cmdline.len() > guest_cmdline::MAX_LEN {
        return Err(Error::CmdlineTooLong { len: cmdline.len() });
    }
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    memory
        .write_slice(&bytes, GuestAddress(CMDLINE_ADDR))
        .map_err(Error::Cmdline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::ByteValued;

    const MIB: u64 = 1 << 20;

    fn memory(size: u64) -> GuestMemoryMmap {
        let size = usize::try_from(size).expect("fits");
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).expect("memory")
    }

    #[test]
    fn memory_map_skips_the_legacy_hole() {
        let map = memory_map(512 * MIB);
        assert_eq!((map[0].addr, map[0].size, map[0].type_), (0, 0xA_0000, 1));
        assert_eq!(
            (map[1].addr, map[1].size, map[1].type_),
            (0x10_0000, 511 * MIB, 1)
        );
    }

    #[test]
    fn boot_info_is_readable_where_ebx_points() {
        let memory = memory(32 * MIB);
        let start = write_boot_info(&memory, 32 * MIB, "scenario=demo").expect("written");
        assert_eq!(start, GuestAddress(PVH_START_INFO_ADDR));

        let info: hvm_start_info = memory.read_obj(start).expect("start info");
        assert_eq!((info.magic, info.version), (0x336e_c578, 1));
        assert_eq!((info.nr_modules, info.rsdp_paddr), (0, 0));
        assert_eq!(info.memmap_entries, 2);

        let mut entry = hvm_memmap_table_entry::default();
        let entry_size = entry.as_slice().len() as u64;
        memory
            .read_slice(
                entry.as_mut_slice(),
                GuestAddress(info.memmap_paddr + entry_size),
            )
            .expect("second entry");
        assert_eq!((entry.addr, entry.size), (0x10_0000, 31 * MIB));

        let mut cmdline = [0u8; 14];
        memory
            .read_slice(&mut cmdline, GuestAddress(info.cmdline_paddr))
            .expect("cmdline");
        assert_eq!(&cmdline, b"scenario=demo\0");
    }

    #[test]
    fn empty_cmdline_is_a_lone_nul() {
        let memory = memory(32 * MIB);
        memory
            .write_slice(&[0xff; 2], GuestAddress(CMDLINE_ADDR))
            .expect("dirty");
        write_boot_info(&memory, 32 * MIB, "").expect("written");
        let first: u8 = memory.read_obj(GuestAddress(CMDLINE_ADDR)).expect("byte");
        assert_eq!(first, 0);
    }

    #[test]
    fn oversized_cmdline_is_refused() {
        let long = "x".repeat(guest_cmdline::MAX_LEN + 1);
        assert!(matches!(
            write_boot_info(&memory(32 * MIB), 32 * MIB, &long),
            Err(Error::CmdlineTooLong { len }) if len == guest_cmdline::MAX_LEN + 1
        ));
    }
}
