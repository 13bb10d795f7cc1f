//! KVM async page faults delivered to the real guest: our VMM serves lazy pages slowly,
//! KVM sends "page not present" and "page ready", the guest parks and wakes the task.

mod common;

use common::{guest_elf, runner};
use serde_json::Value;

const PAGES: u64 = 32;

/// Runs the seed scenario with lazy pages at 4 ms in `apf` mode; returns the RESULT.
fn seed_run(apf: &str) -> Value {
    seed_run_with(apf, &[]).1
}

/// Like [`seed_run`], with `extra` guest command-line words; returns the console output too.
fn seed_run_with(apf: &str, extra: &[&str]) -> (String, Value) {
    let out = runner()
        .args([
            "run",
            "--mem",
            "128M",
            "--timeout",
            "120s",
            "--latency",
            "fixed:4ms",
        ])
        .args(["--seed", "11", "--apf", apf, "--kernel"])
        .arg(guest_elf())
        .arg("--")
        .args(["scenario=seed", "source=host", "seed=11", "cpu=3000000"])
        .arg(format!("pages={PAGES}"))
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("RESULT line");
    let result = serde_json::from_str(line).unwrap();
    (stdout, result)
}

fn task<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap()
}

#[test]
fn not_present_and_ready_match_the_faults_and_the_cpu_task_runs_meanwhile() {
    let r = seed_run("kvm");
    let apf = &r["apf"];
    assert_eq!(apf["enabled"], true, "{r}");
    // Every lazy page touched in ring 3 became one not-present and one page-ready.
    assert_eq!(apf["not_present"], PAGES, "{r}");
    assert_eq!(apf["ready"], PAGES, "{r}");
    // Enabling async PF queues one broadcast wake.
    assert_eq!(apf["broadcasts"], 1, "{r}");
    assert_eq!(apf["unknown_tokens"], 0, "{r}");
    assert_eq!(apf["full"], 0, "{r}");
    assert!(apf["max_parked"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["pages_verified"], PAGES, "{r}");
    // The CPU task (about 20 ms of work) finishes while the memory task still waits for
    // its pages (32 x 2 ms).
    let (cpu, mem) = (task(&r, "cpu"), task(&r, "mem"));
    assert!(cpu["end_ns"].as_u64() < mem["end_ns"].as_u64(), "{r}");
    assert_eq!(
        cpu["result"].as_u64(),
        Some(workloads::cpu::chain(11, 3_000_000)),
        "{r}"
    );
}

#[test]
fn with_async_pf_off_the_guest_sees_no_events() {
    let r = seed_run("off");
    let apf = &r["apf"];
    assert_eq!(apf["enabled"], false, "{r}");
    for counter in [
        "not_present",
        "ready",
        "broadcasts",
        "wake_before_wait",
        "max_parked",
    ] {
        assert_eq!(apf[counter], 0, "{counter}: {r}");
    }
    assert_eq!(r["pages_verified"], PAGES, "{r}");
}

#[test]
fn qemu_runs_the_guest_with_async_pf_on_and_off() {
    for (apf, enabled) in [("kvm", true), ("off", false)] {
        let out = runner()
            .args([
                "run", "--vmm", "qemu", "--mem", "128M", "--apf", apf, "--kernel",
            ])
            .arg(guest_elf())
            .arg("--")
            .args(["scenario=seed", "source=guest", "pages=16", "cpu=1000000"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{apf}: {stdout}");
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap();
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["apf"]["enabled"], enabled, "{apf}: {r}");
        assert_eq!(r["pages_verified"], 16, "{apf}: {r}");
    }
}

#[test]
fn a_guest_command_line_that_contradicts_apf_is_refused() {
    let out = runner()
        .args(["run", "--apf", "off", "--kernel"])
        .arg(guest_elf())
        .args(["--", "apf=on"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("option 'apf' given twice"));
}

#[test]
fn cycling_async_pf_releases_the_waiters_and_every_page_still_verifies() {
    let (_, r) = seed_run_with("kvm", &["apf-cycle=5"]);
    let apf = &r["apf"];
    assert_eq!(apf["state"], "on", "{r}");
    let not_present = apf["not_present"].as_u64().unwrap();
    assert!(not_present >= PAGES, "{r}");
    // Off and on again after every 5th not-present event.
    let reenables = apf["reenables"].as_u64().unwrap();
    assert_eq!(reenables, not_present / 5, "{r}");
    assert_eq!(apf["disables"], reenables, "{r}");
    // The first enable's broadcast, and at least one sent for a re-enable; the kernel's
    // own releases are not counted as broadcasts.
    let broadcasts = apf["broadcasts"].as_u64().unwrap();
    assert!((2..=reenables + 1).contains(&broadcasts), "{r}");
    assert_eq!(r["pages_verified"], PAGES, "{r}");
    assert!(
        r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == 0),
        "{r}"
    );
}

#[test]
fn cycling_with_several_tasks_parked_loses_none_of_them() {
    let out = runner()
        .args(["run", "--mem", "128M", "--timeout", "120s"])
        .args(["--latency", "fixed:2ms", "--fetchers", "4", "--seed", "5"])
        .args(["--apf", "kvm", "--kernel"])
        .arg(guest_elf())
        .arg("--")
        .args(["scenario=mlp:4", "source=host", "seed=5", "pages=16"])
        .arg("apf-cycle=3")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap();
    let r: Value = serde_json::from_str(line).unwrap();
    let apf = &r["apf"];
    assert_eq!(
        apf["reenables"].as_u64(),
        apf["not_present"].as_u64().map(|n| n / 3),
        "{r}"
    );
    assert!(apf["max_parked"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["pages_verified"], 4 * 16, "{r}");
}

#[test]
fn kvm_refuses_a_reserved_en_bit_and_the_run_goes_on_with_async_pf() {
    let (stdout, r) = seed_run_with("kvm", &["apf-test=bad-area"]);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("apf-test:"))
        .expect("apf-test line");
    assert!(
        line.starts_with("apf-test: wrmsr 0x4b564d02 <- 0x") && line.ends_with(": refused (#GP)"),
        "{line}"
    );
    let apf = &r["apf"];
    assert_eq!(apf["test"], "refused", "{r}");
    assert_eq!(apf["state"], "on", "{r}");
    assert_eq!(apf["not_present"], PAGES, "{r}");
    assert_eq!(r["pages_verified"], PAGES, "{r}");
}

#[test]
fn kvm_takes_any_int_vector_but_refuses_reserved_int_bits() {
    for (test, outcome) in [("vector:16", "accepted"), ("vector:0x1f3", "refused")] {
        let (stdout, r) = seed_run_with("kvm", &[&format!("apf-test={test}")]);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("apf-test: wrmsr 0x4b564d06 <- ") && l.contains(outcome)),
            "{test}: {stdout}"
        );
        let apf = &r["apf"];
        assert_eq!(apf["test"], outcome, "{test}: {r}");
        // The probe's broadcast never arrives (on vector 16 it would look like #MF): only
        // the real enable's does.
        assert_eq!(apf["broadcasts"], 1, "{test}: {r}");
        assert_eq!(r["unexpected_interrupts"], 0, "{test}: {r}");
        assert_eq!(apf["not_present"], PAGES, "{test}: {r}");
    }
}
