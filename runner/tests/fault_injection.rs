//! A faulty host on purpose (`--inject`): whatever our VMM's async PF host does wrong, the
//! real guest must finish every task with every page verified, and say what it saw.

mod common;
#[path = "common/crowd.rs"]
mod crowd;
#[path = "support/guest_run.rs"]
mod guest_run;

use crowd::crowd_run;
use guest_run::{GuestRun, run_guest};
use serde_json::Value;

/// Four memory tasks over 32 pages each at 2 ms, four fetchers: up to 4 faults in flight,
/// 128 faults, enough for every injection's rate (the rarest applies once in 32 events).
const TASKS: u64 = 4;
const PAGES: u64 = 32;

fn mlp_run(inject: &str, apf: &str) -> GuestRun {
    mlp_run_with(&["--apf", apf, "--inject", inject], &[])
}

/// The mlp run with further runner `options` and `guest` command-line words.
fn mlp_run_with(options: &[&str], guest: &[&str]) -> GuestRun {
    let pages = format!("pages={PAGES}");
    let common = ["--latency", "fixed:2ms", "--fetchers", "4", "--seed", "3"];
    let words = ["scenario=mlp:4", "source=host", "seed=3", &pages];
    run_guest(
        &[&common[..], options].concat(),
        &[&words[..], guest].concat(),
    )
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// Every task finished (status 0), every page it touched verified, and `inject` was applied.
fn assert_survived(run: GuestRun, inject: &str) -> Value {
    let run = run.succeeded();
    let r = run.result();
    assert!(count(&r["pages_touched"]) > 0, "{inject}: {r}");
    assert_eq!(r["pages_verified"], r["pages_touched"], "{inject}: {r}");
    for task in r["tasks"].as_array().unwrap() {
        assert_eq!(task["status"], 0, "{inject}: {task}");
    }
    let host = &run.report["user_apf"];
    assert!(
        count(&host["injected_faults"][inject]) > 0,
        "{inject} was never applied: {host}"
    );
    r
}

#[test]
fn the_guest_survives_every_misbehaviour_that_needs_no_retry() {
    for inject in [
        "duplicate-ready",
        "unknown-token",
        "reorder",
        "wake-all",
        "disable-reenable",
    ] {
        let run = mlp_run(inject, "vmm");
        let r = assert_survived(run, inject);
        assert_eq!(count(&r["pages_verified"]), TASKS * PAGES, "{inject}: {r}");
        let apf = &r["apf"];
        match inject {
            "wake-all" | "disable-reenable" => {
                assert!(count(&apf["broadcasts"]) > 1, "{inject}: {apf}")
            }
            _ => {}
        }
    }
}

/// A dropped page-ready would strand its task until the run times out; the guest's
/// watchdog retries it (the task re-touches its page, present by then) instead.
#[test]
fn the_watchdog_retries_every_task_whose_page_ready_was_dropped() {
    let run = mlp_run_with(
        &["--apf", "vmm", "--inject", "drop-ready"],
        &["apf-watchdog=20"],
    );
    let dropped = count(&run.report["user_apf"]["injected_faults"]["drop-ready"]);
    let r = assert_survived(run, "drop-ready");
    let apf = &r["apf"];
    assert_eq!(count(&apf["watchdog_ms"]), 20, "{apf}");
    assert!(
        count(&apf["watchdog_retries"]) >= dropped,
        "{dropped} dropped: {apf}"
    );
}

/// With every page-ready delivered, nobody waits anywhere near the default timeout.
#[test]
fn without_lost_page_ready_the_watchdog_never_fires() {
    let run = mlp_run_with(&["--apf", "vmm"], &[]).succeeded();
    let r = run.result();
    assert_eq!(count(&r["pages_verified"]), TASKS * PAGES, "{r}");
    let apf = &r["apf"];
    assert_eq!(count(&apf["watchdog_ms"]), 1_000, "{apf}");
    assert_eq!(count(&apf["watchdog_retries"]), 0, "{apf}");
}

/// With the host's cap of 64 outstanding faults lifted and 96 tasks waiting on slow pages,
/// the guest's waiter table fills: tasks it cannot park retry (and re-fault) until a slot
/// frees, and the page-readies of those retries' tokens arrive for nobody.
#[test]
fn overflowing_the_waiter_table_never_parks_and_every_task_finishes() {
    let run = crowd_run("3", &["--inject", "overflow"]);
    let r = assert_survived(run, "overflow");
    let apf = &r["apf"];
    assert_eq!(count(&r["pages_verified"]), 96 * 2, "{r}");
    assert!(count(&apf["full"]) > 0, "the table never filled: {apf}");
    assert_eq!(count(&apf["max_parked"]), 64, "{apf}");
}

/// A spike outlasts a short watchdog: the task retries under a new token, and the old
/// token's page-ready, when it comes, finds nobody. The guest reports each one as unclaimed.
#[test]
fn every_retry_leaves_its_late_page_ready_unclaimed_and_reported() {
    let run = mlp_run_with(
        &["--apf", "vmm", "--inject", "spikes"],
        &["apf-watchdog=50"],
    )
    .succeeded();
    let r = run.result();
    assert_eq!(count(&r["pages_verified"]), TASKS * PAGES, "{r}");
    let apf = &r["apf"];
    let retries = count(&apf["watchdog_retries"]);
    assert!(retries > 0, "200 ms spikes outlast a 50 ms watchdog: {apf}");
    assert_eq!(count(&apf["unclaimed"]), retries, "{apf}");
    assert_eq!(count(&apf["unknown_tokens"]), 0, "none evicted: {apf}");
}

#[test]
fn spikes_slow_some_fetches_in_any_mode() {
    let run = mlp_run("spikes", "kvm").succeeded();
    let r = run.result();
    assert_eq!(count(&r["pages_verified"]), TASKS * PAGES, "{r}");
    let spikes = count(&run.report["lazy"]["spikes"]);
    // One in 16 of the 128 fetches.
    assert_eq!(spikes, TASKS * PAGES / 16, "{}", run.report);
}

#[test]
fn injecting_without_our_vmms_host_is_refused() {
    let run = mlp_run("drop-ready", "kvm");
    assert_eq!(run.status, Some(125), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("--inject drop-ready needs --apf vmm, adaptive or el2"),
        "{}",
        run.stderr
    );
    let run = mlp_run("lost-ready", "vmm");
    assert_eq!(run.status, Some(2), "{}", run.stderr);
}
