//! Unit tests of `cmdline`.

use super::*;
use alloc::string::ToString;

#[test]
fn empty_line_gives_defaults() {
    assert_eq!(parse(""), Ok(Config::default()));
    assert_eq!(parse("   "), Ok(Config::default()));
}

#[test]
fn hold_is_for_workload_scenarios_only() {
    for scenario in ["cpu", "mem", "seed", "mlp:4"] {
        let line = alloc::format!("scenario={scenario} hold=console");
        assert!(parse(&line).unwrap().hold, "{scenario}");
    }
    assert!(!parse("scenario=seed").unwrap().hold);
    assert_eq!(parse("hold=console"), Err(Error::HoldNeedsWorkload), "demo");
    assert_eq!(
        parse("scenario=div0 hold=console"),
        Err(Error::HoldNeedsWorkload)
    );
    assert_eq!(
        parse("scenario=seed hold=serial"),
        Err(Error::UnknownHold("serial"))
    );
}

#[test]
fn parses_every_key() {
    let c = parse(
        " scenario=div0  hz=250 primes=1000 cpu=5 pages=9 pattern=stride:4 seed=18446744073709551615 ",
    )
    .unwrap();
    assert_eq!(
        c,
        Config {
            scenario: Scenario::DivideByZero,
            hz: 250,
            primes: 1000,
            cpu: 5,
            pages: 9,
            pattern: Pattern::Strided(4),
            seed: u64::MAX,
            source: PageSource::Host,
            apf: false,
            apf_test: None,
            apf_cycle: None,
            apf_watchdog_ms: 1_000,
            hold: false,
            cpus: 1,
            balance: true,
            virtio_mmio: None,
            ip: None,
            kv_hot: 64,
            kv_cold: 1024,
            kv_workers: 4,
        }
    );
    assert_eq!(parse("source=guest").unwrap().source, PageSource::Guest);
    assert!(parse("apf=on").unwrap().apf);
    assert!(!parse("apf=off").unwrap().apf);
    assert!(parse("").unwrap().balance);
    assert!(!parse("balance=off").unwrap().balance);
    assert_eq!(
        parse("balance=1"),
        Err(Error::NotOnOff {
            key: "balance",
            value: "1"
        })
    );
    assert_eq!(
        parse("apf=yes"),
        Err(Error::NotOnOff {
            key: "apf",
            value: "yes"
        })
    );
    assert_eq!(parse("source=disk"), Err(Error::UnknownSource("disk")));
    for (name, scenario) in SCENARIOS {
        let net = match scenario {
            Scenario::Kv => " virtio_mmio.device=4K@0xd0000000:5 ip=10.0.0.2/24",
            _ => "",
        };
        let line = alloc::format!("scenario={name}{net}");
        assert_eq!(parse(&line).unwrap().scenario, *scenario);
        assert_eq!(scenario.to_string(), *name);
    }
    assert_eq!(parse("scenario=mlp:8").unwrap().scenario, Scenario::Mlp(8));
    assert_eq!(Scenario::Mlp(8).to_string(), "mlp:8");
    assert_eq!(parse("pattern=random").unwrap().pattern, Pattern::Random);
    assert_eq!(parse("pattern=seq").unwrap().pattern, Pattern::Sequential);
}

#[test]
fn parses_async_pf_tests_and_cycles() {
    let c = parse("apf-test=bad-area apf=on apf-cycle=5").unwrap();
    assert_eq!(c.apf_test, Some(ApfTest::BadArea));
    assert_eq!(c.apf_cycle, Some(5));
    for (value, raw) in [
        ("vector:16", 16),
        ("vector:0", 0),
        ("vector:255", 255),
        ("vector:0xf3", 0xF3),
        ("vector:0x1F3", 0x1F3),
        ("vector:18446744073709551615", u64::MAX),
    ] {
        let line = alloc::format!("apf=on apf-test={value}");
        assert_eq!(parse(&line).unwrap().apf_test, Some(ApfTest::Int(raw)));
    }
    assert_eq!(parse("apf=on").unwrap().apf_test, None);
    assert_eq!(parse("apf=on").unwrap().apf_cycle, None);
    assert_eq!(parse("apf=on apf-cycle=1").unwrap().apf_cycle, Some(1));
}

#[test]
fn parses_the_watchdog_timeout_within_its_range() {
    assert_eq!(parse("apf=on").unwrap().apf_watchdog_ms, 1_000);
    assert_eq!(parse("").unwrap().apf_watchdog_ms, 1_000);
    for ms in [1, 20, 60_000] {
        let line = alloc::format!("apf=on apf-watchdog={ms}");
        assert_eq!(parse(&line).unwrap().apf_watchdog_ms, ms);
    }
    for bad in ["0", "60001", "-1", "1.5", "1ms", ""] {
        let line = alloc::format!("apf=on apf-watchdog={bad}");
        assert_eq!(
            parse(&line),
            Err(Error::BadNumber {
                key: "apf-watchdog",
                value: bad,
                min: 1,
                max: 60_000
            }),
            "{bad} accepted"
        );
    }
    assert_eq!(
        parse("apf-watchdog=20"),
        Err(Error::NeedsApf("apf-watchdog"))
    );
    assert_eq!(
        parse("apf-watchdog=20 apf=off"),
        Err(Error::NeedsApf("apf-watchdog"))
    );
    let msg = parse("apf-watchdog=20").unwrap_err().to_string();
    assert_eq!(msg, "apf-watchdog needs apf=on");
    let msg = parse("apf=on apf-watchdog=0").unwrap_err().to_string();
    assert!(msg.contains("1 to 60000"), "{msg}");
}

#[test]
fn refuses_bad_async_pf_tests_and_cycles() {
    for bad in [
        "bad",
        "vector:",
        "vector:x",
        "vector:-1",
        "vector:0x",
        "vector:0xg",
        "vector:18446744073709551616",
        "vector16",
        "int:16",
    ] {
        let line = alloc::format!("apf=on apf-test={bad}");
        assert_eq!(parse(&line), Err(Error::UnknownApfTest(bad)));
    }
    for bad in ["0", "-1", "x", ""] {
        let line = alloc::format!("apf=on apf-cycle={bad}");
        assert!(
            matches!(
                parse(&line),
                Err(Error::BadNumber {
                    key: "apf-cycle",
                    ..
                })
            ),
            "{bad} accepted"
        );
    }
    assert_eq!(parse("apf-test=bad-area"), Err(Error::NeedsApf("apf-test")));
    assert_eq!(
        parse("apf=off apf-test=bad-area"),
        Err(Error::NeedsApf("apf-test"))
    );
    assert_eq!(
        parse("apf=off apf-cycle=3"),
        Err(Error::NeedsApf("apf-cycle"))
    );
    let msg = parse("apf=on apf-test=x").unwrap_err().to_string();
    assert!(
        msg.contains("bad-area") && msg.contains("vector:N"),
        "{msg}"
    );
    let msg = parse("apf-test=bad-area").unwrap_err().to_string();
    assert_eq!(msg, "apf-test needs apf=on");
    let msg = parse("apf-cycle=2").unwrap_err().to_string();
    assert_eq!(msg, "apf-cycle needs apf=on");
}

#[test]
fn refuses_malformed_words() {
    assert_eq!(parse("verbose"), Err(Error::NotKeyValue("verbose")));
    assert_eq!(parse("colour=red"), Err(Error::UnknownKey("colour")));
    assert_eq!(parse("hz=10 hz=20"), Err(Error::DuplicateKey("hz")));
    assert_eq!(parse("scenario=nope"), Err(Error::UnknownScenario("nope")));
    for bad in ["mlp:0", "mlp:97", "mlp:", "mlp:x"] {
        let line = alloc::format!("scenario={bad}");
        assert_eq!(parse(&line), Err(Error::UnknownScenario(bad)));
    }
    for bad in ["sequential", "stride:0", "stride:", "stride:1048577"] {
        let line = alloc::format!("pattern={bad}");
        assert_eq!(parse(&line), Err(Error::UnknownPattern(bad)));
    }
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
    assert!(msg.contains("demo") && msg.contains("mlp:1..96"), "{msg}");
    let msg = parse("hz=5").unwrap_err().to_string();
    assert!(msg.contains("10 to 1000"), "{msg}");
}

#[test]
fn cpus_range_from_one_to_max_and_hold_needs_one() {
    assert_eq!(parse("").unwrap().cpus, 1);
    assert_eq!(parse("cpus=2").unwrap().cpus, 2);
    assert_eq!(parse("cpus=8").unwrap().cpus, MAX_CPUS);
    for bad in ["cpus=0", "cpus=9", "cpus=two"] {
        assert!(
            matches!(parse(bad), Err(Error::BadNumber { key: "cpus", .. })),
            "{bad} accepted"
        );
    }
    assert_eq!(
        parse("scenario=seed hold=console cpus=2"),
        Err(Error::HoldNeedsOneCpu)
    );
    assert!(parse("scenario=seed hold=console cpus=1").unwrap().hold);
}

#[test]
fn parses_the_kv_service_and_its_network_card() {
    let c = parse(
        "scenario=kv virtio_mmio.device=4K@0xd0000000:5 ip=10.0.0.2/24 kv-hot=8 kv-cold=100 \
         kv-workers=3",
    )
    .unwrap();
    assert_eq!(c.scenario, Scenario::Kv);
    assert_eq!(
        c.virtio_mmio,
        Some(MmioDevice {
            base: 0xd000_0000,
            size: 4096,
            irq: 5
        })
    );
    assert_eq!(c.virtio_mmio.unwrap().pages(), 0xd000_0000..0xd000_1000);
    assert_eq!(
        c.ip,
        Some(Ipv4Cidr {
            address: [10, 0, 0, 2],
            prefix: 24
        })
    );
    assert_eq!((c.kv_hot, c.kv_cold, c.kv_workers), (8, 100, 3));
    // QEMU microvm's word: a 512-byte window inside a page.
    let q = parse("virtio_mmio.device=512@0xfeb00e00:12").unwrap();
    assert_eq!(q.virtio_mmio.unwrap().pages(), 0xfeb0_0000..0xfeb0_1000);
    let q = parse("virtio_mmio.device=0x1000@0xfeb00e00:12").unwrap();
    assert_eq!(q.virtio_mmio.unwrap().pages(), 0xfeb0_0000..0xfeb0_2000);
    assert_eq!(
        parse("virtio_mmio.device=1K@4096:0").unwrap().virtio_mmio,
        Some(MmioDevice {
            base: 4096,
            size: 1 << 10,
            irq: 0
        })
    );
}

#[test]
fn refuses_a_kv_service_without_its_network_or_on_several_cpus() {
    let card = "virtio_mmio.device=4K@0xd0000000:5";
    assert_eq!(parse("scenario=kv"), Err(Error::KvNeedsNetwork));
    assert_eq!(
        parse(&alloc::format!("scenario=kv {card}")),
        Err(Error::KvNeedsNetwork)
    );
    assert_eq!(
        parse("scenario=kv ip=10.0.0.2/24"),
        Err(Error::KvNeedsNetwork)
    );
    assert_eq!(
        parse(&alloc::format!("scenario=kv {card} ip=10.0.0.2/24 cpus=2")),
        Err(Error::KvNeedsOneCpu)
    );
    for bad in [
        "4K",
        "4K@",
        "@0x1000:1",
        "0@0x1000:1",
        "4K@0x1000:",
        "4K@0x1000:x",
        "4G@0x1000:1",
        "1M@4096:0",
        "0x1001@0x1000:1",
        "4K@0xfffffffffffff000:1",
        "4K@0x10000000000000:1",
        "xK@0x1000:1",
    ] {
        let word = alloc::format!("virtio_mmio.device={bad}");
        assert_eq!(parse(&word), Err(Error::BadMmioDevice(bad)), "{bad}");
    }
    for bad in [
        "10.0.0.2",
        "10.0.0.2/0",
        "10.0.0.2/31",
        "10.0.0/24",
        "10.0.0.2.1/24",
        "256.0.0.1/8",
        "1..2.3/8",
        "+1.2.3.4/8",
        "a.b.c.d/8",
    ] {
        let word = alloc::format!("ip={bad}");
        assert_eq!(parse(&word), Err(Error::BadIp(bad)), "{bad}");
    }
    assert!(matches!(
        parse("kv-workers=17"),
        Err(Error::BadNumber {
            key: "kv-workers",
            ..
        })
    ));
    assert!(matches!(
        parse("kv-hot=0"),
        Err(Error::BadNumber { key: "kv-hot", .. })
    ));
}
