//! Where lazy pages come from. Fetchers ask a `PageSource` for a page's contents after the
//! latency model's delay; the generator here gives contents the guest can verify, and a
//! snapshot file can stand behind the same trait.

use workloads::pages::{self, PAGE_SIZE, WORDS};

/// One page of contents.
pub type Page = [u8; PAGE_SIZE];

/// The contents of guest pages, shared by every fetcher thread.
pub trait PageSource: Send + Sync {
    /// Writes the contents of the page at guest-physical address `gpa_page` (page-aligned)
    /// into `out`.
    fn fill(&self, gpa_page: u64, out: &mut Page);
}

/// Pages generated from a seed with `workloads::pages`, which the guest checks word by word
/// (`workloads::pages::word(seed, gpa >> 12, i)`).
#[derive(Clone, Copy, Debug)]
pub struct GeneratedPages {
    seed: u64,
}

impl GeneratedPages {
    pub fn new(seed: u64) -> Self {
        GeneratedPages { seed }
    }
}

/// log2 of the page size: page numbers are guest-physical addresses shifted by this.
const PAGE_SHIFT: u32 = PAGE_SIZE.trailing_zeros();

impl PageSource for GeneratedPages {
    fn fill(&self, gpa_page: u64, out: &mut Page) {
        let mut words = [0u64; WORDS];
        pages::fill(self.seed, gpa_page >> PAGE_SHIFT, &mut words);
        // The guest reads the words in its own (little-endian) byte order.
        for (bytes, word) in out.as_chunks_mut::<8>().0.iter_mut().zip(words) {
            *bytes = word.to_le_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(page: &Page) -> [u64; WORDS] {
        let mut words = [0u64; WORDS];
        for (word, bytes) in words.iter_mut().zip(page.as_chunks::<8>().0) {
            *word = u64::from_le_bytes(*bytes);
        }
        words
    }

    #[test]
    fn generated_pages_verify_as_the_guest_checks_them() {
        let mut page = [0u8; PAGE_SIZE];
        GeneratedPages::new(9).fill(0x400_3000, &mut page);
        assert_eq!(pages::mismatches(9, 0x4003, &words_of(&page)), 0);
        assert_eq!(words_of(&page)[5], pages::word(9, 0x4003, 5));
    }

    #[test]
    fn the_seed_and_the_address_change_the_contents() {
        let fill = |seed, gpa| {
            let mut page = [0u8; PAGE_SIZE];
            GeneratedPages::new(seed).fill(gpa, &mut page);
            page
        };
        assert_ne!(fill(1, 0x400_0000), fill(2, 0x400_0000));
        assert_ne!(fill(1, 0x400_0000), fill(1, 0x400_1000));
    }
}
