//! Fuzzing the guest command-line parser: whatever the host (or a user) passes, the kernel
//! must give a config or a clear error, never panic, and a well-formed line must mean what it
//! says. `cargo test` runs a few hundred cases; `scripts/fuzz` runs many more
//! (`APF_FUZZ_CASES`). Cases proptest finds failing are saved under `proptest-regressions/`
//! and replayed first on every run.

use guest_kernel::cmdline::{self, HZ_RANGE, PAGES_MAX, PageSource, Scenario};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("APF_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

/// Words that look like the real ones often enough to get past the first checks.
fn word() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("scenario"),
        Just("hz"),
        Just("primes"),
        Just("cpu"),
        Just("pages"),
        Just("pattern"),
        Just("seed"),
        Just("source"),
        Just("apf"),
        Just("apf-watchdog"),
        Just("hold"),
        Just("bogus"),
        Just(""),
    ];
    let value = prop_oneof![
        "[a-z:]{0,8}",
        "[0-9]{0,22}",
        Just("mlp:96".to_owned()),
        Just("mlp:97".to_owned()),
        Just("stride:0".to_owned()),
        Just("stride:3".to_owned()),
        Just("console".to_owned()),
        Just("18446744073709551616".to_owned()),
        "\\PC{0,6}",
    ];
    prop_oneof![
        (key, value).prop_map(|(k, v)| format!("{k}={v}")),
        "\\PC{0,12}",
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 0..8).prop_map(|words| words.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Any line parses or is refused with an error that displays; nothing panics. Only
    /// workload scenarios hold.
    #[test]
    fn any_line_is_parsed_or_refused(line in line()) {
        match cmdline::parse(&line) {
            Ok(config) => {
                prop_assert!(HZ_RANGE.contains(&u64::from(config.hz)));
                let workload = matches!(
                    config.scenario,
                    Scenario::Cpu | Scenario::Mem | Scenario::Seed | Scenario::Mlp(_)
                );
                prop_assert!(workload || !config.hold);
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    /// A line of valid settings, in any order, gives exactly those settings.
    #[test]
    fn valid_settings_mean_what_they_say(
        hz in HZ_RANGE,
        pages in 1..=PAGES_MAX,
        seed in any::<u64>(),
        guest in any::<bool>(),
        apf in any::<bool>(),
        rotate in 0..5usize,
    ) {
        let mut words = [
            format!("hz={hz}"),
            format!("pages={pages}"),
            format!("seed={seed}"),
            format!("source={}", if guest { "guest" } else { "host" }),
            format!("apf={}", if apf { "on" } else { "off" }),
        ];
        words.rotate_left(rotate);
        let config = cmdline::parse(&words.join(" ")).expect("valid line");
        prop_assert_eq!(u64::from(config.hz), hz);
        prop_assert_eq!(config.pages, pages);
        prop_assert_eq!(config.seed, seed);
        let source = if guest { PageSource::Guest } else { PageSource::Host };
        prop_assert_eq!(config.source, source);
        prop_assert_eq!(config.apf, apf);
    }
}
