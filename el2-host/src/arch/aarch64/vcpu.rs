//! The EL2 controls that make EL1 a guest (Arm ARM register descriptions
//! of `HCR_EL2` and `CNTHCTL_EL2`), and the guest's initial PSTATE.

use super::sysreg::{isb, read_sysreg, write_sysreg};

/// `HCR_EL2.VM` (bit 0): stage-2 translation on.
const HCR_VM: u64 = 1 << 0;
/// `HCR_EL2.FMO`/`IMO`/`AMO` (bits 3-5): physical FIQ, IRQ and SError go to EL2, and the
/// guest's `ICC_*` accesses reach the virtual CPU interface.
const HCR_FMO: u64 = 1 << 3;
const HCR_IMO: u64 = 1 << 4;
const HCR_AMO: u64 = 1 << 5;
/// `HCR_EL2.TSC` (bit 19): the guest's `smc` traps to EL2 (PSCI through the SMC conduit).
const HCR_TSC: u64 = 1 << 19;
/// `HCR_EL2.RW` (bit 31): EL1 is AArch64.
const HCR_RW: u64 = 1 << 31;
/// The guest's `HCR_EL2`. `DC` stays clear: the guest owns its stage 1 (with its MMU off
/// its accesses are Device memory, so it must not do unaligned accesses until it turns the
/// MMU on).
const HCR_GUEST: u64 = HCR_VM | HCR_FMO | HCR_IMO | HCR_AMO | HCR_TSC | HCR_RW;

/// `CNTHCTL_EL2.EL1PCTEN`/`EL1PCEN` (bits 0-1, E2H = 0): the guest may read the physical
/// counter and use the EL1 physical timer; the virtual ones are always available
/// (`CNTVOFF_EL2` = 0 makes both counters equal).
const CNTHCTL_EL1_PHYSICAL: u64 = 0b11;

/// `SCTLR_EL1` at guest entry: the RES1 bits (29:28, 23:22, 20, 11) with the MMU, caches and
/// alignment checks off, as a boot loader leaves it (Linux arm64 boot protocol).
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// `SPSR_EL2` to enter EL1 using `SP_EL1` (`M[3:0]` = EL1h) with D, A, I and F masked.
pub const PSTATE_EL1H_MASKED: u64 = 0x3c5;

/// Configures EL2 to run the guest (called once, before entering it).
pub fn configure() {
    write_sysreg!("vpidr_el2", read_sysreg!("midr_el1"));
    write_sysreg!("vmpidr_el2", read_sysreg!("mpidr_el1"));
    write_sysreg!("cnthctl_el2", CNTHCTL_EL1_PHYSICAL);
    write_sysreg!("cntvoff_el2", 0);
    write_sysreg!("hstr_el2", 0);
    write_sysreg!("sctlr_el1", SCTLR_EL1_RESET);
    write_sysreg!("hcr_el2", HCR_GUEST);
    isb();
}

/// Sets the guest's `ELR_EL1` and `SPSR_EL1`: an SDEI `COMPLETE_AND_RESUME` makes the
/// resumed context look like an exception taken from the interrupted one.
pub fn set_exception_return(elr: u64, spsr: u64) {
    write_sysreg!("elr_el1", elr);
    write_sysreg!("spsr_el1", spsr);
}
