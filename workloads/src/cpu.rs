//! CPU-bound work: counting primes by trial division, and a hash chain.
//!
//! Prime counting was chosen because it is pure integer work (no SSE in the soft-float guest), its cost is
//! tunable, it can be split in chunks (so a task can look around between chunks), and its
//! answers are tabulated, so a wrong register restore in a context switch shows up as a
//! wrong count.

/// π(n) for the sizes the guest accepts.
pub const PRIME_COUNTS: &[(u64, u64)] = &[
    (1_000, 168),
    (10_000, 1_229),
    (100_000, 9_592),
    (200_000, 17_984),
    (500_000, 41_538),
    (1_000_000, 78_498),
    (10_000_000, 664_579),
];

/// The tabulated π(n), if `n` is one of [`PRIME_COUNTS`].
pub fn expected_prime_count(n: u64) -> Option<u64> {
    PRIME_COUNTS.iter().find(|(k, _)| *k == n).map(|(_, c)| *c)
}

/// True if `n` is prime.
pub fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut d = 5;
    while d * d <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// Number of primes in `[lo, hi)`.
pub fn count_primes(lo: u64, hi: u64) -> u64 {
    (lo..hi).filter(|&n| is_prime(n)).count() as u64
}

/// The hash chain: `rounds` applications of the SplitMix64 step to `seed`.
///
/// Any size is valid and the answer is not tabulated: the host recomputes it with this same
/// function to check what the guest reported. Each round depends on the previous one, so
/// the work cannot be skipped or reordered.
pub fn chain(seed: u64, rounds: u64) -> u64 {
    let mut x = seed;
    for _ in 0..rounds {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x = z ^ (z >> 31);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_is_deterministic_and_sensitive_to_both_inputs() {
        assert_eq!(chain(1, 0), 1);
        assert_eq!(chain(1, 1000), chain(1, 1000));
        assert_ne!(chain(1, 1000), chain(1, 1001));
        assert_ne!(chain(1, 1000), chain(2, 1000));
        // Splitting the work gives the same answer (the guest may run it in slices).
        assert_eq!(chain(chain(7, 400), 600), chain(7, 1000));
    }

    #[test]
    fn small_primes() {
        let primes: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(1_000_003));
        assert!(!is_prime(1_000_001)); // 101 * 9901
        assert!(!is_prime(25) && !is_prime(49) && !is_prime(121));
    }

    #[test]
    fn table_matches_the_counter_in_chunks() {
        for &(n, want) in PRIME_COUNTS.iter().filter(|(n, _)| *n <= 1_000_000) {
            let chunked: u64 = (0..n)
                .step_by(4096)
                .map(|lo| count_primes(lo, (lo + 4096).min(n)))
                .sum();
            assert_eq!(chunked, want, "pi({n})");
        }
        assert_eq!(expected_prime_count(100_000), Some(9_592));
        assert_eq!(expected_prime_count(12_345), None);
    }
}
