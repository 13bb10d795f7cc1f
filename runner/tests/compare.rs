//! `runner compare` end to end with the real guest, kept small so it runs in seconds.

mod common;

use common::{guest_elf, runner};

use serde_json::Value;
use std::path::PathBuf;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("compare-test-{}-{name}", std::process::id()))
}

/// Runs `runner compare ARGS --kernel <guest> --json <file>` (plus `extra`, e.g. `--svg`),
/// which must succeed; returns its stdout and the JSON it wrote (the file is removed).
fn compare(name: &str, args: &[&str], extra: &[&std::ffi::OsStr]) -> (String, Value) {
    let json = temp(name);
    let out = runner()
        .arg("compare")
        .args(args)
        .arg("--kernel")
        .arg(guest_elf())
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(json).unwrap();
    (stdout, j)
}

#[test]
fn seed_comparison_writes_table_json_and_svg() {
    let svg = temp("seed.svg");
    let (stdout, j) = compare(
        "seed.json",
        &[
            "--scenario",
            "seed",
            "--latency",
            "fixed:1ms",
            "--modes",
            "off",
            "--repeat",
            "2",
            "--pages",
            "16",
            "--cpu-work",
            "2000000",
            "--seed",
            "9",
        ],
        &["--svg".as_ref(), svg.as_os_str()],
    );
    assert!(stdout.contains("ideal max(C, F)"), "{stdout}");
    assert_eq!(j["scenario"], "seed");
    assert_eq!(j["latency"], "fixed:1ms");
    let runs = j["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["mode"], "off");
        assert_eq!(run["arch"], "x86_64");
        assert_eq!(run["pages_touched"], 16, "{run}");
        assert_eq!(run["pages_verified"], 16, "{run}");
        assert_eq!(run["faults_served"], 16, "each page served once: {run}");
        let cpu = run["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "cpu")
            .unwrap();
        assert_eq!(
            cpu["result"].as_u64(),
            Some(workloads::cpu::chain(9, 2_000_000))
        );
        assert!(run["makespan_ns"].as_u64().unwrap() > 0);
    }
    let solo = &j["solo"];
    let ideal = solo["cpu_ns"]
        .as_u64()
        .unwrap()
        .max(solo["mem_ns"].as_u64().unwrap());
    assert_eq!(j["ideal_ns"].as_u64(), Some(ideal));
    assert_eq!(j["speedup"]["off"], 1.0);
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg") && svg_text.contains("off"));
    std::fs::remove_file(svg).unwrap();
}

#[test]
fn mlp_comparison_serves_every_task_s_pages() {
    let (_, j) = compare(
        "mlp.json",
        &[
            "--scenario",
            "mlp:4",
            "--latency",
            "100us",
            "--repeat",
            "1",
            "--pages",
            "8",
            "--fetchers",
            "4",
        ],
        &[],
    );
    assert_eq!(j["runs"][0]["faults_served"], 32);
    assert_eq!(j["runs"][0]["pages_verified"], 32);
    assert!(
        j["ideal_ns"].is_null(),
        "the ideal bound is defined for seed only"
    );
}

#[test]
fn a_latency_sweep_compares_at_each_latency() {
    let (stdout, j) = compare(
        "sweep.json",
        &[
            "--scenario",
            "seed",
            "--latency-sweep",
            "100us,fixed:1ms",
            "--modes",
            "off,kvm",
            "--repeat",
            "1",
            "--pages",
            "8",
            "--cpu-work",
            "500000",
        ],
        &[],
    );
    assert!(
        stdout.contains("speedup against off, by latency"),
        "{stdout}"
    );
    let sweep = j["sweep"].as_array().unwrap();
    let latencies: Vec<&str> = sweep
        .iter()
        .map(|c| c["latency"].as_str().unwrap())
        .collect();
    assert_eq!(latencies, ["fixed:100us", "fixed:1ms"]);
    for c in sweep {
        assert_eq!(
            c["runs"].as_array().unwrap().len(),
            2,
            "one run per mode: {c}"
        );
        let kvm = c["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["mode"] == "kvm")
            .unwrap();
        assert_eq!(kvm["apf_not_present"], 8, "{kvm}");
        assert_eq!(kvm["apf_ready"], 8, "{kvm}");
    }

    let out = runner()
        .args(["compare", "--latency", "1ms", "--latency-sweep", "1ms,2ms"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--latency and --latency-sweep together"
    );
}

#[test]
fn an_mlp_sweep_reports_throughput_and_faults_in_flight_per_k() {
    let markdown = temp("mlp-sweep.md");
    let args = "--scenario mlp:2,1 --latency 100us --modes off,kvm --repeat 1 --pages 8";
    let args: Vec<&str> = args.split(' ').collect();
    let (stdout, j) = compare(
        "mlp-sweep.json",
        &args,
        &["--markdown".as_ref(), markdown.as_os_str()],
    );
    assert!(stdout.contains("by k and mode"), "{stdout}");
    let sweep = j["mlp_sweep"].as_array().unwrap();
    let scenarios: Vec<&str> = sweep
        .iter()
        .map(|c| c["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(scenarios, ["mlp:1", "mlp:2"], "in increasing k");
    for (c, k) in sweep.iter().zip([1, 2]) {
        assert_eq!(c["fetchers"], k, "fetchers default to k: {c}");
        for mode in ["off", "kvm"] {
            let m = &c["modes"][mode];
            assert!(m["faults_per_s"].as_f64().unwrap() > 0.0, "{c}");
            assert!(m["max_in_flight"].as_u64().unwrap() >= 1, "{c}");
            assert!(m["mean_in_flight"].as_f64().unwrap() > 0.0, "{c}");
        }
        assert_eq!(c["runs"][0]["faults_served"], 8 * k, "{c}");
    }
    let md = std::fs::read_to_string(&markdown).unwrap();
    std::fs::remove_file(markdown).unwrap();
    assert!(md.contains("| k | mode | fetchers |"), "{md}");
}

#[test]
fn bad_combinations_are_usage_errors() {
    for args in [
        ["--scenario", "mlp:1,4", "--latency-sweep", "1ms,2ms"].as_slice(),
        &["--modes", "off,kvm", "--async-threshold", "100us"],
        &["--readahead", "100000"],
        &["--scenario", "mlp:1,97"],
        &["--arch", "aarch64", "--fetchers", "4"],
    ] {
        let out = runner()
            .arg("compare")
            .args(args)
            .args(["--kernel", "/nonexistent"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error:"),
            "{args:?}"
        );
    }
}

#[test]
fn modes_are_checked_before_anything_runs() {
    let out = runner()
        .args(["compare", "--modes", "off,kvmm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mode 'kvmm'"));

    // KVM's async PF is x86's: an aarch64 comparison has off and el2.
    let out = runner()
        .args(["compare", "--arch", "aarch64", "--modes", "off,kvm"])
        .args(["--kernel", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mode kvm is not available for aarch64"),
        "{stderr}"
    );
}

/// The aarch64 guest under the arm64 EL2 host, async PF off and delivered by the host.
#[test]
fn an_aarch64_comparison_runs_under_the_el2_host() {
    let json = temp("aarch64.json");
    let out = runner()
        .args(["compare", "--arch", "aarch64", "--scenario", "seed"])
        .args(["--latency", "fixed:2ms", "--repeat", "1", "--pages", "16"])
        .args(["--cpu-work", "2000000", "--seed", "5", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(json).unwrap();
    assert_eq!(j["arch"], "aarch64", "{j}");
    let runs = j["runs"].as_array().unwrap();
    let modes: Vec<_> = runs.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["off", "el2"], "{j}");
    for run in runs {
        assert_eq!(run["pages_verified"], run["pages_touched"], "{run}");
    }
    // The host delivered one not-present and one ready per page to the el2 run only.
    assert_eq!(runs[0]["apf_not_present"], 0, "{j}");
    assert_eq!(runs[1]["apf_not_present"], 16, "{j}");
    assert_eq!(runs[1]["apf_ready"], 16, "{j}");
    // The host's own counts (its STATS line, through the run report) agree with the guest's:
    // every page it served went as not-present, and the ready count adds the broadcast.
    let host = &runs[1]["el2_host"];
    assert_eq!(host["not_present"], 16, "{j}");
    assert_eq!(host["page_ready"], 17, "{j}");
    assert_eq!(host["sync_faults"], 0, "{j}");
    assert_eq!(runs[1]["faults_served"], 16, "{j}");
    assert!(runs[0]["el2_host"].is_null(), "async PF off: no host line");
    assert!(runs[1]["user_apf"].is_null(), "no x86 VMM here");
}
