//! Where lazy pages come from. Fetchers ask a `PageSource` for a page's contents after the
//! latency model's delay: the generator here gives contents the guest can verify, and a
//! snapshot (`--restore`) gives the pages an earlier run saved.

use std::sync::Arc;

use workloads::pages::{self, PAGE_SIZE, WORDS};

use crate::snapshot::Image;

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

/// A snapshot's RAM (`--restore`): page `gpa` is copied from the mapped file at
/// `data offset + gpa`, as Firecracker's userfaultfd handler serves a restored VM. (Our
/// fetchers install pages from their own buffer, so the page is copied once more than there.)
impl PageSource for Image {
    fn fill(&self, gpa_page: u64, out: &mut Page) {
        self.read_page(gpa_page, out);
    }
}

/// A shared source: the run's configuration keeps one while the lazy memory server uses it.
impl<S: PageSource + ?Sized> PageSource for Arc<S> {
    fn fill(&self, gpa_page: u64, out: &mut Page) {
        S::fill(self, gpa_page, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{self, test_files::ScratchDir};
    use crate::vmm::memory;
    use vm_memory::{Bytes, GuestAddress};

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

    #[test]
    fn snapshot_pages_are_the_saved_pages_at_their_address() {
        const MIB: u64 = 1 << 20;
        const RAM: u64 = 128 * MIB;
        // Saved RAM whose workload pages hold the generator's contents for seed 3.
        let ram = memory::create(GuestAddress(0), RAM).expect("memory");
        let generated = GeneratedPages::new(3);
        let mut page = [0u8; PAGE_SIZE];
        for gpa in [0x400_0000, 0x400_1000, 0x7ff_f000] {
            generated.fill(gpa, &mut page);
            ram.write_slice(&page, GuestAddress(gpa)).expect("write");
        }
        let dir = ScratchDir::new("source-snapshot");
        let path = dir.path().join("ram.snap");
        snapshot::save(&path, &ram).expect("save");
        let source: Arc<dyn PageSource> = Arc::new(Image::open(&path, RAM).expect("open"));

        for gpa in [0x400_0000, 0x400_1000, 0x7ff_f000] {
            source.fill(gpa, &mut page);
            assert_eq!(pages::mismatches(3, gpa >> 12, &words_of(&page)), 0);
        }
        source.fill(0x400_2000, &mut page);
        assert_eq!(page, [0; PAGE_SIZE], "a page nobody wrote");
    }
}
