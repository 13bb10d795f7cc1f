//! Sizes and durations as people type them on the command line (`512M`, `60s`).

use std::time::Duration;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Smallest guest RAM: below this the guest kernel's heap and task stacks do not fit.
pub const MEM_MIN: u64 = 32 * MIB;
/// Largest guest RAM: RAM is one range starting at 0, so it has to end below the 32-bit PCI
/// hole (from 3 GiB on QEMU's `pc` machine).
pub const MEM_MAX: u64 = 3 * GIB;
/// KVM maps guest memory in whole host pages.
pub const MEM_GRANULE: u64 = 4 * KIB;

const SECONDS_PER_MINUTE: u64 = 60;

/// Why a size or a duration was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0:?} does not start with a number")]
    NoNumber(String),
    #[error("{value:?} has an unknown unit {unit:?} (expected {expected})")]
    UnknownUnit {
        value: String,
        unit: String,
        expected: &'static str,
    },
    #[error("{0:?} is too large")]
    Overflow(String),
    #[error(
        "{size} bytes is outside the supported guest RAM sizes {}M..={}M",
        MEM_MIN / MIB,
        MEM_MAX / MIB
    )]
    MemOutOfRange { size: u64 },
    #[error("{size} bytes is not a multiple of {}K", MEM_GRANULE / KIB)]
    MemNotPageMultiple { size: u64 },
    #[error("the timeout must be longer than zero")]
    ZeroTimeout,
    #[error("a bandwidth must be at least 1 byte per second (leave it out for no limit)")]
    ZeroBandwidth,
}

/// Splits `value` into its leading decimal number and the unit that follows.
fn split_number(value: &str) -> Result<(u64, &str), Error> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(Error::NoNumber(value.to_owned()));
    }
    let (number, unit) = value.split_at(digits);
    let number = number
        .parse()
        .map_err(|_| Error::Overflow(value.to_owned()))?;
    Ok((number, unit))
}

/// Parses plain bytes or a number with a `K`, `M` or `G` suffix (binary units, either case).
fn parse_bytes(value: &str) -> Result<u64, Error> {
    let (number, unit) = split_number(value)?;
    let scale = match unit {
        "" => 1,
        "K" | "k" => KIB,
        "M" | "m" => MIB,
        "G" | "g" => GIB,
        _ => {
            return Err(Error::UnknownUnit {
                value: value.to_owned(),
                unit: unit.to_owned(),
                expected: "K, M or G",
            });
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| Error::Overflow(value.to_owned()))
}

/// Parses a guest RAM size: plain bytes or a number with a `K`, `M` or `G` suffix (binary
/// units, either case).
pub fn parse_mem_size(value: &str) -> Result<u64, Error> {
    let size = parse_bytes(value)?;
    if !(MEM_MIN..=MEM_MAX).contains(&size) {
        return Err(Error::MemOutOfRange { size });
    }
    if !size.is_multiple_of(MEM_GRANULE) {
        return Err(Error::MemNotPageMultiple { size });
    }
    Ok(size)
}

/// Parses a bandwidth in bytes per second, written as a size (`8M` is 8 MiB/s); at least 1.
pub fn parse_bandwidth(value: &str) -> Result<u64, Error> {
    match parse_bytes(value)? {
        0 => Err(Error::ZeroBandwidth),
        rate => Ok(rate),
    }
}

/// A unit a duration may be typed in.
#[derive(Clone, Copy)]
enum TimeUnit {
    Nanos,
    Micros,
    Millis,
    Secs,
    Mins,
}

impl TimeUnit {
    /// `number` of this unit; `None` if it does not fit in a `Duration`.
    fn times(self, number: u64) -> Option<Duration> {
        Some(match self {
            TimeUnit::Nanos => Duration::from_nanos(number),
            TimeUnit::Micros => Duration::from_micros(number),
            TimeUnit::Millis => Duration::from_millis(number),
            TimeUnit::Secs => Duration::from_secs(number),
            TimeUnit::Mins => Duration::from_secs(number.checked_mul(SECONDS_PER_MINUTE)?),
        })
    }
}

/// Timeouts: a bare number is seconds.
const TIMEOUT_UNITS: &[(&str, TimeUnit)] = &[
    ("ms", TimeUnit::Millis),
    ("", TimeUnit::Secs),
    ("s", TimeUnit::Secs),
    ("m", TimeUnit::Mins),
];
/// Short durations such as page fetch latencies: the unit is required.
const FINE_UNITS: &[(&str, TimeUnit)] = &[
    ("ns", TimeUnit::Nanos),
    ("us", TimeUnit::Micros),
    ("ms", TimeUnit::Millis),
    ("s", TimeUnit::Secs),
];

/// Parses a number followed by one of `units`, which `expected` names for messages.
fn parse_duration_in(
    value: &str,
    units: &[(&str, TimeUnit)],
    expected: &'static str,
) -> Result<Duration, Error> {
    let (number, unit) = split_number(value)?;
    let Some(&(_, unit)) = units.iter().find(|(name, _)| *name == unit) else {
        return Err(Error::UnknownUnit {
            value: value.to_owned(),
            unit: unit.to_owned(),
            expected,
        });
    };
    unit.times(number)
        .ok_or_else(|| Error::Overflow(value.to_owned()))
}

/// Parses a timeout: a number of seconds, or a number with an `ms`, `s` or `m` suffix.
pub fn parse_timeout(value: &str) -> Result<Duration, Error> {
    let timeout = parse_duration_in(value, TIMEOUT_UNITS, "ms, s or m")?;
    if timeout.is_zero() {
        return Err(Error::ZeroTimeout);
    }
    Ok(timeout)
}

/// Parses a duration with a required `ns`, `us`, `ms` or `s` suffix; zero is allowed. The
/// result fits in 64-bit nanoseconds (about 584 years), so callers can compute in them.
pub fn parse_duration(value: &str) -> Result<Duration, Error> {
    let duration = parse_duration_in(value, FINE_UNITS, "ns, us, ms or s")?;
    if u64::try_from(duration.as_nanos()).is_err() {
        return Err(Error::Overflow(value.to_owned()));
    }
    Ok(duration)
}

/// Formats a duration the way `parse_timeout` reads it back, for messages.
pub fn format_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration
        .as_nanos()
        .is_multiple_of(Duration::from_millis(1).as_nanos())
    {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{duration:?}")
    }
}

/// Formats a duration the way `parse_duration` reads it back: in the largest of s, ms, us
/// and ns that shows it exactly.
pub fn format_fine_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    let (scale, unit) = [
        (Duration::from_secs(1), "s"),
        (Duration::from_millis(1), "ms"),
        (Duration::from_micros(1), "us"),
    ]
    .into_iter()
    .map(|(unit, name)| (unit.as_nanos(), name))
    .find(|&(unit, _)| nanos.is_multiple_of(unit))
    .unwrap_or((1, "ns"));
    format!("{}{unit}", nanos / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidths_are_sizes_per_second() {
        assert_eq!(parse_bandwidth("8M"), Ok(8 << 20));
        assert_eq!(parse_bandwidth("1500"), Ok(1500));
        assert_eq!(parse_bandwidth("1g"), Ok(1 << 30));
        assert_eq!(parse_bandwidth("0"), Err(Error::ZeroBandwidth));
        assert!(matches!(
            parse_bandwidth("8MB"),
            Err(Error::UnknownUnit { .. })
        ));
        assert!(matches!(parse_bandwidth("fast"), Err(Error::NoNumber(_))));
    }

    #[test]
    fn mem_sizes_with_units() {
        assert_eq!(parse_mem_size("512M"), Ok(512 * MIB));
        assert_eq!(parse_mem_size("1G"), Ok(GIB));
        assert_eq!(parse_mem_size("3g"), Ok(3 * GIB));
        assert_eq!(parse_mem_size("64m"), Ok(64 * MIB));
        assert_eq!(parse_mem_size("32768K"), Ok(32 * MIB));
        assert_eq!(parse_mem_size("33554432"), Ok(32 * MIB));
    }

    #[test]
    fn mem_size_bounds_are_inclusive() {
        assert_eq!(parse_mem_size("32M"), Ok(MEM_MIN));
        assert_eq!(parse_mem_size("3072M"), Ok(MEM_MAX));
        assert_eq!(
            parse_mem_size("32764K"),
            Err(Error::MemOutOfRange {
                size: MEM_MIN - 4 * KIB
            })
        );
        assert_eq!(
            parse_mem_size("3145732K"),
            Err(Error::MemOutOfRange {
                size: MEM_MAX + 4 * KIB
            })
        );
        assert_eq!(
            parse_mem_size("4G"),
            Err(Error::MemOutOfRange { size: 4 * GIB })
        );
    }

    #[test]
    fn mem_size_must_be_whole_pages() {
        let size = 64 * MIB + 1;
        assert_eq!(
            parse_mem_size(&size.to_string()),
            Err(Error::MemNotPageMultiple { size })
        );
    }

    #[test]
    fn malformed_mem_sizes() {
        assert_eq!(parse_mem_size(""), Err(Error::NoNumber(String::new())));
        assert_eq!(parse_mem_size("M"), Err(Error::NoNumber("M".into())));
        assert_eq!(parse_mem_size("-1G"), Err(Error::NoNumber("-1G".into())));
        assert!(matches!(
            parse_mem_size("512MB"),
            Err(Error::UnknownUnit { unit, .. }) if unit == "MB"
        ));
        assert!(matches!(
            parse_mem_size("1.5G"),
            Err(Error::UnknownUnit { unit, .. }) if unit == ".5G"
        ));
    }

    #[test]
    fn mem_size_overflow() {
        assert_eq!(
            parse_mem_size("18446744073709551616"),
            Err(Error::Overflow("18446744073709551616".into()))
        );
        assert_eq!(
            parse_mem_size("17179869184G"),
            Err(Error::Overflow("17179869184G".into()))
        );
    }

    #[test]
    fn timeouts_with_units() {
        assert_eq!(parse_timeout("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_timeout("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn malformed_timeouts() {
        assert_eq!(parse_timeout("0s"), Err(Error::ZeroTimeout));
        assert_eq!(parse_timeout("0"), Err(Error::ZeroTimeout));
        assert_eq!(parse_timeout("s"), Err(Error::NoNumber("s".into())));
        assert!(matches!(
            parse_timeout("1h"),
            Err(Error::UnknownUnit { unit, .. }) if unit == "h"
        ));
        assert!(matches!(
            parse_timeout("10 s"),
            Err(Error::UnknownUnit { unit, .. }) if unit == " s"
        ));
    }

    #[test]
    fn timeout_overflow() {
        assert_eq!(
            parse_timeout("99999999999999999999s"),
            Err(Error::Overflow("99999999999999999999s".into()))
        );
        assert_eq!(
            parse_timeout("18446744073709551615m"),
            Err(Error::Overflow("18446744073709551615m".into()))
        );
    }

    #[test]
    fn fine_durations_with_units() {
        assert_eq!(parse_duration("30us"), Ok(Duration::from_micros(30)));
        assert_eq!(parse_duration("250ns"), Ok(Duration::from_nanos(250)));
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0us"), Ok(Duration::ZERO));
    }

    #[test]
    fn fine_durations_need_a_known_unit() {
        for (value, unit) in [("30", ""), ("1m", "m"), ("5 us", " us"), ("1µs", "µs")] {
            assert!(
                matches!(
                    parse_duration(value),
                    Err(Error::UnknownUnit { unit: u, expected: "ns, us, ms or s", .. }) if u == unit
                ),
                "{value}"
            );
        }
        assert_eq!(parse_duration("us"), Err(Error::NoNumber("us".into())));
    }

    #[test]
    fn fine_durations_must_fit_in_u64_nanoseconds() {
        assert_eq!(
            parse_duration("18446744073709551615ns"),
            Ok(Duration::from_nanos(u64::MAX))
        );
        assert_eq!(
            parse_duration("18446744073709552s"),
            Err(Error::Overflow("18446744073709552s".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999us"),
            Err(Error::Overflow("99999999999999999999us".into()))
        );
    }

    #[test]
    fn fine_durations_format_as_they_parse() {
        for text in ["2s", "10ms", "1500us", "30us", "250ns", "1001ns", "0s"] {
            let duration = parse_duration(text).expect("valid duration");
            assert_eq!(format_fine_duration(duration), text);
        }
    }

    #[test]
    fn durations_format_as_they_parse() {
        for text in ["60s", "2s", "500ms", "1500ms"] {
            let duration = parse_timeout(text).expect("valid timeout");
            assert_eq!(format_duration(duration), text);
        }
        assert_eq!(format_duration(Duration::from_secs(120)), "120s");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
    }
}
