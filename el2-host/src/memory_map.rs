//! Where everything lives in QEMU's `virt` machine (hw/arm/virt.c `base_memmap`) with the
//! RAM size the host requires (`-m 512M`), and how the host splits that RAM with the guest.
//!
//! Physical addresses and guest IPAs are the same (stage 2 is an identity map), so one set
//! of constants serves both.

use core::ops::Range;

const MIB: u64 = 1 << 20;

/// `VIRT_GIC_DIST`: the GICv3 distributor (64 KiB).
pub const GICD: Range<u64> = 0x0800_0000..0x0801_0000;
/// `VIRT_GIC_REDIST`: the redistributor of CPU 0, RD_base and SGI_base frames (2 x 64 KiB;
/// GICv3 architecture spec IHI 0069, "Redistributor memory map").
pub const GICR: Range<u64> = 0x080A_0000..0x080C_0000;
/// `VIRT_UART`: the PL011 console (one 4 KiB page).
pub const UART: Range<u64> = 0x0900_0000..0x0900_1000;

/// `VIRT_MEM`: RAM starts at 1 GiB.
pub const RAM_BASE: u64 = 0x4000_0000;
/// RAM the host is built for: QEMU must be started with `-m 512M`.
pub const RAM_SIZE: u64 = 512 * MIB;
/// End of RAM.
pub const RAM_END: u64 = RAM_BASE + RAM_SIZE;

/// The host's own 16 MiB at the top of RAM: image, stacks, stage-2 tables, the staged guest
/// ELF. Never mapped at stage 2, so the guest cannot reach it.
pub const HOST_REGION: Range<u64> = RAM_END - 16 * MIB..RAM_END;
/// Where QEMU's generic loader puts the guest ELF file, raw
/// (`-device loader,file=guest.elf,addr=0x5f800000,force-raw=on`); the host copies its
/// segments into guest RAM. Keep this value in sync with `link.ld`.
pub const GUEST_ELF_STAGING: Range<u64> = RAM_END - 8 * MIB..RAM_END;

/// Guest RAM: everything below the host's region, identity-mapped.
pub const GUEST_RAM: Range<u64> = RAM_BASE..HOST_REGION.start;
/// Where QEMU puts its device tree for a bare-metal image: the start of RAM, which is the
/// guest's. The guest kernel reads it (RAM size, command line); other guests may overwrite it.
pub const GUEST_DEVICE_TREE: u64 = RAM_BASE;
/// Where the guest kernel puts workload data: 64 MiB into RAM, as on x86 (`WORKLOAD_BASE`
/// of the runner and guest-kernel). The default lazy region runs from here to the end of
/// guest RAM.
pub const WORKLOAD_BASE: u64 = RAM_BASE + 64 * MIB;

/// The regions fit together: guest RAM ends where the host's region starts, which holds the
/// staging area; devices are below RAM.
const _: () = {
    assert!(GUEST_RAM.end <= HOST_REGION.start);
    assert!(HOST_REGION.start <= GUEST_ELF_STAGING.start);
    assert!(GICD.end <= RAM_BASE && GICR.end <= RAM_BASE && UART.end <= RAM_BASE);
};

/// Whether `range` lies inside guest RAM.
pub fn in_guest_ram(range: &Range<u64>) -> bool {
    GUEST_RAM.start <= range.start && range.end <= GUEST_RAM.end && range.start <= range.end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_data_is_in_guest_ram() {
        assert!(GUEST_RAM.contains(&WORKLOAD_BASE));
    }

    #[test]
    fn guest_ram_check() {
        assert!(in_guest_ram(&(RAM_BASE..RAM_BASE + 4096)));
        assert!(!in_guest_ram(
            &(HOST_REGION.start - 1..HOST_REGION.start + 1)
        ));
        assert!(!in_guest_ram(&(0..4096)));
    }
}
