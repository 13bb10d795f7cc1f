//! Hardware-specific code; the host only exists for AArch64.

pub mod aarch64;
