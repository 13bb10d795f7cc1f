//! The card itself: the register file, the queues' processing and the interrupt, behind the
//! one mutex the vCPU threads and the receive thread share.

use virtio_queue::QueueT;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::mmio::{
    INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER, RX_QUEUE, Registers, TX_QUEUE, WriteEffect,
};
use super::queues::{read_frame, write_frame};
use super::stats::NetStats;
use super::tap::FrameSink;

/// What became of a frame offered to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    Placed,
    /// The driver was not ready (or broke its queue): the frame is gone, as on a NIC that is
    /// down.
    Dropped,
    /// Every receive buffer is with the guest's driver: offer the frame again later.
    NoBuffer,
}

pub struct NetDevice<S> {
    registers: Registers,
    memory: GuestMemoryMmap,
    sink: S,
    /// Signals the card's GSI (an irqfd); the guest's driver polls, so this is for drivers
    /// that do not.
    irq: EventFd,
    stats: NetStats,
}

impl<S: FrameSink> NetDevice<S> {
    pub fn new(mac: [u8; 6], memory: GuestMemoryMmap, sink: S, irq: EventFd) -> Self {
        NetDevice {
            registers: Registers::new(mac),
            memory,
            sink,
            irq,
            stats: NetStats::default(),
        }
    }

    pub fn stats(&self) -> NetStats {
        self.stats
    }

    pub fn mmio_read(&self, offset: u64, data: &mut [u8]) {
        self.registers.read(offset, data);
    }

    /// A register write; a notify of the transmit queue sends its frames, on the caller's
    /// (the vCPU's) thread. Receive buffers are used as frames arrive, so its notify is
    /// nothing to act on.
    pub fn mmio_write(&mut self, offset: u64, data: &[u8]) {
        if self.registers.write(offset, data) == WriteEffect::Notify(TX_QUEUE) {
            self.transmit();
        }
    }

    fn transmit(&mut self) {
        if !self.usable(TX_QUEUE) {
            return;
        }
        let queue = self.registers.queue_mut(TX_QUEUE);
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(&self.memory) {
            let head = chain.head_index();
            match read_frame(&self.memory, chain) {
                Ok(frame) => match self.sink.send(&frame) {
                    Ok(()) => self.stats.tx_frames += 1,
                    Err(_) => self.stats.tx_dropped += 1,
                },
                Err(_) => self.stats.bad_chains += 1,
            }
            // The queue was checked valid, so its used ring is in guest memory.
            let _ = queue.add_used(&self.memory, head, 0);
            used = true;
        }
        if used {
            self.notify(TX_QUEUE);
        }
    }

    /// Places one frame from the TAP in the next receive buffer, or drops it (counted) if
    /// the driver is not ready; without a free buffer it is left to the caller to offer
    /// again ([`Received::NoBuffer`]).
    pub fn receive(&mut self, frame: &[u8]) -> Received {
        if !self.usable(RX_QUEUE) {
            self.stats.rx_dropped += 1;
            return Received::Dropped;
        }
        let queue = self.registers.queue_mut(RX_QUEUE);
        let Some(chain) = queue.pop_descriptor_chain(&self.memory) else {
            self.stats.rx_waits += 1;
            return Received::NoBuffer;
        };
        let head = chain.head_index();
        let len = match write_frame(&self.memory, chain, frame) {
            Ok(len) => {
                self.stats.rx_frames += 1;
                len
            }
            Err(_) => {
                self.stats.bad_chains += 1;
                0
            }
        };
        let _ = queue.add_used(&self.memory, head, len);
        self.notify(RX_QUEUE);
        Received::Placed
    }

    /// Whether `queue` may be processed. A running driver whose queue is not ready or lies
    /// outside guest memory broke the protocol: the device then needs a reset
    /// (DEVICE_NEEDS_RESET and a config-change interrupt) and processes nothing until then.
    fn usable(&mut self, index: u16) -> bool {
        if !self.registers.running() {
            return false;
        }
        let queue = self.registers.queue_mut(index);
        if queue.ready() && queue.is_valid(&self.memory) {
            return true;
        }
        self.registers.needs_reset();
        self.interrupt(INTERRUPT_CONFIG_CHANGE);
        false
    }

    fn notify(&mut self, index: u16) {
        let queue = self.registers.queue_mut(index);
        // Unreadable avail flags (not possible for a valid queue): notify, to be safe.
        if queue.needs_notification(&self.memory).unwrap_or(true) {
            self.interrupt(INTERRUPT_USED_BUFFER);
        }
    }

    fn interrupt(&mut self, cause: u32) {
        self.registers.raise(cause);
        // A full eventfd counter already means "interrupt pending".
        let _ = self.irq.write(1);
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::desc::split::Descriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    use super::*;
    use crate::vmm::virtio_net::queues::HEADER_LEN;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const WRITE: u16 = 2; // VRING_DESC_F_WRITE
    /// Where the test's buffers live, past the mock queues' rings.
    const BUFFERS: u64 = 0x10_0000;

    #[derive(Default)]
    struct Frames(Vec<Vec<u8>>);

    impl FrameSink for &mut Frames {
        fn send(&mut self, frame: &[u8]) -> io::Result<()> {
            self.0.push(frame.to_vec());
            Ok(())
        }
    }

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x20_0000)]).expect("memory")
    }

    fn write(device: &mut NetDevice<impl FrameSink>, offset: u64, value: u32) {
        device.mmio_write(offset, &value.to_le_bytes());
    }

    /// Brings the device to DRIVER_OK with `queue` set up on `mock`'s rings.
    fn start(
        device: &mut NetDevice<impl FrameSink>,
        queue: u16,
        mock: &MockSplitQueue<'_, GuestMemoryMmap>,
    ) {
        write(device, 0x070, 0);
        write(device, 0x070, 3);
        write(device, 0x024, 1);
        write(device, 0x020, 1);
        write(device, 0x070, 0xb);
        write(device, 0x030, u32::from(queue));
        write(device, 0x038, 16);
        write(device, 0x080, mock.desc_table_addr().0 as u32);
        write(device, 0x090, mock.avail_addr().0 as u32);
        write(device, 0x0a0, mock.used_addr().0 as u32);
        write(device, 0x044, 1);
        write(device, 0x070, 0xf);
    }

    fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
        RawDescriptor::from(Descriptor::new(addr, len, flags, next))
    }

    fn used_len(
        memory: &GuestMemoryMmap,
        mock: &MockSplitQueue<'_, GuestMemoryMmap>,
        index: u64,
    ) -> u32 {
        memory
            .read_obj(GuestAddress(mock.used_addr().0 + 4 + 8 * index + 4))
            .expect("used ring")
    }

    #[test]
    fn transmit_skips_a_split_header_and_counts_a_short_chain() {
        let memory = memory();
        let mock = MockSplitQueue::new(&memory, 16);
        let mut frames = Frames::default();
        let mut device = NetDevice::new(
            MAC,
            memory.clone(),
            &mut frames,
            EventFd::new(0).expect("eventfd"),
        );
        start(&mut device, TX_QUEUE, &mock);
        // Chain 1: 5 header bytes, then 7 header bytes and "hello".
        memory
            .write_slice(&[0; 5], GuestAddress(BUFFERS))
            .expect("write");
        let mut second = vec![0u8; 7];
        second.extend_from_slice(b"hello");
        memory
            .write_slice(&second, GuestAddress(BUFFERS + 0x100))
            .expect("write");
        // Chain 2: shorter than a header.
        let descs = [
            desc(BUFFERS, 5, 1, 1),
            desc(BUFFERS + 0x100, 12, 0, 0),
            desc(BUFFERS + 0x200, 4, 0, 0),
        ];
        mock.add_desc_chains(&descs, 0).expect("chains");
        write(&mut device, 0x050, u32::from(TX_QUEUE));
        let stats = device.stats();
        assert_eq!((stats.tx_frames, stats.bad_chains), (1, 1));
        assert_eq!(mock.used().idx().load(), 2);
        drop(device);
        assert_eq!(frames.0, vec![b"hello".to_vec()]);
    }

    #[test]
    fn receive_fills_writable_descriptors_and_drops_without_buffers() {
        let memory = memory();
        let mock = MockSplitQueue::new(&memory, 16);
        let irq = EventFd::new(0).expect("eventfd");
        let mut frames = Frames::default();
        let mut device = NetDevice::new(
            MAC,
            memory.clone(),
            &mut frames,
            irq.try_clone().expect("dup"),
        );
        assert_eq!(device.receive(b"early"), Received::Dropped);
        assert_eq!(device.stats().rx_dropped, 1);
        start(&mut device, RX_QUEUE, &mock);
        // Chain 1: 8 bytes then 64 (header split); chain 2: read-only; chain 3: too short.
        let descs = [
            desc(BUFFERS, 8, WRITE | 1, 1),
            desc(BUFFERS + 0x100, 64, WRITE, 0),
            desc(BUFFERS + 0x200, 64, 0, 0),
            desc(BUFFERS + 0x300, 14, WRITE, 0),
        ];
        mock.add_desc_chains(&descs, 0).expect("chains");
        assert_eq!(device.receive(b"frame one"), Received::Placed);
        device.receive(b"frame two");
        device.receive(b"frame three");
        assert_eq!(device.receive(b"no buffer left"), Received::NoBuffer);
        let stats = device.stats();
        assert_eq!(
            (
                stats.rx_frames,
                stats.bad_chains,
                stats.rx_dropped,
                stats.rx_waits
            ),
            (1, 2, 1, 1)
        );
        let mut header = [0u8; HEADER_LEN];
        memory
            .read_slice(&mut header[..8], GuestAddress(BUFFERS))
            .expect("read");
        memory
            .read_slice(&mut header[8..], GuestAddress(BUFFERS + 0x100))
            .expect("read");
        assert_eq!(header, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        let mut frame = [0u8; 9];
        memory
            .read_slice(&mut frame, GuestAddress(BUFFERS + 0x104))
            .expect("read");
        assert_eq!(&frame, b"frame one");
        assert_eq!(used_len(&memory, &mock, 0), (HEADER_LEN + 9) as u32);
        assert_eq!(used_len(&memory, &mock, 1), 0);
        // The driver asked for interrupts (avail flags 0): InterruptStatus and the irqfd.
        let mut status = [0u8; 4];
        device.mmio_read(0x060, &mut status);
        assert_eq!(status[0] & 1, 1);
        assert!(irq.read().expect("signalled") >= 1);
    }

    #[test]
    fn an_unusable_queue_needs_a_reset() {
        let memory = memory();
        let mut frames = Frames::default();
        let mut device =
            NetDevice::new(MAC, memory, &mut frames, EventFd::new(0).expect("eventfd"));
        write(&mut device, 0x070, 3);
        write(&mut device, 0x024, 1);
        write(&mut device, 0x020, 1);
        write(&mut device, 0x070, 0xb);
        write(&mut device, 0x030, 1);
        // Rings far outside guest memory.
        write(&mut device, 0x084, 0x10);
        write(&mut device, 0x044, 1);
        write(&mut device, 0x070, 0xf);
        write(&mut device, 0x050, 1);
        let mut status = [0u8; 4];
        device.mmio_read(0x070, &mut status);
        assert_eq!(u32::from_le_bytes(status), 0x4f);
        assert_eq!(device.receive(b"dropped"), Received::Dropped);
        assert_eq!(device.stats().rx_dropped, 1);
    }
}
