//! Converting TSC ticks to nanoseconds without a division on the hot path.
//!
//! Every ring-0 instruction is emulated on our KVM, so `time` must not call a 128-bit
//! division helper: the conversion is one widening multiply and a shift.

/// Fixed-point scale used by [`TscClock`].
const SHIFT: u32 = 32;

/// TSC-to-nanosecond conversion calibrated at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    /// TSC value at boot (time zero).
    base: u64,
    /// Nanoseconds per tick, in 32.32 fixed point.
    mult: u64,
    /// The calibrated frequency, kept for reporting.
    khz: u64,
}

impl TscClock {
    /// A clock before calibration: every time is zero.
    pub const UNCALIBRATED: Self = Self {
        base: 0,
        mult: 0,
        khz: 0,
    };

    /// A clock whose zero is `base`, for a TSC running at `khz` kilohertz.
    ///
    /// Returns `None` for frequencies that cannot be real (below 1 MHz or above 100 GHz).
    pub fn new(base: u64, khz: u64) -> Option<Self> {
        if !(1_000..=100_000_000).contains(&khz) {
            return None;
        }
        let mult = ((1_000_000u128 << SHIFT) / u128::from(khz)) as u64;
        Some(Self { base, mult, khz })
    }

    /// Nanoseconds elapsed between `base` and `tsc` (zero if `tsc` is earlier).
    pub fn ns(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.base);
        ((u128::from(ticks) * u128::from(self.mult)) >> SHIFT) as u64
    }

    /// The calibrated frequency in kHz.
    pub fn khz(&self) -> u64 {
        self.khz
    }
}

/// Frequency in kHz of a counter that advanced `ticks` during `window_ns` nanoseconds.
pub fn khz_from_window(ticks: u64, window_ns: u64) -> Option<u64> {
    if window_ns == 0 {
        return None;
    }
    Some((u128::from(ticks) * 1_000_000 / u128::from(window_ns)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_exactly_at_round_frequencies() {
        let c = TscClock::new(1000, 2_000_000).unwrap(); // 2 GHz
        assert_eq!(c.ns(1000), 0);
        assert_eq!(c.ns(1000 + 2_000_000_000), 1_000_000_000);
        assert_eq!(c.ns(500), 0, "earlier than base saturates");
    }

    #[test]
    fn error_is_below_one_ppm_at_odd_frequencies() {
        for khz in [1_000, 2_893_204, 3_700_001, 99_999_999] {
            let c = TscClock::new(0, khz).unwrap();
            let ticks = khz * 1000 * 60; // one minute
            let ns = c.ns(ticks);
            let want = 60_000_000_000u64;
            assert!(want.abs_diff(ns) <= want / 1_000_000, "{khz} kHz: {ns}");
        }
    }

    #[test]
    fn rejects_impossible_frequencies() {
        assert!(TscClock::new(0, 0).is_none());
        assert!(TscClock::new(0, 999).is_none());
        assert!(TscClock::new(0, 100_000_001).is_none());
    }

    #[test]
    fn frequencies_from_windows() {
        assert_eq!(khz_from_window(25_000_000, 10_000_000), Some(2_500_000));
        assert_eq!(khz_from_window(1, 0), None);
    }
}
