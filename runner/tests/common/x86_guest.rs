//! The x86_64 guest kernel.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The guest ELF, built once per test binary with `runner build-guest`.
pub fn guest_elf() -> &'static PathBuf {
    static ELF: OnceLock<PathBuf> = OnceLock::new();
    ELF.get_or_init(|| super::build::build_guest(&[]))
}
