//! Summaries of repeated measurements.

/// Minimum, median and maximum of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub min: u64,
    pub median: u64,
    pub max: u64,
}

impl Summary {
    /// `None` for no samples. The median of an even count is the mean of the middle two.
    pub fn of(samples: &[u64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => u64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
        };
        Some(Summary {
            min: sorted[0],
            median,
            max: sorted[n - 1],
        })
    }
}

/// The median of `samples` (`None` for none); of an even count, the mean of the middle two.
pub fn median(samples: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.into_iter().collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// How many times faster `mode` is than `baseline` (ratio of medians).
pub fn speedup(baseline: &Summary, mode: &Summary) -> f64 {
    baseline.median as f64 / mode.median.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(
            Summary::of(&[5]),
            Some(Summary {
                min: 5,
                median: 5,
                max: 5
            })
        );
        assert_eq!(Summary::of(&[9, 1, 5]).unwrap().median, 5);
        assert_eq!(Summary::of(&[4, 1, 3, 10]).unwrap().median, 3);
        assert_eq!(
            Summary::of(&[1, 2]).unwrap().median,
            1,
            "mean of 1 and 2, rounded down"
        );
        let big = Summary::of(&[u64::MAX, u64::MAX]).unwrap();
        assert_eq!(big.median, u64::MAX, "no overflow");
        assert_eq!(Summary::of(&[3, 1, 2]).unwrap().min, 1);
        assert_eq!(Summary::of(&[3, 1, 2]).unwrap().max, 3);
    }

    #[test]
    fn medians_of_floats() {
        assert_eq!(median([]), None);
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn speedup_is_a_ratio_of_medians() {
        let off = Summary::of(&[200, 210, 190]).unwrap();
        let on = Summary::of(&[100, 120, 80]).unwrap();
        assert_eq!(speedup(&off, &on), 2.0);
        assert_eq!(speedup(&on, &on), 1.0);
    }
}
