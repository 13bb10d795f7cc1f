//! The PL011 UART of QEMU `virt` (PrimeCell UART PL011 TRM, DDI 0183): transmit only. Host
//! and guest share it (stage 2 maps it for the guest), so each prefixes its lines (`el2: `,
//! `guest: `) to tell them apart.

use crate::memory_map::UART;
use core::fmt;

/// `UARTDR`: data register.
const DR: u64 = 0x000;
/// `UARTFR`: flag register; bit 5 `TXFF`, transmit FIFO full.
const FR: u64 = 0x018;
const FR_TXFF: u32 = 1 << 5;
/// `UARTCR`: control register; `UARTEN` (bit 0), `TXE` (bit 8), `RXE` (bit 9). QEMU starts
/// a bare-metal image with the UART disabled.
const CR: u64 = 0x030;
const CR_ENABLE: u32 = (1 << 0) | (1 << 8) | (1 << 9);

fn register(offset: u64) -> *mut u32 {
    (UART.start + offset) as *mut u32
}

/// Turns the UART on.
pub fn init() {
    // SAFETY: the PL011's control register, identity-mapped device memory (the host's MMU
    // is off, and so is the test payload's) that no Rust object aliases.
    unsafe { register(CR).write_volatile(CR_ENABLE) };
}

fn put(byte: u8) {
    // SAFETY: as in `init`: the PL011's flag and data registers.
    unsafe {
        while register(FR).read_volatile() & FR_TXFF != 0 {}
        register(DR).write_volatile(u32::from(byte));
    }
}

/// The console as a `fmt::Write` sink.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            put(byte);
        }
        Ok(())
    }
}
