//! The aarch64 guest kernel, which runs on bare QEMU and under the arm64 EL2 host.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The aarch64 guest ELF, built once per test binary with `runner build-guest --arch aarch64`.
pub fn guest_elf() -> &'static PathBuf {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| super::build::build_guest(&["--arch", "aarch64"]))
}
