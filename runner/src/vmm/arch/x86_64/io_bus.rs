//! Routes the guest's port and MMIO accesses to the device models: COM1, the exit port and
//! the virtio-mmio network card.
//! Everything else reads as all-ones and ignores writes (an empty PC bus), and is counted.

use std::sync::{Arc, MutexGuard, PoisonError};

use super::exit_port;
use super::serial::{self, Com1};
use crate::vmm::unhandled_io::{Access, UnhandledIo};
use crate::vmm::virtio_net::{NetDevice, SharedDevice, Tap};
use crate::vmm::{NET_MMIO_BASE, NET_MMIO_SIZE};

/// What an empty bus returns.
const FLOATING_BUS: u8 = 0xff;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Serial(#[from] serial::Error),
    #[error(transparent)]
    ExitPort(#[from] exit_port::Error),
}

/// What the vCPU does after a write.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterWrite {
    Resume,
    /// The guest wrote its exit status.
    GuestExit(u8),
}

pub struct IoBus {
    com1: Com1,
    net: Option<SharedDevice>,
    unhandled: UnhandledIo,
}

impl IoBus {
    pub fn new(com1: Com1, net: Option<SharedDevice>) -> Self {
        IoBus {
            com1,
            net,
            unhandled: UnhandledIo::default(),
        }
    }

    pub fn unhandled(&self) -> &UnhandledIo {
        &self.unhandled
    }

    /// The UART's registers are a byte wide, so a longer access (`rep insb`) is a series of
    /// byte accesses to the same register.
    pub fn port_read(&mut self, port: u16, data: &mut [u8]) {
        match Com1::register(port) {
            Some(register) => data.fill_with(|| self.com1.read(register)),
            None => {
                data.fill(FLOATING_BUS);
                self.unhandled.record(Access::PortRead(port));
            }
        }
    }

    pub fn port_write(&mut self, port: u16, data: &[u8]) -> Result<AfterWrite, Error> {
        if port == exit_port::PORT {
            return Ok(AfterWrite::GuestExit(exit_port::decode(data)?));
        }
        match Com1::register(port) {
            Some(register) => {
                for &byte in data {
                    self.com1.write(register, byte)?;
                }
            }
            None => self.unhandled.record(Access::PortWrite(port)),
        }
        Ok(AfterWrite::Resume)
    }

    /// Only the network card is memory-mapped here (the LAPIC and IOAPIC are in KVM).
    pub fn mmio_read(&mut self, address: u64, data: &mut [u8]) {
        match self.net_offset(address) {
            Some((net, offset)) => lock(net).mmio_read(offset, data),
            None => {
                data.fill(FLOATING_BUS);
                self.unhandled.record(Access::MmioRead(address));
            }
        }
    }

    pub fn mmio_write(&mut self, address: u64, data: &[u8]) {
        match self.net_offset(address) {
            Some((net, offset)) => lock(net).mmio_write(offset, data),
            None => self.unhandled.record(Access::MmioWrite(address)),
        }
    }

    /// The card and the offset into its page, if `address` is in it.
    fn net_offset(&self, address: u64) -> Option<(&SharedDevice, u64)> {
        let offset = address.checked_sub(NET_MMIO_BASE)?;
        self.net
            .as_ref()
            .filter(|_| offset < NET_MMIO_SIZE)
            .map(|net| (net, offset))
    }
}

fn lock(net: &SharedDevice) -> MutexGuard<'_, NetDevice<Arc<Tap>>> {
    net.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::ConsoleSink;

    /// Line status register: transmitter holding register and transmitter empty.
    const LSR_IDLE: u8 = 0x60;
    const COM1_LSR: u16 = 0x3fd;

    fn bus() -> IoBus {
        IoBus::new(Com1::new(ConsoleSink::default()).expect("uart"), None)
    }

    #[test]
    fn exit_port_write_ends_the_guest() {
        let mut bus = bus();
        assert_eq!(
            bus.port_write(exit_port::PORT, &[7, 0, 0, 0])
                .expect("write"),
            AfterWrite::GuestExit(7)
        );
        assert!(matches!(
            bus.port_write(exit_port::PORT, &[1, 2, 3]),
            Err(Error::ExitPort(exit_port::Error::Width(3)))
        ));
    }

    #[test]
    fn com1_registers_reach_the_uart() {
        let mut bus = bus();
        let mut lsr = [0u8; 1];
        bus.port_read(COM1_LSR, &mut lsr);
        assert_eq!(lsr, [LSR_IDLE]);
        assert_eq!(bus.unhandled().to_string(), "no unhandled I/O");
    }

    #[test]
    fn unknown_ports_float_and_are_counted() {
        let mut bus = bus();
        let mut data = [0u8; 2];
        bus.port_read(0x92, &mut data);
        assert_eq!(data, [0xff, 0xff]);
        assert_eq!(
            bus.port_write(0x80, &[1]).expect("write"),
            AfterWrite::Resume
        );
        let mut mmio = [0u8; 4];
        bus.mmio_read(0xfec0_0000, &mut mmio);
        assert_eq!(mmio, [0xff; 4]);
        bus.mmio_write(0xfec0_0010, &[0; 4]);
        assert_eq!(
            bus.unhandled().to_string(),
            "4 unhandled I/O accesses: port 0x92 read x1, port 0x80 write x1, \
             MMIO 0xfec00000 read x1, MMIO 0xfec00010 write x1"
        );
    }
}
