//! COM1, the guest console: a 16550 UART model (vm-superio) whose output goes to the console
//! sink. The guest polls the line status register; the interrupt line is wired anyway
//! (irqfd on GSI 4), so a guest that enables UART interrupts gets them.

use std::io;

use kvm_ioctls::VmFd;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::console::ConsoleSink;

/// COM1's I/O ports: eight byte-wide registers from 0x3f8.
const COM1_BASE: u16 = 0x3f8;
const COM1_REGISTERS: u16 = 8;
/// COM1's ISA interrupt, routed by the in-kernel PIC and IOAPIC.
const COM1_GSI: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the COM1 interrupt eventfd")]
    EventFd(#[source] io::Error),
    #[error("cannot connect COM1 to GSI {COM1_GSI}")]
    Irqfd(#[source] kvm_ioctls::Error),
    #[error("cannot write the guest console")]
    Output(#[source] vm_superio::serial::Error<io::Error>),
}

/// Raises the UART's interrupt through an irqfd.
struct IrqLine(EventFd);

impl Trigger for IrqLine {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

pub struct Com1 {
    uart: Serial<IrqLine, vm_superio::serial::NoEvents, ConsoleSink>,
}

impl Com1 {
    pub fn new(console: ConsoleSink) -> Result<Self, Error> {
        let irq = EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?;
        Ok(Com1 {
            uart: Serial::new(IrqLine(irq), console),
        })
    }

    /// Connects the UART's interrupt to the VM's interrupt controllers.
    pub fn connect_irq(&self, vm: &VmFd) -> Result<(), Error> {
        vm.register_irqfd(&self.uart.interrupt_evt().0, COM1_GSI)
            .map_err(Error::Irqfd)
    }

    /// The register offset of `port`, if it belongs to COM1.
    pub fn register(port: u16) -> Option<u8> {
        let offset = port.checked_sub(COM1_BASE)?;
        (offset < COM1_REGISTERS).then(|| u8::try_from(offset).expect("offset below 8"))
    }

    pub fn read(&mut self, register: u8) -> u8 {
        self.uart.read(register)
    }

    pub fn write(&mut self, register: u8, value: u8) -> Result<(), Error> {
        self.uart.write(register, value).map_err(Error::Output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn com1_decodes_eight_ports() {
        assert_eq!(Com1::register(0x3f7), None);
        assert_eq!(Com1::register(0x3f8), Some(0));
        assert_eq!(Com1::register(0x3fd), Some(5));
        assert_eq!(Com1::register(0x3ff), Some(7));
        assert_eq!(Com1::register(0x400), None);
        assert_eq!(Com1::register(0), None);
    }
}
