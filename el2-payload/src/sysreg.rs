//! System register access by name.

/// `sysreg!(read "name")` / `sysreg!(write "name", value)`; writes are followed by `isb`.
macro_rules! sysreg {
    (read $name:literal) => {{
        let value: u64;
        // SAFETY: reads a GIC CPU interface, timer or exception register; no memory effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack)) };
        value
    }};
    (write $name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: programs the payload's own GIC CPU interface or timer; `isb` makes it
        // effective.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) value, options(nostack)) };
    }};
}

pub(crate) use sysreg;
