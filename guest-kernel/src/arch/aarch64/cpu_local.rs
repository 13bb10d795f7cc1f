//! What aarch64 keeps per CPU beside its kernel state: nothing yet (its async PF control
//! block and vectors are per boot, one CPU).

pub struct CpuLocal;

impl CpuLocal {
    pub const fn new() -> Self {
        Self
    }
}
