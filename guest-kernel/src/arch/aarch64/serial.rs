//! The PL011 UART of `virt` (Arm DDI 0183), polled: the console, and the host's bytes that
//! release `hold=console`'s waits.

use super::platform::UART_BASE;
use core::fmt;
use core::ptr::NonNull;
use volatile::VolatilePtr;

/// Data register: a write sends a byte, a read takes a received one (bits 7:0; the bits
/// above are its error flags).
const UARTDR: u64 = 0x000;
/// Flag register; RXFE (bit 4): nothing received; TXFF (bit 5): the transmit FIFO is full.
const UARTFR: u64 = 0x018;
const UARTFR_RXFE: u32 = 1 << 4;
const UARTFR_TXFF: u32 = 1 << 5;
/// Control register: UARTEN (bit 0), TXE (bit 8), RXE (bit 9).
const UARTCR: u64 = 0x030;
const UARTCR_ENABLE: u32 = (1 << 9) | (1 << 8) | 1;
/// UARTPeriphID0: the low byte of the PL011's part number, 0x011.
const UARTPERIPHID0: u64 = 0xFE0;
const PL011_PART_LOW: u32 = 0x11;

/// The console device.
pub struct Serial(());

fn register(offset: u64) -> VolatilePtr<'static, u32> {
    let ptr = NonNull::new((UART_BASE + offset) as *mut u32).expect("the UART is not at 0");
    // SAFETY: a PL011 register of the virt machine, device-mapped for EL1 and 4-byte aligned;
    // only the console (behind its lock) uses the UART.
    unsafe { VolatilePtr::new(ptr) }
}

impl Serial {
    /// Enables the UART; `None` if no PL011 answers at its address.
    pub fn new() -> Option<Self> {
        if register(UARTPERIPHID0).read() != PL011_PART_LOW {
            return None;
        }
        register(UARTCR).write(UARTCR_ENABLE);
        Some(Self(()))
    }

    /// Takes the next received byte, if there is one: a flag-register read, and the data
    /// register read only when a byte is there.
    pub fn try_receive(&mut self) -> Option<u8> {
        if register(UARTFR).read() & UARTFR_RXFE != 0 {
            return None;
        }
        Some(register(UARTDR).read() as u8)
    }
}

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            while register(UARTFR).read() & UARTFR_TXFF != 0 {
                core::hint::spin_loop();
            }
            register(UARTDR).write(u32::from(byte));
        }
        Ok(())
    }
}
