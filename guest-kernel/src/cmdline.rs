//! The guest command line: `key=value` words separated by spaces.
//!
//! Every word must be understood: an unknown key, a bad value or a repeated key is an error
//! that the kernel prints before exiting with [`ExitStatus::BadCommandLine`], never a guess.
//!
//! [`ExitStatus::BadCommandLine`]: crate::exit_status::ExitStatus::BadCommandLine

use core::fmt;

/// What the guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Two CPU tasks that prove timer preemption, a yielding task, and a syscall benchmark.
    Demo,
    /// A task divides by zero (#DE); it is killed and reported, the guest exits non-zero.
    DivideByZero,
    /// A task reads an unmapped address (#PF); it is killed and reported.
    Unmapped,
    /// A task writes kernel memory (supervisor-only page, #PF protection violation).
    KernelWrite,
}

impl Scenario {
    const NAMES: &'static [(&'static str, Scenario)] = &[
        ("demo", Scenario::Demo),
        ("div0", Scenario::DivideByZero),
        ("unmapped", Scenario::Unmapped),
        ("kernel-write", Scenario::KernelWrite),
    ];

    /// The name used on the command line and in the result line.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    fn parse(value: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == value)
            .map(|(_, s)| *s)
    }
}

/// Timer interrupt rates the kernel accepts, in Hz. The ceiling is low because our KVM
/// emulates every ring-0 instruction: one timer interrupt costs on the order of 100 us,
/// so much faster ticks would leave tasks no time to run.
pub const HZ_RANGE: core::ops::RangeInclusive<u32> = 10..=1_000;

/// Parsed command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub scenario: Scenario,
    /// Timer interrupt (preemption) rate.
    pub hz: u32,
    /// Each demo CPU task counts the primes below this (a size with a tabulated answer).
    pub primes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scenario: Scenario::Demo,
            hz: 100,
            primes: 1_000_000,
        }
    }
}

/// Why a command line was refused. Displaying it does not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<'a> {
    /// A word without `=`.
    NotKeyValue(&'a str),
    UnknownKey(&'a str),
    DuplicateKey(&'a str),
    UnknownScenario(&'a str),
    /// `primes=N` with an N whose answer is not tabulated (so it could not be verified).
    UntabulatedPrimes(&'a str),
    /// A number that does not parse or is outside its range.
    BadNumber {
        key: &'a str,
        value: &'a str,
        min: u32,
        max: u32,
    },
}

impl fmt::Display for Error<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotKeyValue(w) => write!(f, "'{w}' is not of the form key=value"),
            Error::UnknownKey(k) => {
                // No allocation: the kernel reports this before its heap exists.
                write!(f, "unknown option '{k}' (known:")?;
                for key in KEYS {
                    write!(f, " {key}")?;
                }
                write!(f, ")")
            }
            Error::DuplicateKey(k) => write!(f, "option '{k}' given twice"),
            Error::UnknownScenario(s) => {
                write!(f, "unknown scenario '{s}' (known:")?;
                for (name, _) in Scenario::NAMES {
                    write!(f, " {name}")?;
                }
                write!(f, ")")
            }
            Error::UntabulatedPrimes(v) => {
                write!(f, "primes={v}: expected one of")?;
                for (n, _) in workloads::cpu::PRIME_COUNTS {
                    write!(f, " {n}")?;
                }
                Ok(())
            }
            Error::BadNumber {
                key,
                value,
                min,
                max,
            } => write!(
                f,
                "{key}={value}: expected a whole number from {min} to {max}"
            ),
        }
    }
}

const KEYS: &[&str] = &["scenario", "hz", "primes"];

/// Parses `line`; an empty line gives the defaults.
pub fn parse(line: &str) -> Result<Config, Error<'_>> {
    let mut config = Config::default();
    let mut seen = [false; KEYS.len()];
    for word in line.split_ascii_whitespace() {
        let (key, value) = word.split_once('=').ok_or(Error::NotKeyValue(word))?;
        let index = KEYS
            .iter()
            .position(|k| *k == key)
            .ok_or(Error::UnknownKey(key))?;
        if core::mem::replace(&mut seen[index], true) {
            return Err(Error::DuplicateKey(key));
        }
        match key {
            "scenario" => {
                config.scenario = Scenario::parse(value).ok_or(Error::UnknownScenario(value))?
            }
            "hz" => config.hz = number(key, value, HZ_RANGE)?,
            "primes" => {
                config.primes = value
                    .parse()
                    .ok()
                    .filter(|&n| workloads::cpu::expected_prime_count(n).is_some())
                    .ok_or(Error::UntabulatedPrimes(value))?
            }
            _ => unreachable!("every entry of KEYS is handled"),
        }
    }
    Ok(config)
}

fn number<'a>(
    key: &'a str,
    value: &'a str,
    range: core::ops::RangeInclusive<u32>,
) -> Result<u32, Error<'a>> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or(Error::BadNumber {
            key,
            value,
            min: *range.start(),
            max: *range.end(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn empty_line_gives_defaults() {
        assert_eq!(parse(""), Ok(Config::default()));
        assert_eq!(parse("   "), Ok(Config::default()));
    }

    #[test]
    fn parses_every_key() {
        let c = parse(" scenario=div0  hz=250 primes=1000 ").unwrap();
        assert_eq!(
            c,
            Config {
                scenario: Scenario::DivideByZero,
                hz: 250,
                primes: 1000
            }
        );
        for (name, scenario) in Scenario::NAMES {
            let line = alloc::format!("scenario={name}");
            assert_eq!(parse(&line).unwrap().scenario, *scenario);
            assert_eq!(scenario.name(), *name);
        }
    }

    #[test]
    fn refuses_malformed_words() {
        assert_eq!(parse("verbose"), Err(Error::NotKeyValue("verbose")));
        assert_eq!(parse("colour=red"), Err(Error::UnknownKey("colour")));
        assert_eq!(parse("hz=10 hz=20"), Err(Error::DuplicateKey("hz")));
        assert_eq!(parse("scenario=nope"), Err(Error::UnknownScenario("nope")));
        assert_eq!(parse("=5"), Err(Error::UnknownKey("")));
    }

    #[test]
    fn refuses_numbers_out_of_range_or_malformed() {
        for bad in [
            "hz=9",
            "hz=1001",
            "hz=-1",
            "hz=1e3",
            "hz=",
            "hz=99999999999",
        ] {
            assert!(
                matches!(parse(bad), Err(Error::BadNumber { .. })),
                "{bad} accepted"
            );
        }
        assert_eq!(parse("hz=10").unwrap().hz, 10);
        assert_eq!(parse("hz=1000").unwrap().hz, 1_000);
        for bad in ["primes=12345", "primes=", "primes=x"] {
            assert!(
                matches!(parse(bad), Err(Error::UntabulatedPrimes(_))),
                "{bad} accepted"
            );
        }
        assert_eq!(parse("primes=10000").unwrap().primes, 10_000);
    }

    #[test]
    fn errors_name_the_offending_word_and_the_alternatives() {
        let msg = parse("colour=red").unwrap_err().to_string();
        assert!(msg.contains("colour") && msg.contains("scenario"), "{msg}");
        let msg = parse("scenario=x").unwrap_err().to_string();
        assert!(msg.contains("demo") && msg.contains("div0"), "{msg}");
        let msg = parse("hz=5").unwrap_err().to_string();
        assert!(msg.contains("10 to 1000"), "{msg}");
    }
}
