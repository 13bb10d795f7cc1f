//! Boots the real aarch64 guest kernel at EL1 under the arm64 EL2 host (`scripts/el2-run`,
//! QEMU TCG with `virtualization=on`) and checks what it printed: the demo, lazy pages the
//! host serves from its generator (verified by the guest with the same seed), and async
//! page faults (`mode=apf` with `apf=on`) counted alike on both sides.

/// The shared helpers this binary uses, listed one by one (`common/mod.rs` says why).
mod common {
    pub mod aarch64_guest;
    pub mod build;
    pub mod el2;
    pub mod run;
}

use common::aarch64_guest::guest_elf;
use common::el2::{Boot, workspace};
use common::run::runner_run;
use std::process::Command;

/// Longest a boot may take (the seed scenario at 10 ms per page is ~3 s of guest time).
const TIMEOUT: &str = "120";

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
    Boot::of_qemu(out)
}

/// `runner run --arch aarch64 --vmm el2 <options> --kernel GUEST -- <guest>`, which starts
/// the same pair: the runner's exit status is the guest's.
fn runner_el2(options: &[&str], guest: &[&str]) -> Boot {
    let options = [&["--arch", "aarch64", "--vmm", "el2"][..], options].concat();
    let out = runner_run(&options, guest_elf(), guest);
    Boot {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

#[test]
fn demo_runs_under_the_el2_host() {
    let b = boot(&["mode=off"], &["scenario=demo", "primes=100000"]).succeeded();
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
    assert_eq!(b.status, Some(5), "{}", b.stdout);
    assert!(b.line("kernel: 'mem' needs").contains("at least 502 MiB"));
}

#[test]
fn lazy_pages_from_the_host_verify_with_the_same_seed() {
    let b = boot(
        &["mode=off", "latency=fixed:100us", "seed=9"],
        &["scenario=mem", "source=host", "seed=9", "pages=64"],
    )
    .succeeded();
    assert_eq!(b.result()["pages_verified"], 64);
}

#[test]
fn pages_from_another_seed_fail_verification() {
    let b = boot(
        &["mode=off", "seed=1"],
        &["scenario=mem", "source=host", "seed=2", "pages=8"],
    );
    assert_eq!(b.status, Some(1), "{}", b.stdout);
    assert_eq!(b.result()["pages_verified"], 0);
}

/// The seed scenario (one CPU task, one memory task over 256 lazy pages) at 1 ms per page,
/// `off` and then with async PF.
#[test]
fn seed_scenario_off_and_with_async_pf() {
    let pages = 256;
    let host = |mode| [mode, "latency=fixed:1ms", "seed=4"];
    let guest = |apf| ["scenario=seed", "source=host", "seed=4", apf];

    let off = boot(&host("mode=off"), &guest("apf=off")).succeeded();
    let r = off.result();
    assert_eq!(r["pages_verified"], pages);
    assert_eq!(r["apf"]["state"], "off");
    assert_eq!(r["apf"]["not_present"], 0);

    let on = boot(&host("mode=apf"), &guest("apf=on")).succeeded();
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
    assert_eq!(on.number("el2: STATS", "not_present"), pages);
    assert_eq!(on.number("el2: STATS", "page_ready"), pages + 1);
    assert_eq!(on.number("el2: STATS", "sync_faults"), 0);
}

#[test]
fn apf_on_without_the_host_offering_it_exits_5() {
    let b = boot(&["mode=off"], &["scenario=cpu", "cpu=1000", "apf=on"]);
    assert_eq!(b.status, Some(5), "{}", b.stdout);
    assert!(
        b.line("kernel: apf=on").contains("KVM_FEATURES bit 2"),
        "{}",
        b.stdout
    );
}

/// `runner run --vmm el2` starts the same pair: the runner's exit status is the guest's.
#[test]
fn runner_vmm_el2_with_async_pf() {
    let b = runner_el2(
        &["--latency", "200us", "--seed", "6", "--apf", "el2"],
        &["scenario=mem", "source=host", "seed=6", "pages=32"],
    )
    .succeeded();
    let r = b.result();
    assert_eq!(r["pages_verified"], 32);
    assert_eq!(r["apf"]["not_present"], 32);
    assert_eq!(b.number("el2: STATS", "not_present"), 32);
}

/// `apf-test=bad-area` on arm64: an ENABLE whose control block is not RAM, which the host
/// refuses; the real enable follows.
#[test]
fn the_host_refuses_a_control_block_outside_ram() {
    let b = boot(
        &["mode=apf"],
        &["scenario=cpu", "cpu=1000", "apf=on", "apf-test=bad-area"],
    )
    .succeeded();
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
        let b = runner_el2(
            &[
                "--latency",
                "fixed:2ms",
                "--seed",
                "3",
                "--apf",
                "el2",
                "--inject",
                inject,
            ],
            &[
                "scenario=mlp:4",
                "source=host",
                "seed=3",
                "pages=32",
                "apf-watchdog=50",
            ],
        );
        assert_eq!(b.status, Some(0), "{inject}: {}", b.stdout);
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
