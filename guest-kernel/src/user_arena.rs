//! Bump allocation of task memory (user stacks, workload data) from the user region.
//!
//! Task memory lives as long as the guest, so it is never freed; a bump pointer is all
//! that is needed and keeps the kernel path short.

use core::ops::Range;

/// The unallocated rest of the user region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserArena {
    free: Range<u64>,
}

impl UserArena {
    pub fn new(region: Range<u64>) -> Self {
        Self { free: region }
    }

    /// `size` bytes aligned to `align` (a power of two), or `None` when the region is full.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<Range<u64>> {
        debug_assert!(align.is_power_of_two());
        let start = self.free.start.checked_add(align - 1)? & !(align - 1);
        let end = start.checked_add(size)?;
        if end > self.free.end {
            return None;
        }
        self.free.start = end;
        Some(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_aligned_and_disjoint() {
        let mut a = UserArena::new(0x1001..0x10000);
        let x = a.alloc(10, 16).unwrap();
        assert_eq!(x, 0x1010..0x101a);
        let y = a.alloc(0x1000, 0x1000).unwrap();
        assert_eq!(y, 0x2000..0x3000);
        assert!(a.alloc(0xd001, 1).is_none(), "does not fit");
        assert_eq!(a.alloc(0xd000, 1), Some(0x3000..0x10000));
        assert!(a.alloc(1, 1).is_none());
    }

    #[test]
    fn overflow_is_refused() {
        let mut a = UserArena::new(u64::MAX - 4..u64::MAX);
        assert!(a.alloc(1, 16).is_none());
        assert!(a.alloc(u64::MAX, 1).is_none());
    }
}
