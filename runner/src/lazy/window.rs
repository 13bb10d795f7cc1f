//! The lazy range seen from both sides: guest-physical addresses, and where they are mapped in
//! this process (what userfaultfd reports and `UFFDIO_COPY` takes).

use std::ops::Range;

use workloads::pages::PAGE_SIZE;

const PAGE: u64 = PAGE_SIZE as u64;

/// A page-aligned guest-physical range and its host mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    gpa: Range<u64>,
    host_start: usize,
}

impl Window {
    /// `gpa` must be page-aligned and mapped contiguously from `host_start`.
    pub fn new(gpa: Range<u64>, host_start: usize) -> Self {
        assert!(
            gpa.start.is_multiple_of(PAGE) && gpa.end.is_multiple_of(PAGE),
            "lazy range {gpa:#x?} is not page-aligned"
        );
        Window { gpa, host_start }
    }

    pub fn host_start(&self) -> usize {
        self.host_start
    }

    pub fn len(&self) -> usize {
        usize::try_from(self.gpa.end - self.gpa.start).expect("the range is mapped, so it fits")
    }

    pub fn pages(&self) -> usize {
        self.len() / PAGE_SIZE
    }

    /// The guest-physical page containing host address `host`, if it is in the window.
    pub fn page_of(&self, host: usize) -> Option<u64> {
        let offset = host.checked_sub(self.host_start)?;
        if offset >= self.len() {
            return None;
        }
        let offset = u64::try_from(offset).expect("below the window's length");
        Some((self.gpa.start + offset) & !(PAGE - 1))
    }

    /// Whether guest-physical address `gpa` is in the window.
    pub fn contains(&self, gpa: u64) -> bool {
        self.gpa.contains(&gpa)
    }

    /// Index of the page at guest-physical page address `gpa_page`, counted from the start.
    pub fn index(&self, gpa_page: u64) -> usize {
        usize::try_from((gpa_page - self.gpa.start) / PAGE).expect("pages of a mapped range")
    }

    /// The host address of guest-physical address `gpa`, which is in the window.
    pub fn host(&self, gpa: u64) -> usize {
        debug_assert!(self.gpa.contains(&gpa), "{gpa:#x} is outside the window");
        self.host_start + usize::try_from(gpa - self.gpa.start).expect("inside the window")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window::new(0x400_0000..0x400_4000, 0x7f00_0000_0000)
    }

    #[test]
    fn host_addresses_map_to_their_guest_page() {
        let w = window();
        assert_eq!(w.page_of(0x7f00_0000_0000), Some(0x400_0000));
        assert_eq!(w.page_of(0x7f00_0000_1fff), Some(0x400_1000));
        assert_eq!(w.page_of(0x7f00_0000_3ff8), Some(0x400_3000));
    }

    #[test]
    fn addresses_outside_are_refused() {
        let w = window();
        assert_eq!(w.page_of(0x7eff_ffff_ffff), None);
        assert_eq!(w.page_of(0x7f00_0000_4000), None);
        assert_eq!(w.page_of(0), None);
    }

    #[test]
    fn guest_pages_map_back_to_host_and_index() {
        let w = window();
        assert_eq!(w.host(0x400_2000), 0x7f00_0000_2000);
        assert_eq!(w.index(0x400_2000), 2);
        assert_eq!((w.len(), w.pages()), (0x4000, 4));
    }

    #[test]
    #[should_panic(expected = "not page-aligned")]
    fn unaligned_ranges_are_a_bug() {
        Window::new(0x400_0800..0x400_4000, 0);
    }
}
