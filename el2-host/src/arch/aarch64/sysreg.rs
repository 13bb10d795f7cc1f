//! System register access by name (`mrs`/`msr`), and the barriers around it.

/// Reads a system register: `read_sysreg!("hpfar_el2")`.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading a system register has no memory effects; the registers read by
        // the host are all readable at EL2.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack, preserves_flags))
        };
        value
    }};
}

/// Writes a system register: `write_sysreg!("vttbr_el2", value)`. Callers add the `isb`
/// (see [`isb`]) where the new value must take effect before the next instruction.
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: the host owns EL2 and the guest's EL1 context; each call site writes a
        // value that is valid for its register (see the constants it is built from).
        unsafe {
            core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nostack, preserves_flags))
        };
    }};
}

pub(crate) use {read_sysreg, write_sysreg};

/// Instruction synchronisation barrier: later instructions see earlier system register
/// writes (Arm ARM, "Synchronization requirements" for system registers).
pub fn isb() {
    // SAFETY: a barrier has no effect besides ordering.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
}

/// `CurrentEL.EL`, bits 3:2.
const CURRENT_EL_SHIFT: u32 = 2;
const CURRENT_EL_MASK: u64 = 0b11;

/// The exception level the host runs at (QEMU starts `-kernel` images at EL2 with
/// `virtualization=on`).
pub fn current_el() -> u64 {
    (read_sysreg!("CurrentEL") >> CURRENT_EL_SHIFT) & CURRENT_EL_MASK
}
