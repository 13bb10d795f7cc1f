//! The kernel heap (task stacks, scheduler tables): `talc` over a fixed region after the
//! kernel image.

use core::ops::Range;
use talc::TalcLock;
use talc::source::Manual;

#[global_allocator]
static ALLOCATOR: TalcLock<spin::Mutex<()>, Manual> = TalcLock::new(Manual);

/// Hands `region` to the allocator.
pub fn init(region: Range<u64>) {
    let len = (region.end - region.start) as usize;
    // SAFETY: the region is mapped kernel-only, inside RAM, and used by nothing else.
    let claimed = unsafe { ALLOCATOR.lock().claim(region.start as *mut u8, len) };
    assert!(claimed.is_some(), "heap region {region:#x?} is too small");
}
