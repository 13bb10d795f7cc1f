//! The load generator: sends the schedule open loop to the guest's service, checks every
//! answer against the page generator, and ends the service with `QUIT`, checking its
//! counts against ours.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use workloads::kv::{self, Reply};

use super::malformed;
use super::metrics::Sample;
use super::schedule::{Class, Datagram, Send};
use crate::lazy::region::WORKLOAD_BASE;

/// The guest's address, as its command line's `ip=` gives it.
pub const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Probe GETs' ids start here: above the load's, below the malformed requests'.
const PROBE_ID_BASE: u64 = 1 << 40;
const QUIT_ID: u64 = 1 << 56;
/// Between probes, and between `QUIT`s until the `BYE`.
const RETRY: Duration = Duration::from_millis(100);
/// How long the receiver blocks before it looks whether to stop.
const POLL: Duration = Duration::from_millis(20);
/// How long after the `QUIT` the `BYE` may take.
const BYE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {what}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{count} wrong answer(s); the first: {first}")]
    Wrong { count: usize, first: String },
    #[error(
        "{hot} hot and {cold} cold request(s) got no answer, waited for {} after the last \
         send and then until the service's BYE",
        crate::units::format_duration(*drain)
    )]
    Lost {
        hot: u64,
        cold: u64,
        drain: Duration,
    },
    #[error(
        "the service did not answer QUIT with BYE within {}",
        crate::units::format_duration(BYE_TIMEOUT)
    )]
    NoBye,
    #[error(
        "the service counted {answered} GET(s) answered and {malformed} malformed; we had \
         {our_answered} answered and sent {our_malformed} malformed"
    )]
    Counts {
        answered: u64,
        malformed: u64,
        our_answered: u64,
        our_malformed: u64,
    },
    #[error("{got} of the {expected} malformed datagrams that should have got an ERR did")]
    MissingErrors { got: u64, expected: u64 },
}

fn io(what: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// A socket connected to the guest's service.
pub struct Client {
    socket: UdpSocket,
    seed: u64,
    /// Probes answered (so far), which the service counts as GETs answered too.
    probes_answered: u64,
}

impl Client {
    /// `service`: the guest's [`GUEST`]:[`kv::PORT`] (a stand-in in tests).
    pub fn connect(service: SocketAddrV4, seed: u64) -> Result<Self, Error> {
        let socket =
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(io("bind a UDP socket"))?;
        socket
            .connect(service)
            .map_err(io("connect the UDP socket to the guest"))?;
        Ok(Client {
            socket,
            seed,
            probes_answered: 0,
        })
    }

    /// Sends `GET 0` probes every [`RETRY`] until one is answered rightly (true), `give_up`
    /// says to stop, or `timeout` passes (false).
    pub fn probe(&mut self, timeout: Duration, give_up: impl Fn() -> bool) -> Result<bool, Error> {
        let deadline = Instant::now() + timeout;
        let mut checker = Checker::new(self.seed, &[]);
        let mut n = 0;
        while Instant::now() < deadline && !give_up() {
            let request = format!("GET 0 {}", PROBE_ID_BASE + n);
            n += 1;
            self.socket
                .send(request.as_bytes())
                .map_err(io("send a probe"))?;
            let until = (Instant::now() + RETRY).min(deadline);
            while let Some(datagram) = recv_until(&self.socket, until)? {
                checker.check(&datagram, Instant::now());
            }
            if checker.probes > 0 {
                break;
            }
        }
        checker.result()?;
        self.probes_answered += checker.probes;
        Ok(checker.probes > 0)
    }

    /// Sends `sends` from now on, each when it is due; waits up to `drain` after the last for
    /// the answers; ends the service and checks its counts. Returns the answered GETs.
    pub fn drive(&mut self, sends: &[Send], drain: Duration) -> Result<Vec<Sample>, Error> {
        let gets: Vec<(u64, Class)> = sends
            .iter()
            .filter_map(|s| match s.what {
                Datagram::Get { key, class, .. } => Some((key, class)),
                Datagram::Malformed { .. } => None,
            })
            .collect();
        let malformed = sends.len() - gets.len();
        let expected_errors = sends
            .iter()
            .filter(|s| matches!(s.what, Datagram::Malformed { n } if malformed::Kind::nth(n).answered()))
            .count() as u64;
        let answered = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let bye = AtomicBool::new(false);
        let receiver_socket = self
            .socket
            .try_clone()
            .map_err(io("clone the UDP socket"))?;
        let start = Instant::now();
        let (sent, checker) = std::thread::scope(|scope| {
            let receiver = scope.spawn(|| {
                let mut checker = Checker::new(self.seed, &gets);
                while !stop.load(Ordering::Relaxed) {
                    match recv_until(&receiver_socket, Instant::now() + POLL) {
                        Ok(Some(datagram)) => {
                            if checker.check(&datagram, Instant::now()) {
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            if checker.bye.is_some() {
                                bye.store(true, Ordering::Relaxed);
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(error) => return Err(error),
                    }
                }
                Ok(checker)
            });
            let progress = Progress {
                answered: &answered,
                bye: &bye,
            };
            let sent = self.send_all(sends, start, gets.len(), drain, progress);
            stop.store(true, Ordering::Relaxed);
            let checker = receiver.join().expect("the receiver does not panic");
            (sent, checker)
        });
        let sent = sent?;
        let mut checker = checker?;
        checker.result()?;
        let samples = samples(sends, start, &sent, &checker.received);
        let lost = |class| {
            gets.iter()
                .zip(&checker.received)
                .filter(|((_, c), r)| *c == class && r.is_none())
                .count() as u64
        };
        let (hot, cold) = (lost(Class::Hot), lost(Class::Cold));
        if hot + cold > 0 {
            return Err(Error::Lost { hot, cold, drain });
        }
        if checker.errors != expected_errors {
            return Err(Error::MissingErrors {
                got: checker.errors,
                expected: expected_errors,
            });
        }
        let Some((answered, malformed_counted)) = checker.bye.take() else {
            return Err(Error::NoBye);
        };
        let our_answered = samples.len() as u64 + self.probes_answered + checker.probes;
        if answered != our_answered || malformed_counted != malformed as u64 {
            return Err(Error::Counts {
                answered,
                malformed: malformed_counted,
                our_answered,
                our_malformed: malformed as u64,
            });
        }
        Ok(samples)
    }

    /// The sender's side: sends on time, drains, sends `QUIT` until the receiver has seen
    /// the `BYE`. Returns each GET's send time.
    fn send_all(
        &self,
        sends: &[Send],
        start: Instant,
        gets: usize,
        drain: Duration,
        progress: Progress,
    ) -> Result<Vec<Option<Instant>>, Error> {
        let mut sent = vec![None; gets];
        for send in sends {
            let due = start + send.at;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            self.socket
                .send(&send.what.bytes())
                .map_err(io("send a request"))?;
            if let Datagram::Get { id, .. } = send.what {
                sent[id as usize] = Some(Instant::now());
            }
        }
        let drained = Instant::now() + drain;
        while progress.answered.load(Ordering::Relaxed) < gets as u64 && Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(1));
        }
        let deadline = Instant::now() + BYE_TIMEOUT;
        while !progress.bye.load(Ordering::Relaxed) && Instant::now() < deadline {
            self.quit()?;
            std::thread::sleep(RETRY);
        }
        Ok(sent)
    }

    /// Sends `QUIT` once (also how a failed run ends the guest early).
    pub fn quit(&self) -> Result<(), Error> {
        self.socket
            .send(format!("QUIT {QUIT_ID}").as_bytes())
            .map_err(io("send QUIT"))?;
        Ok(())
    }
}

/// What the receiver has seen, for the sender to know when to go on.
#[derive(Clone, Copy)]
struct Progress<'a> {
    answered: &'a AtomicU64,
    bye: &'a AtomicBool,
}

/// Waits for the next datagram until `deadline` (`None`: nothing came).
fn recv_until(socket: &UdpSocket, deadline: Instant) -> Result<Option<Vec<u8>>, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(None);
    }
    socket
        .set_read_timeout(Some(left))
        .map_err(io("set the socket's read timeout"))?;
    let mut buf = [0; 512];
    match socket.recv(&mut buf) {
        Ok(len) => Ok(Some(buf[..len].to_vec())),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        // An ICMP port unreachable from before the service listened.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(None),
        Err(source) => Err(Error::Io {
            what: "receive a reply",
            source,
        }),
    }
}

/// Checks replies as they come and keeps what they say.
struct Checker<'a> {
    seed: u64,
    /// Each GET's (key, class), by id.
    gets: &'a [(u64, Class)],
    received: Vec<Option<Instant>>,
    probes: u64,
    /// `ERR` replies to malformed datagrams.
    errors: u64,
    /// (answered, malformed) from the `BYE`.
    bye: Option<(u64, u64)>,
    wrong: Vec<String>,
}

impl<'a> Checker<'a> {
    fn new(seed: u64, gets: &'a [(u64, Class)]) -> Self {
        Checker {
            seed,
            gets,
            received: vec![None; gets.len()],
            probes: 0,
            errors: 0,
            bye: None,
            wrong: Vec::new(),
        }
    }

    /// Records one reply that came at `now`; true if it answered one of the load's GETs.
    fn check(&mut self, datagram: &[u8], now: Instant) -> bool {
        let text = || String::from_utf8_lossy(datagram).into_owned();
        let Ok(reply) = kv::parse_reply(datagram) else {
            self.wrong.push(format!("unparsable reply {:?}", text()));
            return false;
        };
        let problem = match reply {
            Reply::Value { id, key, checksum } => {
                let (want_key, class) = match id {
                    id if id < self.gets.len() as u64 => self.gets[id as usize],
                    id if (PROBE_ID_BASE..malformed::ID_BASE).contains(&id) => (0, Class::Hot),
                    _ => {
                        self.wrong
                            .push(format!("a reply to an id we never sent: {:?}", text()));
                        return false;
                    }
                };
                if key != want_key {
                    Some(format!("asked for key {want_key}"))
                } else if checksum != kv::expected_checksum(self.seed, WORKLOAD_BASE, key) {
                    Some(format!(
                        "{} key {key}'s value has another checksum",
                        class.name()
                    ))
                } else if id >= PROBE_ID_BASE {
                    self.probes += 1;
                    None
                } else if self.received[id as usize].replace(now).is_some() {
                    Some("answered twice".to_owned())
                } else {
                    return true;
                }
            }
            Reply::Error { id, .. } if id.is_none_or(|id| id >= malformed::ID_BASE) => {
                self.errors += 1;
                None
            }
            Reply::Error { .. } => Some("an error for a well-formed request".to_owned()),
            Reply::Bye {
                id: QUIT_ID,
                answered,
                malformed,
            } => {
                self.bye = Some((answered, malformed));
                None
            }
            Reply::Bye { .. } => Some("a BYE to a QUIT we never sent".to_owned()),
        };
        if let Some(problem) = problem {
            self.wrong.push(format!("{:?}: {problem}", text()));
        }
        false
    }

    fn result(&self) -> Result<(), Error> {
        match self.wrong.first() {
            Some(first) => Err(Error::Wrong {
                count: self.wrong.len(),
                first: first.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// The answered GETs' samples, their times from `start`.
fn samples(
    sends: &[Send],
    start: Instant,
    sent: &[Option<Instant>],
    received: &[Option<Instant>],
) -> Vec<Sample> {
    sends
        .iter()
        .filter_map(|send| {
            let Datagram::Get { id, class, .. } = send.what else {
                return None;
            };
            let sent = sent[id as usize]?;
            let received = received[id as usize]?;
            Some(Sample {
                class,
                sent: sent - start,
                received: received - start,
                latency: received.saturating_duration_since(start + send.at),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::Netns;
    use crate::serve::icmp::Pinger;
    use crate::serve::schedule::{Load, schedule};
    use workloads::kv::{Request, parse_request};

    const SEED: u64 = 5;
    const HOT: u64 = 16;

    /// The guest service's protocol, served by one thread; cold keys take 2 ms.
    fn fake_service(socket: UdpSocket) {
        let (mut answered, mut malformed) = (0, 0);
        let mut buf = [0; 512];
        loop {
            let (len, from) = socket.recv_from(&mut buf).expect("recv");
            let reply = match parse_request(&buf[..len]) {
                Ok(Request::Get { key, id }) => {
                    if key >= HOT {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    answered += 1;
                    let checksum = kv::expected_checksum(SEED, WORKLOAD_BASE, key);
                    Reply::Value { id, key, checksum }.to_string()
                }
                Ok(Request::Quit { id }) => {
                    let bye = Reply::Bye {
                        id,
                        answered,
                        malformed,
                    };
                    socket.send_to(bye.to_string().as_bytes(), from).unwrap();
                    return;
                }
                Err(error) => {
                    malformed += 1;
                    let Some(reason) = error.reason() else {
                        continue;
                    };
                    Reply::Error {
                        id: error.id(),
                        reason,
                    }
                    .to_string()
                }
            };
            socket.send_to(reply.as_bytes(), from).unwrap();
        }
    }

    /// In a namespace of its own (root only): ICMP echo on loopback, then a whole load
    /// against a stand-in service, with malformed datagrams; the namespace is gone after.
    #[test]
    fn a_load_against_a_stand_in_service_in_a_namespace() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root for network namespaces");
            return;
        }
        let netns = Netns::create().expect("create a namespace");
        let path = netns.path();
        assert!(path.exists());
        let load = Load {
            requests: 200,
            rate: 2000,
            hot_fraction: 0.8,
            hot_keys: HOT,
            cold_keys: 100,
            malformed: 10,
            seed: SEED,
        };
        let sends = schedule(&load).unwrap();
        let samples = netns
            .run_inside(|| {
                let rtt = Pinger::open()
                    .unwrap()
                    .until_answered(Ipv4Addr::LOCALHOST, Duration::from_secs(2), || false)
                    .unwrap();
                assert!(rtt.is_some_and(|rtt| rtt < Duration::from_secs(1)));
                let service = SocketAddrV4::new(Ipv4Addr::LOCALHOST, kv::PORT);
                let socket = UdpSocket::bind(service).unwrap();
                std::thread::scope(|scope| {
                    scope.spawn(|| fake_service(socket));
                    let mut client = Client::connect(service, SEED).unwrap();
                    assert!(client.probe(Duration::from_secs(2), || false).unwrap());
                    client.drive(&sends, Duration::from_secs(2))
                })
            })
            .expect("enter the namespace")
            .expect("the load succeeds");
        assert_eq!(samples.len(), 200);
        let cold = samples.iter().filter(|s| s.class == Class::Cold);
        assert!(cold.clone().count() > 10);
        assert!(cold.clone().all(|s| s.latency >= Duration::from_millis(2)));
        drop(netns);
        assert!(!path.exists(), "the namespace is deleted");
    }

    #[test]
    fn wrong_answers_are_caught() {
        let gets = [(3, Class::Hot), (20, Class::Cold)];
        let mut checker = Checker::new(SEED, &gets);
        let right = |id, key| {
            let checksum = kv::expected_checksum(SEED, WORKLOAD_BASE, key);
            Reply::Value { id, key, checksum }.to_string().into_bytes()
        };
        let now = Instant::now();
        assert!(checker.check(&right(0, 3), now));
        assert!(!checker.check(&right(0, 3), now), "twice");
        assert!(!checker.check(&right(1, 3), now), "another key");
        assert!(!checker.check(&right(7, 3), now), "unknown id");
        assert!(!checker.check(b"VAL 1 20 0000000000000000", now));
        assert!(!checker.check(b"ERR 1 no-such-key", now));
        assert!(!checker.check(b"nonsense", now));
        assert_eq!(checker.wrong.len(), 6, "{:?}", checker.wrong);
        assert!(checker.result().is_err());
        assert!(!checker.check(b"ERR - truncated", now));
        assert!(!checker.check(
            format!("ERR {} bad-field", malformed::ID_BASE).as_bytes(),
            now
        ));
        assert!(!checker.check(&right(PROBE_ID_BASE, 0), now));
        assert!(!checker.check(format!("BYE {QUIT_ID} 3 2").as_bytes(), now));
        assert_eq!(
            (checker.errors, checker.probes, checker.bye),
            (2, 1, Some((3, 2)))
        );
        assert_eq!(checker.wrong.len(), 6);
    }
}
