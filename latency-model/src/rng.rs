//! The seeded generator for fetch latencies: rand's xoshiro256++, seeded through SplitMix64
//! (`seed_from_u64`); a run's latencies repeat with the same seed, with no `std` and no
//! entropy.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, SeedableRng};

/// The generator, with the two draws the latency models take.
#[derive(Clone, Debug)]
pub struct Rng(Xoshiro256PlusPlus);

/// Bits of a `u64` that an `f64` mantissa holds; [`Rng::unit`] uses the top ones.
const F64_MANTISSA_BITS: u32 = 53;

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> (u64::BITS - F64_MANTISSA_BITS)) as f64
            / (1u64 << F64_MANTISSA_BITS) as f64
    }

    /// Uniform in `low..=high` (`low <= high`); the modulo bias is below 2^-40 for the
    /// nanosecond spans used here.
    pub fn range_inclusive(&mut self, low: u64, high: u64) -> u64 {
        match (high - low).checked_add(1) {
            Some(span) => low + self.next_u64() % span,
            None => self.next_u64(),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::Rng;
    use std::vec::Vec;

    #[test]
    fn same_seed_same_sequence() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..16).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn unit_and_range_stay_in_bounds() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            assert!((5..=9).contains(&rng.range_inclusive(5, 9)));
        }
        assert_eq!(rng.range_inclusive(3, 3), 3);
        let _ = rng.range_inclusive(0, u64::MAX);
    }
}
