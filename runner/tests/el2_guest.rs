//! Boots the real aarch64 guest kernel at EL1 under the arm64 EL2 host (`scripts/el2-run`,
//! QEMU TCG with `virtualization=on`) and checks what it printed: the demo, lazy pages the
//! host serves from its generator (verified by the guest with the same seed).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Longest a boot may take (the seed scenario at 10 ms per page is ~3 s of guest time).
const TIMEOUT: &str = "120";

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runner is in the workspace")
}

/// The aarch64 guest ELF, built once with `runner build-guest --arch aarch64`.
fn guest_elf() -> &'static PathBuf {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["build-guest", "--arch", "aarch64"])
            .output()
            .expect("runner runs");
        assert!(
            out.status.success(),
            "build-guest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

struct Boot {
    /// The guest's exit status, decoded from QEMU's (`(status << 1) | 1`, README).
    guest_status: Option<i32>,
    stdout: String,
}

impl Boot {
    fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{}", self.stdout))
    }

    fn result(&self) -> Value {
        let line = self.line("RESULT ");
        serde_json::from_str(line.trim_start_matches("RESULT ")).expect("RESULT is JSON")
    }
}

/// Boots the guest with the host's words and the guest's command line.
fn boot(host: &[&str], guest: &[&str]) -> Boot {
    let out = Command::new("timeout")
        .arg(TIMEOUT)
        .arg(workspace().join("scripts/el2-run"))
        .arg(guest_elf())
        .args(host)
        .arg("--")
        .args(guest)
        .current_dir(workspace())
        .output()
        .expect("scripts/el2-run runs");
    let stdout = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let guest_status = out
        .status
        .code()
        .filter(|code| code & 1 == 1)
        .map(|code| code >> 1);
    Boot {
        guest_status,
        stdout,
    }
}

#[test]
fn demo_runs_under_the_el2_host() {
    let b = boot(&["mode=off"], &["scenario=demo", "primes=100000"]);
    assert_eq!(b.guest_status, Some(0), "{}", b.stdout);
    let r = b.result();
    assert!(
        r["ticks"].as_u64().unwrap() > 0,
        "the forwarded timer ticks"
    );
    assert!(r["sched"]["preemptions"].as_u64().unwrap() > 0);
    assert_eq!(r["unexpected_interrupts"], 0);
}

#[test]
fn lazy_pages_from_the_host_verify_with_the_same_seed() {
    let b = boot(
        &["mode=off", "latency=fixed:100us", "seed=9"],
        &["scenario=mem", "source=host", "seed=9", "pages=64"],
    );
    assert_eq!(b.guest_status, Some(0), "{}", b.stdout);
    assert_eq!(b.result()["pages_verified"], 64);
}

#[test]
fn pages_from_another_seed_fail_verification() {
    let b = boot(
        &["mode=off", "seed=1"],
        &["scenario=mem", "source=host", "seed=2", "pages=8"],
    );
    assert_eq!(b.guest_status, Some(1), "{}", b.stdout);
    assert_eq!(b.result()["pages_verified"], 0);
}

/// The seed scenario (one CPU task, one memory task over 256 lazy pages) at 1 ms per page.
#[test]
fn seed_scenario_off() {
    let b = boot(
        &["mode=off", "latency=fixed:1ms", "seed=4"],
        &["scenario=seed", "source=host", "seed=4", "apf=off"],
    );
    assert_eq!(b.guest_status, Some(0), "{}", b.stdout);
    let r = b.result();
    assert_eq!(r["pages_verified"], 256);
    assert_eq!(r["apf"]["state"], "off");
}
