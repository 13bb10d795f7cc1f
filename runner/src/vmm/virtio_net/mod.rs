//! A virtio-net card (virtio 1.x over virtio-mmio) backed by a TAP device inside a network
//! namespace, for `runner serve-bench`. The vCPU threads reach it through MMIO (transmitting
//! on the transmit queue's notify), a receive thread feeds it the TAP's frames; both take the
//! one mutex around the device, briefly.

mod device;
mod mmio;
mod queues;
mod stats;
mod tap;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

pub use device::{NetDevice, Received};
pub use stats::NetStats;
pub use tap::{Error as TapError, Tap};

use super::NetConfig;

/// How often the receive thread looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How often a frame waiting for a receive buffer is offered again. The guest's driver
/// polls its queues, so there is no notify to wait for that would come sooner.
const BUFFER_RETRY: Duration = Duration::from_micros(100);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error("cannot create the network card's interrupt eventfd")]
    EventFd(#[source] io::Error),
    #[error("cannot start the network card's receive thread")]
    Spawn(#[source] io::Error),
    #[error("reading frames from TAP {tap} failed")]
    Receive {
        tap: String,
        #[source]
        source: io::Error,
    },
}

/// The card as the VM holds it: the device the vCPUs' bus shares, and its receive thread.
pub type SharedDevice = Arc<Mutex<NetDevice<Arc<Tap>>>>;

pub struct NetCard {
    device: SharedDevice,
    tap_name: String,
    stop: Arc<AtomicBool>,
    receiver: Option<JoinHandle<io::Result<()>>>,
}

impl NetCard {
    /// Attaches to the TAP and starts receiving. `irq` is the eventfd to signal the card's
    /// interrupt with; the caller registers it as an irqfd.
    pub fn start(config: &NetConfig, memory: GuestMemoryMmap) -> Result<(Self, EventFd), Error> {
        let tap = Arc::new(Tap::open(&config.netns, &config.tap)?);
        let irq = EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd)?;
        let device_irq = irq.try_clone().map_err(Error::EventFd)?;
        let device = Arc::new(Mutex::new(NetDevice::new(
            config.mac,
            memory,
            Arc::clone(&tap),
            device_irq,
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let device = Arc::clone(&device);
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("net-rx".to_owned())
                .spawn(move || receive_loop(&tap, &device, &stop))
                .map_err(Error::Spawn)?
        };
        let card = NetCard {
            device,
            tap_name: config.tap.clone(),
            stop,
            receiver: Some(receiver),
        };
        Ok((card, irq))
    }

    pub fn device(&self) -> SharedDevice {
        Arc::clone(&self.device)
    }

    /// Stops the receive thread and gives the card's counts, or why receiving failed.
    pub fn finish(&mut self) -> Result<NetStats, Error> {
        self.stop_receiver()?;
        Ok(self
            .device
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats())
    }

    fn stop_receiver(&mut self) -> Result<(), Error> {
        self.stop.store(true, Ordering::Release);
        let Some(receiver) = self.receiver.take() else {
            return Ok(());
        };
        // The thread cannot panic (panic = "abort").
        receiver
            .join()
            .unwrap_or_else(|_| unreachable!())
            .map_err(|source| Error::Receive {
                tap: self.tap_name.clone(),
                source,
            })
    }
}

impl Drop for NetCard {
    /// A run that failed before `finish` still stops its receive thread.
    fn drop(&mut self) {
        let _ = self.stop_receiver();
    }
}

/// Reads frames until `stop`; a TAP error ends it (and is reported by `finish`).
fn receive_loop(
    tap: &Tap,
    device: &Mutex<NetDevice<Arc<Tap>>>,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut buffer = vec![0u8; queues::MAX_FRAME];
    while !stop.load(Ordering::Acquire) {
        let Some(len) = tap.recv(&mut buffer, STOP_POLL)? else {
            continue;
        };
        // Further frames wait in the TAP's queue meanwhile, as behind a full NIC ring.
        while device
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .receive(&buffer[..len])
            == Received::NoBuffer
            && !stop.load(Ordering::Acquire)
        {
            thread::sleep(BUFFER_RETRY);
        }
    }
    Ok(())
}
