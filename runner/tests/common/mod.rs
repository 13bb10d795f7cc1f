//! Helpers shared by the integration tests: the runner binary and the real guest kernel.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runner"))
}

/// The guest ELF, built once per test binary with `runner build-guest`.
pub fn guest_elf() -> &'static PathBuf {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| {
        let out = runner().arg("build-guest").output().expect("runner runs");
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
