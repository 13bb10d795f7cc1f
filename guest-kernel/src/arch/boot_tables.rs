//! What every arch's paging code shares: the statically allocated pool its translation-table
//! pages come from, and the [`Regions`] the final tables map. The table format and the map
//! itself are the arch's.

use core::cell::UnsafeCell;
use core::ops::Range;

/// The regions to map, all page-aligned.
pub struct Regions {
    pub text: Range<u64>,
    pub rodata: Range<u64>,
    /// Kernel data, .bss and heap.
    pub kernel: Range<u64>,
    pub user: Range<u64>,
    /// Device registers that ring-3 drivers reach (the `kv` network card), uncached.
    pub user_devices: Option<Range<u64>>,
}

/// `N` statically allocated translation-table pages of type `T`, handed out by
/// [`Pool::take`].
///
/// A static pool rather than the heap: tables are needed before the heap exists (aarch64
/// takes its boot table with the MMU off), and they are never freed. The counter is a plain
/// cell, not an atomic, because exclusive (atomic) accesses fault while the aarch64 MMU is
/// still off.
pub struct Pool<T, const N: usize> {
    pages: UnsafeCell<[T; N]>,
    used: UnsafeCell<usize>,
    /// What the pages are called in the message when they run out.
    what: &'static str,
}

// SAFETY: used only during single-threaded boot.
unsafe impl<T, const N: usize> Sync for Pool<T, N> {}

impl<T, const N: usize> Pool<T, N> {
    /// A pool of `pages`, none handed out yet; `what` names them when they run out.
    pub const fn new(pages: [T; N], what: &'static str) -> Self {
        Self {
            pages: UnsafeCell::new(pages),
            used: UnsafeCell::new(0),
            what,
        }
    }

    /// The next unused page; panics when all are taken. Only a static pool hands out pages,
    /// so they live as long as the returned borrow says.
    #[expect(
        clippy::mut_from_ref,
        reason = "each call hands out a different page, once"
    )]
    pub fn take(&'static self) -> &'static mut T {
        // SAFETY: boot is single-threaded and every page is handed out once.
        unsafe {
            let used = &mut *self.used.get();
            assert!(*used < N, "{} pool exhausted", self.what);
            let table = &mut (*self.pages.get())[*used];
            *used += 1;
            table
        }
    }
}
