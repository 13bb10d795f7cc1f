//! The fetch queue between the fault reader and the fetchers, and the phase that tells
//! fetchers how to behave as the VM stops.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// One missing page to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Guest-physical address of the page (page-aligned).
    pub gpa_page: u64,
    /// The thread whose access faulted (a vCPU thread, normally): async PF modes kick it.
    pub thread_id: i32,
    /// When the fault reader read the message.
    pub at: Instant,
    /// How long the fetch takes (drawn from the latency model by the reader).
    pub latency: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Fetches take their sampled latency.
    Running,
    /// The VM is stopping: fetch the rest at once, so no vCPU stays blocked on a page.
    Released,
    /// Every vCPU has stopped: fetchers exit.
    Stopping,
}

struct State {
    faults: VecDeque<Fault>,
    phase: Phase,
}

pub struct WorkQueue {
    state: Mutex<State>,
    /// Signalled when a fault is queued or the queue stops.
    work: Condvar,
    /// Signalled when the phase changes, for fetchers waiting out a latency.
    phase_changed: Condvar,
}

impl Default for WorkQueue {
    fn default() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                faults: VecDeque::new(),
                phase: Phase::Running,
            }),
            work: Condvar::new(),
            phase_changed: Condvar::new(),
        }
    }
}

impl WorkQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
        self.work.notify_one();
    }

    /// The next fault, oldest first, waiting for one; `None` once the queue stops.
    pub fn next(&self) -> Option<Fault> {
        let mut state = self
            .work
            .wait_while(self.lock(), |state| {
                state.faults.is_empty() && state.phase != Phase::Stopping
            })
            .unwrap_or_else(PoisonError::into_inner);
        match state.phase {
            Phase::Stopping => None,
            Phase::Running | Phase::Released => state.faults.pop_front(),
        }
    }

    /// Waits out a fetch latency of `delay`, or less if the VM stops first; returns the time
    /// waited. A condition variable rather than a sleep, so a long latency never delays the
    /// end of a run.
    pub fn delay(&self, delay: Duration) -> Duration {
        let state = self.lock();
        if state.phase != Phase::Running {
            return Duration::ZERO;
        }
        let started = Instant::now();
        let (_state, _timeout) = self
            .phase_changed
            .wait_timeout_while(state, delay, |state| state.phase == Phase::Running)
            .unwrap_or_else(PoisonError::into_inner);
        started.elapsed().min(delay)
    }

    /// Ends latencies: from now on pages are fetched at once.
    pub fn release(&self) {
        self.set_phase(Phase::Released);
    }

    /// Makes fetchers exit, dropping any faults still queued (nothing waits for them now).
    pub fn stop(&self) {
        self.set_phase(Phase::Stopping);
    }

    fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
        self.phase_changed.notify_all();
        self.work.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    fn fault(gpa_page: u64) -> Fault {
        Fault {
            gpa_page,
            thread_id: 1,
            at: Instant::now(),
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn faults_come_out_in_order() {
        let queue = WorkQueue::default();
        queue.push(fault(0x1000));
        queue.push(fault(0x2000));
        assert_eq!(queue.next().map(|f| f.gpa_page), Some(0x1000));
        assert_eq!(queue.next().map(|f| f.gpa_page), Some(0x2000));
    }

    #[test]
    fn waiting_fetchers_get_new_faults_and_the_stop() {
        let queue = Arc::new(WorkQueue::default());
        let fetchers: Vec<_> = (0..2)
            .map(|_| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(fault) = queue.next() {
                        got.push(fault.gpa_page);
                    }
                    got
                })
            })
            .collect();
        for page in 1..=100 {
            queue.push(fault(page << 12));
        }
        while !queue.lock().faults.is_empty() {
            thread::yield_now();
        }
        queue.stop();
        let mut all: Vec<u64> = fetchers
            .into_iter()
            .flat_map(|f| f.join().expect("fetcher"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=100).map(|p| p << 12).collect::<Vec<_>>());
    }

    #[test]
    fn delays_run_their_course_while_running() {
        let waited = WorkQueue::default().delay(Duration::from_millis(20));
        assert_eq!(waited, Duration::from_millis(20));
    }

    #[test]
    fn release_cuts_a_long_delay_short() {
        let queue = Arc::new(WorkQueue::default());
        let fetcher = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.delay(Duration::from_secs(10)))
        };
        thread::sleep(Duration::from_millis(20));
        let released = Instant::now();
        queue.release();
        let waited = fetcher.join().expect("fetcher");
        assert!(released.elapsed() < Duration::from_secs(1));
        assert!(waited < Duration::from_secs(1), "waited {waited:?}");
        assert_eq!(
            queue.delay(Duration::from_secs(10)),
            Duration::ZERO,
            "no delays after release"
        );
    }

    #[test]
    fn queued_faults_are_still_fetched_after_release_but_not_after_stop() {
        let queue = WorkQueue::default();
        queue.push(fault(0x1000));
        queue.push(fault(0x2000));
        queue.release();
        assert!(queue.next().is_some());
        queue.stop();
        assert_eq!(queue.next(), None);
    }
}
