//! A TCP proxy on the loopback that gives post-copy page requests a link latency.
//!
//! The machine has no `tc netem`, so the migration stream goes through this proxy instead:
//! the source QEMU connects to it (`migrate uri=tcp:127.0.0.1:<port>`) and it connects to
//! the destination QEMU's incoming port. It copies both directions of each connection:
//!
//! - source → destination, the main stream (pages, device state): unchanged and as fast as
//!   the loopback goes. Only the request leg is slowed: the whole round trip a faulting vCPU
//!   sees is put on it, so one draw from the model is one page fetch's latency, as in
//!   `--latency` for the builtin VMM.
//! - destination → source, QEMU's return path: messages of `be16 type, be16 len, len bytes`
//!   (`migrate_send_rp_message` in QEMU's migration/migration.c). Each page request
//!   (`REQ_PAGES`, `REQ_PAGES_ID`) is held until its arrival plus one draw from the model;
//!   other messages get no delay of their own. Requests are pipelined: many can wait at
//!   once, as on a link, not one after the other, as on a serial device.
//!
//! The return path is one ordered stream, and a `REQ_PAGES` without a block name means "the
//! block of the previous `REQ_PAGES_ID`", so messages are never reordered: message `i` is
//! released at `max(arrival_i + delay_i, release_{i-1})`. With a fixed model that is exactly
//! `arrival + delay`. With a variable model (uniform, lognormal) it is head-of-line blocking:
//! a short draw queued behind a long one waits for it, so when requests come closer together
//! than the draws spread, what they wait is longer than the model alone says (as over one
//! TCP connection on a jittery link). `ShaperStats::measured` shows what they did wait,
//! next to `ShaperStats::drawn`.
//!
//! Acknowledgements: QEMU writes its post-copy preempt channel (the requested pages) with
//! Nagle's algorithm on, so while one small segment is unacknowledged the next waits. Against
//! the kernel's delayed ACKs that holds every page after the first of a burst for up to
//! ~40 ms: measured with `mlp:8`, rounds of 8 requests 44 ms apart, whatever `--latency`
//! said (a destination QEMU reading the channel itself would see the same). With
//! [`Acks::Quick`] the proxy acknowledges after every read, so the link's latency is the one
//! the model draws; [`Acks::Delayed`] keeps the kernel's behaviour to show the effect.
//!
//! The draws are seeded, so a run repeats: the `n`th connection accepted (from 0) draws from
//! a generator seeded with `seed + n`, so the main channel, which QEMU opens first and which
//! carries the return path, draws from `seed` itself.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::lazy::LatencyModel;
use crate::lazy::latency::Draws;

mod return_path;
mod stats;

use return_path::Framer;
pub use stats::ShaperStats;
use stats::Tally;

/// The main stream is bulk: large reads keep the proxy's per-byte cost down.
const FORWARD_BUFFER: usize = 256 * 1024;
/// Return-path messages are small; one read usually holds all that are waiting.
const RETURN_BUFFER: usize = 64 * 1024;
/// The destination is on the loopback: it answers at once or not at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `Drop` tries to connect to wake the accepting thread.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (such as too many open files), so it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Draws are capped at a day so `arrival + delay` cannot overflow an `Instant` (a lognormal's
/// tail saturates at 584 years); no run lasts that long.
const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The latency page requests get, and the seed of its draws.
#[derive(Clone, Debug, PartialEq)]
pub struct Delay {
    pub model: LatencyModel,
    pub seed: u64,
}

impl Delay {
    /// The draws of the `index`th connection accepted (see the module's doc).
    fn draws_for_connection(&self, index: u64) -> Draws {
        self.model.draws(self.seed.wrapping_add(index))
    }
}

/// How the proxy acknowledges the source's streams (see the module's doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acks {
    /// At once, after every read (`TCP_QUICKACK`).
    #[default]
    Quick,
    /// When the kernel would (delayed ACKs), as a destination QEMU receiving directly.
    Delayed,
}

impl Acks {
    fn name(self) -> &'static str {
        match self {
            Acks::Quick => "quick",
            Acks::Delayed => "delayed",
        }
    }
}

/// When return-path messages go out: each after its own delay, and never before the one
/// ahead of it.
#[derive(Debug, Default)]
struct Schedule {
    last: Option<Instant>,
}

impl Schedule {
    /// The release time of a message that arrived at `arrival` and is to wait `delay`.
    fn release(&mut self, arrival: Instant, delay: Duration) -> Instant {
        let due = arrival + delay.min(MAX_DELAY);
        let release = self.last.map_or(due, |last| due.max(last));
        self.last = Some(release);
        release
    }
}

/// Tells sleeping return-path writers to stop, so `Drop` need not wait out their delays.
#[derive(Debug, Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl StopSignal {
    fn lock(&self) -> MutexGuard<'_, bool> {
        self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stop(&self) {
        *self.lock() = true;
        self.changed.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.lock()
    }

    /// Sleeps until `deadline`: true if it came, false if told to stop first.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut stopped = self.lock();
        loop {
            if *stopped {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stopped = self
                .changed
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// What the shaper's threads share.
#[derive(Debug, Default)]
struct Shared {
    tally: Mutex<Tally>,
    stop: StopSignal,
    acks: Acks,
}

impl Shared {
    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Both ends of one proxied connection. The copy threads share them (`&TcpStream` reads and
/// writes), so any of them, or the shaper stopping, can shut the connection down.
#[derive(Debug)]
struct Sockets {
    source: TcpStream,
    destination: TcpStream,
}

impl Sockets {
    /// Ends both directions on both sides: a broken proxied connection looks broken to both
    /// QEMUs instead of leaving one of them waiting. Shutting down also wakes a thread
    /// blocked reading or writing either socket.
    fn break_off(&self) {
        // Either may already be shut down or reset; there is nothing more to do then.
        let _ = self.source.shutdown(Shutdown::Both);
        let _ = self.destination.shutdown(Shutdown::Both);
    }
}

/// A return-path message (or the truncated tail of the stream) waiting to go out.
struct Release {
    at: Instant,
    /// When its last byte was read.
    arrival: Instant,
    bytes: Vec<u8>,
    page_request: bool,
}

/// One proxied connection and its three copy threads.
struct Connection {
    sockets: Arc<Sockets>,
    threads: Vec<JoinHandle<()>>,
}

impl Connection {
    /// Connects `source` to `upstream` and starts copying.
    fn open(
        source: TcpStream,
        upstream: SocketAddr,
        draws: Option<Draws>,
        shared: &Arc<Shared>,
    ) -> io::Result<Connection> {
        let destination = TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT)?;
        // Page requests are small writes that must go out at once.
        source.set_nodelay(true)?;
        destination.set_nodelay(true)?;
        let sockets = Arc::new(Sockets {
            source,
            destination,
        });
        shared.tally().connections += 1;
        let mut connection = Connection {
            sockets,
            threads: Vec::with_capacity(3),
        };
        if let Err(error) = connection.spawn_threads(draws, shared) {
            // The threads already started end when their sockets do.
            connection.sockets.break_off();
            connection.join();
            return Err(error);
        }
        Ok(connection)
    }

    fn spawn_threads(&mut self, draws: Option<Draws>, shared: &Arc<Shared>) -> io::Result<()> {
        let (queue, released) = mpsc::channel();
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            thread::Builder::new().name(name.to_owned()).spawn(body)
        };
        let (sockets, stats) = (Arc::clone(&self.sockets), Arc::clone(shared));
        self.threads.push(spawn(
            "shaper-fwd",
            Box::new(move || forward(&sockets, &stats)),
        )?);
        let (sockets, stats) = (Arc::clone(&self.sockets), Arc::clone(shared));
        self.threads.push(spawn(
            "shaper-rp-write",
            Box::new(move || write_return_path(&sockets, released, &stats)),
        )?);
        let (sockets, stats) = (Arc::clone(&self.sockets), Arc::clone(shared));
        self.threads.push(spawn(
            "shaper-rp-read",
            Box::new(move || read_return_path(&sockets, queue, draws, &stats)),
        )?);
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    fn join(&mut self) {
        for thread in self.threads.drain(..) {
            // A panicked copy thread has already ended its direction; nothing to add.
            let _ = thread.join();
        }
    }
}

/// Reads `reader` into `buffer`, retrying interrupted reads: `Ok(0)` is the end.
fn read_some(mut reader: &TcpStream, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buffer) {
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Copies the main stream from the source to the destination, unchanged.
fn forward(sockets: &Sockets, shared: &Shared) {
    let mut buffer = vec![0; FORWARD_BUFFER];
    loop {
        if shared.acks == Acks::Quick {
            quick_ack(&sockets.source);
        }
        match read_some(&sockets.source, &mut buffer) {
            Ok(0) => {
                // Counted before the shutdown, so whoever sees the end sees every byte
                // counted.
                let _ = sockets.destination.shutdown(Shutdown::Write);
                return;
            }
            Ok(read) => {
                if (&sockets.destination).write_all(&buffer[..read]).is_err() {
                    sockets.break_off();
                    return;
                }
                shared.tally().forward_bytes += read as u64;
            }
            Err(_) => {
                sockets.break_off();
                return;
            }
        }
    }
}

/// Makes the kernel acknowledge what `socket` receives next at once, not on its delayed-ACK
/// timer. Linux may drop back to delayed ACKs by itself, so this is asked before every read.
/// A failure only costs latency, so it is ignored.
fn quick_ack(socket: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: `socket` owns a valid TCP socket for the call, and `on` is a live c_int whose
    // size is the length passed.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Frames the return path as it is read and queues each message with its release time.
fn read_return_path(
    sockets: &Sockets,
    queue: Sender<Release>,
    mut draws: Option<Draws>,
    shared: &Shared,
) {
    let mut buffer = vec![0; RETURN_BUFFER];
    let mut framer = Framer::default();
    let mut schedule = Schedule::default();
    // A read error ends the stream as its end does: what was read still goes out, then the
    // writer closes the source's side.
    while let Ok(read @ 1..) = read_some(&sockets.destination, &mut buffer) {
        let arrival = Instant::now();
        framer.push(&buffer[..read]);
        while let Some(message) = framer.next_message() {
            let page_request = message.kind.is_page_request();
            // Only page requests draw, so the n-th request gets the n-th draw whatever else
            // the destination sends.
            let drawn = match &mut draws {
                Some(draws) if page_request => Some(draws.next_latency()),
                _ => None,
            };
            shared.tally().return_message(&message, drawn);
            let release = Release {
                at: schedule.release(arrival, drawn.unwrap_or_default()),
                arrival,
                bytes: message.bytes,
                page_request,
            };
            if queue.send(release).is_err() {
                return; // The writer has given up on the source.
            }
        }
    }
    let tail = framer.into_tail();
    if !tail.is_empty() {
        let arrival = Instant::now();
        let _ = queue.send(Release {
            at: schedule.release(arrival, Duration::ZERO),
            arrival,
            bytes: tail,
            page_request: false,
        });
    }
}

/// Writes queued return-path messages to the source as each one's time comes.
fn write_return_path(sockets: &Sockets, released: Receiver<Release>, shared: &Shared) {
    for release in released {
        if !shared.stop.sleep_until(release.at) {
            return;
        }
        if (&sockets.source).write_all(&release.bytes).is_err() {
            sockets.break_off();
            return;
        }
        if release.page_request {
            shared.tally().measured.add(release.arrival.elapsed());
        }
    }
    // The destination's side ended and everything it sent is written.
    let _ = sockets.source.shutdown(Shutdown::Write);
}

/// Accepts connections until told to stop, then ends every connection and waits for its
/// threads.
fn accept_connections(
    listener: TcpListener,
    upstream: SocketAddr,
    delay: Option<Delay>,
    shared: Arc<Shared>,
) {
    let mut connections: Vec<Connection> = Vec::new();
    let mut index = 0u64;
    loop {
        let accepted = listener.accept();
        if shared.stop.is_stopped() {
            break;
        }
        connections.retain_mut(|connection| {
            let finished = connection.is_finished();
            if finished {
                connection.join();
            }
            !finished
        });
        match accepted {
            Ok((source, _)) => {
                let draws = delay
                    .as_ref()
                    .map(|delay| delay.draws_for_connection(index));
                // A destination that refuses is the migration's failure to report, which
                // QMP does; closing the source's connection tells it.
                if let Ok(connection) = Connection::open(source, upstream, draws, &shared) {
                    connections.push(connection);
                    index += 1;
                }
            }
            Err(_) => thread::sleep(ACCEPT_BACKOFF),
        }
    }
    for connection in &connections {
        connection.sockets.break_off();
    }
    for connection in &mut connections {
        connection.join();
    }
}

/// The proxy: a listening thread and, per connection, three copy threads.
#[derive(Debug)]
pub struct Shaper {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

impl Shaper {
    /// Listens on 127.0.0.1 (port chosen by the OS) and proxies each connection to `upstream`.
    pub fn start(upstream: SocketAddr, delay: Option<Delay>, acks: Acks) -> io::Result<Shaper> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            acks,
            ..Shared::default()
        });
        let accepting = Arc::clone(&shared);
        let listener = thread::Builder::new()
            .name("shaper-accept".to_owned())
            .spawn(move || accept_connections(listener, upstream, delay, accepting))?;
        Ok(Shaper {
            local_addr,
            shared,
            listener: Some(listener),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counts so far.
    pub fn stats(&self) -> ShaperStats {
        ShaperStats {
            acks: self.shared.acks,
            ..self.shared.tally().snapshot()
        }
    }
}

impl Drop for Shaper {
    /// Stops accepting, breaks off every connection (messages still held are dropped) and
    /// waits for the threads, which all end at once: blocked reads and writes are woken by
    /// the sockets' shutdown, sleeping writers by the stop signal.
    fn drop(&mut self) {
        self.shared.stop.stop();
        // `accept` has no timeout: a connection of our own wakes it to see the stop.
        let woken = TcpStream::connect_timeout(&self.local_addr, WAKE_TIMEOUT).is_ok();
        if let Some(listener) = self.listener.take()
            && (woken || listener.is_finished())
        {
            let _ = listener.join();
        }
        // Otherwise the accepting thread is left to the process's exit rather than blocking.
    }
}

#[cfg(test)]
mod tests;
