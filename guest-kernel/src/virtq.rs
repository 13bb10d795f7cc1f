//! The driver side of a virtio 1.x split virtqueue, for a polling ring-3 driver.
//!
//! The device reads and writes these rings concurrently, from outside the program, so every
//! field it shares is an atomic: the ring is only ever reached through a shared reference,
//! the compiler may neither cache nor reorder what the device writes, and the `idx` stores
//! and loads give the ordering the virtio spec asks for (descriptors and ring entries before
//! `avail.idx`; `used.idx` before the used entries it covers).
//!
//! Descriptor `i` always describes buffer `i`: the driver owns `N` fixed buffers per queue,
//! so a used entry's id names its buffer directly and no free list of descriptors is needed.

use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

/// The descriptor is device-writable (a receive buffer).
pub const DESC_F_WRITE: u16 = 2;
/// Asks the device not to interrupt: the driver polls the used ring.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;

#[repr(C, align(16))]
pub struct Desc {
    addr: AtomicU64,
    len: AtomicU32,
    flags: AtomicU16,
    next: AtomicU16,
}

#[repr(C, align(2))]
pub struct Avail<const N: usize> {
    flags: AtomicU16,
    idx: AtomicU16,
    ring: [AtomicU16; N],
    used_event: AtomicU16,
}

#[repr(C)]
pub struct UsedElem {
    id: AtomicU32,
    len: AtomicU32,
}

#[repr(C, align(4))]
pub struct Used<const N: usize> {
    flags: AtomicU16,
    idx: AtomicU16,
    ring: [UsedElem; N],
    avail_event: AtomicU16,
}

/// One queue's three rings, in one page-aligned block as virtio-mmio's separate
/// desc/driver/device addresses allow.
#[repr(C, align(4096))]
pub struct Ring<const N: usize> {
    desc: [Desc; N],
    avail: Avail<N>,
    used: Used<N>,
}

impl<const N: usize> Ring<N> {
    /// All zeros: an empty queue.
    pub const fn new() -> Self {
        const { assert!(N.is_power_of_two() && N <= 32768) };
        Self {
            desc: [const {
                Desc {
                    addr: AtomicU64::new(0),
                    len: AtomicU32::new(0),
                    flags: AtomicU16::new(0),
                    next: AtomicU16::new(0),
                }
            }; N],
            avail: Avail {
                flags: AtomicU16::new(0),
                idx: AtomicU16::new(0),
                ring: [const { AtomicU16::new(0) }; N],
                used_event: AtomicU16::new(0),
            },
            used: Used {
                flags: AtomicU16::new(0),
                idx: AtomicU16::new(0),
                ring: [const {
                    UsedElem {
                        id: AtomicU32::new(0),
                        len: AtomicU32::new(0),
                    }
                }; N],
                avail_event: AtomicU16::new(0),
            },
        }
    }

    /// The addresses the device is told (identity-mapped: virtual is guest-physical).
    pub fn desc_addr(&self) -> u64 {
        &self.desc as *const _ as u64
    }
    pub fn avail_addr(&self) -> u64 {
        &self.avail as *const _ as u64
    }
    pub fn used_addr(&self) -> u64 {
        &self.used as *const _ as u64
    }
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A buffer the device has finished with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The descriptor, which is also the buffer's index.
    pub id: u16,
    /// Bytes the device wrote (receive) or 0 (transmit).
    pub len: u32,
}

/// Why the device's used ring was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// A used entry names a descriptor outside the queue.
    BadId(u32),
    /// `used.idx` moved further ahead than the driver ever made available.
    UsedAhead,
    /// A used entry names a buffer the device does not hold (returned twice).
    NotInFlight(u16),
}

/// The driver's view of one queue: its rings and how far it has got in each.
pub struct Virtq<'a, const N: usize> {
    ring: &'a Ring<N>,
    /// `avail.idx` as the driver last published it.
    next_avail: u16,
    /// The next used entry the driver has not consumed.
    last_used: u16,
    /// Which buffers the device holds now.
    with_device: [bool; N],
}

impl<'a, const N: usize> Virtq<'a, N> {
    /// Takes over `ring`, which the device must not be using yet; the device is asked not
    /// to interrupt.
    pub fn new(ring: &'a Ring<N>) -> Self {
        ring.avail
            .flags
            .store(AVAIL_F_NO_INTERRUPT, Ordering::Relaxed);
        Self {
            ring,
            next_avail: 0,
            last_used: 0,
            with_device: [false; N],
        }
    }

    /// Buffers the device holds now.
    pub fn in_flight(&self) -> u16 {
        // Every buffer given moved `next_avail` on, every one taken back `last_used`.
        self.next_avail.wrapping_sub(self.last_used)
    }

    /// Gives buffer `id` (`len` bytes at `addr`) to the device.
    pub fn give(&mut self, id: u16, addr: u64, len: u32, device_writes: bool) {
        assert!(usize::from(id) < N && !self.with_device[usize::from(id)]);
        self.with_device[usize::from(id)] = true;
        let desc = &self.ring.desc[usize::from(id)];
        desc.addr.store(addr, Ordering::Relaxed);
        desc.len.store(len, Ordering::Relaxed);
        let flags = if device_writes { DESC_F_WRITE } else { 0 };
        desc.flags.store(flags, Ordering::Relaxed);
        desc.next.store(0, Ordering::Relaxed);
        self.ring.avail.ring[usize::from(self.next_avail) % N].store(id, Ordering::Relaxed);
        self.next_avail = self.next_avail.wrapping_add(1);
        // Publishes the descriptor and ring entry with the index.
        self.ring
            .avail
            .idx
            .store(self.next_avail, Ordering::Release);
    }

    /// The next buffer the device has finished with, if any.
    pub fn take(&mut self) -> Result<Option<Completed>, DeviceError> {
        let used = self.ring.used.idx.load(Ordering::Acquire);
        if used == self.last_used {
            return Ok(None);
        }
        if used.wrapping_sub(self.last_used) > self.in_flight() {
            return Err(DeviceError::UsedAhead);
        }
        let elem = &self.ring.used.ring[usize::from(self.last_used) % N];
        let id = elem.id.load(Ordering::Relaxed);
        let len = elem.len.load(Ordering::Relaxed);
        let id = u16::try_from(id)
            .ok()
            .filter(|&id| usize::from(id) < N)
            .ok_or(DeviceError::BadId(id))?;
        if !core::mem::replace(&mut self.with_device[usize::from(id)], false) {
            return Err(DeviceError::NotInFlight(id));
        }
        self.last_used = self.last_used.wrapping_add(1);
        Ok(Some(Completed { id, len }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;

    /// Plays the device: takes the next available buffer and returns it used.
    fn device_completes<const N: usize>(ring: &Ring<N>, seen: &mut u16, len: u32) -> (u16, u64) {
        let avail = ring.avail.idx.load(Ordering::Acquire);
        assert_ne!(avail, *seen, "nothing available");
        let id = ring.avail.ring[usize::from(*seen) % N].load(Ordering::Relaxed);
        let addr = ring.desc[usize::from(id)].addr.load(Ordering::Relaxed);
        let used = ring.used.idx.load(Ordering::Relaxed);
        let elem = &ring.used.ring[usize::from(used) % N];
        elem.id.store(u32::from(id), Ordering::Relaxed);
        elem.len.store(len, Ordering::Relaxed);
        ring.used.idx.store(used.wrapping_add(1), Ordering::Release);
        *seen = seen.wrapping_add(1);
        (id, addr)
    }

    #[test]
    fn layout_is_the_virtio_one() {
        let ring = Box::new(Ring::<32>::new());
        assert_eq!(size_of::<Desc>(), 16);
        assert_eq!(ring.avail_addr() - ring.desc_addr(), 16 * 32);
        assert_eq!(ring.used_addr() % 4, 0);
        assert_eq!(size_of::<Used<32>>(), 4 + 8 * 32 + 4);
        assert_eq!(ring.desc_addr() % 4096, 0);
        assert_eq!(size_of::<Ring<32>>(), 4096);
    }

    #[test]
    fn buffers_go_round_and_come_back_in_device_order() {
        let ring = Box::new(Ring::<4>::new());
        let mut q = Virtq::new(&ring);
        assert_eq!(
            ring.avail.flags.load(Ordering::Relaxed),
            AVAIL_F_NO_INTERRUPT
        );
        let mut seen = 0;
        // More rounds than the 16-bit indices and the ring size, so both wrap.
        for round in 0..70_000u32 {
            let id = (round % 4) as u16;
            q.give(id, 0x1000 * u64::from(id), 2048, true);
            assert_eq!(
                ring.desc[usize::from(id)].flags.load(Ordering::Relaxed),
                DESC_F_WRITE
            );
            let (dev_id, addr) = device_completes(&ring, &mut seen, round % 1500);
            assert_eq!((dev_id, addr), (id, 0x1000 * u64::from(id)));
            assert_eq!(
                q.take(),
                Ok(Some(Completed {
                    id,
                    len: round % 1500
                }))
            );
            assert_eq!(q.take(), Ok(None));
        }
        assert_eq!(q.in_flight(), 0);
    }

    #[test]
    fn a_device_that_lies_is_caught() {
        let ring = Box::new(Ring::<4>::new());
        let mut q = Virtq::new(&ring);
        q.give(0, 0x1000, 64, false);
        ring.used.idx.store(2, Ordering::Release);
        assert_eq!(q.take(), Err(DeviceError::UsedAhead));
        ring.used.idx.store(1, Ordering::Release);
        ring.used.ring[0].id.store(9, Ordering::Relaxed);
        assert_eq!(q.take(), Err(DeviceError::BadId(9)));
        // Buffer 1 was never given: a device returning it would hand us memory it may
        // still write.
        ring.used.ring[0].id.store(1, Ordering::Relaxed);
        assert_eq!(q.take(), Err(DeviceError::NotInFlight(1)));
        ring.used.ring[0].id.store(0, Ordering::Relaxed);
        assert_eq!(q.take(), Ok(Some(Completed { id: 0, len: 0 })));
    }
}
