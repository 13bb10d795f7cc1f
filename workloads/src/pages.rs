//! The contents every lazily served guest page starts with: page `i` of a run with seed
//! `s` is a pure function of `(s, i)`. The host's page source fills pages with it and the
//! guest's memory workload checks them, so a page served twice, from the wrong offset or
//! not at all is caught.

/// Bytes per page (the guest and host both use 4 KiB pages here).
pub const PAGE_SIZE: usize = 4096;
/// 64-bit words per page.
pub const WORDS: usize = PAGE_SIZE / 8;

/// SplitMix64 finaliser: cheap, and every input bit affects every output bit.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Word `word` of page `page` (a guest-physical page number) for `seed`.
pub fn word(seed: u64, page: u64, word: usize) -> u64 {
    mix(seed ^ mix(page.wrapping_mul(WORDS as u64).wrapping_add(word as u64)))
}

/// Fills `out` with the contents of page `page`.
pub fn fill(seed: u64, page: u64, out: &mut [u64; WORDS]) {
    for (i, w) in out.iter_mut().enumerate() {
        *w = word(seed, page, i);
    }
}

/// Number of words of `data` that differ from page `page`'s contents.
pub fn mismatches(seed: u64, page: u64, data: &[u64; WORDS]) -> usize {
    data.iter()
        .enumerate()
        .filter(|&(i, &w)| w != word(seed, page, i))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_pages_verify_and_differ_between_pages_and_seeds() {
        let mut a = [0; WORDS];
        let mut b = [0; WORDS];
        fill(7, 100, &mut a);
        assert_eq!(mismatches(7, 100, &a), 0);
        assert_eq!(mismatches(7, 101, &a), WORDS, "another page");
        assert_eq!(mismatches(8, 100, &a), WORDS, "another seed");
        fill(7, 101, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn a_single_changed_word_is_caught() {
        let mut a = [0; WORDS];
        fill(1, 5, &mut a);
        a[300] ^= 1;
        assert_eq!(mismatches(1, 5, &a), 1);
    }

    #[test]
    fn zero_pages_never_verify() {
        // A page the host forgot to fill (zero-filled) must not pass.
        for page in 0..1000 {
            assert!(mismatches(0, page, &[0; WORDS]) > WORDS - 4);
        }
    }
}
