//! The guest's registers as the EL2 vectors save them on every exit: the layout the
//! assembly in `arch/aarch64/vectors.rs` reads and writes, named here so that hypercalls
//! and SDEI delivery are plain Rust over it.

/// General-purpose registers `x0..x30`.
pub const GPRS: usize = 31;
/// SIMD/FP registers `q0..q31`: saved because the host's Rust code uses them too.
pub const VREGS: usize = 32;

/// A saved guest context. `repr(C)` with a fixed size: the vectors use the offsets below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct Frame {
    pub x: [u64; GPRS],
    /// `ELR_EL2`: where the guest resumes.
    pub elr: u64,
    /// `SPSR_EL2`: the guest's PSTATE.
    pub spsr: u64,
    pub fpsr: u64,
    pub fpcr: u64,
    _pad: u64,
    pub q: [u128; VREGS],
}

/// Offsets the assembly uses.
pub const OFFSET_ELR: usize = core::mem::offset_of!(Frame, elr);
pub const OFFSET_FPSR: usize = core::mem::offset_of!(Frame, fpsr);
pub const OFFSET_Q: usize = core::mem::offset_of!(Frame, q);
pub const SIZE: usize = core::mem::size_of::<Frame>();

const _: () = {
    assert!(OFFSET_ELR == 8 * GPRS);
    assert!(core::mem::offset_of!(Frame, spsr) == OFFSET_ELR + 8);
    assert!(core::mem::offset_of!(Frame, fpcr) == OFFSET_FPSR + 8);
    assert!(OFFSET_Q.is_multiple_of(16));
    assert!(SIZE.is_multiple_of(16));
};

impl Frame {
    /// A guest about to start at `entry` with `pstate` and all registers zero.
    pub const fn start(entry: u64, pstate: u64) -> Self {
        Self {
            x: [0; GPRS],
            elr: entry,
            spsr: pstate,
            fpsr: 0,
            fpcr: 0,
            _pad: 0,
            q: [0; VREGS],
        }
    }

    /// The SMCCC call in `x0..x5`.
    pub fn call_args(&self) -> [u64; 6] {
        [
            self.x[0], self.x[1], self.x[2], self.x[3], self.x[4], self.x[5],
        ]
    }

    /// Sets the SMCCC results `x0..x3`.
    pub fn set_results(&mut self, results: [u64; 4]) {
        self.x[..4].copy_from_slice(&results);
    }
}
