//! Architecture glue; arch-neutral code calls `crate::arch::...`.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;
