//! Where things live in the x86_64 guest's physical address space.

/// Conventional memory ends at 640 KiB; up to 1 MiB a PC has VGA memory and ROMs, so that
/// range is left out of the memory map given to the guest.
pub const LOW_RAM_END: u64 = 0xA_0000;
/// RAM above the legacy hole; the kernel is linked here.
pub const HIGH_RAM_START: u64 = 0x10_0000;

/// The boot GDT. Firecracker's address: free low memory the guest is told is RAM, but which
/// only matters until the guest loads its own GDT.
pub const BOOT_GDT_ADDR: u64 = 0x500;
/// `hvm_start_info`, whose address the guest gets in `ebx`.
pub const PVH_START_INFO_ADDR: u64 = 0x6000;
/// The PVH memory map, right after the start info's page.
pub const PVH_MEMMAP_ADDR: u64 = 0x7000;
/// The NUL-terminated guest command line.
pub const CMDLINE_ADDR: u64 = 0x2_0000;

/// KVM's three-page TSS for real-mode emulation on Intel hosts: above the largest guest RAM
/// (3 GiB) and below the 4 GiB boundary, where Firecracker puts it.
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// KVM's identity-mapped page table page for real mode on Intel, just below the TSS.
pub const KVM_IDENTITY_MAP_ADDR: u64 = KVM_TSS_ADDR - 0x1000;
