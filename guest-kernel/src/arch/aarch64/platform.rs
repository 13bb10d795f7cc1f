//! QEMU `virt` machine memory map (hw/arm/virt.c `base_memmap`) and interrupt numbers.

/// `VIRT_MEM`: where RAM starts.
pub const RAM_START: u64 = 0x4000_0000;
/// Where QEMU puts the device tree for a bare-metal (non-Linux) image: the start of RAM
/// (QEMU docs, "Arm virt board": "For guests booting as bare-metal ... the DTB is at the
/// start of RAM").
pub const DTB_ADDRESS: u64 = RAM_START;
/// Most bytes the device tree may take (QEMU's limit for the blob it builds is 1 MiB; our
/// image starts 2 MiB into RAM).
pub const DTB_MAX: usize = 1 << 20;
/// `VIRT_GIC_DIST`: GICv3 distributor, 64 KiB.
pub const GICD_BASE: u64 = 0x0800_0000;
pub const GICD_SIZE: u64 = 0x1_0000;
/// `VIRT_GIC_REDIST`: GICv3 redistributors in CPU order, CPU i's at `GICR_BASE + i *
/// GICR_SIZE`; each is two 64 KiB frames (RD_base, then SGI_base).
pub const GICR_BASE: u64 = 0x080A_0000;
pub const GICR_SIZE: u64 = 0x2_0000;
/// `VIRT_UART`: PL011, 4 KiB.
pub const UART_BASE: u64 = 0x0900_0000;
pub const UART_SIZE: u64 = 0x1000;
