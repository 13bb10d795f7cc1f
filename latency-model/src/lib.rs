//! How long one lazy page fetch takes: the `--latency` models of both hosts that serve
//! lazy memory, the x86 runner (its fetchers and the post-copy shaper) and the arm64 EL2
//! host (`latency=`), so that a model means the same on both and a seed draws the same
//! latencies on both.
//!
//! `fixed:D`, `uniform:LOW..HIGH`, `lognormal:MEDIAN,P99`, or a bare duration (fixed).
//! Durations are integers with a `ns`, `us`, `ms` or `s` suffix. Times are nanoseconds;
//! each host converts them to its own clock. `no_std`, with no float support beyond `libm`,
//! because the EL2 host has no `std`.
#![no_std]

pub mod rng;

pub use rng::Rng;

use core::fmt;

/// The standard normal distribution's 99th percentile: a lognormal's p99 is
/// `median * exp(sigma * P99_Z)`.
const P99_Z: f64 = 2.3263;

const FIXED: &str = "fixed";
const UNIFORM: &str = "uniform";
const LOGNORMAL: &str = "lognormal";
const UNIFORM_SEPARATOR: &str = "..";
const LOGNORMAL_SEPARATOR: &str = ",";

/// Duration suffixes and their length in nanoseconds.
const UNITS: [(&str, u64); 4] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
];

/// Why a latency model did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not `fixed`, `uniform` or `lognormal`.
    UnknownModel,
    /// A model's parameters lack their separator.
    Shape,
    /// A duration has no digits, an unknown suffix, or overflows u64 nanoseconds.
    Duration,
    /// `uniform`'s lower bound is above its upper bound.
    ReversedBounds,
    /// `lognormal` with a zero median.
    ZeroMedian,
    /// `lognormal`'s p99 is below its median.
    P99BelowMedian,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::UnknownModel => {
                "unknown model (expected fixed:D, uniform:LOW..HIGH or lognormal:MEDIAN,P99)"
            }
            Error::Shape => "uniform takes LOW..HIGH, lognormal MEDIAN,P99",
            Error::Duration => {
                "a duration is a whole number with ns, us, ms or s that fits in 64-bit nanoseconds"
            }
            Error::ReversedBounds => "the lower bound is above the upper",
            Error::ZeroMedian => "the median must be longer than zero",
            Error::P99BelowMedian => "the p99 is below the median",
        })
    }
}

/// The time one page fetch takes, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatencyModel {
    Fixed(u64),
    Uniform {
        low: u64,
        high: u64,
    },
    /// `mu` and `sigma` of the underlying normal, over nanoseconds.
    LogNormal {
        median: u64,
        p99: u64,
        mu: f64,
        sigma: f64,
    },
}

/// Parses `12us`-style durations into nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, Error> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| Error::Duration)?;
    let (_, scale) = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .ok_or(Error::Duration)?;
    number.checked_mul(*scale).ok_or(Error::Duration)
}

impl LatencyModel {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let Some((model, parameters)) = text.split_once(':') else {
            return Ok(Self::Fixed(parse_duration(text)?));
        };
        let pair = |separator: &str| -> Result<(u64, u64), Error> {
            let (first, second) = parameters.split_once(separator).ok_or(Error::Shape)?;
            Ok((parse_duration(first)?, parse_duration(second)?))
        };
        match model {
            FIXED => Ok(Self::Fixed(parse_duration(parameters)?)),
            UNIFORM => {
                let (low, high) = pair(UNIFORM_SEPARATOR)?;
                if low > high {
                    return Err(Error::ReversedBounds);
                }
                Ok(Self::Uniform { low, high })
            }
            LOGNORMAL => {
                let (median, p99) = pair(LOGNORMAL_SEPARATOR)?;
                if median == 0 {
                    return Err(Error::ZeroMedian);
                }
                if p99 < median {
                    return Err(Error::P99BelowMedian);
                }
                let mu = libm::log(median as f64);
                let sigma = (libm::log(p99 as f64) - mu) / P99_Z;
                Ok(Self::LogNormal {
                    median,
                    p99,
                    mu,
                    sigma,
                })
            }
            _ => Err(Error::UnknownModel),
        }
    }

    /// The expected fetch time in nanoseconds (the runner sizes its workloads with it): for
    /// a lognormal `exp(mu + sigma^2 / 2)`.
    pub fn mean(&self) -> u64 {
        match *self {
            Self::Fixed(nanos) => nanos,
            Self::Uniform { low, high } => low.midpoint(high),
            Self::LogNormal { mu, sigma, .. } => {
                libm::round(libm::exp(mu + sigma * sigma / 2.0)) as u64
            }
        }
    }

    /// One fetch time in nanoseconds.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        match *self {
            Self::Fixed(nanos) => nanos,
            Self::Uniform { low, high } => rng.range_inclusive(low, high),
            Self::LogNormal { mu, sigma, .. } => {
                // The float-to-int cast saturates; a lognormal sample is never negative.
                libm::round(libm::exp(mu + sigma * standard_normal(rng))) as u64
            }
        }
    }
}

/// A run's fetch latencies: one draw per fetch, in the order the fetches start, from a
/// generator seeded with the run's seed. Both hosts draw through this, so a model and seed
/// give the same latencies under either.
#[derive(Clone, Debug)]
pub struct Draws {
    model: LatencyModel,
    rng: Rng,
}

impl Draws {
    pub fn new(model: LatencyModel, seed: u64) -> Self {
        Self {
            model,
            rng: Rng::new(seed),
        }
    }

    /// The next fetch's latency in nanoseconds.
    pub fn next_ns(&mut self) -> u64 {
        self.model.sample(&mut self.rng)
    }
}

/// Writes nanoseconds in the largest unit that shows them exactly, as `parse_duration`
/// reads them back.
fn write_duration(f: &mut fmt::Formatter<'_>, nanos: u64) -> fmt::Result {
    let (name, scale) = UNITS
        .iter()
        .rev()
        .find(|(_, scale)| nanos.is_multiple_of(*scale))
        .copied()
        .unwrap_or(UNITS[0]);
    write!(f, "{}{name}", nanos / scale)
}

impl fmt::Display for LatencyModel {
    /// As typed: `fixed:10us`, `uniform:1ms..5ms`, `lognormal:1ms,10ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Fixed(nanos) => {
                write!(f, "{FIXED}:")?;
                write_duration(f, nanos)
            }
            Self::Uniform { low, high } => {
                write!(f, "{UNIFORM}:")?;
                write_duration(f, low)?;
                f.write_str(UNIFORM_SEPARATOR)?;
                write_duration(f, high)
            }
            Self::LogNormal { median, p99, .. } => {
                write!(f, "{LOGNORMAL}:")?;
                write_duration(f, median)?;
                f.write_str(LOGNORMAL_SEPARATOR)?;
                write_duration(f, p99)
            }
        }
    }
}

/// One standard normal draw (Box-Muller; `1 - unit()` keeps the logarithm finite).
fn standard_normal(rng: &mut Rng) -> f64 {
    let radius = libm::sqrt(-2.0 * libm::log(1.0 - rng.unit()));
    radius * libm::cos(core::f64::consts::TAU * rng.unit())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    const MS: u64 = 1_000_000;

    fn quantile(samples: &mut [u64], q: f64) -> u64 {
        samples.sort_unstable();
        samples[((samples.len() - 1) as f64 * q).round() as usize]
    }

    fn within(actual: u64, expected: u64, tolerance: f64) -> bool {
        (actual as f64 - expected as f64).abs() <= expected as f64 * tolerance
    }

    #[test]
    fn the_runners_names_parse() {
        assert_eq!(
            LatencyModel::parse("fixed:10ms"),
            Ok(LatencyModel::Fixed(10 * MS))
        );
        assert_eq!(LatencyModel::parse("30us"), Ok(LatencyModel::Fixed(30_000)));
        assert_eq!(LatencyModel::parse("0ns"), Ok(LatencyModel::Fixed(0)));
        assert_eq!(
            LatencyModel::parse("uniform:1ms..5ms"),
            Ok(LatencyModel::Uniform {
                low: MS,
                high: 5 * MS
            })
        );
        assert!(matches!(
            LatencyModel::parse("lognormal:1ms,10ms"),
            Ok(LatencyModel::LogNormal {
                median: MS,
                p99: 10_000_000,
                ..
            })
        ));
    }

    #[test]
    fn malformed_models_are_refused() {
        let cases = [
            ("gamma:1ms", Error::UnknownModel),
            ("uniform:1ms,5ms", Error::Shape),
            ("fixed:10", Error::Duration),
            ("fast", Error::Duration),
            ("fixed:99999999999999999999ms", Error::Duration),
            ("uniform:5ms..1ms", Error::ReversedBounds),
            ("lognormal:0ms,1ms", Error::ZeroMedian),
            ("lognormal:10ms,1ms", Error::P99BelowMedian),
        ];
        for (text, error) in cases {
            assert_eq!(LatencyModel::parse(text), Err(error), "{text}");
        }
    }

    #[test]
    fn models_print_as_typed() {
        for text in [
            "fixed:10ms",
            "uniform:1ms..5ms",
            "lognormal:1ms,10ms",
            "fixed:0s",
            "fixed:1500us",
        ] {
            assert_eq!(LatencyModel::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            LatencyModel::parse("30us").unwrap().to_string(),
            "fixed:30us"
        );
    }

    #[test]
    fn uniform_samples_stay_in_bounds() {
        let model = LatencyModel::parse("uniform:1ms..5ms").unwrap();
        let mut rng = Rng::new(42);
        let samples: Vec<u64> = (0..10_000).map(|_| model.sample(&mut rng)).collect();
        assert!(samples.iter().all(|s| (MS..=5 * MS).contains(s)));
        assert!(within(samples.iter().sum::<u64>() / 10_000, 3 * MS, 0.05));
    }

    #[test]
    fn lognormal_samples_have_the_median_and_p99() {
        let model = LatencyModel::parse("lognormal:1ms,10ms").unwrap();
        let mut rng = Rng::new(42);
        let mut samples: Vec<u64> = (0..50_000).map(|_| model.sample(&mut rng)).collect();
        assert!(within(quantile(&mut samples, 0.5), MS, 0.10));
        assert!(within(quantile(&mut samples, 0.99), 10 * MS, 0.10));
    }

    #[test]
    fn means_match_the_models_and_their_samples() {
        assert_eq!(LatencyModel::parse("fixed:10ms").unwrap().mean(), 10 * MS);
        assert_eq!(
            LatencyModel::parse("uniform:1ms..5ms").unwrap().mean(),
            3 * MS
        );
        let lognormal = LatencyModel::parse("lognormal:1ms,10ms").unwrap();
        let mut rng = Rng::new(3);
        let n = 200_000;
        let sum: u64 = (0..n).map(|_| lognormal.sample(&mut rng)).sum();
        assert!(
            within(sum / n, lognormal.mean(), 0.03),
            "{} vs {}",
            sum / n,
            lognormal.mean()
        );
    }

    /// The first draws of seed 1 for each kind of model, pinned: the runner's fault reader
    /// and the EL2 host's parameters each have a test that they draw exactly these.
    const SEED_1_DRAWS: [(&str, [u64; 4]); 3] = [
        ("fixed:1ms", [MS, MS, MS, MS]),
        ("uniform:1ms..5ms", [2513611, 1565510, 3077651, 4687862]),
        ("lognormal:1ms,10ms", [967637, 989250, 586830, 56002]),
    ];

    #[test]
    fn seed_1_draws_these() {
        for (model, draws) in SEED_1_DRAWS {
            let mut stream = Draws::new(LatencyModel::parse(model).unwrap(), 1);
            let drawn: Vec<u64> = (0..4).map(|_| stream.next_ns()).collect();
            assert_eq!(drawn, draws, "{model}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(Error::ReversedBounds.to_string().contains("lower bound"));
        assert!(Error::Duration.to_string().contains("ns, us, ms or s"));
    }

    #[test]
    fn lognormal_with_equal_median_and_p99_is_fixed() {
        let model = LatencyModel::parse("lognormal:2ms,2ms").unwrap();
        let mut rng = Rng::new(1);
        assert!((0..100).all(|_| model.sample(&mut rng) == 2 * MS));
    }
}
