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

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::lazy::LatencyModel;
use crate::units::format_fine_duration;

/// A return-path message's header: `be16 type, be16 len`.
const HEADER_LEN: usize = 4;
/// The main stream is bulk: large reads keep the proxy's per-byte cost down.
const FORWARD_BUFFER: usize = 256 * 1024;
/// Return-path messages are small; one read usually holds all that are waiting.
const RETURN_BUFFER: usize = 64 * 1024;
/// QEMU's target page on the guests we migrate (x86-64, arm64 with 4K pages): a request's
/// length in bytes is a multiple of it.
const TARGET_PAGE_SIZE: u64 = 4096;
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

/// The shortest, mean and longest of some delays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DelayStats {
    pub min: Duration,
    pub mean: Duration,
    pub max: Duration,
}

impl DelayStats {
    fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "min_ns": nanos(self.min),
            "mean_ns": nanos(self.mean),
            "max_ns": nanos(self.max),
        })
    }
}

impl fmt::Display for DelayStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "min {} mean {} max {}",
            format_rounded(self.min),
            format_rounded(self.mean),
            format_rounded(self.max)
        )
    }
}

/// What the shaper has proxied so far, over all its connections.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShaperStats {
    /// Connections proxied (accepted and connected to the destination).
    pub connections: u64,
    /// Bytes copied from the source to the destination.
    pub forward_bytes: u64,
    /// Whole return-path messages read from the destination (a truncated tail is not one).
    pub return_messages: u64,
    /// Return-path messages of type `REQ_PAGES_ID` or `REQ_PAGES`.
    pub page_requests: u64,
    /// The pages they asked for: each request's length over 4 KiB, at least 1.
    pub pages_requested: u64,
    /// The model's draws for page requests; `None` without a model or before a request.
    pub drawn: Option<DelayStats>,
    /// How long page requests actually took from their last byte read to their write;
    /// `None` before one was written.
    pub measured: Option<DelayStats>,
    pub acks: Acks,
}

impl ShaperStats {
    /// The counts as JSON, durations in integer nanoseconds (`min_ns`, `mean_ns`, `max_ns`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "connections": self.connections,
            "forward_bytes": self.forward_bytes,
            "return_messages": self.return_messages,
            "page_requests": self.page_requests,
            "pages_requested": self.pages_requested,
            "drawn": self.drawn.map(DelayStats::to_json),
            "measured": self.measured.map(DelayStats::to_json),
            "acks": self.acks.name(),
        })
    }
}

impl fmt::Display for ShaperStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.page_requests == 0 {
            write!(f, "no page requests")?;
        } else {
            write!(
                f,
                "{} ({})",
                plural(self.page_requests, "page request"),
                plural(self.pages_requested, "page")
            )?;
            match self.drawn {
                Some(drawn) => write!(f, " delayed: drawn {drawn}")?,
                None => write!(f, " not delayed")?,
            }
            if let Some(measured) = self.measured {
                let separator = if self.drawn.is_some() { "," } else { ":" };
                write!(f, "{separator} measured {measured}")?;
            }
        }
        write!(
            f,
            "; {:.1} MiB forward, {}, {}",
            self.forward_bytes as f64 / f64::from(1u32 << 20),
            plural(self.return_messages, "return message"),
            plural(self.connections, "connection")
        )?;
        if self.acks == Acks::Delayed {
            write!(f, ", delayed ACKs")?;
        }
        Ok(())
    }
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Durations are reported in u64 nanoseconds: 584 years of them.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `duration` rounded to the microsecond (exact below one), written as `parse_duration`
/// reads it: measured times are never round, and their nanoseconds are noise.
fn format_rounded(duration: Duration) -> String {
    const MICROSECOND: u64 = 1_000;
    let nanos = nanos(duration);
    let rounded = if nanos < MICROSECOND {
        nanos
    } else {
        nanos.saturating_add(MICROSECOND / 2) / MICROSECOND * MICROSECOND
    };
    format_fine_duration(Duration::from_nanos(rounded))
}

/// A return-path message type (QEMU's `enum mig_rp_message_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MessageKind {
    Invalid,
    Shut,
    Pong,
    /// `be64 start, be32 len`, then the RAMBlock's name: `u8` length and bytes.
    ReqPagesId,
    /// `be64 start, be32 len`, in the block of the previous `ReqPagesId`.
    ReqPages,
    RecvBitmap,
    ResumeAck,
    SwitchoverAck,
    /// A type this QEMU version does not have: passed on as it is.
    Other(u16),
}

impl From<u16> for MessageKind {
    fn from(value: u16) -> Self {
        match value {
            0 => MessageKind::Invalid,
            1 => MessageKind::Shut,
            2 => MessageKind::Pong,
            3 => MessageKind::ReqPagesId,
            4 => MessageKind::ReqPages,
            5 => MessageKind::RecvBitmap,
            6 => MessageKind::ResumeAck,
            7 => MessageKind::SwitchoverAck,
            other => MessageKind::Other(other),
        }
    }
}

impl MessageKind {
    fn is_page_request(self) -> bool {
        matches!(self, MessageKind::ReqPagesId | MessageKind::ReqPages)
    }
}

/// One whole return-path message, header included, as it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Message {
    kind: MessageKind,
    bytes: Vec<u8>,
}

impl Message {
    fn data(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }
}

/// Cuts the return path, read in chunks of any size, into whole messages.
#[derive(Debug, Default)]
struct Framer {
    buffered: Vec<u8>,
    /// Bytes at the front of `buffered` already returned as messages; dropped on the next
    /// `push`, so a chunk of many messages is not shifted once per message.
    consumed: usize,
}

impl Framer {
    fn push(&mut self, chunk: &[u8]) {
        self.buffered.drain(..self.consumed);
        self.consumed = 0;
        self.buffered.extend_from_slice(chunk);
    }

    /// The next whole message, if all its bytes have been pushed.
    fn next_message(&mut self) -> Option<Message> {
        let pending = &self.buffered[self.consumed..];
        let header = pending.get(..HEADER_LEN)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let bytes = pending.get(..HEADER_LEN + len)?.to_vec();
        self.consumed += bytes.len();
        Some(Message {
            kind: kind.into(),
            bytes,
        })
    }

    /// The bytes of an incomplete message left at the end of the stream (empty if none).
    fn into_tail(mut self) -> Vec<u8> {
        self.buffered.drain(..self.consumed);
        self.buffered
    }
}

/// What a page request asks for: `len` bytes from `start` in its RAMBlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PageRequest {
    start: u64,
    len: u32,
}

impl PageRequest {
    /// A request for less than a page (never sent by QEMU) still fetches one.
    fn pages(self) -> u64 {
        (u64::from(self.len) / TARGET_PAGE_SIZE).max(1)
    }
}

/// The request in `message`; `None` if it is not a page request or is too short for one.
fn decode_page_request(message: &Message) -> Option<PageRequest> {
    if !message.kind.is_page_request() {
        return None;
    }
    let data = message.data();
    let start = u64::from_be_bytes(data.get(0..8)?.try_into().ok()?);
    let len = u32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    Some(PageRequest { start, len })
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

/// One connection's seeded draws.
struct Draws {
    model: LatencyModel,
    rng: Xoshiro256PlusPlus,
}

impl Draws {
    fn for_connection(delay: &Delay, index: u64) -> Self {
        Draws {
            model: delay.model.clone(),
            rng: Xoshiro256PlusPlus::seed_from_u64(delay.seed.wrapping_add(index)),
        }
    }

    fn draw(&mut self) -> Duration {
        self.model.sample(&mut self.rng)
    }
}

/// Minimum, maximum and sum of some durations.
#[derive(Debug, Default)]
struct DurationTally {
    count: u64,
    total_nanos: u128,
    min: Duration,
    max: Duration,
}

impl DurationTally {
    fn add(&mut self, duration: Duration) {
        if self.count == 0 {
            (self.min, self.max) = (duration, duration);
        } else {
            self.min = self.min.min(duration);
            self.max = self.max.max(duration);
        }
        self.count += 1;
        self.total_nanos += duration.as_nanos();
    }

    fn summary(&self) -> Option<DelayStats> {
        (self.count > 0).then(|| DelayStats {
            min: self.min,
            mean: Duration::from_nanos(
                u64::try_from(self.total_nanos / u128::from(self.count)).unwrap_or(u64::MAX),
            ),
            max: self.max,
        })
    }
}

/// The counts behind `ShaperStats`, kept by the copy threads. One lock for all of them: it
/// is taken once per read, not per byte.
#[derive(Debug, Default)]
struct Tally {
    connections: u64,
    forward_bytes: u64,
    return_messages: u64,
    page_requests: u64,
    pages_requested: u64,
    drawn: DurationTally,
    measured: DurationTally,
}

impl Tally {
    fn return_message(&mut self, message: &Message, drawn: Option<Duration>) {
        self.return_messages += 1;
        if message.kind.is_page_request() {
            self.page_requests += 1;
            self.pages_requested += decode_page_request(message).map_or(1, PageRequest::pages);
        }
        if let Some(drawn) = drawn {
            self.drawn.add(drawn);
        }
    }

    fn snapshot(&self) -> ShaperStats {
        ShaperStats {
            connections: self.connections,
            forward_bytes: self.forward_bytes,
            return_messages: self.return_messages,
            page_requests: self.page_requests,
            pages_requested: self.pages_requested,
            drawn: self.drawn.summary(),
            measured: self.measured.summary(),
            acks: Acks::default(),
        }
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
                Some(draws) if page_request => Some(draws.draw()),
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
                    .map(|delay| Draws::for_connection(delay, index));
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
mod tests {
    use super::*;
    use rand::RngExt;

    const REQ_PAGES_ID: u16 = 3;
    const REQ_PAGES: u16 = 4;
    const PONG: u16 = 2;
    /// Bounds a socket test's waits so a bug fails it instead of hanging it.
    const TEST_TIMEOUT: Duration = Duration::from_secs(60);

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn message(kind: u16, data: &[u8]) -> Vec<u8> {
        let len = u16::try_from(data.len()).expect("short data");
        [&kind.to_be_bytes()[..], &len.to_be_bytes(), data].concat()
    }

    fn req_pages(start: u64, len: u32) -> Vec<u8> {
        message(
            REQ_PAGES,
            &[&start.to_be_bytes()[..], &len.to_be_bytes()].concat(),
        )
    }

    fn req_pages_id(start: u64, len: u32, block: &str) -> Vec<u8> {
        let name_len = [u8::try_from(block.len()).expect("short name")];
        let data = [
            &start.to_be_bytes()[..],
            &len.to_be_bytes(),
            &name_len,
            block.as_bytes(),
        ]
        .concat();
        message(REQ_PAGES_ID, &data)
    }

    fn pong(seq: u32) -> Vec<u8> {
        message(PONG, &seq.to_be_bytes())
    }

    fn frame_all(framer: &mut Framer) -> Vec<Message> {
        std::iter::from_fn(|| framer.next_message()).collect()
    }

    /// One message of every type, and two the shaper does not know.
    fn every_type() -> Vec<(MessageKind, Vec<u8>)> {
        vec![
            (MessageKind::Invalid, message(0, &[])),
            (MessageKind::Shut, message(1, &7u32.to_be_bytes())),
            (MessageKind::Pong, pong(9)),
            (
                MessageKind::ReqPagesId,
                req_pages_id(0x1000, 4096, "pc.ram"),
            ),
            (MessageKind::ReqPages, req_pages(0x2000, 8192)),
            (MessageKind::RecvBitmap, message(5, b"\x06pc.ram")),
            (MessageKind::ResumeAck, message(6, &1u32.to_be_bytes())),
            (MessageKind::SwitchoverAck, message(7, &[])),
            (MessageKind::Other(8), message(8, b"later")),
            (MessageKind::Other(0xffff), message(0xffff, &[0xaa; 300])),
        ]
    }

    #[test]
    fn framer_cuts_every_type_in_any_chunks() {
        let expected = every_type();
        let stream: Vec<u8> = expected
            .iter()
            .flat_map(|(_, bytes)| bytes.clone())
            .collect();
        for chunk in [1, 2, 3, 5, 7, 13, stream.len()] {
            let mut framer = Framer::default();
            let mut messages = Vec::new();
            for piece in stream.chunks(chunk) {
                framer.push(piece);
                messages.extend(frame_all(&mut framer));
            }
            let got: Vec<_> = messages.into_iter().map(|m| (m.kind, m.bytes)).collect();
            assert_eq!(got, expected, "chunks of {chunk}");
            assert!(framer.into_tail().is_empty());
        }
    }

    #[test]
    fn framer_waits_across_a_header_and_data_split() {
        let request = req_pages(0x4000, 4096);
        let mut framer = Framer::default();
        framer.push(&request[..2]); // Inside the header.
        assert_eq!(framer.next_message(), None);
        framer.push(&request[2..7]); // Header whole, data not.
        assert_eq!(framer.next_message(), None);
        framer.push(&request[7..]);
        let message = framer.next_message().expect("whole");
        assert_eq!(
            (message.kind, &message.bytes),
            (MessageKind::ReqPages, &request)
        );
        assert_eq!(framer.next_message(), None);
    }

    #[test]
    fn framer_keeps_a_truncated_tail() {
        let whole = pong(1);
        let truncated = req_pages_id(0, 4096, "pc.ram");
        let mut framer = Framer::default();
        framer.push(&[&whole[..], &truncated[..9]].concat());
        assert_eq!(frame_all(&mut framer).len(), 1);
        assert_eq!(framer.into_tail(), truncated[..9]);

        let mut header_only = Framer::default();
        header_only.push(&[0, 4, 0]);
        assert_eq!(header_only.next_message(), None);
        assert_eq!(header_only.into_tail(), [0, 4, 0]);
    }

    #[test]
    fn framer_takes_a_header_claiming_the_longest_data() {
        let data = vec![0x5a; usize::from(u16::MAX)];
        let bytes = message(0x1234, &data);
        let mut framer = Framer::default();
        framer.push(&bytes[..1000]);
        assert_eq!(framer.next_message(), None);
        framer.push(&bytes[1000..]);
        assert_eq!(framer.next_message().map(|m| m.bytes), Some(bytes));
    }

    fn decoded(bytes: Vec<u8>) -> Option<PageRequest> {
        let mut framer = Framer::default();
        framer.push(&bytes);
        decode_page_request(&framer.next_message().expect("whole"))
    }

    #[test]
    fn page_requests_decode() {
        assert_eq!(
            decoded(req_pages(0x1234_5000, 8192)),
            Some(PageRequest {
                start: 0x1234_5000,
                len: 8192
            })
        );
        assert_eq!(
            decoded(req_pages_id(u64::MAX - 4095, 4096, "pc.ram")),
            Some(PageRequest {
                start: u64::MAX - 4095,
                len: 4096
            })
        );
        // Too short for a request, or not one.
        assert_eq!(decoded(message(REQ_PAGES, &[0; 11])), None);
        assert_eq!(decoded(message(REQ_PAGES_ID, &[])), None);
        assert_eq!(decoded(pong(3)), None);
        assert_eq!(decoded(message(9, &[0; 12])), None);
    }

    #[test]
    fn requests_count_at_least_one_page() {
        let pages = |len| PageRequest { start: 0, len }.pages();
        assert_eq!(
            (pages(0), pages(4096), pages(6000), pages(65536)),
            (1, 1, 1, 16)
        );
    }

    /// Releases `delays` for messages arriving `gaps` apart, checking the schedule's rules.
    fn check_schedule(gaps: &[Duration], delays: &[Duration]) {
        let mut schedule = Schedule::default();
        let mut arrival = Instant::now();
        let mut previous: Option<Instant> = None;
        for (gap, delay) in gaps.iter().zip(delays) {
            arrival += *gap;
            let release = schedule.release(arrival, *delay);
            assert!(release >= arrival + *delay);
            if let Some(previous) = previous {
                assert!(release >= previous);
                assert_eq!(release, (arrival + *delay).max(previous));
            } else {
                assert_eq!(release, arrival + *delay);
            }
            previous = Some(release);
        }
    }

    #[test]
    fn fixed_delays_release_each_after_its_own_arrival() {
        let mut schedule = Schedule::default();
        let start = Instant::now();
        let releases: Vec<_> = [0, 1, 1, 50]
            .into_iter()
            .map(|at| schedule.release(start + ms(at), ms(20)))
            .collect();
        let expected: Vec<_> = [20, 21, 21, 70]
            .into_iter()
            .map(|at| start + ms(at))
            .collect();
        assert_eq!(releases, expected);
        check_schedule(&[ms(0), ms(3), ms(0), ms(40)], &[ms(20); 4]);
    }

    #[test]
    fn a_short_delay_waits_behind_a_long_one() {
        let mut schedule = Schedule::default();
        let start = Instant::now();
        assert_eq!(schedule.release(start, ms(30)), start + ms(30));
        // The next request (or a PONG, with no delay) arrives later but goes out after it.
        assert_eq!(schedule.release(start + ms(1), ms(5)), start + ms(30));
        assert_eq!(
            schedule.release(start + ms(2), Duration::ZERO),
            start + ms(30)
        );
        assert_eq!(
            schedule.release(start + ms(40), Duration::ZERO),
            start + ms(40)
        );
    }

    #[test]
    fn random_delays_keep_order_and_their_minimum() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        for text in ["uniform:1ms..20ms", "lognormal:1ms,10ms"] {
            let model: LatencyModel = text.parse().expect("valid");
            let gaps: Vec<_> = (0..2000)
                .map(|_| Duration::from_micros(rng.random_range(0..3000)))
                .collect();
            let delays: Vec<_> = (0..2000).map(|_| model.sample(&mut rng)).collect();
            check_schedule(&gaps, &delays);
        }
    }

    #[test]
    fn huge_draws_do_not_overflow() {
        let mut schedule = Schedule::default();
        let now = Instant::now();
        assert_eq!(schedule.release(now, Duration::MAX), now + MAX_DELAY);
    }

    #[test]
    fn draws_repeat_per_connection() {
        let delay = Delay {
            model: "uniform:1ms..9ms".parse().expect("valid"),
            seed: 5,
        };
        let draws = |index| {
            let mut draws = Draws::for_connection(&delay, index);
            (0..32).map(|_| draws.draw()).collect::<Vec<_>>()
        };
        assert_eq!(draws(0), draws(0));
        assert_ne!(draws(0), draws(1));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let first: Vec<_> = (0..32).map(|_| delay.model.sample(&mut rng)).collect();
        assert_eq!(
            draws(0),
            first,
            "the first connection draws from the seed itself"
        );
    }

    #[test]
    fn tally_summarises_delays() {
        let mut tally = DurationTally::default();
        assert_eq!(tally.summary(), None);
        for millis in [4, 1, 7] {
            tally.add(ms(millis));
        }
        assert_eq!(
            tally.summary(),
            Some(DelayStats {
                min: ms(1),
                mean: ms(4),
                max: ms(7)
            })
        );
    }

    fn example_stats() -> ShaperStats {
        ShaperStats {
            connections: 1,
            forward_bytes: 134 * (1 << 20) + 200 * 1024,
            return_messages: 415,
            page_requests: 412,
            pages_requested: 412,
            drawn: Some(DelayStats {
                min: ms(1),
                mean: ms(1),
                max: ms(1),
            }),
            measured: Some(DelayStats {
                min: Duration::from_nanos(1_060_400),
                mean: Duration::from_nanos(1_103_600),
                max: Duration::from_nanos(2_500_000),
            }),
            acks: Acks::Quick,
        }
    }

    #[test]
    fn stats_print_on_one_line() {
        assert_eq!(
            example_stats().to_string(),
            "412 page requests (412 pages) delayed: drawn min 1ms mean 1ms max 1ms, \
             measured min 1060us mean 1104us max 2500us; 134.2 MiB forward, \
             415 return messages, 1 connection"
        );
        let undelayed = ShaperStats {
            drawn: None,
            measured: Some(DelayStats {
                min: Duration::from_nanos(800),
                mean: Duration::from_nanos(1_500),
                max: ms(2),
            }),
            page_requests: 1,
            pages_requested: 4,
            ..example_stats()
        };
        assert_eq!(
            undelayed.to_string(),
            "1 page request (4 pages) not delayed: measured min 800ns mean 2us max 2ms; \
             134.2 MiB forward, 415 return messages, 1 connection"
        );
        let delayed_acks = ShaperStats {
            acks: Acks::Delayed,
            ..undelayed
        };
        assert!(
            delayed_acks
                .to_string()
                .ends_with("1 connection, delayed ACKs"),
            "{delayed_acks}"
        );
        assert_eq!(delayed_acks.to_json()["acks"], "delayed");
        assert_eq!(example_stats().to_json()["acks"], "quick");
        assert_eq!(
            ShaperStats::default().to_string(),
            "no page requests; 0.0 MiB forward, 0 return messages, 0 connections"
        );
    }

    #[test]
    fn stats_as_json() {
        let json = example_stats().to_json();
        assert_eq!(json["page_requests"], 412);
        assert_eq!(json["forward_bytes"], 134 * (1 << 20) + 200 * 1024);
        assert_eq!(json["drawn"]["mean_ns"], 1_000_000);
        assert_eq!(json["measured"]["min_ns"], 1_060_400);
        assert_eq!(json["measured"]["max_ns"], 2_500_000);
        let empty = ShaperStats::default().to_json();
        assert!(empty["drawn"].is_null() && empty["measured"].is_null());
        assert_eq!(empty["connections"], 0);
    }

    /// A shaper between a fake source and a fake destination, both with `TEST_TIMEOUT` on
    /// their reads.
    struct Rig {
        shaper: Shaper,
        source: TcpStream,
        destination: TcpStream,
    }

    fn rig(delay: Option<Delay>) -> Rig {
        let upstream = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let shaper = Shaper::start(upstream.local_addr().expect("address"), delay, Acks::Quick)
            .expect("start");
        let source = TcpStream::connect(shaper.local_addr()).expect("connect to the shaper");
        upstream.set_nonblocking(true).expect("non-blocking");
        let deadline = Instant::now() + TEST_TIMEOUT;
        let destination = loop {
            match upstream.accept() {
                Ok((destination, _)) => break destination,
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the shaper never connected");
                    thread::sleep(ms(1));
                }
                Err(error) => panic!("accept: {error}"),
            }
        };
        destination.set_nonblocking(false).expect("blocking");
        for socket in [&source, &destination] {
            socket
                .set_read_timeout(Some(TEST_TIMEOUT))
                .expect("timeout");
        }
        Rig {
            shaper,
            source,
            destination,
        }
    }

    fn fixed(delay: Duration) -> Option<Delay> {
        Some(Delay {
            model: LatencyModel::Fixed(delay),
            seed: 1,
        })
    }

    fn read_exactly(mut socket: &TcpStream, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        socket.read_exact(&mut bytes).expect("read");
        bytes
    }

    fn read_to_end(mut socket: &TcpStream) -> Vec<u8> {
        let mut bytes = Vec::new();
        socket.read_to_end(&mut bytes).expect("read to the end");
        bytes
    }

    #[test]
    fn shaper_forwards_the_main_stream_unchanged() {
        let rig = rig(fixed(ms(20)));
        let sent: Vec<u8> = (0..3 * 1024 * 1024 + 17)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let source = rig.source.try_clone().expect("clone");
        let writer = thread::spawn({
            let sent = sent.clone();
            move || {
                (&source).write_all(&sent).expect("write");
                source.shutdown(Shutdown::Write).expect("shutdown");
            }
        });
        assert!(read_to_end(&rig.destination) == sent, "bytes changed");
        writer.join().expect("writer");
        let stats = rig.shaper.stats();
        assert_eq!(
            (stats.connections, stats.forward_bytes),
            (1, sent.len() as u64)
        );
    }

    #[test]
    fn shaper_without_a_model_copies_the_return_path_with_its_truncated_tail() {
        let rig = rig(None);
        let truncated = req_pages_id(0x9000, 4096, "pc.ram");
        let sent = [&pong(1)[..], &req_pages(0, 4096), &truncated[..10]].concat();
        (&rig.destination).write_all(&sent).expect("write");
        rig.destination.shutdown(Shutdown::Write).expect("shutdown");
        assert_eq!(read_to_end(&rig.source), sent);
        let stats = rig.shaper.stats();
        assert_eq!((stats.return_messages, stats.page_requests), (2, 1));
        assert_eq!(stats.drawn, None);
        assert!(stats.measured.is_some());
    }

    #[test]
    fn shaper_delays_page_requests_in_order_and_counts_them() {
        let delay = ms(20);
        let rig = rig(fixed(delay));
        let request = req_pages(0x10_0000, 4096);
        let sent = Instant::now();
        (&rig.destination).write_all(&request).expect("write");
        assert_eq!(read_exactly(&rig.source, request.len()), request);
        assert!(
            sent.elapsed() >= delay,
            "released after {:?}",
            sent.elapsed()
        );

        // A PONG right behind a delayed request goes out after it, not before.
        let named = req_pages_id(0x20_0000, 8192, "pc.ram");
        let ping_answer = pong(7);
        let sent = Instant::now();
        (&rig.destination)
            .write_all(&[&named[..], &ping_answer].concat())
            .expect("write");
        assert_eq!(read_exactly(&rig.source, named.len()), named);
        assert_eq!(read_exactly(&rig.source, ping_answer.len()), ping_answer);
        assert!(sent.elapsed() >= delay, "PONG after {:?}", sent.elapsed());

        // Every write is counted before the source sees its side end.
        rig.destination.shutdown(Shutdown::Write).expect("shutdown");
        assert!(read_to_end(&rig.source).is_empty());
        let stats = rig.shaper.stats();
        assert_eq!(
            (
                stats.connections,
                stats.return_messages,
                stats.page_requests,
                stats.pages_requested
            ),
            (1, 3, 2, 3)
        );
        let fixed_draws = DelayStats {
            min: delay,
            mean: delay,
            max: delay,
        };
        assert_eq!(stats.drawn, Some(fixed_draws));
        let measured = stats.measured.expect("measured");
        assert!(measured.min >= delay, "{measured:?}");
        assert!(measured.min <= measured.mean && measured.mean <= measured.max);
    }

    #[test]
    fn shaper_does_not_delay_a_pong_alone() {
        // With an hour's latency, a PONG that arrives at all was not given it.
        let rig = rig(fixed(Duration::from_secs(3600)));
        let answer = pong(42);
        (&rig.destination).write_all(&answer).expect("write");
        assert_eq!(read_exactly(&rig.source, answer.len()), answer);
        let stats = rig.shaper.stats();
        assert_eq!((stats.return_messages, stats.page_requests), (1, 0));
        assert_eq!(stats.drawn, None);
    }

    #[test]
    fn dropping_the_shaper_ends_its_threads() {
        let rig = rig(fixed(Duration::from_secs(3600)));
        // A request held for an hour, and both copy directions blocked reading.
        (&rig.destination)
            .write_all(&req_pages(0, 4096))
            .expect("write");
        let deadline = Instant::now() + TEST_TIMEOUT;
        while rig.shaper.stats().page_requests == 0 {
            assert!(Instant::now() < deadline, "the request was never read");
            thread::sleep(ms(1));
        }
        let (dropped, done) = mpsc::channel();
        let Rig {
            shaper,
            source,
            destination,
        } = rig;
        thread::spawn(move || {
            drop(shaper);
            let _ = dropped.send(());
        });
        done.recv_timeout(TEST_TIMEOUT)
            .expect("dropping the shaper did not return");
        // Both fake QEMUs see their connection end, without the held request.
        for socket in [&source, &destination] {
            let mut byte = [0];
            match (&*socket).read(&mut byte) {
                Ok(read) => assert_eq!(read, 0),
                Err(error) => assert!(
                    !matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                    "still open: {error}"
                ),
            }
        }
    }
}
