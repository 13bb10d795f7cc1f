//! Architecture-specific VMM code. Only x86_64 hosts are supported so far; an aarch64 module
//! with the same interface (`Vm`, `Vcpu`, `validate_kernel`) can sit beside it.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the builtin VMM supports x86_64 hosts only so far");
