//! The builtin VMM's x86_64 part: PVH boot, CPU state, and the PC devices the guest uses.

mod cpuid;
pub mod exit_port;
mod gdt;
mod io_bus;
mod kernel;
mod layout;
mod pvh;
mod regs;
mod serial;
mod user_apf;
mod user_apf_caps;
mod vcpu;
mod vm;

pub use kernel::{Error as KernelError, validate as validate_kernel};
pub use user_apf::UserApfStats;
pub use vcpu::{Error as VcpuError, Vcpu};
pub use vm::{Error as VmError, Vm};
