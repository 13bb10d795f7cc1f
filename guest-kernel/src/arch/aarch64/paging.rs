//! Stage-1 translation for EL1&0: one identity-mapped address space (TTBR0_EL1, 4 KiB
//! granule, 39-bit addresses, walks starting at level 1), with the protection split the
//! x86_64 kernel uses, so EL0 tasks share the kernel image without touching kernel state.
//!
//! | range | access |
//! |---|---|
//! | below RAM, except the devices below | unmapped (flash, where the `unmapped` scenario reads) |
//! | GIC, PL011 | EL1 only, Device-nGnRE, no execute |
//! | kernel code | EL0 + EL1, read-only, executable (tasks run shared code) |
//! | kernel read-only data | EL0 + EL1, read-only |
//! | kernel data, .bss, heap | EL1 only, read/write, no execute |
//! | user region (to end of RAM) | EL0 + EL1, read/write, no execute |
//!
//! Before the final tables exist, [`enable_boot_map`] maps the first GiB as devices and the
//! second (the start of RAM: the device tree and the image) as EL1 memory, with 1 GiB blocks.

use super::platform::{
    GICD_BASE, GICD_SIZE, GICR_BASE, GICR_SIZE, RAM_START, UART_BASE, UART_SIZE,
};
use crate::arch::boot_tables::{Pool, Regions};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, MAIR_EL1, Readable, SCTLR_EL1, TCR_EL1, TTBR0_EL1,
    Writeable,
};
use core::ops::Range;
use guest_kernel::cmdline::MAX_CPUS;

const PAGE: u64 = 4096;
const BLOCK_2M: u64 = 2 << 20;
const BLOCK_1G: u64 = 1 << 30;
const ENTRIES: usize = 512;
/// TCR_EL1.T0SZ: a 2^(64-25) = 39-bit address space, whose walks start at level 1.
const T0SZ: u64 = 25;
/// Address bits each level resolves (4 KiB granule).
const L1_SHIFT: u32 = 30;
const L2_SHIFT: u32 = 21;
const L3_SHIFT: u32 = 12;
/// Translation-table pages available (level 1, one level 2 per GiB, level 3 for edges).
const POOL_PAGES: usize = 16;

// Descriptor fields (Arm ARM D8.3, "VMSAv8-64 translation table descriptor formats").
/// Bit 0: the descriptor is valid.
const VALID: u64 = 1 << 0;
/// Bit 1: a table (levels 1-2) or a page (level 3); clear for a block.
const TABLE_OR_PAGE: u64 = 1 << 1;
/// AttrIndx, bits [4:2]: index into MAIR_EL1.
const ATTR_SHIFT: u32 = 2;
/// AP[1], bit 6: EL0 may access.
const AP_EL0: u64 = 1 << 6;
/// AP[2], bit 7: read-only.
const AP_READ_ONLY: u64 = 1 << 7;
/// SH, bits [9:8] = 0b11: inner shareable.
const INNER_SHAREABLE: u64 = 0b11 << 8;
/// AF, bit 10: accessed (there is no hardware access-flag management to set it).
const ACCESSED: u64 = 1 << 10;
/// PXN, bit 53: EL1 may not execute.
const PXN: u64 = 1 << 53;
/// UXN, bit 54: EL0 may not execute.
const UXN: u64 = 1 << 54;
/// Output address bits of a descriptor, [47:12].
const ADDRESS_MASK: u64 = 0x0000_FFFF_FFFF_F000;

/// MAIR_EL1 attribute slots: normal write-back memory and Device-nGnRE.
const MAIR_NORMAL: u64 = 0;
const MAIR_DEVICE: u64 = 1;

/// SCTLR_EL1 bits the crate does not name, set as in their legacy behaviour (Arm ARM
/// D23.2.118): LSMAOE (29) and nTLSMD (28); SPAN (23): PSTATE.PAN is left alone on
/// exceptions, so the kernel may read task buffers; EIS (22) and EOS (11): exception entry and
/// return are context-synchronising; TSCXT (20): SCXTNUM_EL0 traps.
const SCTLR_LEGACY_ONES: u64 =
    (1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11);
/// The PAN system register (`S3_0_C4_C2_3`), FEAT_PAN.
const PAN_PRESENT: u64 = 1;

/// Memory kinds of the map.
#[derive(Clone, Copy)]
enum Kind {
    /// Kernel code, also run by EL0 tasks.
    SharedCode,
    /// Read-only data, also read by EL0 tasks.
    SharedData,
    /// Kernel data, .bss and heap.
    Kernel,
    /// Task memory.
    User,
    /// MMIO registers, EL1 only.
    Device,
    /// MMIO registers of a device an EL0 driver runs.
    UserDevice,
}

impl Kind {
    /// Leaf descriptor bits, without the valid/page bits and the address.
    fn attributes(self) -> u64 {
        let normal = (MAIR_NORMAL << ATTR_SHIFT) | INNER_SHAREABLE | ACCESSED;
        match self {
            Kind::SharedCode => normal | AP_EL0 | AP_READ_ONLY,
            Kind::SharedData => normal | AP_EL0 | AP_READ_ONLY | PXN | UXN,
            Kind::Kernel => normal | PXN | UXN,
            Kind::User => normal | AP_EL0 | PXN | UXN,
            Kind::Device => (MAIR_DEVICE << ATTR_SHIFT) | ACCESSED | PXN | UXN,
            Kind::UserDevice => (MAIR_DEVICE << ATTR_SHIFT) | ACCESSED | AP_EL0 | PXN | UXN,
        }
    }
}

#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

/// The pages of the boot map and of the final tables.
static POOL: Pool<Table, POOL_PAGES> = Pool::new(
    [const { Table([0; ENTRIES]) }; POOL_PAGES],
    "translation-table",
);

/// Memory attributes, translation control and the boot map, then the MMU and caches on.
/// Runs with the MMU off, so it only writes registers and two aligned table entries.
pub fn enable_boot_map() {
    MAIR_EL1.write(
        MAIR_EL1::Attr0_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL1::Attr0_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL1::Attr1_Device::nonGathering_nonReordering_EarlyWriteAck,
    );
    TCR_EL1.write(
        TCR_EL1::T0SZ.val(T0SZ)
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::SH0::Inner
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::EPD1::DisableTTBR1Walks
            + TCR_EL1::IPS.val(ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)),
    );
    let l1 = POOL.take();
    l1.0[0] = VALID | Kind::Device.attributes();
    l1.0[(RAM_START >> L1_SHIFT) as usize] = RAM_START | VALID | Kind::Kernel.attributes() & !PXN;
    switch_to(l1);
    allow_kernel_user_access();
    SCTLR_EL1.set(
        SCTLR_LEGACY_ONES
            | (SCTLR_EL1::M::Enable
                + SCTLR_EL1::C::Cacheable
                + SCTLR_EL1::I::Cacheable
                + SCTLR_EL1::SA::Enable
                + SCTLR_EL1::SA0::Enable)
                .value,
    );
    barrier::isb(barrier::SY);
}

/// Clears PSTATE.PAN where FEAT_PAN exists, on each CPU: EL1 may access EL0 memory, which
/// the kernel does when it reads task buffers in system calls.
pub fn allow_kernel_user_access() {
    if ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::PAN) >= PAN_PRESENT {
        // SAFETY: only lets EL1 loads and stores reach EL0-accessible pages.
        unsafe { core::arch::asm!("msr S3_0_C4_C2_3, xzr", options(nostack)) };
    }
}

/// Builds the final tables for `regions` and the devices, and switches to them.
pub fn init(regions: &Regions) {
    let l1 = POOL.take();
    map(l1, &regions.text, Kind::SharedCode);
    map(l1, &regions.rodata, Kind::SharedData);
    map(l1, &regions.kernel, Kind::Kernel);
    map(l1, &regions.user, Kind::User);
    map(l1, &(GICD_BASE..GICD_BASE + GICD_SIZE), Kind::Device);
    map(
        l1,
        &(GICR_BASE..GICR_BASE + GICR_SIZE * MAX_CPUS as u64),
        Kind::Device,
    );
    map(l1, &(UART_BASE..UART_BASE + UART_SIZE), Kind::Device);
    if let Some(devices) = &regions.user_devices {
        map(l1, devices, Kind::UserDevice);
    }
    switch_to(l1);
}

/// Makes `l1` the translation table and forgets every cached translation.
fn switch_to(l1: &Table) {
    // The table writes must reach memory before the walker reads them.
    barrier::dsb(barrier::ISHST);
    TTBR0_EL1.set_baddr(l1 as *const Table as u64);
    // SAFETY: TLB maintenance has no other effect; the new table maps the running code, its
    // stack and data identically.
    unsafe { core::arch::asm!("tlbi vmalle1", options(nostack)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}

/// Identity-maps `range` as `kind`, with 2 MiB blocks where aligned. A partly covered 2 MiB
/// block is filled from one level-3 table.
fn map(l1: &mut Table, range: &Range<u64>, kind: Kind) {
    let attributes = kind.attributes();
    let mut addr = range.start;
    while addr < range.end {
        let block_end = (addr + 1).next_multiple_of(BLOCK_2M).min(range.end);
        let l2 = next_table(l1, index(addr, L1_SHIFT));
        if addr.is_multiple_of(BLOCK_2M) && block_end - addr == BLOCK_2M {
            l2.0[index(addr, L2_SHIFT)] = addr | VALID | attributes;
        } else {
            let l3 = next_table(l2, index(addr, L2_SHIFT));
            for page in (addr..block_end).step_by(PAGE as usize) {
                l3.0[index(page, L3_SHIFT)] = page | VALID | TABLE_OR_PAGE | attributes;
            }
        }
        addr = block_end;
    }
}

fn index(addr: u64, shift: u32) -> usize {
    ((addr >> shift) as usize) % ENTRIES
}

/// The table `table[i]` points to, created on first use. Table descriptors restrict
/// nothing; the leaf entries decide.
fn next_table(table: &mut Table, i: usize) -> &'static mut Table {
    let entry = &mut table.0[i];
    if *entry & VALID == 0 {
        *entry = POOL.take() as *mut Table as u64 | VALID | TABLE_OR_PAGE;
    }
    assert!(*entry & TABLE_OR_PAGE != 0, "mapping splits a block");
    // SAFETY: identity mapping: the physical address of a pool page is its address.
    unsafe { &mut *((*entry & ADDRESS_MASK) as *mut Table) }
}

const _: () = assert!(
    RAM_START.is_multiple_of(BLOCK_1G),
    "the boot map maps RAM's first GiB with one level-1 block"
);
