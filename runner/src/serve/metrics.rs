//! What a run's answers say: latency percentiles per class, and how often hot requests were
//! answered while a cold one waited for its page (what async PF is for: one request's fault
//! should not stop the service).

use std::time::Duration;

use hdrhistogram::Histogram;

use super::schedule::Class;

/// Percentiles drawn in `--svg`, as fractions (the x axis is 1/(1-q), so not the maximum).
pub const CURVE: [f64; 8] = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999];

/// One answered GET, its times from the start of the load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub class: Class,
    pub sent: Duration,
    pub received: Duration,
    /// From when it was due (not when it was sent): queueing counts.
    pub latency: Duration,
}

/// Latencies of one class, in microseconds.
#[derive(Clone, Debug)]
pub struct Latencies(Histogram<u64>);

/// A class's summary, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latencies {
    pub fn of(samples: &[Sample], class: Class) -> Self {
        // 3 significant digits from 1 us to an hour; longer latencies are clamped.
        let mut histogram =
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("the bounds are valid");
        for sample in samples.iter().filter(|s| s.class == class) {
            let micros = u64::try_from(sample.latency.as_micros()).unwrap_or(u64::MAX);
            histogram.saturating_record(micros.max(1));
        }
        Latencies(histogram)
    }

    pub fn summary(&self) -> Summary {
        let h = &self.0;
        Summary {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// (q, latency in us) at each of [`CURVE`]'s quantiles; empty without samples.
    pub fn curve(&self) -> Vec<(f64, u64)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        CURVE
            .iter()
            .map(|&q| (q, self.0.value_at_quantile(q)))
            .collect()
    }
}

/// Hot requests overtaking cold ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overtaking {
    /// Over every cold request c: the hot requests sent after c and answered before it.
    pub hot_answered_during_cold_wait: u64,
    /// Cold requests that at least one hot request overtook so.
    pub cold_overtaken: u64,
}

pub fn overtaking(samples: &[Sample]) -> Overtaking {
    let mut hot: Vec<&Sample> = samples.iter().filter(|s| s.class == Class::Hot).collect();
    hot.sort_by_key(|s| s.sent);
    let mut result = Overtaking::default();
    for cold in samples.iter().filter(|s| s.class == Class::Cold) {
        // Only hot requests sent while this one waited can overtake it.
        let first = hot.partition_point(|h| h.sent <= cold.sent);
        let overtook = hot[first..]
            .iter()
            .take_while(|h| h.sent < cold.received)
            .filter(|h| h.received < cold.received)
            .count() as u64;
        result.hot_answered_during_cold_wait += overtook;
        result.cold_overtaken += u64::from(overtook > 0);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(class: Class, sent_ms: u64, received_ms: u64) -> Sample {
        Sample {
            class,
            sent: Duration::from_millis(sent_ms),
            received: Duration::from_millis(received_ms),
            latency: Duration::from_millis(received_ms - sent_ms),
        }
    }

    #[test]
    fn hot_answers_inside_a_cold_wait_count() {
        let samples = [
            sample(Class::Hot, 0, 20), // sent before the cold one: not counted
            sample(Class::Cold, 5, 15),
            sample(Class::Hot, 6, 7),   // overtakes
            sample(Class::Hot, 8, 16),  // answered after: no
            sample(Class::Hot, 10, 11), // overtakes
            sample(Class::Hot, 15, 15), // sent as the cold answer came: no
            sample(Class::Cold, 30, 31),
            sample(Class::Hot, 40, 41),
        ];
        assert_eq!(
            overtaking(&samples),
            Overtaking {
                hot_answered_during_cold_wait: 2,
                cold_overtaken: 1
            }
        );
        assert_eq!(overtaking(&[]), Overtaking::default());
    }

    #[test]
    fn a_stalled_service_is_never_overtaken() {
        // In order, one at a time: each answer waits for the one before.
        let samples = [
            sample(Class::Cold, 0, 10),
            sample(Class::Hot, 1, 11),
            sample(Class::Hot, 2, 12),
        ];
        assert_eq!(overtaking(&samples).cold_overtaken, 0);
    }

    #[test]
    fn summaries_are_per_class_in_microseconds() {
        let mut samples: Vec<Sample> = (1..=1000).map(|i| sample(Class::Hot, 0, i)).collect();
        samples.push(sample(Class::Cold, 0, 5000));
        let hot = Latencies::of(&samples, Class::Hot).summary();
        assert_eq!(hot.count, 1000);
        // Three significant digits.
        assert!((499_000..=501_000).contains(&hot.p50), "{hot:?}");
        assert!((989_000..=991_000).contains(&hot.p99), "{hot:?}");
        assert!((998_000..=1_000_500).contains(&hot.p999), "{hot:?}");
        assert!((999_000..=1_000_500).contains(&hot.max), "{hot:?}");
        let cold = Latencies::of(&samples, Class::Cold);
        assert_eq!(cold.summary().count, 1);
        assert!(
            cold.curve()
                .iter()
                .all(|&(_, us)| us.abs_diff(5_000_000) < 5_000)
        );
        assert_eq!(cold.curve().len(), CURVE.len());
        assert!(Latencies::of(&[], Class::Hot).curve().is_empty());
        assert_eq!(Latencies::of(&[], Class::Hot).summary().count, 0);
    }
}
