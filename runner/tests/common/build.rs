//! The runner binary, and guest ELFs built with it.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The runner binary Cargo built for the integration tests.
pub fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runner"))
}

/// Builds a guest with `runner build-guest <args>` and returns the ELF it printed the path of.
/// Slow even when up to date (it runs cargo): call it once per test binary and architecture.
pub fn build_guest(args: &[&str]) -> PathBuf {
    let out = runner()
        .arg("build-guest")
        .args(args)
        .output()
        .expect("runner runs");
    assert_built(&out, "build-guest");
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(path.is_file(), "{path:?} is not a file");
    path
}

/// Asserts that the build command `what` succeeded, showing its stderr if not.
pub fn assert_built(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
