//! Architecture glue; arch-neutral code calls `crate::arch::...`.
//!
//! Each arch module offers the same items (listed in `aarch64/mod.rs`); what every arch
//! shares (the image layout from the linker script, stacks, the boot-time translation-table
//! pool and the [`Regions`] it maps) lives here.

mod boot_tables;
mod layout;
mod stack;

pub use boot_tables::Regions;
pub use layout::image;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use self::aarch64::*;
