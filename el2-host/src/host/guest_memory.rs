//! The guest's stage-2 view: identity-mapped RAM and devices, with the lazy region left
//! unmapped until each page is fetched.
//!
//! | IPA range | stage 2 |
//! |---|---|
//! | PL011 (`memory_map::UART`) | mapped, Device: the guest's console |
//! | GIC distributor and redistributor | mapped, Device: the guest programs them as on bare metal; its own `ICC_*` accesses go to the virtual CPU interface |
//! | guest RAM outside the lazy region | mapped, Normal, 2 MiB blocks |
//! | the lazy region | unmapped; each page mapped when the guest first touches it |
//! | anything else (the host's 16 MiB, other devices) | unmapped: a guest access stops the run |

use core::cell::UnsafeCell;
use core::ops::Range;

use el2_host::memory_map::{GICD, GICR, GUEST_RAM, UART, in_guest_ram};
use el2_host::stage2::{self, BLOCK_SIZE, Memory, PAGE_SIZE, Stage2, Table};
use workloads::pages::WORDS;

use crate::arch::aarch64::stage2 as hw;

/// Tables: the root, two level-2 tables (devices, RAM), two level-3 tables for the device
/// pages, and one per 2 MiB block of the largest lazy region (216), with room to spare.
const POOL_TABLES: usize = 256;

/// Bytes of the async PF control block the host writes (`reason`, `token`; §2.3).
const CONTROL_BLOCK_HOST_BYTES: u64 = 8;

struct Pool(UnsafeCell<[Table; POOL_TABLES]>);

// SAFETY: handed out once, by `take_pool`, on the single host CPU.
unsafe impl Sync for Pool {}

/// Zeroed, so it lives in `.bss`.
static POOL: Pool = Pool(UnsafeCell::new([Table::EMPTY; POOL_TABLES]));

/// The table pool; called once, by [`GuestMemory::new`].
fn take_pool() -> &'static mut [Table] {
    // SAFETY: the only reference ever made to the pool (one call, at boot).
    unsafe { &mut *POOL.0.get() }
}

/// The stage-2 tables and which pages are still lazy.
pub struct GuestMemory {
    tables: Stage2<'static>,
    lazy: Range<u64>,
}

impl GuestMemory {
    /// Maps devices and RAM except `lazy` (2 MiB-aligned), and installs the tables.
    pub fn new(lazy: Range<u64>) -> Result<Self, stage2::Error> {
        let pool = take_pool();
        let base = pool.as_ptr() as u64;
        let mut tables = Stage2::new(pool, base);
        for device in [UART, GICD, GICR] {
            for page in device.step_by(PAGE_SIZE as usize) {
                tables.map_page(page, Memory::Device)?;
            }
        }
        for block in GUEST_RAM.step_by(BLOCK_SIZE as usize) {
            if !lazy.contains(&block) {
                tables.map_block(block, Memory::Normal)?;
            }
        }
        hw::install(tables.root());
        Ok(Self { tables, lazy })
    }

    /// Whether `ipa` is a lazy page not fetched yet.
    pub fn is_lazy(&self, ipa: u64) -> bool {
        self.lazy.contains(&ipa) && self.tables.page_entry(ipa & !(PAGE_SIZE - 1)) == 0
    }

    /// Whether a host-written guest structure (the async PF control block, 8 bytes) may
    /// live at `gpa`: guest RAM, never lazy.
    pub fn is_plain_ram(&self, gpa: u64) -> bool {
        let block = gpa..gpa.saturating_add(CONTROL_BLOCK_HOST_BYTES);
        in_guest_ram(&block) && (block.end <= self.lazy.start || self.lazy.end <= block.start)
    }

    /// Writes the contents of the lazy page at `page` before it is mapped.
    pub fn fill(&mut self, page: u64, contents: impl FnOnce(&mut [u64; WORDS])) {
        // SAFETY: `page` is a page of the lazy region (callers check `is_lazy`): guest RAM
        // that the host does not use and the guest cannot see until `map` maps it.
        contents(unsafe { &mut *(page as *mut [u64; WORDS]) });
    }

    /// Maps the lazy page at `page`; the guest's next access to it succeeds.
    pub fn map(&mut self, page: u64) -> Result<(), stage2::Error> {
        self.tables.map_page(page, Memory::Normal)?;
        hw::publish();
        Ok(())
    }
}
