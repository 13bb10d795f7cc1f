//! More tasks waiting on slow pages than the guest's async PF waiter table holds (64), for
//! the binaries that include `support/guest_run.rs` (included with `#[path]` beside it).

use crate::guest_run::{GuestRun, run_guest};

/// 96 memory tasks over 2 pages each at 200 ms a page, 64 fetchers, `--apf vmm` and then
/// `options`: up to 96 faults at once, more than the host's cap of 64 outstanding unless an
/// injection lifts it.
pub fn crowd_run(seed: &str, options: &[&str]) -> GuestRun {
    let seed_word = format!("seed={seed}");
    let crowd = [
        "--mem",
        "512M",
        "--latency",
        "fixed:200ms",
        "--fetchers",
        "64",
        "--seed",
        seed,
        "--apf",
        "vmm",
    ];
    run_guest(
        &[&crowd[..], options].concat(),
        &["scenario=mlp:96", "source=host", &seed_word, "pages=2"],
    )
}
