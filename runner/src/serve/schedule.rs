//! The open-loop load: what is sent when. Everything is drawn up front from the seed, so a
//! run repeats exactly and sending costs no time deciding.

use std::time::Duration;

use super::malformed::{self, Kind};

/// Whether a request's key is in memory the host populated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Hot,
    /// A key not asked for before: its first touch faults to the host.
    Cold,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Hot => "hot",
            Class::Cold => "cold",
        }
    }
}

/// One datagram and when to send it, from the start of the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Send {
    pub at: Duration,
    pub what: Datagram,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// `GET key id`; the GETs' ids are 0, 1, 2... in send order.
    Get { id: u64, key: u64, class: Class },
    /// The `n`th malformed datagram.
    Malformed { n: u64 },
}

/// What to draw: `requests` GETs at `rate` per second, `malformed` datagrams spread over the
/// same time.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub requests: u64,
    pub rate: u32,
    pub hot_fraction: f64,
    pub hot_keys: u64,
    pub cold_keys: u64,
    pub malformed: u64,
    pub seed: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the load draws more than the {0} cold keys it was given")]
pub struct OutOfColdKeys(pub u64);

/// Steele et al.'s SplitMix64: small, seedable, and good enough to pick keys.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (the modulo bias is negligible for key counts).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The sends in time order: GET `i` at `i / rate` (exactly; latency counts from there, so a
/// stalled guest cannot hide the queue behind it), malformed datagram `j` midway in its
/// share of the run.
pub fn schedule(load: &Load) -> Result<Vec<Send>, OutOfColdKeys> {
    let mut rng = SplitMix(load.seed);
    let cold = cold_order(&mut rng, load.hot_keys, load.cold_keys);
    let mut cold = cold.into_iter();
    let mut sends = Vec::new();
    for id in 0..load.requests {
        let (key, class) = if rng.unit() < load.hot_fraction {
            (rng.below(load.hot_keys), Class::Hot)
        } else {
            let key = cold.next().ok_or(OutOfColdKeys(load.cold_keys))?;
            (key, Class::Cold)
        };
        sends.push(Send {
            at: at(id, load.rate),
            what: Datagram::Get { id, key, class },
        });
    }
    let span = at(load.requests, load.rate);
    for n in 0..load.malformed {
        let at = span.mul_f64((n as f64 + 0.5) / load.malformed as f64);
        sends.push(Send {
            at,
            what: Datagram::Malformed { n },
        });
    }
    // Stable: a malformed datagram due with a GET goes after it.
    sends.sort_by_key(|send| send.at);
    Ok(sends)
}

/// When GET `id` is due.
fn at(id: u64, rate: u32) -> Duration {
    let nanos = u128::from(id) * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The cold keys H..H+C in a seeded random order (Fisher-Yates), each used once.
fn cold_order(rng: &mut SplitMix, hot_keys: u64, cold_keys: u64) -> Vec<u64> {
    let mut keys: Vec<u64> = (hot_keys..hot_keys + cold_keys).collect();
    for i in (1..keys.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        keys.swap(i, j);
    }
    keys
}

impl Datagram {
    /// The bytes to send.
    pub fn bytes(self) -> Vec<u8> {
        match self {
            Datagram::Get { id, key, .. } => format!("GET {key} {id}").into_bytes(),
            Datagram::Malformed { n } => Kind::nth(n).datagram(malformed::ID_BASE + n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn load(seed: u64) -> Load {
        Load {
            requests: 1000,
            rate: 200,
            hot_fraction: 0.9,
            hot_keys: 64,
            cold_keys: 200,
            malformed: 0,
            seed,
        }
    }

    fn gets(sends: &[Send]) -> Vec<(u64, u64, Class)> {
        sends
            .iter()
            .filter_map(|s| match s.what {
                Datagram::Get { id, key, class } => Some((id, key, class)),
                Datagram::Malformed { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_seed_draws_the_same_load_and_another_seed_another() {
        assert_eq!(schedule(&load(1)), schedule(&load(1)));
        assert_ne!(schedule(&load(1)), schedule(&load(2)));
    }

    #[test]
    fn gets_are_spaced_exactly_by_the_rate() {
        let sends = schedule(&load(1)).unwrap();
        assert_eq!(sends.len(), 1000);
        for (i, send) in sends.iter().enumerate() {
            assert_eq!(send.at, Duration::from_millis(5 * i as u64));
        }
        assert_eq!(at(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(at(3, 3), Duration::from_secs(1));
    }

    #[test]
    fn cold_keys_never_repeat_and_hot_keys_stay_hot() {
        for seed in 0..20 {
            let gets = gets(&schedule(&load(seed)).unwrap());
            let cold: Vec<u64> = gets
                .iter()
                .filter(|g| g.2 == Class::Cold)
                .map(|g| g.1)
                .collect();
            let unique: HashSet<u64> = cold.iter().copied().collect();
            assert_eq!(unique.len(), cold.len(), "seed {seed}");
            assert!(cold.iter().all(|k| (64..264).contains(k)));
            assert!(gets.iter().filter(|g| g.2 == Class::Hot).all(|g| g.1 < 64));
            // 10% cold of 1000: well within 5 standard deviations (9.5).
            assert!((50..150).contains(&cold.len()), "{}", cold.len());
            let ids: Vec<u64> = gets.iter().map(|g| g.0).collect();
            assert_eq!(ids, (0..1000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn running_out_of_cold_keys_is_an_error() {
        let mut all_cold = load(1);
        all_cold.hot_fraction = 0.0;
        assert_eq!(schedule(&all_cold), Err(OutOfColdKeys(200)));
        all_cold.requests = 200;
        assert_eq!(schedule(&all_cold).unwrap().len(), 200);
    }

    #[test]
    fn malformed_datagrams_are_spread_over_the_run() {
        let mut with = load(1);
        with.requests = 10;
        with.malformed = 2;
        let sends = schedule(&with).unwrap();
        let malformed: Vec<Duration> = sends
            .iter()
            .filter(|s| matches!(s.what, Datagram::Malformed { .. }))
            .map(|s| s.at)
            .collect();
        // 10 GETs at 200/s span 50 ms.
        assert_eq!(
            malformed,
            [Duration::from_micros(12_500), Duration::from_micros(37_500)]
        );
        assert!(sends.windows(2).all(|w| w[0].at <= w[1].at));
        assert_eq!(
            Datagram::Get {
                id: 3,
                key: 9,
                class: Class::Hot
            }
            .bytes(),
            b"GET 9 3"
        );
    }
}
