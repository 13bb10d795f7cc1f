//! Boots the real aarch64 guest kernel in QEMU (TCG, `virt` with a GICv3) and checks what it
//! printed: the same scenarios and reports as the x86_64 guest, the arm64 way (exception
//! classes and syndromes instead of x86 vectors and error codes).

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runner"))
}

/// The aarch64 guest ELF, built once with `runner build-guest --arch aarch64`.
fn guest_elf() -> &'static PathBuf {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        let out = runner()
            .args(["build-guest", "--arch", "aarch64"])
            .output()
            .expect("runner runs");
        assert!(
            out.status.success(),
            "build-guest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(path.is_file(), "{path:?} is not a file");
        path
    })
}

struct Boot {
    status: Option<i32>,
    stdout: String,
}

impl Boot {
    fn line(&self, needle: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", self.stdout))
    }

    fn result(&self) -> Value {
        let line = self.line("RESULT ");
        serde_json::from_str(line.trim_start_matches("RESULT ")).expect("RESULT is JSON")
    }

    fn task_status(&self, index: usize) -> Value {
        self.result()["tasks"][index]["status"].clone()
    }
}

fn boot(guest_args: &[&str]) -> Boot {
    let out = runner()
        .args(["run", "--arch", "aarch64", "--vmm", "qemu", "--mem", "128M"])
        .args(["--timeout", "30s", "--kernel"])
        .arg(guest_elf())
        .arg("--")
        .args(guest_args)
        .output()
        .expect("runner runs");
    Boot {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Number in "interleaved N times" on the task's line.
fn interleavings(line: &str) -> u64 {
    let rest = line
        .split("interleaved ")
        .nth(1)
        .expect("interleaved count");
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn demo_tasks_interleave_under_timer_preemption_and_all_finish() {
    let b = boot(&[]);
    assert_eq!(b.status, Some(0), "{}", b.stdout);
    for spinner in ["spin-a:", "spin-b:"] {
        let line = b.line(spinner);
        assert!(line.contains("= 78498 (correct)"), "{line}");
        // Neither spinner yields: seeing the other run mid-loop takes timer preemption.
        assert!(interleavings(line) >= 1, "no interleaving: {line}");
    }
    b.line("yielder: yielded 50 times");
    b.line("ping: 100 park/wake rounds");
    b.line("syscall-bench: round trip min");
    let r = b.result();
    assert_eq!(r["hz"], 100);
    let tick_hz = r["tick_hz"].as_f64().unwrap();
    assert!((50.0..=105.0).contains(&tick_hz), "tick_hz {tick_hz}");
    assert!(r["sched"]["preemptions"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(
        r["tsc_khz"], 1_000_000,
        "QEMU's generic timer runs at 1 GHz"
    );
    let tasks = r["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6);
    assert!(tasks.iter().all(|t| t["status"] == 0), "{r}");
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
    let b = boot(&["bogus=1"]);
    assert_eq!(b.status, Some(3), "{}", b.stdout);
    b.line("bad command line: unknown option 'bogus'");
    let b = boot(&["hz=5000"]);
    assert_eq!(b.status, Some(3), "{}", b.stdout);
    b.line("hz=5000: expected a whole number from 10 to 1000");
}

#[test]
fn a_guest_that_does_not_finish_in_time_is_stopped() {
    let out = runner()
        .args([
            "run",
            "--arch",
            "aarch64",
            "--vmm",
            "qemu",
            "--timeout",
            "50ms",
        ])
        .arg("--kernel")
        .arg(guest_elf())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
}

#[test]
fn aarch64_needs_qemu_and_an_aarch64_kernel() {
    let out = runner()
        .args(["run", "--arch", "aarch64", "--kernel", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("aarch64 guests run only under --vmm qemu"),
        "{stderr}"
    );

    let out = runner()
        .args([
            "run",
            "--arch",
            "aarch64",
            "--vmm",
            "qemu",
            "--latency",
            "1ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--latency needs the builtin VMM"),
        "{stderr}"
    );

    // The runner binary itself is an ELF, but not an aarch64 one.
    let out = runner()
        .args(["run", "--arch", "aarch64", "--vmm", "qemu", "--kernel"])
        .arg(env!("CARGO_BIN_EXE_runner"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("but the guest is aarch64"), "{stderr}");
}
