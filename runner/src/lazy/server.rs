//! The lazy memory server: one fault-reader thread and N fetcher threads around a userfaultfd
//! whose registered range is the lazy window of guest RAM.
//!
//! Stopping takes two steps, because a vCPU blocked on a missing page in ring 0 cannot be
//! kicked out of `KVM_RUN` (host-facts.md): `release` first makes the remaining fetches
//! immediate, so every blocked vCPU gets its page and sees its kick; once the vCPUs have stopped,
//! `finish` stops the threads and returns the counts.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use libc::c_void;
use userfaultfd::Uffd;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::fetcher;
use super::latency::LatencyModel;
use super::observer::{FaultObserver, ObserverError};
use super::page_table::PageTable;
use super::reader::{self, Reader};
use super::source::PageSource;
use super::stats::{Counters, LazyStats};
use super::window::Window;
use super::work::WorkQueue;
use crate::affinity;
use crate::inject::Injections;

/// Why serving lazy memory failed while the guest ran.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot wait for userfaultfd messages")]
    Poll(#[source] io::Error),
    #[error("cannot read userfaultfd messages")]
    Read(#[source] userfaultfd::Error),
    #[error("unexpected userfaultfd event {0}")]
    UnexpectedEvent(String),
    #[error("a fault at host address {0:#x} is outside the lazy range")]
    OutsideWindow(usize),
    #[error("cannot install guest page {gpa:#x}")]
    Copy {
        gpa: u64,
        #[source]
        source: userfaultfd::Error,
    },
    #[error("cannot install guest page {gpa:#x}: the kernel kept asking to retry (EAGAIN)")]
    CopyRetries { gpa: u64 },
    #[error("the async PF host failed")]
    Observer(#[source] ObserverError),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the lazy memory server's stop event")]
    StopEvent(#[source] io::Error),
    #[error("cannot start the lazy memory thread {name}")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot pin the fault reader to host CPU {cpu}")]
    Pin {
        cpu: usize,
        #[source]
        source: io::Error,
    },
}

/// What the reader and the fetchers share.
pub struct Shared {
    pub uffd: Uffd,
    pub window: Window,
    pub queue: WorkQueue,
    pub counters: Counters,
    pub source: Box<dyn PageSource>,
    /// Told of each fault and each page served (async PF modes).
    pub observer: Option<Arc<dyn FaultObserver>>,
    /// Ends the reader's wait.
    pub stop: EventFd,
    table: Mutex<PageTable>,
}

impl Shared {
    pub fn table(&self) -> MutexGuard<'_, PageTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a failure nobody may serve the window's pages any more: unregistering it wakes
    /// every thread blocked on one (the pages then read as zeros), so the VM can stop.
    fn abandon(&self) {
        // Best effort: the failure is being reported already.
        let _ = self
            .uffd
            .unregister(self.window.host_start() as *mut c_void, self.window.len());
    }
}

/// Called (on a server thread) when serving fails.
pub type OnFailure = Arc<dyn Fn(Error) + Send + Sync>;

/// What the server is asked to do.
pub struct Settings {
    pub latency: LatencyModel,
    pub fetchers: u8,
    pub seed: u64,
    pub source: Box<dyn PageSource>,
    /// Pages fetched after each missing page (`--readahead`).
    pub readahead: u16,
    /// `--inject`: lazy memory applies `spikes` (every 16th fetch takes 100 times its
    /// latency); the rest are the async PF host's.
    pub inject: Injections,
    pub observer: Option<Arc<dyn FaultObserver>>,
    /// The host CPU the fault reader is pinned to (`--pin`); `None`: wherever it runs.
    pub reader_cpu: Option<usize>,
}

pub struct Server {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `window` through `uffd`, on which it is registered. `on_failure` hears of
    /// the first error of each thread; the window is abandoned then.
    pub fn start(
        uffd: Uffd,
        window: Window,
        settings: Settings,
        on_failure: OnFailure,
    ) -> Result<Self, StartError> {
        let stop = EventFd::new(EFD_NONBLOCK).map_err(StartError::StopEvent)?;
        let table = Mutex::new(PageTable::new(window.pages()));
        let shared = Arc::new(Shared {
            uffd,
            window,
            queue: WorkQueue::default(),
            counters: Counters::default(),
            source: settings.source,
            observer: settings.observer,
            stop,
            table,
        });
        // Dropping a half-started server stops the threads it has.
        let mut server = Server {
            shared,
            threads: Vec::new(),
        };
        let reader = Reader::new(
            settings.latency,
            settings.seed,
            settings.readahead,
            settings.inject,
        );
        server.spawn("lazy-faults".to_owned(), &on_failure, move |shared| {
            reader::run(shared, reader)
        })?;
        if let Some(cpu) = settings.reader_cpu {
            affinity::pin(&server.threads[0], cpu)
                .map_err(|source| StartError::Pin { cpu, source })?;
        }
        for index in 0..settings.fetchers {
            server.spawn(format!("lazy-fetch{index}"), &on_failure, fetcher::run)?;
        }
        Ok(server)
    }

    fn spawn(
        &mut self,
        name: String,
        on_failure: &OnFailure,
        work: impl FnOnce(&Shared) -> Result<(), Error> + Send + 'static,
    ) -> Result<(), StartError> {
        let shared = Arc::clone(&self.shared);
        let on_failure = Arc::clone(on_failure);
        let thread = thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                if let Err(error) = work(&shared) {
                    shared.abandon();
                    on_failure(error);
                }
            })
            .map_err(|source| StartError::Spawn { name, source })?;
        self.threads.push(thread);
        Ok(())
    }

    /// The VM is stopping: fetch everything still asked for at once.
    pub fn release(&self) {
        self.shared.queue.release();
    }

    /// Stops the threads (every vCPU must have stopped) and returns what they did.
    pub fn finish(mut self) -> LazyStats {
        self.stop();
        let max_in_flight = self.shared.table().max_in_flight();
        self.shared.counters.totals(max_in_flight)
    }

    fn stop(&mut self) {
        self.shared.queue.stop();
        // Only fails if the counter would overflow, which a pending stop already wakes.
        let _ = self.shared.stop.write(1);
        for thread in self.threads.drain(..) {
            // A server thread that panicked has aborted the process (panic = "abort").
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lazy::source::GeneratedPages;
    use crate::vmm::memory::{self, LazyRange};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
    use workloads::pages;

    const MIB: u64 = 1 << 20;
    const LAZY_START: u64 = 2 * MIB;
    const SEED: u64 = 5;

    fn lazy_memory() -> (GuestMemoryMmap, LazyRange) {
        let memory = memory::create(GuestAddress(0), 4 * MIB).expect("memory");
        let lazy = memory::make_lazy(&memory, LAZY_START..4 * MIB).expect("userfaultfd");
        (memory, lazy)
    }

    fn start(lazy: LazyRange, latency: &str, fetchers: u8) -> (Server, mpsc::Receiver<Error>) {
        let (failed, failures) = mpsc::channel();
        let settings = Settings {
            latency: latency.parse().expect("latency"),
            fetchers,
            seed: SEED,
            source: Box::new(GeneratedPages::new(SEED)),
            readahead: 0,
            inject: Injections::new(),
            observer: None,
            reader_cpu: None,
        };
        let on_failure: OnFailure = Arc::new(move |error| {
            let _ = failed.send(error);
        });
        let server = Server::start(lazy.uffd, lazy.window, settings, on_failure).expect("start");
        (server, failures)
    }

    /// Reads word 3 of page `page` of the lazy range.
    fn touch(memory: &GuestMemoryMmap, page: u64) -> u64 {
        let gpa = LAZY_START + page * pages::PAGE_SIZE as u64;
        memory.read_obj(GuestAddress(gpa + 24)).expect("read")
    }

    #[test]
    fn concurrent_touches_share_the_fetchers() {
        const TOUCHERS: u64 = 8;
        const LATENCY: Duration = Duration::from_millis(100);
        let (memory, lazy) = lazy_memory();
        let (server, failures) = start(lazy, "fixed:100ms", 4);
        let started = Instant::now();
        let words: Vec<u64> = thread::scope(|scope| {
            let touchers: Vec<_> = (0..TOUCHERS)
                .map(|page| {
                    let memory = &memory;
                    scope.spawn(move || touch(memory, page))
                })
                .collect();
            touchers
                .into_iter()
                .map(|t| t.join().expect("toucher"))
                .collect()
        });
        let elapsed = started.elapsed();
        // 8 fetches on 4 fetchers: two rounds.
        assert!(elapsed >= 2 * LATENCY, "{elapsed:?}");
        assert!(elapsed < 3 * LATENCY, "{elapsed:?}");
        for (page, &word) in (0..TOUCHERS).zip(&words) {
            assert_eq!(word, pages::word(SEED, (LAZY_START >> 12) + page, 3));
        }
        assert_eq!(touch(&memory, 0), words[0], "served pages stay");
        let stats = server.finish();
        assert_eq!(stats.served_pages, TOUCHERS);
        assert_eq!(stats.injected_delay, LATENCY * 8);
        assert_eq!(stats.by_thread.len(), 8, "one thread per touch");
        assert!(stats.max_in_flight >= 5, "{stats}");
        assert!(failures.try_recv().is_err());
    }

    #[test]
    fn release_serves_waiting_touches_at_once() {
        let (memory, lazy) = lazy_memory();
        let (server, _failures) = start(lazy, "10s", 1);
        thread::scope(|scope| {
            let toucher = scope.spawn(|| touch(&memory, 7));
            thread::sleep(Duration::from_millis(50));
            let released = Instant::now();
            server.release();
            toucher.join().expect("toucher");
            assert!(released.elapsed() < Duration::from_secs(1));
        });
        let stopped = Instant::now();
        let stats = server.finish();
        assert!(stopped.elapsed() < Duration::from_secs(1));
        assert_eq!(stats.served_pages, 1);
        assert!(stats.injected_delay < Duration::from_secs(1), "{stats}");
    }

    #[test]
    fn an_idle_server_stops_at_once() {
        let (_memory, lazy) = lazy_memory();
        let (server, _failures) = start(lazy, "lognormal:1ms,10ms", 64);
        let stopped = Instant::now();
        assert_eq!(server.finish(), LazyStats::default());
        assert!(stopped.elapsed() < Duration::from_secs(1));
    }
}
