//! What aarch64 keeps per CPU beside its kernel state: nothing. Its traps find the CPU by
//! TPIDR_EL1 (`smp::cpu_index`), its idle stacks are the vectors' (`trap`), and async PF is
//! the boot CPU's alone (see `arch::aarch64`).

pub struct CpuLocal;

impl CpuLocal {
    pub const fn new() -> Self {
        Self
    }
}
