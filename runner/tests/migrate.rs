//! `runner migrate` end to end: the real guest, two real QEMU/KVM processes, a real
//! post-copy migration over loopback TCP with the return path shaped, and the ways it can
//! go wrong (a destination that refuses the stream or never starts, bad flags). Every run
//! must leave no QEMU behind.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{guest_elf, runner};
use serde_json::Value;

/// A migration that each test keeps small: one CPU-bound and one memory-bound task, the
/// memory task's 192 pages in a random order so most of them are still on the source when
/// it reaches them, 1 MiB/s of background push and 1 ms on every page request.
const SEED: &[&str] = &["scenario=seed", "pages=192", "cpu=20", "pattern=random"];

struct Migration {
    out: Output,
    stdout: String,
    stderr: String,
    report: Option<Value>,
}

impl Migration {
    /// The guest's RESULT line, parsed.
    fn result(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap_or_else(|| panic!("no RESULT line:\n{}\n{}", self.stdout, self.stderr));
        serde_json::from_str(line).expect("RESULT is JSON")
    }

    fn report(&self) -> &Value {
        self.report.as_ref().expect("the run wrote its report")
    }

    fn assert_status(&self, code: i32) {
        assert_eq!(
            self.out.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("migrate-test-{}-{name}", std::process::id()))
}

/// Runs `runner migrate OPTIONS --kernel <guest> --report <file> -- GUEST` and checks that
/// it left no QEMU running, whatever the outcome.
fn migrate(name: &str, options: &[&str], guest: &[&str]) -> Migration {
    let report = temp(name);
    let child = runner()
        .arg("migrate")
        .args(options)
        .arg("--kernel")
        .arg(guest_elf())
        .arg("--report")
        .arg(&report)
        .arg("--")
        .args(guest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runner starts");
    let pid = child.id();
    let out = child.wait_with_output().expect("runner runs");
    let migration = Migration {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: std::fs::read_to_string(&report)
            .ok()
            .map(|text| serde_json::from_str(&text).expect("the report is JSON")),
        out,
    };
    let _ = std::fs::remove_file(&report);
    assert_no_qemu_left(pid, &migration);
    migration
}

/// The runner names both QEMUs after its own pid (`-name runner-migrate-<pid>-<side>`);
/// once it has exited, neither may still run (other tests' migrations may).
fn assert_no_qemu_left(pid: u32, migration: &Migration) {
    let ps = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps runs");
    let name = format!("runner-migrate-{pid}-");
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains("qemu-system") && l.contains(&name))
        .map(str::to_owned)
        .collect();
    assert!(
        left.is_empty(),
        "QEMU left running: {left:?}\nstderr:\n{}",
        migration.stderr
    );
}

/// Migrates the seed workload with `--apf mode` (plus `extra` options) at 1 ms per page
/// request and 1 MiB/s of background push, and checks what every mode shares: the guest
/// finished on the destination with every page checked, after the hold, and the migration
/// was post-copy with page requests that the shaper held back at least the 1 ms it drew.
/// Returns the run and the guest's RESULT.
fn migrate_seed(mode: &str, extra: &[&str]) -> (Migration, Value) {
    let mut options = vec!["--latency", "fixed:1ms", "--bandwidth", "1M", "--apf", mode];
    options.extend_from_slice(extra);
    let m = migrate(&format!("{mode}.json"), &options, SEED);
    m.assert_status(0);
    let result = m.result();
    assert_eq!(result["pages_touched"], 192, "{result}");
    assert_eq!(result["pages_verified"], 192, "{result}");
    assert_eq!(result["hold"], "console", "{result}");
    assert!(m.stdout.contains("hold: released"), "{}", m.stdout);
    assert!(m.stdout.contains("hold: finished"), "{}", m.stdout);
    let migration = &m.report()["migration"];
    assert!(
        migration["postcopy_requests"].as_u64().unwrap() > 0,
        "{migration}"
    );
    assert!(
        migration["postcopy_bytes"].as_u64().unwrap() > 192 * 4096,
        "the workload's pages moved in post-copy: {migration}"
    );
    let shaper = &m.report()["shaper"];
    assert!(shaper["page_requests"].as_u64().unwrap() > 0, "{shaper}");
    assert!(
        shaper["measured"]["min_ns"].as_u64().unwrap() >= 1_000_000,
        "no request passed before its delay: {shaper}"
    );
    assert!(
        m.stderr.contains("runner: migration: completed in"),
        "{}",
        m.stderr
    );
    (m, result)
}

#[test]
fn kvm_async_pf_parks_tasks_on_post_copy_faults_and_wakes_them() {
    let (m, result) = migrate_seed("kvm", &[]);
    let apf = &result["apf"];
    assert_eq!(apf["state"], "on", "{apf}");
    let not_present = apf["not_present"].as_u64().unwrap();
    assert!(not_present > 0, "KVM sent no not-present: {apf}");
    assert_eq!(apf["ready"].as_u64().unwrap(), not_present, "{apf}");
    assert_eq!(apf["unknown_tokens"], 0, "{apf}");
    assert_eq!(apf["unclaimed"], 0, "{apf}");
    assert_eq!(m.report()["shaper"]["acks"], "quick");
}

/// Also the run that keeps the kernel's delayed ACKs: the migration still completes, the
/// report says which way it ran.
#[test]
fn without_async_pf_every_post_copy_fault_is_synchronous() {
    let (m, result) = migrate_seed("off", &["--delayed-acks"]);
    let apf = &result["apf"];
    assert_eq!(apf["state"], "off", "{apf}");
    assert_eq!(apf["not_present"], 0, "{apf}");
    assert!(m.stdout.contains("apf=off"), "{}", m.stdout);
    assert_eq!(m.report()["shaper"]["acks"], "delayed");
}

/// A destination started with `dest_args` fails: the runner names it (exit 125), passes
/// on what QEMU said (`qemu_says`) and writes no report.
fn assert_destination_fails(name: &str, dest_args: &[&str], qemu_says: &str) {
    let mut options = vec!["--timeout", "60s"];
    for arg in dest_args {
        options.extend(["--dest-arg", arg]);
    }
    let m = migrate(name, &options, SEED);
    m.assert_status(125);
    assert!(
        m.stderr.contains("the destination QEMU failed"),
        "{}",
        m.stderr
    );
    assert!(m.stderr.contains(qemu_says), "{}", m.stderr);
    assert!(
        m.report.is_none(),
        "a report of a migration that did not happen"
    );
}

#[test]
fn a_destination_that_refuses_the_stream_is_a_migration_error() {
    // Less RAM on the destination: QEMU rejects the incoming RAM block.
    assert_destination_fails("small.json", &["-m", "64M"], "Size mismatch");
}

#[test]
fn a_destination_that_cannot_start_is_a_migration_error() {
    assert_destination_fails(
        "bogus.json",
        &["-device", "no-such-device"],
        "no-such-device",
    );
}

#[test]
fn modes_and_words_it_cannot_honour_are_refused_before_any_qemu_starts() {
    // A mode that needs our VMM is not one of --apf's values: a usage error.
    let m = migrate("vmm.json", &["--apf", "vmm"], SEED);
    m.assert_status(2);
    assert!(m.stderr.contains("invalid value 'vmm'"), "{}", m.stderr);
    assert!(
        m.stderr.contains("[possible values: off, kvm]"),
        "{}",
        m.stderr
    );
    // Words that contradict what the migration sets: a runner error naming the word.
    for word in ["source=host", "hold=none"] {
        let m = migrate("refused.json", &[], &["scenario=seed", word]);
        m.assert_status(125);
        assert!(m.stderr.contains(word), "{word}: {}", m.stderr);
        assert!(
            !m.stdout.contains("kernel:"),
            "a guest booted: {}",
            m.stdout
        );
    }
}
