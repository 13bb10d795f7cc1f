//! Boots the real aarch64 guest kernel in QEMU (TCG, `virt` with a GICv3) and checks what it
//! printed: the same scenarios and reports as the x86_64 guest, the arm64 way (exception
//! classes and syndromes instead of x86 vectors and error codes).

/// The shared helpers this binary uses, listed one by one (`common/mod.rs` says why).
mod common {
    pub mod aarch64_guest;
    pub mod boot;
    pub mod build;
    pub mod run;
}

#[path = "support/ping_pong.rs"]
mod ping_pong;

use common::aarch64_guest::guest_elf;
use common::boot::{Boot, assert_bad_command_lines_refused, assert_demo_finished};
use common::build::runner;
use common::run::runner_run;
use serde_json::Value;

impl Boot {
    /// The exit status of the guest's task number `index`, from the RESULT line.
    fn task_status(&self, index: usize) -> Value {
        self.result()["tasks"][index]["status"].clone()
    }
}

/// Boots the guest on bare QEMU with the guest command-line words `guest_args`.
fn boot(guest_args: &[&str]) -> Boot {
    boot_with(&[], guest_args)
}

/// [`boot`] with further runner options.
fn boot_with(options: &[&str], guest_args: &[&str]) -> Boot {
    let common = [
        "--arch",
        "aarch64",
        "--vmm",
        "qemu",
        "--mem",
        "128M",
        "--timeout",
        "60s",
    ];
    runner_run(&[&common[..], options].concat(), guest_elf(), guest_args).into()
}

#[test]
fn demo_tasks_interleave_under_timer_preemption_and_all_finish() {
    let b = boot(&[]);
    assert_demo_finished(&b, "aarch64");
    let r = b.result();
    assert_eq!(r["hz"], 100);
    let tick_hz = r["tick_hz"].as_f64().unwrap();
    assert!((50.0..=105.0).contains(&tick_hz), "tick_hz {tick_hz}");
    assert!(r["sched"]["preemptions"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(
        r["tsc_khz"], 1_000_000,
        "QEMU's generic timer runs at 1 GHz"
    );
}

#[test]
fn el0_faults_kill_only_that_task_and_fail_the_guest() {
    // Data abort from EL0 (class 0x24): a level-2 translation fault reading unmapped flash...
    let b = boot(&["scenario=unmapped"]);
    assert_eq!(b.status, Some(1), "{}", b.stdout);
    let report = b.line("killed by");
    assert!(
        report.contains("'reader' killed by data abort (vector 36) at rip 0x4"),
        "{report}"
    );
    assert!(
        report.contains("error code 0x92000006, address 0x80000"),
        "{report}"
    );
    b.line("bystander: finished (correct)");
    assert_eq!(b.task_status(0), 128 + 0x24);
    assert_eq!(b.task_status(1), 0);

    // ...and a level-3 permission fault writing EL1-only kernel data (ISS.WnR set).
    let b = boot(&["scenario=kernel-write"]);
    assert_eq!(b.status, Some(1), "{}", b.stdout);
    assert!(
        b.line("killed by").contains("error code 0x9200004f"),
        "{}",
        b.stdout
    );
    b.line("bystander: finished (correct)");

    // UDIV does not trap: the division by zero raises BRK #0xF004 (class 0x3C) instead.
    let b = boot(&["scenario=div0"]);
    assert_eq!(b.status, Some(1), "{}", b.stdout);
    assert!(
        b.line("killed by")
            .contains("'div0' killed by BRK (breakpoint) (vector 60)"),
        "{}",
        b.stdout
    );
    assert_eq!(b.task_status(0), 128 + 0x3C);
    b.line("bystander: finished (correct)");
}

#[test]
fn a_bad_guest_command_line_is_reported() {
    assert_bad_command_lines_refused(boot, "aarch64");
}

#[test]
fn a_guest_that_does_not_finish_in_time_is_stopped() {
    let b: Boot = runner_run(
        &["--arch", "aarch64", "--vmm", "qemu", "--timeout", "50ms"],
        guest_elf(),
        &[],
    )
    .into();
    assert_eq!(b.status, Some(124), "{}", b.stderr);
    assert!(b.stderr.contains("timed out"), "{}", b.stderr);
}

#[test]
fn aarch64_needs_qemu_and_an_aarch64_kernel() {
    for (args, refusal) in [
        (
            &["run", "--arch", "aarch64", "--kernel", "/nonexistent"][..],
            "aarch64 guests run only under --vmm qemu",
        ),
        (
            &[
                "run",
                "--arch",
                "aarch64",
                "--vmm",
                "qemu",
                "--latency",
                "1ms",
            ],
            "--latency needs the builtin VMM",
        ),
        // The runner binary itself is an ELF, but not an aarch64 one.
        (
            &[
                "run",
                "--arch",
                "aarch64",
                "--vmm",
                "qemu",
                "--kernel",
                env!("CARGO_BIN_EXE_runner"),
            ],
            "but the guest is aarch64",
        ),
    ] {
        let out = runner().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(refusal), "{args:?}: {stderr}");
    }
}

#[test]
fn a_second_cpu_starts_with_psci_and_runs_its_share_of_tasks() {
    // `--cpus 2`: QEMU's `virt` answers PSCI CPU_ON (through `hvc`), and each CPU wakes its
    // own redistributor and timer. No host there offers async PF: both run without it.
    let b = boot_with(
        &["--cpus", "2"],
        &[
            "scenario=mlp:4",
            "source=guest",
            "pages=4096",
            "balance=off",
        ],
    );
    let r = b.result();
    assert_eq!(r["pages_verified"], 4 * 4096, "{r}");
    for (i, task) in r["tasks"].as_array().unwrap().iter().enumerate() {
        assert_eq!(task["status"], 0, "{task}");
        assert_eq!(task["cpu"], i % 2, "round robin: {task}");
    }
    let cpus = r["cpus"].as_array().expect("per-CPU counters");
    assert_eq!(cpus.len(), 2, "{r}");
    for (i, cpu) in cpus.iter().enumerate() {
        assert_eq!(cpu["tasks"], 2, "CPU {i}: {cpu}");
        assert!(cpu["switches"].as_u64().unwrap() > 0, "CPU {i}: {cpu}");
        assert!(cpu["ticks"].as_u64().unwrap() > 0, "CPU {i}'s timer: {cpu}");
        assert_eq!(cpu["apf"], "off", "CPU {i}: {cpu}");
    }
}

#[test]
fn park_and_wake_reach_tasks_on_the_other_cpu() {
    let b = boot_with(
        &["--cpus", "2"],
        &["scenario=demo", "primes=10000", "balance=off"],
    );
    ping_pong::assert_ping_pong_across_cpus(&b.stdout, &b.result(), "aarch64");
}
