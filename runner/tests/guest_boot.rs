//! Boots the real guest kernel in both VMMs and checks what it printed.
//!
//! The guest is built once (`runner build-guest`) and every test boots that ELF with
//! `runner run --kernel`, so the tests exercise the same CLI a user does.

/// The shared helpers this binary uses, listed one by one (`common/mod.rs` says why).
mod common {
    pub mod boot;
    pub mod build;
    pub mod run;
    pub mod x86_guest;
}

use common::boot::{Boot, assert_bad_command_lines_refused, assert_demo_finished};
use common::build::runner;
use common::run::runner_run;
use common::x86_guest::guest_elf;
use serde_json::Value;

const VMMS: [&str; 2] = ["builtin", "qemu"];

/// Boots the guest in `vmm` with the guest command-line words `guest_args`.
fn boot(vmm: &str, guest_args: &[&str]) -> Boot {
    runner_run(
        &["--vmm", vmm, "--mem", "128M", "--timeout", "120s"],
        guest_elf(),
        guest_args,
    )
    .into()
}

#[test]
fn demo_tasks_interleave_under_preemption_and_all_finish() {
    for vmm in VMMS {
        let b = boot(vmm, &[]);
        assert_demo_finished(&b, vmm);
        b.line("pong: 100 rounds");
        let r = b.result();
        assert_eq!(r["scenario"], "demo");
        assert!(
            r["ticks"].as_u64().unwrap() > 0,
            "{vmm}: no timer ticks: {r}"
        );
        assert!(
            r["sched"]["preemptions"].as_u64().unwrap() > 0,
            "{vmm}: {r}"
        );
        assert_eq!(r["sched"]["wakes"].as_u64(), Some(200), "{vmm}: {r}");
    }
}

#[test]
fn divide_by_zero_kills_only_that_task_and_fails_the_guest() {
    for vmm in VMMS {
        let b = boot(vmm, &["scenario=div0"]);
        assert_eq!(b.status, Some(1), "{vmm}: {}", b.stdout);
        let report = b.line("killed by");
        assert!(
            report.contains("'div0' killed by #DE divide error (vector 0) at rip 0x"),
            "{report}"
        );
        b.line("bystander: finished (correct)");
        let tasks = b.result()["tasks"].clone();
        assert_eq!(tasks[0]["status"], 128, "{vmm}: {tasks}");
        assert_eq!(tasks[1]["status"], 0, "{vmm}: {tasks}");
    }
}

#[test]
fn unmapped_and_kernel_memory_accesses_are_page_faults() {
    for vmm in VMMS {
        let b = boot(vmm, &["scenario=unmapped"]);
        assert_eq!(b.status, Some(1), "{vmm}: {}", b.stdout);
        let report = b.line("killed by");
        assert!(
            report.contains("#PF page fault (vector 14) at rip 0x"),
            "{report}"
        );
        // Not present, read, user mode.
        assert!(
            report.contains("error code 0x4, address 0x80000"),
            "{report}"
        );

        let b = boot(vmm, &["scenario=kernel-write"]);
        assert_eq!(b.status, Some(1), "{vmm}: {}", b.stdout);
        // Present (supervisor-only), write, user mode.
        assert!(
            b.line("killed by").contains("error code 0x7"),
            "{}",
            b.stdout
        );
        b.line("bystander: finished (correct)");
    }
}

#[test]
fn a_bad_guest_command_line_is_reported() {
    for vmm in VMMS {
        assert_bad_command_lines_refused(|words| boot(vmm, words), vmm);
    }
}

#[test]
fn a_guest_that_does_not_finish_in_time_is_stopped_with_a_reason() {
    for vmm in VMMS {
        let b: Boot = runner_run(&["--vmm", vmm, "--timeout", "50ms"], guest_elf(), &[]).into();
        assert_eq!(b.status, Some(124), "{vmm}");
        assert!(b.stderr.contains("timed out"), "{vmm}: {}", b.stderr);
    }
}

#[test]
fn files_that_are_not_bootable_kernels_are_refused() {
    let dir = std::env::temp_dir().join(format!("runner-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("not-an-elf");
    std::fs::write(&text, "hello").unwrap();
    // The real kernel with its PVH note's type changed: loadable, but not PVH-bootable.
    let no_pvh = dir.join("no-pvh-note");
    let mut elf = std::fs::read(guest_elf()).unwrap();
    let note = [4, 0, 0, 0, 8, 0, 0, 0, 18, 0, 0, 0, b'X', b'e', b'n', 0];
    let at = elf
        .windows(note.len())
        .position(|w| w == note)
        .expect("the guest carries a PVH note");
    elf[at + 8] = 17;
    std::fs::write(&no_pvh, elf).unwrap();
    for (file, reason) in [
        (text.clone(), "ELF"),
        (no_pvh, "PVH"),
        (dir.join("missing"), "missing"),
    ] {
        for vmm in VMMS {
            let out = runner()
                .args(["run", "--vmm", vmm, "--kernel"])
                .arg(&file)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(125), "{vmm} {file:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.to_lowercase().contains(&reason.to_lowercase()),
                "{vmm} {file:?}: {stderr}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_runner_flags_are_usage_errors() {
    for args in [
        &["run", "--mem", "12X"][..],
        &["run", "--mem", "1M"],
        &["run", "--timeout", "soon"],
        &["run", "--vmm", "firecracker"],
        &["run", "--arch", "riscv64"],
    ] {
        let out = runner().args(args).output().unwrap();
        assert_ne!(out.status.code(), Some(0), "{args:?} accepted");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

/// A task's entry in the result line.
fn task<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {result}"))
}

#[test]
fn workload_scenarios_report_checked_results_and_timing() {
    for vmm in VMMS {
        let b = boot(
            vmm,
            &[
                "scenario=seed",
                "source=guest",
                "cpu=3000000",
                "seed=42",
                "pages=64",
            ],
        );
        assert_eq!(b.status, Some(0), "{vmm}: {}", b.stdout);
        let r = b.result();
        let cpu = task(&r, "cpu");
        // The host recomputes the chain: a wrong context switch or result would differ.
        assert_eq!(
            cpu["result"].as_u64(),
            Some(workloads::cpu::chain(42, 3_000_000)),
            "{vmm}: {r}"
        );
        let mem = task(&r, "mem");
        assert_eq!(mem["pages_touched"], 64, "{vmm}: {r}");
        assert_eq!(mem["pages_verified"], 64, "{vmm}: {r}");
        for t in [cpu, mem] {
            assert!(t["end_ns"].as_u64() >= t["start_ns"].as_u64(), "{vmm}: {t}");
        }

        let b = boot(
            vmm,
            &[
                "scenario=mlp:4",
                "source=guest",
                "pages=32",
                "pattern=stride:3",
            ],
        );
        assert_eq!(b.status, Some(0), "{vmm}: {}", b.stdout);
        let r = b.result();
        assert_eq!(r["pages_touched"], 128, "{vmm}: {r}");
        assert_eq!(r["pages_verified"], 128, "{vmm}: {r}");
        assert_eq!(r["tasks"].as_array().unwrap().len(), 4);
    }
}

#[test]
fn pages_nobody_filled_fail_verification() {
    // No host page source and no guest fill: the pages are zero, and the guest must say so.
    let b = boot("builtin", &["scenario=mem", "pages=16"]);
    assert_eq!(b.status, Some(1), "{}", b.stdout);
    b.line("mem: 16 of 16 pages had wrong contents");
    assert_eq!(b.result()["pages_verified"], 0);
}

#[test]
fn a_workload_larger_than_guest_memory_is_refused() {
    let b = boot("builtin", &["scenario=mem", "pages=100000"]);
    assert_eq!(b.status, Some(5), "{}", b.stdout);
    b.line("needs 391 MiB above 64 MiB: give the guest at least 455 MiB");
}

/// Pages the runner's lazy memory served, from its `-v` report on stderr.
fn pages_served(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("lazy memory:"))
        .unwrap_or_else(|| panic!("no lazy memory report in:\n{stderr}"));
    let after = line.split("lazy memory: ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// Runs the memory scenario with lazy memory at `latency`; returns (mem task ns, served).
fn lazy_mem_run(latency: &str, pages: u64) -> (u64, u64) {
    let pages_word = format!("pages={pages}");
    let b: Boot = runner_run(
        &[
            "-v",
            "--mem",
            "128M",
            "--timeout",
            "120s",
            "--latency",
            latency,
            "--seed",
            "42",
        ],
        guest_elf(),
        &[
            "scenario=mem",
            "source=host",
            "seed=42",
            "pattern=random",
            &pages_word,
        ],
    )
    .into();
    assert_eq!(b.status, Some(0), "{}\n{}", b.stdout, b.stderr);
    let r = b.result();
    assert_eq!(r["pages_touched"], pages, "{r}");
    assert_eq!(
        r["pages_verified"], pages,
        "every page served with the right contents: {r}"
    );
    let mem = task(&r, "mem");
    let ns = mem["end_ns"].as_u64().unwrap() - mem["start_ns"].as_u64().unwrap();
    (ns, pages_served(&b.stderr))
}

#[test]
fn lazy_memory_serves_each_touched_page_once_after_its_latency() {
    let pages = 32;
    let (fast_ns, served) = lazy_mem_run("fixed:1ms", pages);
    assert_eq!(served, pages, "each touched page served exactly once");
    let (slow_ns, served) = lazy_mem_run("fixed:8ms", pages);
    assert_eq!(served, pages);
    // One fetcher serves one page at a time, so the task waits at least pages x latency, as
    // measured by the guest's TSC clock: calibrated against the PIT, it may be off by a
    // little under load (a 0.5% slow clock was seen), hence the 2% margin.
    let at_least = |latency_ns: u64| pages * latency_ns * 98 / 100;
    assert!(
        slow_ns >= at_least(8_000_000),
        "{slow_ns} ns for {pages} pages at 8 ms"
    );
    assert!(
        fast_ns >= at_least(1_000_000),
        "{fast_ns} ns for {pages} pages at 1 ms"
    );
    assert!(
        slow_ns > fast_ns,
        "8 ms pages ({slow_ns} ns) not slower than 1 ms ({fast_ns} ns)"
    );
}
