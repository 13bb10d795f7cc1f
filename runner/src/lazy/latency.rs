//! Latency models: how long fetching one lazy page takes (`--latency`). Pure: each fetcher
//! samples its own seeded generator, so a run's delays repeat with the same seed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::{Rng, RngExt};
use rand_distr::{Distribution, LogNormal};

use crate::units::{self, format_fine_duration};

/// The standard normal distribution's 99th percentile: a lognormal's p99 is
/// `median * exp(sigma * P99_Z)`.
const P99_Z: f64 = 2.3263;

const FIXED: &str = "fixed";
const UNIFORM: &str = "uniform";
const LOGNORMAL: &str = "lognormal";
const UNIFORM_SEPARATOR: &str = "..";
const LOGNORMAL_SEPARATOR: char = ',';

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("unknown latency model {0:?} (expected {FIXED}, {UNIFORM} or {LOGNORMAL})")]
    UnknownModel(String),
    #[error("{model} latency {value:?} is not {expected}")]
    Shape {
        model: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Duration(#[from] units::Error),
    #[error("uniform latency from {} to {}: the lower bound is above the upper", format_fine_duration(*.low), format_fine_duration(*.high))]
    ReversedBounds { low: Duration, high: Duration },
    #[error("lognormal latency: the median must be longer than zero")]
    ZeroMedian,
    #[error("lognormal latency: the p99 ({}) is below the median ({})", format_fine_duration(*.p99), format_fine_duration(*.median))]
    P99BelowMedian { median: Duration, p99: Duration },
}

/// The time one page fetch takes.
#[derive(Clone, Debug, PartialEq)]
pub enum LatencyModel {
    /// Always the same: a network-like fetch of one page.
    Fixed(Duration),
    /// Evenly spread over `low..=high`.
    Uniform { low: Duration, high: Duration },
    /// Lognormal with the given median and 99th percentile: mostly near the median, with a
    /// long tail, as storage and network latencies are.
    LogNormal(LogNormalLatency),
}

/// A lognormal latency, kept with the parameters it was given so it prints as typed.
#[derive(Clone, Debug, PartialEq)]
pub struct LogNormalLatency {
    median: Duration,
    p99: Duration,
    /// Over nanoseconds: `mu = ln(median)`, `sigma = (ln(p99) - mu) / P99_Z`.
    nanos: LogNormal<f64>,
}

impl LogNormalLatency {
    fn new(median: Duration, p99: Duration) -> Result<Self, Error> {
        if median.is_zero() {
            return Err(Error::ZeroMedian);
        }
        if p99 < median {
            return Err(Error::P99BelowMedian { median, p99 });
        }
        let mu = nanos_f64(median).ln();
        let sigma = (nanos_f64(p99).ln() - mu) / P99_Z;
        let nanos = LogNormal::new(mu, sigma).expect("mu is finite and sigma finite and >= 0");
        Ok(LogNormalLatency { median, p99, nanos })
    }
}

/// Durations here fit in u64 nanoseconds (`units::parse_duration` guarantees it).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).expect("parsed durations fit in u64 nanoseconds")
}

fn nanos_f64(duration: Duration) -> f64 {
    duration.as_nanos() as f64
}

impl LatencyModel {
    /// The expected fetch time (`compare` sizes its workloads with it).
    pub fn mean(&self) -> Duration {
        match self {
            LatencyModel::Fixed(latency) => *latency,
            LatencyModel::Uniform { low, high } => (*low + *high) / 2,
            // exp(mu + sigma^2 / 2) for a lognormal.
            LatencyModel::LogNormal(lognormal) => {
                let mu = nanos_f64(lognormal.median).ln();
                let sigma = (nanos_f64(lognormal.p99).ln() - mu) / P99_Z;
                Duration::from_nanos((mu + sigma * sigma / 2.0).exp().round() as u64)
            }
        }
    }

    /// One fetch time drawn with `rng`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match self {
            LatencyModel::Fixed(latency) => *latency,
            LatencyModel::Uniform { low, high } => {
                Duration::from_nanos(rng.random_range(nanos(*low)..=nanos(*high)))
            }
            // The float-to-int cast saturates, and a lognormal sample is never negative.
            LatencyModel::LogNormal(lognormal) => {
                Duration::from_nanos(lognormal.nanos.sample(rng).round() as u64)
            }
        }
    }
}

impl FromStr for LatencyModel {
    type Err = Error;

    /// `fixed:D`, `uniform:LOW..HIGH`, `lognormal:MEDIAN,P99`, or a bare duration (fixed).
    fn from_str(value: &str) -> Result<Self, Error> {
        let Some((model, parameters)) = value.split_once(':') else {
            return Ok(LatencyModel::Fixed(units::parse_duration(value)?));
        };
        let pair = |separator: &str, model: &'static str, expected: &'static str| {
            parameters
                .split_once(separator)
                .ok_or_else(|| Error::Shape {
                    model,
                    value: parameters.to_owned(),
                    expected,
                })
                .and_then(|(first, second)| {
                    Ok((
                        units::parse_duration(first)?,
                        units::parse_duration(second)?,
                    ))
                })
        };
        match model {
            FIXED => Ok(LatencyModel::Fixed(units::parse_duration(parameters)?)),
            UNIFORM => {
                let (low, high) = pair(UNIFORM_SEPARATOR, UNIFORM, "LOW..HIGH")?;
                if low > high {
                    return Err(Error::ReversedBounds { low, high });
                }
                Ok(LatencyModel::Uniform { low, high })
            }
            LOGNORMAL => {
                let separator = LOGNORMAL_SEPARATOR.to_string();
                let (median, p99) = pair(&separator, LOGNORMAL, "MEDIAN,P99")?;
                Ok(LatencyModel::LogNormal(LogNormalLatency::new(median, p99)?))
            }
            _ => Err(Error::UnknownModel(model.to_owned())),
        }
    }
}

impl fmt::Display for LatencyModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyModel::Fixed(latency) => write!(f, "{FIXED}:{}", format_fine_duration(*latency)),
            LatencyModel::Uniform { low, high } => write!(
                f,
                "{UNIFORM}:{}{UNIFORM_SEPARATOR}{}",
                format_fine_duration(*low),
                format_fine_duration(*high)
            ),
            LatencyModel::LogNormal(lognormal) => write!(
                f,
                "{LOGNORMAL}:{}{LOGNORMAL_SEPARATOR}{}",
                format_fine_duration(lognormal.median),
                format_fine_duration(lognormal.p99)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn parse(value: &str) -> Result<LatencyModel, Error> {
        value.parse()
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn means_match_the_models_and_their_samples() {
        assert_eq!(parse("fixed:10ms").unwrap().mean(), ms(10));
        assert_eq!(parse("uniform:1ms..5ms").unwrap().mean(), ms(3));
        let lognormal = parse("lognormal:1ms,10ms").unwrap();
        let mean = lognormal.mean();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let n = 200_000u32;
        let total: Duration = (0..n).map(|_| lognormal.sample(&mut rng)).sum();
        let sampled = total / n;
        let error = (sampled.as_secs_f64() / mean.as_secs_f64() - 1.0).abs();
        assert!(error < 0.05, "mean {mean:?}, sampled {sampled:?}");
    }

    fn rng() -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::seed_from_u64(42)
    }

    /// The `q` quantile (0..1) of `samples`, which it sorts.
    fn quantile(samples: &mut [Duration], q: f64) -> Duration {
        samples.sort_unstable();
        samples[((samples.len() - 1) as f64 * q).round() as usize]
    }

    fn assert_within(actual: Duration, expected: Duration, tolerance: f64) {
        let (actual, expected) = (nanos_f64(actual), nanos_f64(expected));
        assert!(
            (actual - expected).abs() <= expected * tolerance,
            "{actual} ns is not within {}% of {expected} ns",
            tolerance * 100.0
        );
    }

    #[test]
    fn valid_models() {
        assert_eq!(parse("fixed:10ms"), Ok(LatencyModel::Fixed(ms(10))));
        assert_eq!(
            parse("30us"),
            Ok(LatencyModel::Fixed(Duration::from_micros(30)))
        );
        assert_eq!(
            parse("uniform:1ms..5ms"),
            Ok(LatencyModel::Uniform {
                low: ms(1),
                high: ms(5)
            })
        );
        assert_eq!(
            parse("uniform:2ms..2ms"),
            Ok(LatencyModel::Uniform {
                low: ms(2),
                high: ms(2)
            })
        );
        let LatencyModel::LogNormal(lognormal) = parse("lognormal:1ms,10ms").expect("valid") else {
            panic!("not lognormal");
        };
        assert_eq!((lognormal.median, lognormal.p99), (ms(1), ms(10)));
    }

    #[test]
    fn zero_is_lazy_memory_without_added_delay() {
        assert_eq!(parse("0ns"), Ok(LatencyModel::Fixed(Duration::ZERO)));
        assert_eq!(parse("fixed:0ms"), Ok(LatencyModel::Fixed(Duration::ZERO)));
        assert!(parse("uniform:0us..1us").is_ok());
        assert_eq!(parse("lognormal:0ms,1ms"), Err(Error::ZeroMedian));
    }

    #[test]
    fn models_print_as_typed() {
        for text in [
            "fixed:10ms",
            "uniform:1ms..5ms",
            "lognormal:1ms,10ms",
            "fixed:2s",
        ] {
            assert_eq!(parse(text).expect("valid").to_string(), text);
        }
        assert_eq!(parse("30us").expect("valid").to_string(), "fixed:30us");
    }

    #[test]
    fn malformed_models() {
        assert_eq!(parse("gamma:1ms"), Err(Error::UnknownModel("gamma".into())));
        assert_eq!(parse(":1ms"), Err(Error::UnknownModel(String::new())));
        assert!(matches!(
            parse("uniform:1ms,5ms"),
            Err(Error::Shape {
                model: "uniform",
                ..
            })
        ));
        assert!(matches!(
            parse("lognormal:1ms..5ms"),
            Err(Error::Shape {
                model: "lognormal",
                ..
            })
        ));
        assert!(matches!(
            parse("fixed:10"),
            Err(Error::Duration(units::Error::UnknownUnit { .. }))
        ));
        assert!(matches!(
            parse("fast"),
            Err(Error::Duration(units::Error::NoNumber(_)))
        ));
        assert!(matches!(
            parse("uniform:1ms..x"),
            Err(Error::Duration(units::Error::NoNumber(_)))
        ));
        assert!(matches!(
            parse("fixed:"),
            Err(Error::Duration(units::Error::NoNumber(_)))
        ));
    }

    #[test]
    fn reversed_bounds_are_refused() {
        assert_eq!(
            parse("uniform:5ms..1ms"),
            Err(Error::ReversedBounds {
                low: ms(5),
                high: ms(1)
            })
        );
        assert_eq!(
            parse("lognormal:10ms,1ms"),
            Err(Error::P99BelowMedian {
                median: ms(10),
                p99: ms(1)
            })
        );
    }

    #[test]
    fn overflow_is_refused() {
        assert!(matches!(
            parse("fixed:99999999999999999999ms"),
            Err(Error::Duration(units::Error::Overflow(_)))
        ));
        assert!(matches!(
            parse("uniform:1ms..18446744073709552s"),
            Err(Error::Duration(units::Error::Overflow(_)))
        ));
    }

    #[test]
    fn fixed_samples_are_exact() {
        let model = parse("fixed:10ms").expect("valid");
        let mut rng = rng();
        assert!((0..100).all(|_| model.sample(&mut rng) == ms(10)));
    }

    #[test]
    fn uniform_samples_stay_in_bounds_with_the_right_mean() {
        let model = parse("uniform:1ms..5ms").expect("valid");
        let mut rng = rng();
        let samples: Vec<Duration> = (0..10_000).map(|_| model.sample(&mut rng)).collect();
        assert!(samples.iter().all(|s| (ms(1)..=ms(5)).contains(s)));
        let mean = samples.iter().sum::<Duration>() / 10_000;
        assert_within(mean, ms(3), 0.05);
    }

    #[test]
    fn lognormal_samples_have_the_median_and_p99() {
        let model = parse("lognormal:1ms,10ms").expect("valid");
        let mut rng = rng();
        let mut samples: Vec<Duration> = (0..50_000).map(|_| model.sample(&mut rng)).collect();
        assert_within(quantile(&mut samples, 0.5), ms(1), 0.10);
        assert_within(quantile(&mut samples, 0.99), ms(10), 0.10);
    }

    #[test]
    fn lognormal_with_equal_median_and_p99_is_fixed() {
        let model = parse("lognormal:2ms,2ms").expect("valid");
        let mut rng = rng();
        assert!((0..100).all(|_| model.sample(&mut rng) == ms(2)));
    }

    #[test]
    fn same_seed_same_sequence() {
        for text in ["uniform:1ms..5ms", "lognormal:1ms,10ms"] {
            let model = parse(text).expect("valid");
            let draw = |seed| {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
                (0..64).map(|_| model.sample(&mut rng)).collect::<Vec<_>>()
            };
            assert_eq!(draw(7), draw(7), "{text}");
            assert_ne!(draw(7), draw(8), "{text}");
        }
    }
}
