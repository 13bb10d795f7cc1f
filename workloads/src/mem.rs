//! Memory-bound work: touch pages in a chosen order, check each page's contents against the
//! page generator, and leave a marker so the host can tell the page was reached.

use crate::pages::{self, WORDS};

/// Most memory tasks a scenario runs side by side (the guest's `mlp:k`, `compare --scenario
/// mlp:k`): above the 64 faults async PF keeps outstanding per vCPU, so that a host that
/// ignores that limit can fill the guest's waiter table.
pub const MAX_PARALLEL_TASKS: u32 = 96;

/// Orders in which [`touch`] visits the pages of its region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Sequential,
    /// A fixed pseudo-random permutation (the same for the same page count).
    Random,
    /// Every `n`-th page, then the ones after those, and so on (still each page once).
    Strided(u64),
}

/// The `k`-th page (`0 <= k < n`) visited by `pattern` over `n` pages. Every page is
/// visited exactly once.
pub fn nth_page(pattern: Pattern, n: u64, k: u64) -> u64 {
    debug_assert!(k < n);
    match pattern {
        Pattern::Sequential => k,
        Pattern::Random => {
            // i -> (a * i + c) mod n is a permutation when gcd(a, n) = 1.
            let a = coprime_multiplier(n);
            ((u128::from(a) * u128::from(k) + 12_345) % u128::from(n)) as u64
        }
        Pattern::Strided(stride) => {
            let stride = stride.clamp(1, n);
            // Column-major walk of a `stride`-wide grid holding 0..n row by row: the first
            // `extra` columns are one row taller than the rest.
            let rows = n / stride;
            let extra = n % stride;
            let tall = extra * (rows + 1);
            let (col, row) = if k < tall {
                (k / (rows + 1), k % (rows + 1))
            } else {
                (extra + (k - tall) / rows, (k - tall) % rows)
            };
            row * stride + col
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A large multiplier coprime with `n`, so the random order is a permutation.
fn coprime_multiplier(n: u64) -> u64 {
    const PRIMES: [u64; 4] = [2_654_435_761, 2_246_822_519, 3_266_489_917, 668_265_263];
    PRIMES
        .into_iter()
        .find(|&p| gcd(p, n) == 1)
        .expect("n has at most 3 of these 4 large prime factors")
}

/// What one pass of [`touch`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub touched: u64,
    /// Pages whose contents matched the generator.
    pub verified: u64,
    /// Pages with at least one wrong word.
    pub mismatched: u64,
}

/// Marker written into the last word of each page once it has been checked.
pub const MARKER: u64 = 0x4150_465f_444f_4e45; // "APF_DONE"

/// True if `page` holds page `number`'s generated contents; the last word may instead hold
/// [`MARKER`], left by an earlier pass (a page restored from a snapshot of a touched guest).
pub fn page_matches(seed: u64, number: u64, page: &[u64; WORDS]) -> bool {
    let last = page[WORDS - 1];
    let body_matches = page[..WORDS - 1]
        .iter()
        .enumerate()
        .all(|(i, &w)| w == pages::word(seed, number, i));
    body_matches && (last == MARKER || last == pages::word(seed, number, WORDS - 1))
}

/// Visits the `n` pages at `region` (page number `first_page` onward) in `pattern` order,
/// checks each against the generator for `seed`, then writes [`MARKER`] into its last word.
///
/// # Safety
/// `region` must point to `n` pages of memory that nothing else uses during the call.
pub unsafe fn touch(
    region: *mut [u64; WORDS],
    first_page: u64,
    n: u64,
    pattern: Pattern,
    seed: u64,
) -> Outcome {
    let mut outcome = Outcome::default();
    for k in 0..n {
        let i = nth_page(pattern, n, k);
        // SAFETY: `i < n`, and the caller gives us the `n` pages.
        let page = unsafe { &mut *region.add(i as usize) };
        outcome.touched += 1;
        if page_matches(seed, first_page + i, page) {
            outcome.verified += 1;
        } else {
            outcome.mismatched += 1;
        }
        page[WORDS - 1] = MARKER;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visits(pattern: Pattern, n: u64) -> Vec<u64> {
        (0..n).map(|k| nth_page(pattern, n, k)).collect()
    }

    fn is_permutation(mut v: Vec<u64>) -> bool {
        let n = v.len() as u64;
        v.sort_unstable();
        v == (0..n).collect::<Vec<_>>()
    }

    #[test]
    fn every_pattern_visits_every_page_once() {
        for n in [1, 2, 3, 7, 64, 100, 1000, 4096, 2_654_435_761 * 2] {
            if n > 100_000 {
                // Only the multiplier choice matters for huge n; check it is coprime.
                assert_eq!(gcd(coprime_multiplier(n), n), 1);
                continue;
            }
            for p in [
                Pattern::Sequential,
                Pattern::Random,
                Pattern::Strided(1),
                Pattern::Strided(3),
                Pattern::Strided(16),
                Pattern::Strided(5000),
            ] {
                assert!(is_permutation(visits(p, n)), "{p:?} over {n}");
            }
        }
    }

    #[test]
    fn patterns_have_their_shape() {
        assert_eq!(visits(Pattern::Strided(3), 8), [0, 3, 6, 1, 4, 7, 2, 5]);
        assert_eq!(visits(Pattern::Sequential, 4), [0, 1, 2, 3]);
        assert_ne!(visits(Pattern::Random, 64), visits(Pattern::Sequential, 64));
    }

    #[test]
    fn touch_verifies_good_pages_and_counts_bad_ones() {
        let mut region = vec![[0u64; WORDS]; 8];
        for (i, page) in region.iter_mut().enumerate() {
            pages::fill(42, 100 + i as u64, page);
        }
        region[5][17] = 0;
        // SAFETY: the vector holds the 8 pages and nothing else uses it.
        let o = unsafe { touch(region.as_mut_ptr(), 100, 8, Pattern::Random, 42) };
        assert_eq!(
            o,
            Outcome {
                touched: 8,
                verified: 7,
                mismatched: 1
            }
        );
        assert!(region.iter().all(|p| p[WORDS - 1] == MARKER));
        // A second pass (e.g. after a restore from a snapshot) still verifies marked pages.
        region[5][17] = pages::word(42, 105, 17);
        // SAFETY: as above.
        let again = unsafe { touch(region.as_mut_ptr(), 100, 8, Pattern::Sequential, 42) };
        assert_eq!(again.verified, 8);
    }

    #[test]
    fn only_the_last_word_may_hold_the_marker() {
        let mut page = [0u64; WORDS];
        pages::fill(3, 9, &mut page);
        assert!(page_matches(3, 9, &page));
        page[WORDS - 1] = MARKER;
        assert!(page_matches(3, 9, &page));
        page[0] = MARKER;
        assert!(!page_matches(3, 9, &page));
        page[0] = pages::word(3, 9, 0);
        page[WORDS - 1] = 0;
        assert!(!page_matches(3, 9, &page));
    }
}
