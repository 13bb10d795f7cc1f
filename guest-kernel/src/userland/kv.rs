//! The `kv` scenario: a UDP key-value service (`workloads::kv`) run by ring-3 tasks.
//!
//! One network task runs the virtio-net driver and smoltcp; it hands every `GET` to a pool
//! of worker tasks and sends their answers. A worker reads its key's value page, which for
//! a cold key is a page the host has not populated: with async PF on, only that worker
//! waits for it and the network task keeps serving the others; with it off, the whole
//! vCPU stops until the page arrives. The runner measures the difference from outside.

use super::virtio_net::{Nic, NicMemory};
use super::{exit, park, wake, yield_now};
use crate::arch;
use crate::uprintln;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use heapless::Deque;
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint, Ipv4Address};
use spin::Mutex;
use workloads::kv::{self, MAX_REPLY, Reply, Request};
use workloads::pages::{self, WORDS};

/// Requests waiting for a worker, and answers waiting to be sent.
const QUEUE_DEPTH: usize = 32;
/// The park key the workers wait on for requests.
const JOBS_KEY: u64 = 0x6b76_6a6f_6273; // "kvjobs"
/// Datagrams the socket buffers. Its payload room takes any datagram up to the MTU, so an
/// oversized request reaches the parser (and is counted) instead of being dropped unseen.
const SOCKET_PACKETS: usize = 64;
const SOCKET_RX_BYTES: usize = 32 * 1024;
const SOCKET_TX_BYTES: usize = SOCKET_PACKETS * MAX_REPLY;

/// What the service is, shared by its tasks in user memory.
#[repr(C)]
pub struct KvArgs {
    pub mmio_base: u64,
    pub address: [u8; 4],
    pub prefix: u8,
    pub seed: u64,
    /// Guest-physical start of the workload region: cold key `k` lives at `k` pages above.
    pub workload_base: u64,
    /// Where the hot keys' copies live (in memory the host populated).
    pub hot_base: u64,
    pub hot: u64,
    pub cold: u64,
    pub workers: u32,
    /// The cold pages start zeroed and the network task fills them (no host page source).
    pub fill_cold: bool,
    /// The TSC's rate: the network task reads the TSC itself for smoltcp's clock, as a
    /// `time` system call on every poll would cost a ring-0 path each.
    pub tsc_khz: u64,
    pub shared: Shared,
}

#[derive(Clone, Copy)]
struct Job {
    key: u64,
    id: u64,
    from: IpEndpoint,
}

#[derive(Clone, Copy)]
struct Answer {
    key: u64,
    id: u64,
    checksum: u64,
    to: IpEndpoint,
}

pub struct Shared {
    jobs: Mutex<Deque<Job, QUEUE_DEPTH>>,
    answers: Mutex<Deque<Answer, QUEUE_DEPTH>>,
    quit: AtomicBool,
    /// The network task has given up: nobody sends answers any more.
    net_gone: AtomicBool,
    workers_done: AtomicU32,
    answered: AtomicU64,
}

impl Shared {
    pub const fn new() -> Self {
        Self {
            jobs: Mutex::new(Deque::new()),
            answers: Mutex::new(Deque::new()),
            quit: AtomicBool::new(false),
            net_gone: AtomicBool::new(false),
            workers_done: AtomicU32::new(0),
            answered: AtomicU64::new(0),
        }
    }
}

/// Runs `f` on the locked `mutex`. A lock is held for a few instructions, but its holder may
/// be preempted: spinning would then burn the rest of a time slice, so waiters yield.
fn with<T, R>(mutex: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    loop {
        if let Some(mut guard) = mutex.try_lock() {
            return f(&mut guard);
        }
        yield_now();
    }
}

fn value(a: &KvArgs, key: u64) -> *const [u64; WORDS] {
    let page = if key < a.hot {
        a.hot_base + key * pages::PAGE_SIZE as u64
    } else {
        a.workload_base + key * pages::PAGE_SIZE as u64
    };
    page as *const [u64; WORDS]
}

/// The network task.
pub extern "C" fn server(arg: u64) -> ! {
    // SAFETY: the kernel passes a pointer to a `KvArgs` in user memory that outlives us.
    let a = unsafe { &*(arg as *const KvArgs) };
    fill_values(a);
    // On this task's stack, which lives as long as the guest: the card is given its address.
    let mut memory = NicMemory::new();
    let mut nic = match Nic::init(a.mmio_base, &mut memory) {
        Ok(nic) => nic,
        Err(e) => {
            uprintln!("kv: network card at {:#x}: {e}", a.mmio_base);
            give_up(a)
        }
    };
    let now = || Instant::from_micros((arch::timestamp() * 1000 / a.tsc_khz.max(1)) as i64);
    let mut iface = Interface::new(
        Config::new(EthernetAddress(nic.mac).into()),
        &mut nic,
        now(),
    );
    let [o0, o1, o2, o3] = a.address;
    let ip = Ipv4Address::new(o0, o1, o2, o3);
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(ip.into(), a.prefix))
            .expect("room for one address")
    });
    let mut rx_meta = [PacketMetadata::EMPTY; SOCKET_PACKETS];
    let mut rx_bytes = [0; SOCKET_RX_BYTES];
    let mut tx_meta = [PacketMetadata::EMPTY; SOCKET_PACKETS];
    let mut tx_bytes = [0; SOCKET_TX_BYTES];
    let socket = udp::Socket::new(
        PacketBuffer::new(&mut rx_meta[..], &mut rx_bytes[..]),
        PacketBuffer::new(&mut tx_meta[..], &mut tx_bytes[..]),
    );
    let mut storage = [SocketStorage::EMPTY; 1];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let handle = sockets.add(socket);
    sockets
        .get_mut::<udp::Socket>(handle)
        .bind(kv::PORT)
        .expect("a fresh socket binds");
    let m = nic.mac;
    uprintln!(
        "kv: serving {ip}:{} ({} hot, {} cold keys, {} workers), mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        kv::PORT,
        a.hot,
        a.cold,
        a.workers,
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5]
    );

    let mut service = Service {
        a,
        malformed: 0,
        unknown_keys: 0,
        busy: 0,
        quit: None,
    };
    loop {
        iface.poll(now(), &mut nic, &mut sockets);
        let socket = sockets.get_mut::<udp::Socket>(handle);
        let mut worked = false;
        let mut queued = false;
        while let Ok((datagram, meta)) = socket.recv() {
            worked = true;
            let mut reply = [0; MAX_REPLY];
            match service.request(datagram, meta.endpoint, &mut reply) {
                Handled::Queued => queued = true,
                Handled::Reply(len) => {
                    // A full send buffer drops the reply; the client times it out.
                    let _ = socket.send_slice(&reply[..len], meta.endpoint);
                }
                Handled::Dropped => {}
            }
        }
        if queued {
            wake(JOBS_KEY);
        }
        while socket.can_send() {
            let Some(answer) = with(&a.shared.answers, |q| q.pop_front()) else {
                break;
            };
            worked = true;
            let mut reply = [0; MAX_REPLY];
            let len = Reply::Value {
                id: answer.id,
                key: answer.key,
                checksum: answer.checksum,
            }
            .encode(&mut reply)
            .expect("a value reply fits");
            // `can_send` promises a metadata slot, not room: keep the answer for later.
            if socket.send_slice(&reply[..len], answer.to).is_err() {
                with(&a.shared.answers, |q| q.push_front(answer))
                    .unwrap_or_else(|_| unreachable!("one was just taken"));
                break;
            }
        }
        if let Some(broken) = nic.broken() {
            uprintln!("kv: the network card misbehaved ({broken:?}); stopping");
            give_up(a)
        }
        if let Some((id, to)) = service.quit
            && a.shared.workers_done.load(Ordering::Acquire) == a.workers
            && with(&a.shared.answers, |q| q.is_empty())
            && with(&a.shared.jobs, |q| q.is_empty())
        {
            service.finish(id, to, socket);
            // Until the goodbye has left the card, or a second has passed (a card that stopped
            // sending, or a neighbour that never answers ARP).
            let deadline = arch::timestamp() + a.tsc_khz * 1000;
            while sockets.get_mut::<udp::Socket>(handle).send_queue() > 0 {
                if arch::timestamp() > deadline || nic.broken().is_some() {
                    uprintln!("kv: the goodbye did not leave the card within 1 s");
                    break;
                }
                iface.poll(now(), &mut nic, &mut sockets);
            }
            let c = nic.counts();
            uprintln!(
                "kv: answered {} malformed {} unknown-keys {} busy {} frames-in {} frames-out {} tx-full {}",
                a.shared.answered.load(Ordering::Relaxed),
                service.malformed,
                service.unknown_keys,
                service.busy,
                c.received,
                c.sent,
                c.tx_full
            );
            exit(0)
        }
        if !worked {
            yield_now();
        }
    }
}

/// Ends the service with a failure: the workers are told to quit (so the guest ends
/// rather than waiting on them forever) and the network task's status says why.
fn give_up(a: &KvArgs) -> ! {
    a.shared.net_gone.store(true, Ordering::Release);
    a.shared.quit.store(true, Ordering::Release);
    wake(JOBS_KEY);
    exit(1)
}

/// Copies the hot keys' values into their place, and writes the cold ones in place when no
/// host page source fills them.
fn fill_values(a: &KvArgs) {
    for key in 0..a.hot {
        let page = kv::value_page(a.workload_base, key);
        // SAFETY: the kernel gave the service `hot` pages at `hot_base`, used by no one else.
        pages::fill(a.seed, page, unsafe { &mut *(value(a, key) as *mut _) });
    }
    if a.fill_cold {
        for key in a.hot..a.hot + a.cold {
            let page = kv::value_page(a.workload_base, key);
            // SAFETY: as above, for the cold pages in the workload region.
            pages::fill(a.seed, page, unsafe { &mut *(value(a, key) as *mut _) });
        }
    }
}

enum Handled {
    Queued,
    Reply(usize),
    Dropped,
}

struct Service<'a> {
    a: &'a KvArgs,
    malformed: u64,
    unknown_keys: u64,
    busy: u64,
    /// The `QUIT` being honoured: its id and sender.
    quit: Option<(u64, IpEndpoint)>,
}

impl Service<'_> {
    fn request(&mut self, datagram: &[u8], from: IpEndpoint, reply: &mut [u8]) -> Handled {
        let mut error = |id, reason| {
            Reply::Error { id, reason }
                .encode(reply)
                .map(Handled::Reply)
        };
        let handled = match kv::parse_request(datagram) {
            Ok(Request::Get { key, id }) if key >= self.a.hot + self.a.cold => {
                self.unknown_keys += 1;
                error(Some(id), "no-such-key")
            }
            Ok(Request::Get { .. }) if self.quit.is_some() => None,
            Ok(Request::Get { key, id }) => {
                let job = Job { key, id, from };
                match with(&self.a.shared.jobs, |q| q.push_back(job)) {
                    Ok(()) => Some(Handled::Queued),
                    Err(_) => {
                        self.busy += 1;
                        error(Some(id), "busy")
                    }
                }
            }
            Ok(Request::Quit { id }) => {
                if self.quit.is_none() {
                    self.quit = Some((id, from));
                    self.a.shared.quit.store(true, Ordering::Release);
                    wake(JOBS_KEY);
                }
                None
            }
            Err(e) => {
                self.malformed += 1;
                e.reason().and_then(|reason| error(e.id(), reason))
            }
        };
        handled.unwrap_or(Handled::Dropped)
    }

    fn finish(&self, id: u64, to: IpEndpoint, socket: &mut udp::Socket<'_>) {
        let mut reply = [0; MAX_REPLY];
        let len = Reply::Bye {
            id,
            answered: self.a.shared.answered.load(Ordering::Relaxed),
            malformed: self.malformed,
        }
        .encode(&mut reply)
        .expect("a goodbye fits");
        let _ = socket.send_slice(&reply[..len], to);
    }
}

/// A worker task: answers requests until the service quits and no request is left.
pub extern "C" fn worker(arg: u64) -> ! {
    // SAFETY: as in `server`.
    let a = unsafe { &*(arg as *const KvArgs) };
    let shared = &a.shared;
    loop {
        let Some((job, more)) = with(&shared.jobs, |q| q.pop_front().map(|j| (j, !q.is_empty())))
        else {
            // Requests are queued before `quit` is set: after seeing it, one more look finds
            // any request that came before the QUIT.
            if shared.quit.load(Ordering::Acquire) && with(&shared.jobs, |q| q.is_empty()) {
                shared.workers_done.fetch_add(1, Ordering::Release);
                exit(0)
            }
            // A wake between the look and the park is remembered: the park returns at once.
            park(JOBS_KEY);
            continue;
        };
        if more {
            // A remembered wake is one wake, however many requests it stood for: pass on
            // what this worker leaves, so no request waits behind this one's page.
            wake(JOBS_KEY);
        }
        // SAFETY: keys below hot + cold name pages the kernel gave the service; a cold one
        // may not be present yet, which is the point.
        let checksum = kv::checksum(unsafe { &*value(a, job.key) });
        let answer = Answer {
            key: job.key,
            id: job.id,
            checksum,
            to: job.from,
        };
        // The network task empties the queue as it sends; wait for room if it is full.
        while with(&shared.answers, |q| q.push_back(answer)).is_err() {
            if shared.net_gone.load(Ordering::Acquire) {
                break;
            }
            yield_now();
        }
        shared.answered.fetch_add(1, Ordering::Relaxed);
    }
}
