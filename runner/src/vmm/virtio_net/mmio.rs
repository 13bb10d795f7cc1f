//! The virtio-mmio (version 2) register file of the network card, as a state machine with no
//! I/O of its own: the device (`super`) asks it for the queues and reports used buffers here.

use virtio_queue::{Queue, QueueT};

/// "virt", little endian.
const MAGIC: u32 = 0x7472_6976;
const VERSION: u32 = 2;
/// A network card.
const DEVICE_ID: u32 = 1;
/// Not a registered vendor: nothing in the guest keys on it.
const VENDOR_ID: u32 = 0x4150_4621;
/// The ring size the driver may choose up to.
pub const QUEUE_NUM_MAX: u16 = 256;
pub const RX_QUEUE: u16 = 0;
pub const TX_QUEUE: u16 = 1;

pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// Only these: no offloads, no mergeable buffers, no event index, no indirect descriptors.
pub const OFFERED_FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC;

pub const STATUS_DRIVER_OK: u32 = 4;
pub const STATUS_FEATURES_OK: u32 = 8;
pub const STATUS_DEVICE_NEEDS_RESET: u32 = 64;

/// InterruptStatus bits.
pub const INTERRUPT_USED_BUFFER: u32 = 1;
pub const INTERRUPT_CONFIG_CHANGE: u32 = 2;

/// Where the device-specific configuration (MAC, status) starts.
pub const CONFIG_OFFSET: u64 = 0x100;
/// The config's `status` field: link up (read by drivers only with VIRTIO_NET_F_STATUS,
/// which is not offered, so it is informative only).
const LINK_UP: u16 = 1;

/// What a register write asks of the device.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteEffect {
    None,
    /// QueueNotify: the driver made buffers available on this queue.
    Notify(u16),
}

pub struct Registers {
    mac: [u8; 6],
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
    config_generation: u32,
    queues: [Queue; 2],
}

fn new_queue() -> Queue {
    Queue::new(QUEUE_NUM_MAX).expect("QUEUE_NUM_MAX is a power of two")
}

impl Registers {
    pub fn new(mac: [u8; 6]) -> Self {
        Registers {
            mac,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            config_generation: 0,
            queues: [new_queue(), new_queue()],
        }
    }

    /// Queues are processed only once the driver is done, with features the device
    /// accepted, and the device is not broken.
    pub fn running(&self) -> bool {
        let wanted = STATUS_DRIVER_OK | STATUS_FEATURES_OK;
        self.status & (wanted | STATUS_DEVICE_NEEDS_RESET) == wanted
    }

    pub fn queue_mut(&mut self, index: u16) -> &mut Queue {
        &mut self.queues[usize::from(index)]
    }

    pub fn raise(&mut self, interrupt: u32) {
        self.interrupt_status |= interrupt;
    }

    /// The driver set up a queue the device cannot use: it must reset the device.
    pub fn needs_reset(&mut self) {
        self.status |= STATUS_DEVICE_NEEDS_RESET;
        self.interrupt_status |= INTERRUPT_CONFIG_CHANGE;
    }

    /// A read at `offset` into the device's page. Registers are 4 bytes wide; the config
    /// space may be read 1, 2 or 4 bytes at a time. Anything else reads as zeros.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= CONFIG_OFFSET {
            self.read_config(offset - CONFIG_OFFSET, data);
            return;
        }
        if data.len() != 4 {
            return;
        }
        let value = match offset {
            0x000 => MAGIC,
            0x004 => VERSION,
            0x008 => DEVICE_ID,
            0x00c => VENDOR_ID,
            0x010 => match self.device_features_sel {
                0 => OFFERED_FEATURES as u32,
                1 => (OFFERED_FEATURES >> 32) as u32,
                _ => 0,
            },
            0x034 => match self.selected() {
                Some(_) => u32::from(QUEUE_NUM_MAX),
                None => 0,
            },
            0x044 => self.selected().map_or(0, |q| u32::from(q.ready())),
            0x060 => self.interrupt_status,
            0x070 => self.status,
            0x0fc => self.config_generation,
            _ => 0,
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        if !matches!(data.len(), 1 | 2 | 4) {
            return;
        }
        let mut config = [0u8; 8];
        config[..6].copy_from_slice(&self.mac);
        config[6..].copy_from_slice(&LINK_UP.to_le_bytes());
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = config.get(start + i).copied().unwrap_or(0);
        }
    }

    /// A write at `offset`; only 4-byte writes to writable registers do anything.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> WriteEffect {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return WriteEffect::None;
        };
        let value = u32::from_le_bytes(bytes);
        match offset {
            0x014 => self.device_features_sel = value,
            0x020 => match self.driver_features_sel {
                0 => {
                    self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value)
                }
                1 => {
                    self.driver_features =
                        (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32);
                }
                _ => {}
            },
            0x024 => self.driver_features_sel = value,
            0x030 => self.queue_sel = value,
            // An invalid size is refused by the queue (it keeps the old one, and an
            // unusable queue later makes the device need a reset).
            // A size above u16::MAX becomes 0, which the queue refuses (not a truncation).
            0x038 => self.with_queue(|q| q.set_size(u16::try_from(value).unwrap_or(0))),
            0x044 => self.with_queue(|q| q.set_ready(value == 1)),
            0x050 => return WriteEffect::Notify(value as u16),
            0x064 => self.interrupt_status &= !value,
            0x070 => self.write_status(value),
            0x080 => self.with_queue(|q| q.set_desc_table_address(Some(value), None)),
            0x084 => self.with_queue(|q| q.set_desc_table_address(None, Some(value))),
            0x090 => self.with_queue(|q| q.set_avail_ring_address(Some(value), None)),
            0x094 => self.with_queue(|q| q.set_avail_ring_address(None, Some(value))),
            0x0a0 => self.with_queue(|q| q.set_used_ring_address(Some(value), None)),
            0x0a4 => self.with_queue(|q| q.set_used_ring_address(None, Some(value))),
            _ => {}
        }
        WriteEffect::None
    }

    /// 0 resets the device. FEATURES_OK is refused (left clear, for the driver to see) when
    /// the driver accepted a feature not offered, or not VIRTIO_F_VERSION_1: there is no
    /// legacy interface.
    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value = value;
        let acceptable = self.driver_features & !OFFERED_FEATURES == 0
            && self.driver_features & VIRTIO_F_VERSION_1 != 0;
        if value & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0 && !acceptable {
            value &= !STATUS_FEATURES_OK;
        }
        // DEVICE_NEEDS_RESET is the device's to set; only a reset clears it.
        self.status = value | (self.status & STATUS_DEVICE_NEEDS_RESET);
    }

    fn reset(&mut self) {
        *self = Registers {
            config_generation: self.config_generation,
            ..Registers::new(self.mac)
        };
    }

    fn selected(&self) -> Option<&Queue> {
        self.queues.get(usize::try_from(self.queue_sel).ok()?)
    }

    /// Queue registers act on the selected queue; with no such queue they do nothing.
    /// Once DRIVER_OK is set the queue's layout is frozen.
    fn with_queue(&mut self, change: impl FnOnce(&mut Queue)) {
        if self.status & STATUS_DRIVER_OK != 0 {
            return;
        }
        if let Some(queue) = usize::try_from(self.queue_sel)
            .ok()
            .and_then(|index| self.queues.get_mut(index))
        {
            change(queue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const STATUS_ACKNOWLEDGE: u32 = 1;
    const STATUS_DRIVER: u32 = 2;

    fn read(regs: &Registers, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        regs.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn write(regs: &mut Registers, offset: u64, value: u32) -> WriteEffect {
        regs.write(offset, &value.to_le_bytes())
    }

    /// The driver side of the init sequence up to (not including) DRIVER_OK.
    fn negotiate(regs: &mut Registers, features: u64) {
        write(regs, 0x070, 0);
        write(regs, 0x070, STATUS_ACKNOWLEDGE);
        write(regs, 0x070, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        write(regs, 0x024, 0);
        write(regs, 0x020, features as u32);
        write(regs, 0x024, 1);
        write(regs, 0x020, (features >> 32) as u32);
        write(
            regs,
            0x070,
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
        );
    }

    #[test]
    fn identifies_as_a_v2_network_card() {
        let regs = Registers::new(MAC);
        assert_eq!(read(&regs, 0x000), 0x7472_6976);
        assert_eq!(read(&regs, 0x004), 2);
        assert_eq!(read(&regs, 0x008), 1);
        assert_eq!(read(&regs, 0x010), 1 << 5);
        let mut regs = regs;
        write(&mut regs, 0x014, 1);
        assert_eq!(read(&regs, 0x010), 1);
        write(&mut regs, 0x014, 2);
        assert_eq!(read(&regs, 0x010), 0);
    }

    #[test]
    fn init_sequence_reaches_driver_ok() {
        let mut regs = Registers::new(MAC);
        negotiate(&mut regs, OFFERED_FEATURES);
        assert_ne!(read(&regs, 0x070) & STATUS_FEATURES_OK, 0);
        for queue in [RX_QUEUE, TX_QUEUE] {
            write(&mut regs, 0x030, u32::from(queue));
            assert_eq!(read(&regs, 0x034), 256);
            write(&mut regs, 0x038, 128);
            write(&mut regs, 0x080, 0x1000);
            write(&mut regs, 0x084, 0);
            write(&mut regs, 0x090, 0x2000);
            write(&mut regs, 0x0a0, 0x3000);
            write(&mut regs, 0x044, 1);
            assert_eq!(read(&regs, 0x044), 1);
        }
        write(&mut regs, 0x070, 0xf);
        assert!(regs.running());
        let queue = regs.queue_mut(TX_QUEUE);
        assert_eq!((queue.size(), queue.desc_table()), (128, 0x1000));
        assert_eq!((queue.avail_ring(), queue.used_ring()), (0x2000, 0x3000));
        assert_eq!(write(&mut regs, 0x050, 1), WriteEffect::Notify(1));
    }

    #[test]
    fn refuses_features_not_offered() {
        let mut regs = Registers::new(MAC);
        negotiate(&mut regs, OFFERED_FEATURES | 1 << 16);
        assert_eq!(read(&regs, 0x070) & STATUS_FEATURES_OK, 0);
        // Without VERSION_1 too: there is no legacy interface.
        negotiate(&mut regs, VIRTIO_NET_F_MAC);
        assert_eq!(read(&regs, 0x070) & STATUS_FEATURES_OK, 0);
        // A driver that goes on to DRIVER_OK anyway does not get a running device.
        let refused = read(&regs, 0x070);
        write(&mut regs, 0x070, refused | STATUS_DRIVER_OK);
        assert!(!regs.running());
    }

    #[test]
    fn a_queue_size_above_16_bits_is_refused_not_truncated() {
        let mut regs = Registers::new(MAC);
        write(&mut regs, 0x030, 0);
        write(&mut regs, 0x038, 0x1_0020);
        assert_ne!(regs.queue_mut(0).size(), 32);
        write(&mut regs, 0x038, 32);
        assert_eq!(regs.queue_mut(0).size(), 32);
    }

    #[test]
    fn reset_clears_queues_and_interrupts() {
        let mut regs = Registers::new(MAC);
        negotiate(&mut regs, OFFERED_FEATURES);
        write(&mut regs, 0x030, 1);
        write(&mut regs, 0x080, 0x1000);
        write(&mut regs, 0x044, 1);
        regs.raise(INTERRUPT_USED_BUFFER);
        assert_eq!(read(&regs, 0x060), 1);
        write(&mut regs, 0x064, 1);
        assert_eq!(read(&regs, 0x060), 0);
        regs.needs_reset();
        write(&mut regs, 0x070, 0);
        assert_eq!((read(&regs, 0x070), read(&regs, 0x060)), (0, 0));
        write(&mut regs, 0x030, 1);
        assert_eq!(read(&regs, 0x044), 0);
        assert_eq!(regs.queue_mut(TX_QUEUE).desc_table(), 0);
    }

    #[test]
    fn config_space_holds_the_mac() {
        let regs = Registers::new(MAC);
        let mut byte = [0u8; 1];
        regs.read(0x103, &mut byte);
        assert_eq!(byte, [0x12]);
        let mut word = [0u8; 4];
        regs.read(0x100, &mut word);
        assert_eq!(word, [0x52, 0x54, 0, 0x12]);
        let mut half = [0u8; 2];
        regs.read(0x104, &mut half);
        assert_eq!(half, [0x34, 0x56]);
        regs.read(0x106, &mut half);
        assert_eq!(u16::from_le_bytes(half), LINK_UP);
        regs.read(0x200, &mut word);
        assert_eq!(word, [0; 4]);
    }

    #[test]
    fn bad_offsets_and_widths_do_nothing() {
        let mut regs = Registers::new(MAC);
        let mut two = [0xffu8; 2];
        regs.read(0x000, &mut two);
        assert_eq!(two, [0, 0]);
        assert_eq!(read(&regs, 0x0f0), 0);
        assert_eq!(regs.write(0x070, &[1, 0]), WriteEffect::None);
        assert_eq!(write(&mut regs, 0x0f0, 7), WriteEffect::None);
        assert_eq!(read(&regs, 0x070), 0);
        // A queue that does not exist.
        write(&mut regs, 0x030, 5);
        assert_eq!(read(&regs, 0x034), 0);
        write(&mut regs, 0x044, 1);
        assert_eq!(read(&regs, 0x044), 0);
    }
}
