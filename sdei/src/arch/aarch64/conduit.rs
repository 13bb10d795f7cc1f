//! The two SMCCC conduits: `hvc` to the hypervisor (the conduit KVM guests use for PSCI, SDEI
//! and KVM's vendor calls) and `smc` to the secure monitor (firmware SDEI on bare metal).

use crate::smccc::Conduit;
use core::arch::asm;

/// One SMCCC call through `$instruction` (`hvc #0` or `smc #0`; SMCCC ignores the immediate
/// and requires 0).
macro_rules! smccc_call {
    ($instruction:literal, $args:expr) => {{
        let [mut x0, mut x1, mut x2, mut x3, x4, x5] = $args;
        // SAFETY: the instruction traps to the hypervisor or the secure monitor, which
        // implements SMCCC: it reads x0..x5, writes results to x0..x3 and resumes at the next
        // instruction. SMCCC 1.1 preserves x4..x17, but SMCCC 1.0 and hand-written hosts may
        // not, so x4..x17 are declared clobbered. Memory is not `nomem`: calls such as the
        // APF enable make the host write guest memory. The stack is not touched.
        unsafe {
            asm!(
                $instruction,
                inout("x0") x0,
                inout("x1") x1,
                inout("x2") x2,
                inout("x3") x3,
                inout("x4") x4 => _,
                inout("x5") x5 => _,
                out("x6") _,
                out("x7") _,
                out("x8") _,
                out("x9") _,
                out("x10") _,
                out("x11") _,
                out("x12") _,
                out("x13") _,
                out("x14") _,
                out("x15") _,
                out("x16") _,
                out("x17") _,
                options(nostack),
            );
        }
        [x0, x1, x2, x3]
    }};
}

/// Makes SMCCC calls with `hvc #0`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hvc;

impl Conduit for Hvc {
    fn call(&self, args: [u64; 6]) -> [u64; 4] {
        smccc_call!("hvc #0", args)
    }
}

/// Makes SMCCC calls with `smc #0`: the conduit when SDEI is firmware's, not a hypervisor's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Smc;

impl Conduit for Smc {
    fn call(&self, args: [u64; 6]) -> [u64; 4] {
        smccc_call!("smc #0", args)
    }
}
