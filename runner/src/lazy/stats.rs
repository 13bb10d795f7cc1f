//! What serving lazy memory did: counted by the fault-reader and fetcher threads as they go,
//! and read once at the end of a run (`--verbose`, and the runs `compare` reads).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Counters shared by the server's threads.
#[derive(Debug, Default)]
pub struct Counters {
    served: AtomicU64,
    duplicates: AtomicU64,
    read_ahead: AtomicU64,
    spikes: AtomicU64,
    already_present: AtomicU64,
    delay_nanos: AtomicU64,
    wait_nanos: AtomicU64,
    max_wait_nanos: AtomicU64,
    /// Pages fetched, by the thread whose fault asked for them first.
    by_thread: Mutex<BTreeMap<i32, u64>>,
}

/// Durations are counted in u64 nanoseconds: 584 years of them.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Counters {
    /// A fault message for a page already in flight or served.
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// A readahead fetch was queued.
    pub fn read_ahead(&self) {
        self.read_ahead.fetch_add(1, Ordering::Relaxed);
    }

    /// A fetch was made a latency spike (`--inject spikes`).
    pub fn spike(&self) {
        self.spikes.fetch_add(1, Ordering::Relaxed);
    }

    /// A fetch ended: `installed` if our `UFFDIO_COPY` put the page in (otherwise it was
    /// already there: `EEXIST`), after `delay` of injected latency, `wait` after the fault
    /// message was read, for a fault of thread `thread_id`.
    pub fn fetched(&self, installed: bool, delay: Duration, wait: Duration, thread_id: i32) {
        let counter = if installed {
            &self.served
        } else {
            &self.already_present
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.delay_nanos.fetch_add(nanos(delay), Ordering::Relaxed);
        self.wait_nanos.fetch_add(nanos(wait), Ordering::Relaxed);
        self.max_wait_nanos
            .fetch_max(nanos(wait), Ordering::Relaxed);
        *self
            .by_thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(thread_id)
            .or_default() += 1;
    }

    /// The totals, once the threads have stopped; `max_in_flight` comes from the page table.
    pub fn totals(&self, max_in_flight: usize) -> LazyStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LazyStats {
            served_pages: load(&self.served),
            duplicates: load(&self.duplicates),
            read_ahead: load(&self.read_ahead),
            spikes: load(&self.spikes),
            already_present: load(&self.already_present),
            injected_delay: Duration::from_nanos(load(&self.delay_nanos)),
            total_wait: Duration::from_nanos(load(&self.wait_nanos)),
            max_wait: Duration::from_nanos(load(&self.max_wait_nanos)),
            max_in_flight,
            by_thread: self
                .by_thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// What serving lazy memory did during one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LazyStats {
    /// Pages installed by our `UFFDIO_COPY`: each lazy page the guest touched, once.
    pub served_pages: u64,
    /// Fault messages for pages already in flight or served.
    pub duplicates: u64,
    /// Fetches queued by readahead (`--readahead`), not by a fault.
    pub read_ahead: u64,
    /// Fetches made 100 times slower (`--inject spikes`).
    pub spikes: u64,
    /// Fetches whose page was already there (`EEXIST`).
    pub already_present: u64,
    /// Latency the fetchers waited, summed (cut short when the VM stops).
    pub injected_delay: Duration,
    /// Time from reading each fault message to its page being installed, summed.
    pub total_wait: Duration,
    /// The longest of those.
    pub max_wait: Duration,
    /// Most pages queued or being fetched at once.
    pub max_in_flight: usize,
    /// Fetches by the id of the thread whose fault started them (vCPU threads, normally;
    /// readahead is thread 0).
    pub by_thread: BTreeMap<i32, u64>,
}

impl LazyStats {
    /// The counts as JSON (durations in nanoseconds), for `run --report`.
    pub fn to_json(&self) -> serde_json::Value {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        serde_json::json!({
            "served_pages": self.served_pages,
            "duplicates": self.duplicates,
            "read_ahead": self.read_ahead,
            "spikes": self.spikes,
            "already_present": self.already_present,
            "injected_delay_ns": ns(self.injected_delay),
            "total_wait_ns": ns(self.total_wait),
            "max_wait_ns": ns(self.max_wait),
            "max_in_flight": self.max_in_flight,
            "fetches_by_thread": self.by_thread.iter()
                .map(|(tid, n)| (tid.to_string(), serde_json::json!(n)))
                .collect::<serde_json::Map<_, _>>(),
        })
    }

    fn fetches(&self) -> u64 {
        self.served_pages + self.already_present
    }
}

impl fmt::Display for LazyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pages served, {} duplicate messages, {} read ahead, {} already present \
             (EEXIST), {:?} injected delay, max {} in flight",
            self.served_pages,
            self.duplicates,
            self.read_ahead,
            self.already_present,
            self.injected_delay,
            self.max_in_flight
        )?;
        let fetches = self.fetches();
        if fetches > 0 {
            let fetches = u32::try_from(fetches).unwrap_or(u32::MAX);
            write!(
                f,
                ", fault wait mean {:?} max {:?}, fetches by thread id:",
                self.total_wait / fetches,
                self.max_wait
            )?;
        }
        for (thread_id, count) in &self.by_thread {
            write!(f, " {thread_id} x{count}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn nothing_counted() {
        let stats = Counters::default().totals(0);
        assert_eq!(stats, LazyStats::default());
        assert_eq!(
            stats.to_string(),
            "0 pages served, 0 duplicate messages, 0 read ahead, 0 already present \
             (EEXIST), 0ns injected delay, max 0 in flight"
        );
    }

    #[test]
    fn fetches_and_duplicates_add_up() {
        let counters = Counters::default();
        counters.fetched(true, ms(2), ms(3), 100);
        counters.fetched(true, ms(2), ms(5), 100);
        counters.fetched(false, ms(2), ms(4), 101);
        counters.duplicate();
        counters.read_ahead();
        let stats = counters.totals(2);
        assert_eq!(
            (stats.served_pages, stats.already_present, stats.duplicates),
            (2, 1, 1)
        );
        assert_eq!(stats.read_ahead, 1);
        assert_eq!(stats.injected_delay, ms(6));
        assert_eq!((stats.total_wait, stats.max_wait), (ms(12), ms(5)));
        assert_eq!(stats.by_thread, BTreeMap::from([(100, 2), (101, 1)]));
        assert_eq!(
            stats.to_string(),
            "2 pages served, 1 duplicate messages, 1 read ahead, 1 already present \
             (EEXIST), 6ms injected delay, max 2 in flight, fault wait mean 4ms max 5ms, \
             fetches by thread id: 100 x2 101 x1"
        );
    }
}
