//! `runner serve-bench` end to end: the guest's `kv` service on its virtio-net card, driven
//! from a network namespace, in our VMM and in QEMU. What the load generator measured
//! (its JSON) and what the guest counted (its console) are both checked.

mod common;

use common::{guest_elf, runner};

use serde_json::Value;
use std::path::PathBuf;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("serve-test-{}-{name}", std::process::id()))
}

/// Runs `runner serve-bench ARGS --kernel <guest> --json <file>`, which must succeed;
/// returns its stdout and the JSON it wrote (the file is removed).
fn serve_bench(name: &str, args: &[&str]) -> (String, Value) {
    let json = temp(name);
    let out = runner()
        .arg("serve-bench")
        .args(args)
        .arg("--kernel")
        .arg(guest_elf())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "serve-bench {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).unwrap();
    std::fs::remove_file(&json).unwrap();
    (stdout, serde_json::from_str(&text).unwrap())
}

fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

fn mode<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["modes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mode"] == name)
        .unwrap_or_else(|| panic!("no mode {name} in {json}"))
}

/// Every request answered with the right value (serve-bench checks each checksum and fails
/// otherwise), the ICMP echo answered, and the malformed datagrams counted by the guest.
fn assert_served(stdout: &str, json: &Value, name: &str, malformed: u64) {
    let m = mode(json, name);
    let requests = count(&m["counts"]["requests"]);
    assert!(requests > 0, "{m}");
    assert_eq!(count(&m["counts"]["answered"]), requests, "{m}");
    assert_eq!(count(&m["counts"]["malformed"]), malformed, "{m}");
    assert!(count(&m["icmp_rtt_us"]) > 0, "{m}");
    let hot = count(&m["latency_us"]["hot"]["count"]);
    let cold = count(&m["latency_us"]["cold"]["count"]);
    assert_eq!(hot + cold, requests, "{m}");
    assert!(hot > 0 && cold > 0, "{m}");
    // The guest's own count (its summary line for this mode: the modes run in the JSON's
    // order): every request, plus serve-bench's readiness probes.
    let index = json["modes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m["mode"] == name)
        .unwrap();
    let line = stdout
        .lines()
        .filter(|l| l.starts_with("kv: answered "))
        .nth(index)
        .unwrap_or_else(|| panic!("no kv summary for mode {name}:\n{stdout}"));
    let answered: u64 = line.split(' ').nth(2).unwrap().parse().unwrap();
    assert!(answered >= requests, "{line}");
    assert!(line.contains(&format!(" malformed {malformed} ")), "{line}");
}

const SHORT_LOAD: &[&str] = &[
    "--duration",
    "1s",
    "--rate",
    "100",
    "--hot-fraction",
    "0.8",
    "--malformed",
    "10",
];

#[test]
fn builtin_vmm_serves_gets_and_pings_through_virtio_net() {
    let (stdout, json) = serve_bench(
        "builtin",
        &[&["--vmm", "builtin", "--modes", "present"], SHORT_LOAD].concat(),
    );
    assert_served(&stdout, &json, "present", 10);
    assert!(
        stdout.contains("command line 'scenario=kv ") && stdout.contains("4K@0xd0000000:5"),
        "{stdout}"
    );
}

#[test]
fn qemu_serves_gets_and_pings_through_virtio_net() {
    let (stdout, json) = serve_bench(
        "qemu",
        &[&["--vmm", "qemu", "--modes", "present"], SHORT_LOAD].concat(),
    );
    assert_served(&stdout, &json, "present", 10);
    // QEMU's microvm announced its card itself.
    assert!(
        stdout.contains("virtio_mmio.device=512@0xfeb00e00:12"),
        "{stdout}"
    );
}

/// With lazy memory at a long fetch latency, a cold request's worker waits for its page;
/// with async PF on, hot requests sent after it are answered before it is. With it off the
/// whole vCPU waits, so some hot request waits for a page it does not need: the slowest hot
/// answer is slower than with async PF on. (Off, hot requests may still overtake a cold one
/// once its page is in, when a timer tick preempts its worker: the count alone does not
/// tell the modes apart.)
#[test]
fn with_async_pf_hot_requests_overtake_a_cold_one_waiting_for_its_page() {
    let (stdout, json) = serve_bench(
        "ordering",
        &[
            "--vmm",
            "builtin",
            "--modes",
            "off,kvm,vmm",
            "--latency",
            "fixed:100ms",
            "--duration",
            "2s",
            "--rate",
            "100",
            // 5 cold requests a second, each stalling the vCPU 100 ms with async PF off: half
            // its time, so off is slowed but not saturated (saturated, hot requests behind a
            // backlog of cold ones overtake them in every mode).
            "--hot-fraction",
            "0.95",
        ],
    );
    for name in ["off", "kvm", "vmm"] {
        assert_served(&stdout, &json, name, 0);
    }
    let slowest_hot = |name| count(&mode(&json, name)["latency_us"]["hot"]["max"]);
    for name in ["kvm", "vmm"] {
        let m = mode(&json, name);
        assert!(count(&m["hot_answered_during_cold_wait"]) > 0, "{m}");
        assert!(count(&m["cold_overtaken"]) > 0, "{m}");
        assert!(slowest_hot(name) < slowest_hot("off"), "{json}");
    }
}
