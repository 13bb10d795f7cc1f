//! Latency models: how long fetching one lazy page takes (`--latency`). The models, their
//! names and their seeded draws are the `latency-model` crate's, shared with the arm64 EL2
//! host (`latency=`), so one model and seed draw the same latencies under either host; this
//! module gives them `Duration`s and the runner's error messages.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The time one page fetch takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyModel(latency_model::LatencyModel);

/// A `--latency` value that is not a model.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("latency {value:?}: {reason}")]
pub struct Error {
    value: String,
    reason: latency_model::Error,
}

impl LatencyModel {
    /// The expected fetch time (`compare` sizes its workloads with it).
    pub fn mean(&self) -> Duration {
        Duration::from_nanos(self.0.mean())
    }

    /// A run's fetch latencies, seeded with `seed`.
    pub fn draws(&self, seed: u64) -> Draws {
        Draws(latency_model::Draws::new(self.0, seed))
    }
}

/// One run's stream of fetch latencies, in the order the fetches start.
#[derive(Clone, Debug)]
pub struct Draws(latency_model::Draws);

impl Draws {
    pub fn next_latency(&mut self) -> Duration {
        Duration::from_nanos(self.0.next_ns())
    }
}

impl FromStr for LatencyModel {
    type Err = Error;

    /// `fixed:D`, `uniform:LOW..HIGH`, `lognormal:MEDIAN,P99`, or a bare duration (fixed).
    fn from_str(value: &str) -> Result<Self, Error> {
        latency_model::LatencyModel::parse(value)
            .map(LatencyModel)
            .map_err(|reason| Error {
                value: value.to_owned(),
                reason,
            })
    }
}

impl fmt::Display for LatencyModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<LatencyModel, Error> {
        value.parse()
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn models_parse_and_print_as_typed() {
        assert_eq!(parse("fixed:10ms"), parse("10ms"));
        assert_eq!(parse("fixed:10ms").unwrap().mean(), ms(10));
        assert_eq!(parse("30us").unwrap().to_string(), "fixed:30us");
        for text in [
            "uniform:1ms..5ms",
            "lognormal:1ms,10ms",
            "fixed:2s",
            "fixed:0s",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn means_and_draws_are_durations() {
        assert_eq!(parse("uniform:1ms..5ms").unwrap().mean(), ms(3));
        let mut draws = parse("2ms").unwrap().draws(9);
        assert!((0..5).all(|_| draws.next_latency() == ms(2)));
        let uniform = parse("uniform:1ms..5ms").unwrap();
        let (mut a, mut b) = (uniform.draws(4), uniform.draws(4));
        for _ in 0..100 {
            let latency = a.next_latency();
            assert_eq!(latency, b.next_latency(), "the same seed draws the same");
            assert!((ms(1)..=ms(5)).contains(&latency));
        }
    }

    #[test]
    fn malformed_models_say_what_is_wrong_with_which_value() {
        let cases = [
            ("gamma:1ms", "unknown model"),
            ("uniform:1ms,5ms", "uniform takes LOW..HIGH"),
            ("fixed:10", "ns, us, ms or s"),
            ("fast", "ns, us, ms or s"),
            ("fixed:99999999999999999999ms", "fits in 64-bit nanoseconds"),
            ("uniform:5ms..1ms", "lower bound is above the upper"),
            ("lognormal:0ms,1ms", "median must be longer than zero"),
            ("lognormal:10ms,1ms", "p99 is below the median"),
        ];
        for (value, says) in cases {
            let message = parse(value).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("latency {value:?}: ")),
                "{message}"
            );
            assert!(message.contains(says), "{message}");
        }
    }
}
