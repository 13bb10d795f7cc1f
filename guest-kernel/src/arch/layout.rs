//! Addresses the linker scripts (`<arch>/link.ld`) define; they split the image into
//! user-readable code and read-only data, and supervisor-only kernel data. Every arch's
//! script defines the same symbols.

use core::ops::Range;

// SAFETY: these symbols are defined by `link.ld`; only their addresses are used.
unsafe extern "C" {
    pub static __text_start: u8;
    pub static __text_end: u8;
    pub static __rodata_start: u8;
    pub static __rodata_end: u8;
    pub static __kdata_start: u8;
    pub static __bss_start: u8;
    pub static __bss_end: u8;
    pub static __kernel_end: u8;
}

fn addr(symbol: &u8) -> u64 {
    symbol as *const u8 as u64
}

/// Code shared by the kernel and ring-3 tasks.
pub fn text() -> Range<u64> {
    // SAFETY: only the addresses of linker symbols are taken.
    unsafe { addr(&__text_start)..addr(&__text_end) }
}

/// Read-only data, also readable by tasks (string constants of shared code).
pub fn rodata() -> Range<u64> {
    // SAFETY: only the addresses of linker symbols are taken.
    unsafe { addr(&__rodata_start)..addr(&__rodata_end) }
}

/// Kernel data and .bss: supervisor-only.
pub fn kernel_data() -> Range<u64> {
    // SAFETY: only the addresses of linker symbols are taken.
    unsafe { addr(&__kdata_start)..addr(&__kernel_end) }
}

/// Kernel image ranges (code, read-only data, data + .bss).
pub fn image() -> (Range<u64>, Range<u64>, Range<u64>) {
    (text(), rodata(), kernel_data())
}
