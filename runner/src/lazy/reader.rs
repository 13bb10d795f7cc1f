//! The fault reader: reads userfaultfd messages, one fetch per missing page (plus the
//! readahead after it), and queues it for the fetchers with its latency drawn from the model.
//! It never blocks on a fetch, so duplicates and new faults are seen at once, and it tells the
//! fault observer (an async PF mode) who waits for what and for how long.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use userfaultfd::{Event, EventBuffer};
use workloads::pages::PAGE_SIZE;

use super::latency::{Draws, LatencyModel};
use super::page_table::Fault as PageFault;
use super::server::{Error, Shared};
use super::work::Fault;
use crate::inject::{Every, Inject, Injections, SPIKE_FACTOR};

/// Messages taken per `read`: a burst of faults costs one system call.
const MESSAGES_PER_READ: usize = 64;
/// `poll` without a timeout: the stop event ends the wait.
const NO_TIMEOUT: libc::c_int = -1;

/// The thread id recorded for readahead fetches: no thread asked for them.
const READAHEAD: i32 = 0;

/// The reader's own state: the latency stream, the readahead depth, and the latency spikes
/// injected (`--inject spikes`).
pub struct Reader {
    latencies: Draws,
    readahead: u16,
    inject: Injections,
    spikes: Every,
}

impl Reader {
    /// The same seed draws the same latencies for the same order of faults. With
    /// `Inject::Spikes` in `inject`, every 16th fetch takes [`SPIKE_FACTOR`] times its latency.
    pub fn new(latency: LatencyModel, seed: u64, readahead: u16, inject: Injections) -> Self {
        Reader {
            latencies: latency.draws(seed),
            readahead,
            inject,
            spikes: Every::default(),
        }
    }

    /// The latency of the next fetch.
    fn draw(&mut self, counters: &super::stats::Counters) -> Duration {
        let latency = self.latencies.next_latency();
        if self.spikes.next(Inject::Spikes, &self.inject) {
            counters.spike();
            latency * SPIKE_FACTOR
        } else {
            latency
        }
    }
}

/// What ended a wait.
enum Wake {
    Messages,
    Stop,
}

/// Serves `shared`'s userfaultfd until its stop event is signalled.
pub fn run(shared: &Shared, mut reader: Reader) -> Result<(), Error> {
    let mut messages = EventBuffer::new(MESSAGES_PER_READ);
    loop {
        match wait(shared.uffd.as_raw_fd(), shared.stop.as_raw_fd())? {
            Wake::Stop => return Ok(()),
            Wake::Messages => {}
        }
        // Non-blocking: a wake-up whose messages another read took yields none.
        for event in shared
            .uffd
            .read_events(&mut messages)
            .map_err(Error::Read)?
        {
            handle(shared, &mut reader, event.map_err(Error::Read)?)?;
        }
    }
}

/// Waits until the userfaultfd has messages or `stop` is signalled; `stop` wins.
fn wait(uffd: RawFd, stop: RawFd) -> Result<Wake, Error> {
    let readable = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [readable(stop), readable(uffd)];
    let count = libc::nfds_t::try_from(fds.len()).expect("two descriptors");
    loop {
        // SAFETY: `fds` is an array of `count` initialised `pollfd`s that lives across the
        // call; `poll` only writes their `revents`.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, NO_TIMEOUT) };
        if ready >= 0 {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(Error::Poll(error));
        }
    }
    Ok(if fds[0].revents != 0 {
        Wake::Stop
    } else {
        Wake::Messages
    })
}

fn handle(shared: &Shared, reader: &mut Reader, event: Event) -> Result<(), Error> {
    let Event::Pagefault {
        addr, thread_id, ..
    } = event
    else {
        // Only page faults were asked for (no fork, remap, remove or unmap events).
        return Err(Error::UnexpectedEvent(format!("{event:?}")));
    };
    let host = addr as usize;
    let gpa_page = shared
        .window
        .page_of(host)
        .ok_or(Error::OutsideWindow(host))?;
    let thread_id = thread_id.as_raw();
    let at = Instant::now();
    let expected = match fetch(shared, reader, gpa_page, thread_id, at) {
        Fetched::Queued(latency) => {
            // Readahead pages are fetched after the one that was asked for.
            for ahead in 1..=u64::from(reader.readahead) {
                let next = gpa_page + ahead * PAGE_SIZE as u64;
                if !shared.window.contains(next) {
                    break;
                }
                if let Fetched::Queued(_) = fetch(shared, reader, next, READAHEAD, at) {
                    shared.counters.read_ahead();
                }
            }
            latency
        }
        Fetched::Already(remaining) => {
            shared.counters.duplicate();
            remaining
        }
    };
    if let Some(observer) = &shared.observer {
        observer
            .waiting(gpa_page, thread_id, expected)
            .map_err(Error::Observer)?;
    }
    Ok(())
}

/// What a fault did to its page's fetch.
enum Fetched {
    /// The page was missing: its fetch is queued and takes this long.
    Queued(Duration),
    /// The page was in flight or served already: it is due in this long (0: it is there).
    Already(Duration),
}

/// Records a fault on `gpa_page` and, if the page is missing, queues its fetch with a latency
/// drawn now.
fn fetch(
    shared: &Shared,
    reader: &mut Reader,
    gpa_page: u64,
    thread_id: i32,
    at: Instant,
) -> Fetched {
    let mut latency = Duration::ZERO;
    let fault = shared.table().fault(shared.window.index(gpa_page), || {
        latency = reader.draw(&shared.counters);
        at + latency
    });
    match fault {
        PageFault::Fetch => {
            shared.queue.push(Fault {
                gpa_page,
                thread_id,
                at,
                latency,
            });
            Fetched::Queued(latency)
        }
        PageFault::InFlight { due } => Fetched::Already(due.saturating_duration_since(at)),
        PageFault::Served => Fetched::Already(Duration::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lazy::stats::Counters;

    #[test]
    fn fetches_draw_the_seeds_latencies_as_under_the_el2_host() {
        // latency-model pins these for seed 1; the EL2 host's `latency=` draws them too.
        let model = "lognormal:1ms,10ms".parse().unwrap();
        let mut reader = Reader::new(model, 1, 0, Injections::default());
        let counters = Counters::default();
        let drawn: Vec<Duration> = (0..4).map(|_| reader.draw(&counters)).collect();
        let expected = [967637, 989250, 586830, 56002].map(Duration::from_nanos);
        assert_eq!(drawn, expected);
    }
}
