//! The kernel's one address space: identity-mapped, with the protection split that lets
//! ring-3 tasks share the kernel image without being able to touch kernel state.
//!
//! | range | access |
//! |---|---|
//! | `[0, 1 MiB)` | unmapped (catches null and wild pointers) |
//! | kernel code | user + kernel, read/execute (tasks run shared code) |
//! | kernel read-only data | user + kernel, read |
//! | kernel data, .bss, heap | kernel only, read/write, no execute |
//! | user region (to end of RAM) | user + kernel, read/write, no execute |
//! | a ring-3 driver's device registers | user + kernel, read/write, uncached, no execute |
//!
//! 2 MiB pages are used wherever alignment allows: each page-table write is an emulated
//! ring-0 instruction on our KVM, so fewer entries means a faster boot.

use crate::arch::boot_tables::{Pool, Regions};
use core::ops::Range;
use x86_64::PhysAddr;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags, PhysFrame};

const PAGE: u64 = 4096;
const HUGE_PAGE: u64 = 2 << 20;
/// Page-table pages available (PML4, PDPT, one PD per GiB, PTs for unaligned edges).
const POOL_PAGES: usize = 16;

/// The pages of the final tables (the boot map is the entry stub's).
static POOL: Pool<PageTable, POOL_PAGES> =
    Pool::new([const { PageTable::new() }; POOL_PAGES], "page-table");

/// Builds the page tables for `regions` and switches to them.
pub fn init(regions: &Regions) {
    let pml4 = POOL.take();
    let user_rx = Flags::PRESENT | Flags::USER_ACCESSIBLE;
    map(pml4, &regions.text, user_rx);
    map(pml4, &regions.rodata, user_rx | Flags::NO_EXECUTE);
    map(
        pml4,
        &regions.kernel,
        Flags::PRESENT | Flags::WRITABLE | Flags::NO_EXECUTE,
    );
    map(
        pml4,
        &regions.user,
        Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE | Flags::NO_EXECUTE,
    );
    if let Some(devices) = &regions.user_devices {
        let uncached = Flags::NO_CACHE | Flags::WRITE_THROUGH;
        map(
            pml4,
            devices,
            Flags::PRESENT
                | Flags::WRITABLE
                | Flags::USER_ACCESSIBLE
                | Flags::NO_EXECUTE
                | uncached,
        );
    }
    let frame = PhysFrame::containing_address(PhysAddr::new(pml4 as *mut PageTable as u64));
    // SAFETY: the new tables map the running code, its stack and data identically.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}

/// Identity-maps `range` with `flags`, using 2 MiB pages where aligned. A partly covered
/// 2 MiB block is filled from one page-table walk.
fn map(pml4: &mut PageTable, range: &Range<u64>, flags: Flags) {
    let mut addr = range.start;
    while addr < range.end {
        let block_end = (addr + 1).next_multiple_of(HUGE_PAGE).min(range.end);
        let pd = next_table(next_table(pml4, index(addr, 39)), index(addr, 30));
        if addr.is_multiple_of(HUGE_PAGE) && block_end - addr == HUGE_PAGE {
            pd[index(addr, 21)].set_addr(PhysAddr::new(addr), flags | Flags::HUGE_PAGE);
        } else {
            let pt = next_table(pd, index(addr, 21));
            for page in (addr..block_end).step_by(PAGE as usize) {
                pt[index(page, 12)].set_addr(PhysAddr::new(page), flags);
            }
        }
        addr = block_end;
    }
}

fn index(addr: u64, shift: u32) -> usize {
    ((addr >> shift) & 0x1FF) as usize
}

/// The table `table[i]` points to, created on first use. Intermediate entries allow
/// everything; the leaf entries decide.
fn next_table(table: &mut PageTable, i: usize) -> &'static mut PageTable {
    let entry = &mut table[i];
    if entry.is_unused() {
        let next = POOL.take();
        entry.set_addr(
            PhysAddr::new(next as *mut PageTable as u64),
            Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE,
        );
    }
    assert!(
        !entry.flags().contains(Flags::HUGE_PAGE),
        "mapping splits a huge page"
    );
    // SAFETY: identity mapping: the physical address of a pool page is its address.
    unsafe { &mut *(entry.addr().as_u64() as *mut PageTable) }
}
