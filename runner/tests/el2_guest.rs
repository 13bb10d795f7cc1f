//! Boots the real aarch64 guest kernel at EL1 under the arm64 EL2 host (`scripts/el2-run`,
//! QEMU TCG with `virtualization=on`) and checks what it printed: the demo, lazy pages the
//! host serves from its generator (verified by the guest with the same seed), and async
//! page faults (`mode=apf` with `apf=on`) counted alike on both sides.

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

    /// `key=N` of the host's statistics line.
    fn host_stat(&self, key: &str) -> u64 {
        let line = self.line("el2: STATS");
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
            .parse()
            .expect("a number")
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
    // QEMU's device tree says 512 MiB; the host keeps the top 16 MiB for itself.
    b.line("kernel: 496 MiB RAM");
}

#[test]
fn workload_data_must_fit_below_the_host_region() {
    // 437.5 MiB of pages above the 64 MiB mark: more than the 432 MiB the host leaves.
    let b = boot(&["mode=off"], &["scenario=mem", "pages=112000"]);
    assert_eq!(b.guest_status, Some(5), "{}", b.stdout);
    assert!(b.line("kernel: 'mem' needs").contains("at least 502 MiB"));
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

/// The seed scenario (one CPU task, one memory task over 256 lazy pages) at 1 ms per page,
/// `off` and then with async PF.
#[test]
fn seed_scenario_off_and_with_async_pf() {
    let pages = 256;
    let host = |mode| [mode, "latency=fixed:1ms", "seed=4"];
    let guest = |apf| ["scenario=seed", "source=host", "seed=4", apf];

    let off = boot(&host("mode=off"), &guest("apf=off"));
    assert_eq!(off.guest_status, Some(0), "{}", off.stdout);
    let r = off.result();
    assert_eq!(r["pages_verified"], pages);
    assert_eq!(r["apf"]["state"], "off");
    assert_eq!(r["apf"]["not_present"], 0);

    let on = boot(&host("mode=apf"), &guest("apf=on"));
    assert_eq!(on.guest_status, Some(0), "{}", on.stdout);
    let r = on.result();
    assert_eq!(r["pages_verified"], pages);
    let apf = &r["apf"];
    assert_eq!(apf["state"], "on");
    // Every page: one not-present the host injected, one page-ready, one park and wake.
    assert_eq!(apf["not_present"], pages);
    assert_eq!(apf["ready"], pages);
    assert_eq!(apf["broadcasts"], 1, "the one that follows ENABLE");
    assert_eq!(apf["unknown_tokens"], 0);
    assert_eq!(r["sched"]["parks"], pages);
    assert_eq!(on.host_stat("not_present"), pages);
    assert_eq!(on.host_stat("page_ready"), pages + 1);
    assert_eq!(on.host_stat("sync_faults"), 0);
}

#[test]
fn apf_on_without_the_host_offering_it_exits_5() {
    let b = boot(&["mode=off"], &["scenario=cpu", "cpu=1000", "apf=on"]);
    assert_eq!(b.guest_status, Some(5), "{}", b.stdout);
    assert!(
        b.line("kernel: apf=on").contains("KVM_FEATURES bit 2"),
        "{}",
        b.stdout
    );
}

/// `runner run --vmm el2` starts the same pair: the runner's exit status is the guest's.
#[test]
fn runner_vmm_el2_with_async_pf() {
    let out = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["run", "--arch", "aarch64", "--vmm", "el2", "--kernel"])
        .arg(guest_elf())
        .args(["--latency", "200us", "--seed", "6", "--apf", "el2", "--"])
        .args(["scenario=mem", "source=host", "seed=6", "pages=32"])
        .output()
        .expect("runner runs");
    let b = Boot {
        guest_status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    assert_eq!(b.guest_status, Some(0), "{}", b.stdout);
    let r = b.result();
    assert_eq!(r["pages_verified"], 32);
    assert_eq!(r["apf"]["not_present"], 32);
    assert_eq!(b.host_stat("not_present"), 32);
}

/// `apf-test=bad-area` on arm64: an ENABLE whose control block is not RAM, which the host
/// refuses; the real enable follows.
#[test]
fn the_host_refuses_a_control_block_outside_ram() {
    let b = boot(
        &["mode=apf"],
        &["scenario=cpu", "cpu=1000", "apf=on", "apf-test=bad-area"],
    );
    assert_eq!(b.guest_status, Some(0), "{}", b.stdout);
    assert!(b.line("apf-test:").contains("INVALID_PARAMETER"));
    let apf = &b.result()["apf"];
    assert_eq!(apf["test"], "refused");
    assert_eq!(apf["state"], "on");
}

/// `runner run --vmm el2 --inject`: the EL2 host misbehaves as our x86 VMM can, and the
/// aarch64 guest finishes every task with every page verified, its watchdog retrying the
/// tasks whose page-ready was dropped.
#[test]
fn the_guest_survives_a_misbehaving_el2_host() {
    for inject in [
        "drop-ready",
        "duplicate-ready,unknown-token,reorder,wake-all,disable-reenable",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["run", "--arch", "aarch64", "--vmm", "el2", "--kernel"])
            .arg(guest_elf())
            .args(["--latency", "fixed:2ms", "--seed", "3", "--apf", "el2"])
            .args(["--inject", inject, "--"])
            .args(["scenario=mlp:4", "source=host", "seed=3", "pages=32"])
            .arg("apf-watchdog=50")
            .output()
            .expect("runner runs");
        let b = Boot {
            guest_status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        };
        assert_eq!(b.guest_status, Some(0), "{inject}: {}", b.stdout);
        let r = b.result();
        assert_eq!(r["pages_verified"], 128, "{inject}: {r}");
        for task in r["tasks"].as_array().unwrap() {
            assert_eq!(task["status"], 0, "{inject}: {task}");
        }
        let apf = &r["apf"];
        if inject == "drop-ready" {
            let dropped = b
                .stdout
                .matches("drop-ready dropped the page-ready")
                .count();
            assert!(dropped > 0, "{}", b.stdout);
            assert!(
                apf["watchdog_retries"].as_u64().unwrap() >= dropped as u64,
                "{inject}: {apf}"
            );
        } else {
            assert!(apf["broadcasts"].as_u64().unwrap() > 1, "{inject}: {apf}");
        }
    }
}
