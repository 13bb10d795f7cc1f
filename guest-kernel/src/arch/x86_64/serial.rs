//! COM1 console.
//!
//! `uart_16550` configures the UART (and enables its FIFOs); writing uses the FIFO the way
//! the hardware allows: wait until the transmit FIFO is empty, then fill all 16 bytes with
//! one `rep outsb`. Polling per character cost ~93 us each on our KVM (two exits plus the
//! emulated driver code); this is one emulated string instruction per 16 characters.
//! Receiving is polled too: the host's bytes only release `hold=console`'s waits.

use core::arch::asm;
use core::fmt;
use uart_16550::backend::PioBackend;
use uart_16550::spec::{FIFO_SIZE, registers::LSR};
use uart_16550::{Config, Uart16550};

const COM1: u16 = 0x3F8;
/// Transmit holding register: offset 0 from the base.
const THR: u16 = COM1;

/// The console device.
pub struct Serial(Uart16550<PioBackend>);

impl Serial {
    /// Initialises COM1 (FIFOs on); `None` if no UART answers there.
    pub fn new() -> Option<Self> {
        // SAFETY: COM1 is the standard PC serial port and nothing else drives it.
        let mut uart = unsafe { Uart16550::new_port(COM1) }.ok()?;
        uart.init(Config::default()).ok()?;
        Some(Self(uart))
    }

    /// Takes the next received byte, if there is one: an LSR read (data ready), and the
    /// RBR read that takes the byte only when one is there.
    pub fn try_receive(&mut self) -> Option<u8> {
        self.0.try_receive_byte().ok()
    }
}

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(FIFO_SIZE) {
            while !self.0.lsr().contains(LSR::THR_EMPTY) {}
            // SAFETY: the transmit FIFO is empty and has room for the whole chunk; `rep
            // outsb` reads `chunk` and writes each byte to the THR.
            unsafe {
                asm!(
                    "rep outsb",
                    in("dx") THR,
                    inout("rsi") chunk.as_ptr() => _,
                    inout("rcx") chunk.len() => _,
                    options(nostack, readonly),
                );
            }
        }
        Ok(())
    }
}
