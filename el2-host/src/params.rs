//! The host's command line, read through semihosting `SYS_GET_CMDLINE` (QEMU builds it from
//! the `-kernel` path and `-append`): `key=value` words before ` -- ` (the guest's words
//! follow it); words without `=` (the image path QEMU puts first) are ignored.
//!
//! | key | values | default |
//! |---|---|---|
//! | `mode` | `off` (the vCPU stalls for each fetch), `apf` (async PF when the guest enabled it) | `off` |
//! | `latency` | a [`LatencyModel`] name, as the runner's `--latency` | `0ns` |
//! | `seed` | u64: lazy page contents and latency draws | `1` |
//! | `lazy` | `workload` (from [`WORKLOAD_BASE`] to the end of guest RAM) or `none` | `workload` |
//! | `inject` | `NAME[,NAME...]`: faults to inject ([`Inject`] names, as the runner's `--inject`) | none |

use crate::inject::{Inject, Injections};
use crate::memory_map::{GUEST_RAM, WORKLOAD_BASE};
use core::fmt;
use core::ops::Range;
use latency_model::{self as latency, Draws, LatencyModel};

/// How lazy-page faults are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Synchronously: the vCPU waits out the fetch latency.
    Off,
    /// With async page faults where the guest enabled them, synchronously otherwise.
    Apf,
}

/// The host's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub mode: Mode,
    pub latency: LatencyModel,
    pub seed: u64,
    /// Guest-physical range served lazily; empty for `lazy=none`.
    pub lazy: Range<u64>,
    /// Faults to inject.
    pub inject: Injections,
}

/// Why the command line was refused; the word is kept for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<'a> {
    UnknownKey(&'a str),
    BadValue(&'a str),
    Latency(&'a str, latency::Error),
    /// `inject=` named no such fault (the name is kept).
    UnknownInjection(&'a str),
}

impl fmt::Display for Error<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownKey(word) => write!(f, "unknown key in {word:?}"),
            Error::BadValue(word) => write!(f, "bad value in {word:?}"),
            Error::Latency(word, error) => write!(f, "{word:?}: {error}"),
            Error::UnknownInjection(name) => {
                write!(f, "inject= names no fault {name:?}; known:")?;
                Inject::ALL
                    .iter()
                    .try_for_each(|inject| write!(f, " {}", inject.name()))
            }
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            latency: LatencyModel::Fixed(0),
            seed: 1,
            lazy: WORKLOAD_BASE..GUEST_RAM.end,
            inject: Injections::default(),
        }
    }
}

impl Params {
    /// The run's fetch latencies, drawn from `seed` as the x86 runner draws them.
    pub fn latencies(&self) -> Draws {
        Draws::new(self.latency, self.seed)
    }

    pub fn parse(line: &str) -> Result<Self, Error<'_>> {
        let mut params = Self::default();
        for word in line.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "mode" => {
                    params.mode = match value {
                        "off" => Mode::Off,
                        "apf" => Mode::Apf,
                        _ => return Err(Error::BadValue(word)),
                    }
                }
                "latency" => {
                    params.latency =
                        LatencyModel::parse(value).map_err(|e| Error::Latency(word, e))?
                }
                "seed" => params.seed = value.parse().map_err(|_| Error::BadValue(word))?,
                "lazy" => {
                    params.lazy = match value {
                        "workload" => WORKLOAD_BASE..GUEST_RAM.end,
                        "none" => WORKLOAD_BASE..WORKLOAD_BASE,
                        _ => return Err(Error::BadValue(word)),
                    }
                }
                "inject" => {
                    params.inject = Injections::parse(value).map_err(Error::UnknownInjection)?
                }
                _ => return Err(Error::UnknownKey(word)),
            }
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_the_seeds_draws_as_under_the_runner() {
        // latency-model pins these for seed 1; the runner's fault reader draws them too.
        let params = Params::parse("latency=lognormal:1ms,10ms seed=1").unwrap();
        let mut latencies = params.latencies();
        let drawn: [u64; 4] = core::array::from_fn(|_| latencies.next_ns());
        assert_eq!(drawn, [967637, 989250, 586830, 56002]);
    }

    #[test]
    fn defaults_and_the_image_path_word() {
        assert_eq!(Params::parse("target/el2-host"), Ok(Params::default()));
        assert_eq!(Params::parse(""), Ok(Params::default()));
    }

    #[test]
    fn every_key() {
        let p = Params::parse(
            "el2 mode=apf latency=uniform:1us..5us seed=9 lazy=none inject=spikes,wake-all",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Apf);
        assert_eq!(
            p.latency,
            LatencyModel::Uniform {
                low: 1000,
                high: 5000
            }
        );
        assert_eq!(p.seed, 9);
        assert!(p.lazy.is_empty());
        assert_eq!(p.inject.to_string(), "wake-all,spikes");
    }

    #[test]
    fn errors_name_the_word() {
        assert_eq!(Params::parse("mode=on"), Err(Error::BadValue("mode=on")));
        assert_eq!(Params::parse("speed=1"), Err(Error::UnknownKey("speed=1")));
        assert_eq!(Params::parse("seed=x"), Err(Error::BadValue("seed=x")));
        assert_eq!(
            Params::parse("latency=9"),
            Err(Error::Latency("latency=9", latency::Error::Duration))
        );
        assert_eq!(
            Params::parse("inject=reorder,sideways"),
            Err(Error::UnknownInjection("sideways"))
        );
        assert_eq!(
            Error::UnknownInjection("sideways").to_string(),
            "inject= names no fault \"sideways\"; known: duplicate-ready unknown-token \
             reorder drop-ready wake-all disable-reenable spikes overflow"
        );
    }
}
