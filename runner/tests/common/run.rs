//! `runner run` of a guest kernel, to its end.

use std::path::Path;
use std::process::Output;

use super::build::runner;

/// Runs `runner run <options> --kernel <kernel> -- <guest>` and returns what it printed and
/// how it ended.
pub fn runner_run(options: &[&str], kernel: &Path, guest: &[&str]) -> Output {
    runner()
        .arg("run")
        .args(options)
        .arg("--kernel")
        .arg(kernel)
        .arg("--")
        .args(guest)
        .output()
        .expect("runner runs")
}
