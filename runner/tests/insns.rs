//! `runner insns` on a real recording: `perf record` of KVM's kvm:kvm_emulate_insn around
//! a lazy-memory run of the real guest with in-kernel async PF. Every not-present the guest
//! counted must show as one #PF trap and every page-ready interrupt as one page-ready trap:
//! the count per event is exact only if the traps are found exactly. It is also the
//! structural test of the async PF paths: one lock acquisition per trap, no allocation.

mod common;

use std::process::{Command, Stdio};

use common::{guest_elf, runner};
use serde_json::Value;

#[test]
fn counts_one_trap_per_async_pf_event_the_guest_saw() {
    let dir = std::env::temp_dir().join(format!("insns-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("perf.data");
    let run = Command::new("perf")
        .args(["record", "-q", "-e", "kvm:kvm_emulate_insn", "-o"])
        .arg(&data)
        .arg("--")
        .arg(runner().get_program())
        .args([
            "run",
            "--apf",
            "kvm",
            "--latency",
            "fixed:1ms",
            "--fetchers",
            "4",
        ])
        .arg("--kernel")
        .arg(guest_elf())
        .args(["--", "scenario=mlp:4", "pages=16"])
        .output()
        .expect("perf runs (scripts/setup installs linux-perf)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("a RESULT line");
    let apf = &result["apf"];

    let script = Command::new("perf")
        .args(["script", "-F", "tid,event,trace", "-i"])
        .arg(&data)
        .stderr(Stdio::null())
        .output()
        .expect("perf script runs");
    assert!(script.status.success());
    let trace = dir.join("trace");
    std::fs::write(&trace, &script.stdout).unwrap();
    let json = dir.join("insns.json");
    let insns = runner()
        .arg("insns")
        .arg("--kernel")
        .arg(guest_elf())
        .arg("--trace")
        .arg(&trace)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        insns.status.success(),
        "{}",
        String::from_utf8_lossy(&insns.stderr)
    );
    let counts: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let trap = |name: &str| {
        counts["traps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no {name} traps: {counts}"))
            .clone()
    };
    let not_present = trap("not-present (#PF)");
    let ready = trap("page-ready");
    assert!(apf["not_present"].as_u64().unwrap() > 0, "{apf}");
    assert_eq!(not_present["count"], apf["not_present"], "{counts}\n{apf}");
    let readies = apf["ready"].as_u64().unwrap() + apf["broadcasts"].as_u64().unwrap();
    assert_eq!(ready["count"].as_u64().unwrap(), readies, "{counts}\n{apf}");
    assert!(
        not_present["by_symbol"]["guest_kernel::arch::x86_64::trap::page_fault"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{not_present}"
    );
    assert!(counts["per_async_pf"].as_f64().unwrap() > 0.0, "{counts}");
    // The async PF paths take no lock (they borrow the kernel state, see kernel/per_cpu.rs) and
    // never allocate.
    for trap in [&not_present, &ready] {
        assert_eq!(trap["max_locked"], 0, "{trap}");
        let allocator: Vec<&String> = trap["by_symbol"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|name| ALLOCATOR.iter().any(|a| name.contains(a)))
            .collect();
        assert!(allocator.is_empty(), "allocates: {allocator:?}");
    }
}

/// Names in the guest's allocation paths: its allocator (`talc`), Rust's global allocator
/// shims (`__rust_alloc`, `__rust_realloc`, `__rust_dealloc`, ...) and growing a `Vec`.
const ALLOCATOR: [&str; 4] = ["talc::", "__rust_", "alloc::raw_vec::", "box_new"];

#[test]
fn a_file_that_is_not_our_guest_is_refused() {
    let out = runner()
        .args(["insns", "--kernel", "/bin/sh", "--trace", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no symbol trap_stubs"), "{stderr}");
}
