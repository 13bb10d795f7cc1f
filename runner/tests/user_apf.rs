//! Async page faults delivered by our VMM (`--apf vmm` and `adaptive`) to the real guest:
//! the counts on both sides of the protocol must agree, every page must verify, and faults
//! the policy or the guest's state rules out must stay synchronous.

mod common;
#[path = "support/guest_run.rs"]
mod guest_run;

use guest_run::{GuestRun, run_guest};
use serde_json::Value;

const PAGES: u64 = 32;
const SEED: &str = "11";

/// The seed scenario over `PAGES` lazy pages at `latency`, with the runner options `apf`.
fn seed_run(latency: &str, apf: &[&str]) -> GuestRun {
    let pages = format!("pages={PAGES}");
    let options = [&["--latency", latency, "--seed", SEED][..], apf].concat();
    run_guest(
        &options,
        &[
            "scenario=seed",
            "source=host",
            "seed=11",
            "cpu=3000000",
            &pages,
        ],
    )
    .succeeded()
}

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

#[test]
fn in_vmm_mode_every_fault_is_async_and_both_sides_count_the_same() {
    let run = seed_run("fixed:4ms", &["--apf", "vmm"]);
    let (r, host) = (run.result(), &run.report["user_apf"]);
    let guest = &r["apf"];
    assert_eq!(r["pages_verified"], PAGES, "{r}");
    assert_eq!(u(&host["faults"]), PAGES, "{host}");
    assert_eq!(u(&host["injected"]), PAGES, "{host}");
    assert_eq!(u(&host["synchronous"]), 0, "{host}");
    assert_eq!(
        u(&guest["not_present"]),
        u(&host["injected"]),
        "{guest} {host}"
    );
    // One broadcast for enabling, then one page-ready per fault, each acknowledged.
    assert_eq!(u(&host["broadcasts"]), 1, "{host}");
    assert_eq!(u(&guest["broadcasts"]), 1, "{guest}");
    assert_eq!(u(&host["ready"]), PAGES + 1, "{host}");
    assert_eq!(u(&guest["ready"]), PAGES, "{guest}");
    assert_eq!(host["acks"], host["ready"], "{host}");
    assert_eq!(u(&guest["unknown_tokens"]), 0, "{guest}");
    assert_eq!(u(&host["refused_msr_writes"]), 0, "{host}");
    assert_eq!(u(&run.report["lazy"]["served_pages"]), PAGES);
}

#[test]
fn adaptive_keeps_fast_faults_synchronous_and_makes_slow_ones_async() {
    let fast = seed_run("fixed:20us", &["--apf", "adaptive"]);
    let host = &fast.report["user_apf"];
    assert_eq!(fast.result()["pages_verified"], PAGES);
    assert_eq!(u(&host["injected"]), 0, "{host}");
    assert_eq!(u(&host["sync"]["fast"]), PAGES, "{host}");
    assert_eq!(u(&fast.result()["apf"]["not_present"]), 0);

    let slow = seed_run(
        "fixed:4ms",
        &["--apf", "adaptive", "--async-threshold", "1ms"],
    );
    let host = &slow.report["user_apf"];
    assert_eq!(slow.result()["pages_verified"], PAGES);
    assert_eq!(u(&host["injected"]), PAGES, "{host}");
    assert_eq!(u(&host["sync"]["fast"]), 0, "{host}");
}

#[test]
fn readahead_fetches_the_next_pages_before_they_are_touched() {
    let run = run_guest(
        &[
            "--latency",
            "fixed:2ms",
            "--seed",
            SEED,
            "--fetchers",
            "4",
            "--readahead",
            "3",
            "--apf",
            "vmm",
        ],
        &[
            "scenario=mem",
            "source=host",
            "seed=11",
            "pages=32",
            "pattern=seq",
        ],
    )
    .succeeded();
    let (lazy, host) = (&run.report["lazy"], &run.report["user_apf"]);
    assert_eq!(run.result()["pages_verified"], 32);
    // With 4 fetchers, a fault brings its page and the next 3 at once: a sequential walk
    // faults on about every 4th page.
    assert!(u(&lazy["read_ahead"]) >= 16, "{lazy}");
    assert!(u(&host["faults"]) <= 16, "{host}");
    assert!(u(&lazy["served_pages"]) >= 32, "{lazy}");
}

#[test]
fn userspace_async_pf_without_lazy_memory_is_refused_before_booting() {
    for options in [
        &["--apf", "vmm"][..],
        &["--apf", "adaptive", "--vmm", "qemu"],
    ] {
        let run = run_guest(options, &["scenario=seed"]);
        assert_eq!(run.status, Some(125), "{options:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("needs the builtin VMM with --latency"),
            "{}",
            run.stderr
        );
        assert!(
            !run.stdout.contains("kernel:"),
            "no guest ran: {}",
            run.stdout
        );
    }
    let run = run_guest(
        &[
            "--latency",
            "1ms",
            "--apf",
            "vmm",
            "--async-threshold",
            "1ms",
        ],
        &["scenario=seed"],
    );
    assert!(
        run.stderr.contains("--async-threshold only applies"),
        "{}",
        run.stderr
    );
}
