//! A polling virtio-net driver over virtio-mmio (version 2), run by a ring-3 task, and the
//! smoltcp `Device` it offers.
//!
//! Ring 3 rather than the kernel: our KVM emulates every ring-0 instruction, so a stack
//! whose per-packet work runs in ring 0 would cost milliseconds a packet; in ring 3 only the
//! register accesses trap. The kernel maps the register page for tasks (`paging`). It polls
//! rather than taking the card's interrupt, for the same reason: an interrupt per packet is
//! a ring-0 path, a look at the used ring is not.
//!
//! Register offsets and status bits: virtio 1.2, 4.2.2 (MMIO device register layout) and
//! 2.1 (device status field).

use core::sync::atomic::{Ordering, fence};
use guest_kernel::virtq::{Completed, DeviceError, Ring, Virtq};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Descriptors per queue.
pub const QUEUE_SIZE: usize = 32;
/// Each buffer holds the 12-byte `virtio_net_hdr` (v1) and one Ethernet frame.
const BUFFER_SIZE: usize = 2048;
const HEADER_LEN: usize = 12;
/// An Ethernet frame without FCS, as smoltcp counts it.
const MTU: usize = 1514;
const RX_QUEUE: u32 = 0;
const TX_QUEUE: u32 = 1;

const MAGIC: u32 = 0x7472_6976; // "virt"
const DEVICE_ID_NET: u32 = 1;
const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VIRTIO_NET_F_MAC: u64 = 1 << 5;

mod reg {
    pub const MAGIC: usize = 0x000;
    pub const VERSION: usize = 0x004;
    pub const DEVICE_ID: usize = 0x008;
    pub const DEVICE_FEATURES: usize = 0x010;
    pub const DEVICE_FEATURES_SEL: usize = 0x014;
    pub const DRIVER_FEATURES: usize = 0x020;
    pub const DRIVER_FEATURES_SEL: usize = 0x024;
    pub const QUEUE_SEL: usize = 0x030;
    pub const QUEUE_NUM_MAX: usize = 0x034;
    pub const QUEUE_NUM: usize = 0x038;
    pub const QUEUE_READY: usize = 0x044;
    pub const QUEUE_NOTIFY: usize = 0x050;
    pub const STATUS: usize = 0x070;
    pub const QUEUE_DESC: usize = 0x080;
    pub const QUEUE_DRIVER: usize = 0x090;
    pub const QUEUE_DEVICE: usize = 0x0a0;
    pub const CONFIG: usize = 0x100;
}

mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const FAILED: u32 = 128;
}

/// Why the card could not be brought up.
#[derive(Clone, Copy, Debug)]
pub enum InitError {
    NotVirtio(u32),
    /// Version 1 is the legacy interface (QEMU: `-global virtio-mmio.force-legacy=false`).
    Version(u32),
    NotNet(u32),
    /// The device lacks a feature the driver needs (virtio 1.x, a MAC address).
    Features(u64),
    FeaturesRefused,
    QueueTooSmall {
        queue: u32,
        max: u32,
    },
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::NotVirtio(m) => write!(f, "no virtio device (magic {m:#x})"),
            InitError::Version(v) => write!(
                f,
                "virtio-mmio version {v}, not 2 (legacy; QEMU: -global virtio-mmio.force-legacy=false)"
            ),
            InitError::NotNet(id) => write!(f, "device id {id} is not a network card"),
            InitError::Features(offered) => write!(
                f,
                "the card offers features {offered:#x}, without VERSION_1 and MAC"
            ),
            InitError::FeaturesRefused => write!(f, "the card refused our features"),
            InitError::QueueTooSmall { queue, max } => {
                write!(
                    f,
                    "queue {queue} holds {max} descriptors, fewer than {QUEUE_SIZE}"
                )
            }
        }
    }
}

/// The register window. Every access is a volatile 32-bit access (virtio-mmio requires
/// it), which traps to the VMM.
#[derive(Clone, Copy)]
struct Regs(*mut u32);

impl Regs {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: the kernel maps the card's register page for tasks; `offset` is one of
        // the registers above, 4-byte aligned.
        unsafe { self.0.byte_add(offset).read_volatile() }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.0.byte_add(offset).write_volatile(value) }
    }

    fn write_addr(self, offset: usize, addr: u64) {
        self.write(offset, addr as u32);
        self.write(offset + 4, (addr >> 32) as u32);
    }

    fn config_byte(self, offset: usize) -> u8 {
        // SAFETY: as in `read`; device configuration space allows byte reads.
        unsafe {
            self.0
                .cast::<u8>()
                .byte_add(reg::CONFIG + offset)
                .read_volatile()
        }
    }
}

/// The memory the driver shares with the card: it must stay put (its addresses are given
/// to the device) and lie in guest RAM the host populated.
#[repr(C)]
pub struct NicMemory {
    rx_ring: Ring<QUEUE_SIZE>,
    tx_ring: Ring<QUEUE_SIZE>,
    rx_buffers: [[u8; BUFFER_SIZE]; QUEUE_SIZE],
    tx_buffers: [[u8; BUFFER_SIZE]; QUEUE_SIZE],
}

impl NicMemory {
    pub const fn new() -> Self {
        Self {
            rx_ring: Ring::new(),
            tx_ring: Ring::new(),
            rx_buffers: [[0; BUFFER_SIZE]; QUEUE_SIZE],
            tx_buffers: [[0; BUFFER_SIZE]; QUEUE_SIZE],
        }
    }
}

/// What the driver has counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct NicCounts {
    pub received: u64,
    pub sent: u64,
    /// Frames smoltcp wanted to send while every transmit buffer was with the device.
    pub tx_full: u64,
    /// Used entries that made no sense (see [`DeviceError`]); the card is then ignored.
    pub device_errors: u64,
}

struct RxSide<'a> {
    regs: Regs,
    queue: Virtq<'a, QUEUE_SIZE>,
    buffers: *mut [u8; BUFFER_SIZE],
}

struct TxSide<'a> {
    regs: Regs,
    queue: Virtq<'a, QUEUE_SIZE>,
    buffers: *mut [u8; BUFFER_SIZE],
    /// Bit `i`: buffer `i` is free.
    free: u32,
    counts: NicCounts,
}

pub struct Nic<'a> {
    rx: RxSide<'a>,
    tx: TxSide<'a>,
    pub mac: [u8; 6],
    broken: Option<DeviceError>,
}

const _: () = assert!(QUEUE_SIZE <= 32, "the free mask is a u32");

impl<'a> Nic<'a> {
    /// Resets the card at `base` and brings it up with both queues in `memory`, every
    /// receive buffer given to it (virtio 1.2, 3.1.1 driver initialisation).
    pub fn init(base: u64, memory: &'a mut NicMemory) -> Result<Self, InitError> {
        let regs = Regs(base as *mut u32);
        match regs.read(reg::MAGIC) {
            MAGIC => {}
            other => return Err(InitError::NotVirtio(other)),
        }
        match regs.read(reg::VERSION) {
            2 => {}
            other => return Err(InitError::Version(other)),
        }
        match regs.read(reg::DEVICE_ID) {
            DEVICE_ID_NET => {}
            other => return Err(InitError::NotNet(other)),
        }
        regs.write(reg::STATUS, 0);
        regs.write(reg::STATUS, status::ACKNOWLEDGE);
        regs.write(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        let mut offered = 0u64;
        for half in 0..2 {
            regs.write(reg::DEVICE_FEATURES_SEL, half);
            offered |= u64::from(regs.read(reg::DEVICE_FEATURES)) << (32 * half);
        }
        let wanted = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC;
        if offered & wanted != wanted {
            regs.write(reg::STATUS, status::FAILED);
            return Err(InitError::Features(offered));
        }
        for half in 0..2 {
            regs.write(reg::DRIVER_FEATURES_SEL, half);
            regs.write(reg::DRIVER_FEATURES, (wanted >> (32 * half)) as u32);
        }
        let negotiating = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        regs.write(reg::STATUS, negotiating);
        if regs.read(reg::STATUS) & status::FEATURES_OK == 0 {
            regs.write(reg::STATUS, status::FAILED);
            return Err(InitError::FeaturesRefused);
        }
        let NicMemory {
            rx_ring,
            tx_ring,
            rx_buffers,
            tx_buffers,
        } = memory;
        for (queue, ring) in [(RX_QUEUE, &*rx_ring), (TX_QUEUE, &*tx_ring)] {
            regs.write(reg::QUEUE_SEL, queue);
            let max = regs.read(reg::QUEUE_NUM_MAX);
            if (max as usize) < QUEUE_SIZE {
                regs.write(reg::STATUS, status::FAILED);
                return Err(InitError::QueueTooSmall { queue, max });
            }
            regs.write(reg::QUEUE_NUM, QUEUE_SIZE as u32);
            regs.write_addr(reg::QUEUE_DESC, ring.desc_addr());
            regs.write_addr(reg::QUEUE_DRIVER, ring.avail_addr());
            regs.write_addr(reg::QUEUE_DEVICE, ring.used_addr());
            regs.write(reg::QUEUE_READY, 1);
        }
        let mac = core::array::from_fn(|i| regs.config_byte(i));
        let mut rx = RxSide {
            regs,
            queue: Virtq::new(rx_ring),
            buffers: rx_buffers.as_mut_ptr(),
        };
        for id in 0..QUEUE_SIZE as u16 {
            rx.give(id);
        }
        regs.write(reg::STATUS, negotiating | status::DRIVER_OK);
        notify(regs, RX_QUEUE);
        Ok(Nic {
            rx,
            tx: TxSide {
                regs,
                queue: Virtq::new(tx_ring),
                buffers: tx_buffers.as_mut_ptr(),
                free: u32::MAX >> (32 - QUEUE_SIZE),
                counts: NicCounts::default(),
            },
            mac,
            broken: None,
        })
    }

    pub fn counts(&self) -> NicCounts {
        self.tx.counts
    }

    /// Why the card is being ignored, if it is.
    pub fn broken(&self) -> Option<DeviceError> {
        self.broken
    }

    fn check<T>(&mut self, taken: Result<Option<T>, DeviceError>) -> Option<T> {
        taken
            .inspect_err(|&e| {
                self.tx.counts.device_errors += 1;
                self.broken = Some(e);
            })
            .ok()
            .flatten()
    }
}

/// Tells the device `queue` has new buffers. The fence keeps the register write after the
/// ring's `avail.idx` store (a Release store does not order a later volatile write), as
/// Linux's `virtio_mb` does.
fn notify(regs: Regs, queue: u32) {
    fence(Ordering::SeqCst);
    regs.write(reg::QUEUE_NOTIFY, queue);
}

impl RxSide<'_> {
    fn give(&mut self, id: u16) {
        let addr = self.buffers.wrapping_add(usize::from(id)) as u64;
        self.queue.give(id, addr, BUFFER_SIZE as u32, true);
    }
}

impl TxSide<'_> {
    /// Takes back the buffers the device has sent.
    fn reclaim(&mut self) -> Result<(), DeviceError> {
        while let Some(Completed { id, .. }) = self.queue.take()? {
            self.free |= 1 << id;
        }
        Ok(())
    }
}

impl<'a> phy::Device for Nic<'a> {
    type RxToken<'b>
        = RxToken<'b, 'a>
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b, 'a>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_, 'a>, TxToken<'_, 'a>)> {
        if self.broken.is_some() {
            return None;
        }
        let taken = self.rx.queue.take();
        let done = self.check(taken)?;
        self.tx.counts.received += 1;
        Some((
            RxToken {
                rx: &mut self.rx,
                done,
            },
            TxToken { tx: &mut self.tx },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_, 'a>> {
        if self.broken.is_some() {
            return None;
        }
        let reclaimed = self.tx.reclaim().map(Some);
        self.check(reclaimed)?;
        if self.tx.free == 0 {
            self.tx.counts.tx_full += 1;
            return None;
        }
        Some(TxToken { tx: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}

pub struct RxToken<'b, 'a> {
    rx: &'b mut RxSide<'a>,
    done: Completed,
}

impl phy::RxToken for RxToken<'_, '_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let len = (self.done.len as usize).clamp(HEADER_LEN, BUFFER_SIZE);
        // SAFETY: the device has returned buffer `id` (it no longer writes it) and wrote
        // `len` bytes of it; the buffer is ours until given back below.
        let buffer = unsafe { &*self.rx.buffers.add(usize::from(self.done.id)) };
        let result = f(&buffer[HEADER_LEN..len]);
        self.rx.give(self.done.id);
        notify(self.rx.regs, RX_QUEUE);
        result
    }
}

pub struct TxToken<'b, 'a> {
    tx: &'b mut TxSide<'a>,
}

impl phy::TxToken for TxToken<'_, '_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let tx = self.tx;
        // A token from `receive` may find every buffer in flight: the frame is built in a
        // scratch buffer and dropped (counted), as a full NIC would drop it.
        let _ = tx.reclaim();
        let Some(id) = (tx.free != 0).then(|| tx.free.trailing_zeros() as u16) else {
            tx.counts.tx_full += 1;
            let mut scratch = [0; MTU];
            return f(&mut scratch[..len.min(MTU)]);
        };
        let len = len.min(MTU);
        // SAFETY: buffer `id` is free (not with the device); it is ours until given below.
        let buffer = unsafe { &mut *tx.buffers.add(usize::from(id)) };
        buffer[..HEADER_LEN].fill(0);
        let result = f(&mut buffer[HEADER_LEN..HEADER_LEN + len]);
        tx.free &= !(1 << id);
        let addr = tx.buffers.wrapping_add(usize::from(id)) as u64;
        tx.queue.give(id, addr, (HEADER_LEN + len) as u32, false);
        notify(tx.regs, TX_QUEUE);
        tx.counts.sent += 1;
        result
    }
}
