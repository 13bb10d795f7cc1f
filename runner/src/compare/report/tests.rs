//! Unit tests of `report`.

use super::test_support::comparison;
use super::*;
use crate::compare::record::{Host, InFlight};

#[test]
fn ideal_and_speedup() {
    let c = comparison();
    assert_eq!(c.ideal_ns(), Some(100_000_000));
    assert_eq!(c.speedups().get(&Mode::Off), Some(&1.0));
}

#[test]
fn the_ideal_speedup_is_off_over_the_ideal() {
    assert_eq!(comparison().ideal_speedup(), Some(2.0));
}

#[test]
fn table_shows_medians_and_the_ideal() {
    let t = comparison().table().text();
    assert!(t.contains("190.0 / 200.0 / 210.0"), "{t}");
    assert!(t.contains("10/10") || t.contains("30/30"), "{t}");
    assert!(t.contains("ideal max(C, F) = 100.0 ms"), "{t}");
    assert!(t.contains("off is 2.00x the ideal"), "{t}");
    // 10 faults in 200 ms, half of it spent waiting.
    assert!(t.contains(" 50 ") && t.contains("1 / 0.50"), "{t}");
    assert!(!t.contains("vmm apf"), "no user_apf column for off: {t}");
}

#[test]
fn modes_summarise_throughput_and_faults_in_flight() {
    let mut c = comparison();
    c.runs[0].2.in_flight = Some(InFlight {
        max: 4,
        total_wait_ns: 0,
    });
    let off = c.mode_summary(Mode::Off).unwrap();
    assert_eq!(off.speedup, Some(1.0));
    assert_eq!(off.faults_per_s, 50.0, "10 faults in the median 200 ms");
    assert_eq!(
        off.in_flight,
        Some((4, 0.5)),
        "the most in any run, the median mean"
    );
    assert_eq!(off.user_apf, None);
    assert_eq!(c.mode_summary(Mode::Kvm), None);
    let j = c.to_json();
    assert_eq!(j["modes"]["off"]["faults_per_s"], 50.0);
    assert_eq!(j["modes"]["off"]["max_in_flight"], 4);
    assert_eq!(j["modes"]["off"]["makespan_ns"]["median"], 200_000_000);
    assert!(j["modes"]["off"]["user_apf"].is_null());
}

#[test]
fn user_apf_counters_get_a_column() {
    let mut c = comparison();
    for (i, (mode, _, record)) in c.runs.iter_mut().enumerate() {
        *mode = Mode::Vmm;
        record.user_apf = Some(UserApf {
            injected: 8 + i as u64,
            ready: 8,
            sync: 2,
            raw: json!({}),
            host: Host::Vmm,
        });
    }
    let vmm = c.mode_summary(Mode::Vmm).unwrap();
    assert_eq!(
        vmm.user_apf,
        Some(UserApfCounts {
            injected: 9,
            ready: 8,
            sync: 2
        })
    );
    let t = c.table().text();
    assert!(
        t.contains(USER_APF_HEADER) && t.contains("9 / 8 / 2"),
        "{t}"
    );
    assert_eq!(c.to_json()["modes"]["vmm"]["user_apf"]["injected"], 9);
}

#[test]
fn json_has_the_documented_fields() {
    let j = comparison().to_json();
    for key in [
        "scenario", "latency", "runs", "ideal_ns", "speedup", "modes",
    ] {
        assert!(!j[key].is_null(), "{key} missing: {j}");
    }
    let run = &j["runs"][0];
    for key in [
        "mode",
        "arch",
        "repeat",
        "makespan_ns",
        "tasks",
        "pages_touched",
        "pages_verified",
        "faults_served",
        "faults_per_s",
        "max_in_flight",
        "mean_in_flight",
        "apf_not_present",
        "apf_ready",
    ] {
        assert!(!run[key].is_null(), "run.{key} missing: {run}");
    }
    assert_eq!(j["speedup"]["off"], 1.0);
    assert_eq!(
        j["inject"],
        serde_json::json!([]),
        "the tuning, as passed: {j}"
    );
}

#[test]
fn svg_is_written() {
    let path = std::env::temp_dir().join(format!("compare-test-{}.svg", std::process::id()));
    comparison().write_svg(&path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("makespan (ms)"));
}
