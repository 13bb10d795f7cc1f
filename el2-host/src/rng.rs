//! A small seeded generator (xoshiro256++, seeded through SplitMix64 as its authors
//! recommend): a run's latencies repeat with the same seed, with no `std` and no entropy.

/// xoshiro256++ state.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// SplitMix64 step: expands a 64-bit seed into well-mixed state words.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bits of a `u64` that an `f64` mantissa holds; [`Rng::unit`] uses the top ones.
const F64_MANTISSA_BITS: u32 = 53;

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        Self {
            s: core::array::from_fn(|_| splitmix(&mut state)),
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
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
    use super::Rng;

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
