//! Two vCPUs (`--cpus 2`): the guest starts the second CPU, spreads the memory tasks over
//! both, and each CPU takes and resolves its own async page faults. Checked per CPU on the
//! guest's side (RESULT's `cpus`) and, with our VMM as the host, against the host's count
//! per vCPU.

mod common;
#[path = "support/guest_run.rs"]
mod guest_run;
#[path = "support/ping_pong.rs"]
mod ping_pong;

use guest_run::{GuestRun, run_guest};
use ping_pong::assert_ping_pong_across_cpus;
use serde_json::Value;

const TASKS: u64 = 4;
const PAGES: u64 = 32;

fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

/// `mlp:4` over lazy pages on two vCPUs of our VMM, with further runner `options`.
fn two_cpu_run(options: &[&str]) -> GuestRun {
    let pages = format!("pages={PAGES}");
    let common = [
        "--cpus",
        "2",
        "--latency",
        "fixed:2ms",
        "--fetchers",
        "4",
        "--seed",
        "5",
    ];
    run_guest(
        &[&common[..], options].concat(),
        &["scenario=mlp:4", "source=host", "seed=5", &pages],
    )
}

/// Every task ran and succeeded, every page verified, and both CPUs ran tasks; returns the
/// result line and its per-CPU entries.
fn assert_both_cpus_worked(run: &GuestRun, what: &str) -> (Value, Vec<Value>) {
    let r = run.result();
    assert_eq!(count(&r["pages_verified"]), TASKS * PAGES, "{what}: {r}");
    assert_eq!(r["pages_verified"], r["pages_touched"], "{what}: {r}");
    let tasks = r["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len() as u64, TASKS, "{what}: {r}");
    assert!(tasks.iter().all(|t| t["status"] == 0), "{what}: {r}");
    let cpus = r["cpus"].as_array().expect("per-CPU counters").clone();
    assert_eq!(cpus.len(), 2, "{what}: {r}");
    for (i, cpu) in cpus.iter().enumerate() {
        // Round robin, then whatever balancing moved.
        let here = tasks
            .iter()
            .filter(|t| count(&t["cpu"]) == i as u64)
            .count() as u64;
        assert_eq!(count(&cpu["tasks"]), here, "{what}: CPU {i}: {r}");
        assert_eq!(
            here + count(&cpu["given_away"]),
            TASKS / 2 + count(&cpu["taken_in"]),
            "{what}: CPU {i}: {r}"
        );
        assert!(count(&cpu["switches"]) > 0, "{what}: CPU {i}: {cpu}");
    }
    (r, cpus)
}

/// Each CPU enabled async PF and took faults, and each not-present was answered by a
/// page-ready on the same CPU (its waiter table holds only its own tokens).
fn assert_async_per_cpu(cpus: &[Value], what: &str) {
    for (i, cpu) in cpus.iter().enumerate() {
        assert_eq!(cpu["apf"], "on", "{what}: CPU {i}: {cpu}");
        assert!(count(&cpu["not_present"]) > 0, "{what}: CPU {i}: {cpu}");
        assert_eq!(cpu["not_present"], cpu["ready"], "{what}: CPU {i}: {cpu}");
        assert_eq!(count(&cpu["watchdog_retries"]), 0, "{what}: CPU {i}: {cpu}");
    }
}

#[test]
fn without_async_pf_both_cpus_run_their_tasks() {
    let run = two_cpu_run(&["--apf", "off"]).succeeded();
    let (r, cpus) = assert_both_cpus_worked(&run, "off");
    assert_eq!(count(&r["apf"]["not_present"]), 0, "{r}");
    assert!(cpus.iter().all(|c| c["apf"] == "off"), "{r}");
}

#[test]
fn kvm_delivers_each_cpus_page_ready_to_that_cpu() {
    let run = two_cpu_run(&["--apf", "kvm"]).succeeded();
    let (_, cpus) = assert_both_cpus_worked(&run, "kvm");
    assert_async_per_cpu(&cpus, "kvm");
}

#[test]
fn our_host_signals_each_vcpu_its_own_tokens() {
    let run = two_cpu_run(&["--apf", "vmm"]).succeeded();
    let (_, cpus) = assert_both_cpus_worked(&run, "vmm");
    assert_async_per_cpu(&cpus, "vmm");
    let host = &run.report["user_apf"];
    let vcpus = host["vcpus"].as_array().expect("per-vCPU host counts");
    assert_eq!(vcpus.len(), 2, "{host}");
    for (i, (vcpu, cpu)) in vcpus.iter().zip(&cpus).enumerate() {
        // What the host injected into vCPU i is what guest CPU i took.
        assert_eq!(vcpu["injected"], cpu["not_present"], "vCPU {i}: {host}");
        assert!(
            count(&vcpu["ready"]) >= count(&cpu["ready"]),
            "vCPU {i} (broadcasts too): {host}"
        );
    }
}

#[test]
fn injected_host_faults_are_survived_on_two_cpus() {
    for inject in ["duplicate-ready", "reorder", "wake-all", "disable-reenable"] {
        let run = two_cpu_run(&["--apf", "vmm", "--inject", inject]).succeeded();
        assert_both_cpus_worked(&run, inject);
        let host = &run.report["user_apf"];
        assert!(
            count(&host["injected_faults"][inject]) > 0,
            "{inject} was never applied: {host}"
        );
        let vcpus = host["vcpus"].as_array().expect("per-vCPU host counts");
        assert!(
            vcpus.iter().all(|v| count(&v["injected"]) > 0),
            "{inject}: {host}"
        );
    }
}

#[test]
fn qemu_runs_both_cpus_with_kvms_async_pf() {
    let run = run_guest(
        &["--vmm", "qemu", "--cpus", "2", "--apf", "kvm"],
        &["scenario=mlp:4", "source=guest", "pages=32"],
    )
    .succeeded();
    let (_, cpus) = assert_both_cpus_worked(&run, "qemu");
    for (i, cpu) in cpus.iter().enumerate() {
        assert_eq!(cpu["apf"], "on", "qemu: CPU {i}: {cpu}");
    }
}

#[test]
fn impossible_cpu_counts_are_refused_with_the_reason() {
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    let too_many = (host + 1).min(usize::from(u8::MAX)).max(9).to_string();
    for (cpus, guest, says) in [
        ("0", "scenario=cpu", "at least one vCPU"),
        (too_many.as_str(), "scenario=cpu", "CPU(s) to run vCPUs on"),
        ("1", "cpus=2", "give the vCPU count with --cpus"),
    ] {
        let run = run_guest(&["--cpus", cpus], &[guest]);
        assert_ne!(run.status, Some(0), "--cpus {cpus} {guest}");
        assert!(
            run.stderr.contains(says),
            "--cpus {cpus} {guest}: {}",
            run.stderr
        );
    }
    let run = run_guest(
        &[
            "--arch", "aarch64", "--vmm", "el2", "--apf", "el2", "--mem", "512M", "--cpus", "2",
        ],
        &[],
    );
    assert_eq!(run.status, Some(125), "{}", run.stderr);
    assert!(
        run.stderr.contains("the EL2 host runs one vCPU"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_cpu_without_tasks_stops() {
    // One task, two CPUs: CPU 1 has nothing to run and stops at once.
    let run = run_guest(&["--cpus", "2"], &["scenario=cpu", "cpu=1000000"]).succeeded();
    let cpus = run.result()["cpus"].clone();
    assert_eq!(count(&cpus[0]["tasks"]), 1, "{cpus}");
    assert_eq!(count(&cpus[1]["tasks"]), 0, "{cpus}");
}

#[test]
fn park_and_wake_reach_tasks_on_the_other_cpu() {
    for vmm in ["builtin", "qemu"] {
        // Pinned (balance=off): ping and pong stay on different CPUs.
        let run = run_guest(
            &["--vmm", vmm, "--cpus", "2"],
            &["scenario=demo", "primes=10000", "balance=off"],
        )
        .succeeded();
        assert_ping_pong_across_cpus(&run.stdout, &run.result(), vmm);
    }
}

/// `mlp:3` on two CPUs: CPU 1's one task is done first, and the idle CPU takes over the
/// task waiting on CPU 0, which then finishes on CPU 1; with `balance=off` nothing moves.
/// The pages are lazy (200 us each, synchronous) so that every task lasts many ticks:
/// balancing is tick-driven, and pages the guest writes itself take ~2 ms a task here, less
/// than the tick that would start the steal.
#[test]
fn an_idle_cpu_takes_over_a_waiting_task() {
    for (balance, moved) in [("on", true), ("off", false)] {
        let run = run_guest(
            &[
                "--cpus",
                "2",
                "--apf",
                "off",
                "--latency",
                "fixed:200us",
                "--fetchers",
                "2",
                "--seed",
                "5",
            ],
            &[
                "scenario=mlp:3",
                "source=host",
                "seed=5",
                "pages=256",
                &format!("balance={balance}"),
            ],
        )
        .succeeded();
        let r = run.result();
        assert_eq!(count(&r["pages_verified"]), 3 * 256, "{r}");
        let cpus = r["cpus"].as_array().unwrap();
        let (given, taken) = (count(&cpus[0]["given_away"]), count(&cpus[1]["taken_in"]));
        assert_eq!(given, taken, "{r}");
        assert_eq!(given > 0, moved, "balance={balance}: {r}");
        let on_1 = r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["cpu"] == 1)
            .count();
        assert_eq!(on_1 > 1, moved, "balance={balance}: {r}");
    }
}
