//! The async PF watchdog: when a task parked on "page not present" has not been woken within
//! the timeout (`apf-watchdog=MS`), it is retried: released without a page-ready, it resumes
//! at its faulting instruction and touches the page again. A present page lets it go on; a
//! missing one faults afresh under a new token. So a page-ready the host lost (or never
//! sent) costs one timeout instead of a task stranded for good.
//!
//! The timer tick calls [`Watchdog::expire`], and on our KVM every ring-0 instruction of the
//! tick and of the not-present path is emulated (~1 us each). So arming on a park is one
//! store (the park's time, in a slot indexed by task), and no bound is kept on that path:
//! the tick keeps the time of its next scan instead, no later than every armed deadline,
//! and compares against it; it scans the tasks only then, which in a healthy run (every
//! page-ready on time) is about once per timeout.
//!
//! Times are in whatever unit the caller uses consistently. The kernel counts timer ticks,
//! which only the tick can act on anyway: arming on a park is then a load and a store,
//! with no clock read (a `rdtsc` and its arithmetic were a tenth of the not-present path's
//! emulated instructions). [`timeout_ticks`] turns the timeout into ticks.

use crate::task_table::{MAX_TASKS, TaskId};
use core::ops::RangeInclusive;

/// Timeouts `apf-watchdog=MS` accepts, in milliseconds: at least one (the timer tick is the
/// finest resolution anyway), at most a minute (a longer one is as good as none).
pub const TIMEOUT_RANGE_MS: RangeInclusive<u64> = 1..=60_000;

/// The default timeout, in milliseconds. A retry of a page still on its way is harmless but
/// not free (a second fault and token, about a millisecond of emulated kernel work here), so
/// the default sits well above every healthy wait: fetch latencies of 30 us to 10 ms, and a
/// 100x latency spike at 2 ms. Yet it bounds what a lost page-ready costs to about a second,
/// instead of a task stranded until the run times out.
pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;

const _: () = assert!(
    *TIMEOUT_RANGE_MS.start() <= DEFAULT_TIMEOUT_MS
        && DEFAULT_TIMEOUT_MS <= *TIMEOUT_RANGE_MS.end()
);

/// The timeout of `ms` milliseconds in ticks of a `hz` timer, rounded up, plus one: a task
/// parks anywhere between two ticks, so it has waited at least `ms` by the tick this many
/// after the last one before its park.
pub fn timeout_ticks(ms: u64, hz: u32) -> u64 {
    (ms * u64::from(hz)).div_ceil(1_000) + 1
}

/// The park time of a task that is not parked: never due. A plain value rather than an
/// `Option`, so that arming and disarming are one store each.
const NEVER: u64 = u64::MAX;

/// Park times of parked tasks and the retries made so far.
#[derive(Debug)]
pub struct Watchdog {
    /// How long a task may stay parked.
    timeout: u64,
    /// When each task parked on async PF, indexed by task id (masked, as in the
    /// [`TaskTable`](crate::task_table::TaskTable), so arming needs no bounds check);
    /// [`NEVER`] while it is not parked. Inline, not boxed: one load less per arm (1 KiB).
    parked_at: [u64; MAX_TASKS],
    /// Tasks `0..tasks` exist: the part of `parked_at` the tick scans.
    tasks: usize,
    /// When the tick scans next: no later than every armed deadline (see
    /// [`expire`](Self::expire)).
    next_scan: u64,
    retries: u64,
}

impl Watchdog {
    /// A watchdog for tasks `0..tasks`, retrying those parked longer than `timeout`.
    pub const fn new(tasks: usize, timeout: u64) -> Self {
        assert!(
            tasks <= MAX_TASKS,
            "a watchdog for more tasks than a kernel runs"
        );
        Self {
            timeout,
            parked_at: [NEVER; MAX_TASKS],
            tasks,
            next_scan: timeout,
            retries: 0,
        }
    }

    /// Task `id` parked at `now`: it is due for a retry at `now + timeout`. `now` never
    /// decreases from one call to the next, nor below the last [`expire`](Self::expire)'s,
    /// which is what keeps the next scan no later than this deadline without a look at it.
    #[inline]
    pub fn arm(&mut self, id: TaskId, now: u64) {
        self.parked_at[id % MAX_TASKS] = now;
    }

    /// Task `id` was woken (its page-ready, a broadcast, or a release): no retry is due.
    #[inline]
    pub fn disarm(&mut self, id: TaskId) {
        self.parked_at[id % MAX_TASKS] = NEVER;
    }

    /// Timer tick at `now`: once the next scan is due, passes every task whose deadline has
    /// come to `retry`, which releases it and says whether it was still parked (only those
    /// count as retries).
    ///
    /// The next scan is at the earliest deadline still armed, or one timeout from now if
    /// that is sooner: a task that parks later parks at `now` or after, so its deadline is
    /// no earlier than that. With nothing armed, the tick thus scans once per timeout.
    /// Ticks and the timeout (at most a minute of them) are far from overflowing.
    #[inline]
    pub fn expire(&mut self, now: u64, retry: impl FnMut(TaskId) -> bool) {
        if now >= self.next_scan {
            self.scan(now, retry);
        }
    }

    /// The scan of [`expire`](Self::expire), out of line: most ticks only compare.
    #[cold]
    #[inline(never)]
    fn scan(&mut self, now: u64, mut retry: impl FnMut(TaskId) -> bool) {
        let mut next = now + self.timeout;
        for (id, slot) in self.parked_at[..self.tasks].iter_mut().enumerate() {
            if *slot == NEVER {
                continue;
            }
            let deadline = *slot + self.timeout;
            if deadline <= now {
                *slot = NEVER;
                if retry(id) {
                    self.retries += 1;
                }
            } else {
                next = next.min(deadline);
            }
        }
        self.next_scan = next;
    }

    /// Tasks retried so far (released while still parked).
    pub fn retries(&self) -> u64 {
        self.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a tick at `now`, retrying every expired task; returns them in id order.
    fn tick(w: &mut Watchdog, now: u64) -> Vec<TaskId> {
        let mut expired = Vec::new();
        w.expire(now, |id| {
            expired.push(id);
            true
        });
        expired
    }

    #[test]
    fn a_task_is_retried_once_its_wait_reaches_the_timeout() {
        let mut w = Watchdog::new(3, 100);
        w.arm(1, 1_000);
        assert!(tick(&mut w, 1_099).is_empty());
        assert_eq!(tick(&mut w, 1_100), [1]);
        assert!(tick(&mut w, 5_000).is_empty(), "retried once only");
        assert_eq!(w.retries(), 1);
    }

    #[test]
    fn only_expired_tasks_are_retried_and_the_rest_stay_armed() {
        let mut w = Watchdog::new(4, 100);
        w.arm(2, 10);
        w.arm(0, 50);
        w.arm(3, 200);
        assert_eq!(tick(&mut w, 160), [0, 2]);
        assert!(tick(&mut w, 299).is_empty());
        assert_eq!(tick(&mut w, 300), [3]);
        assert_eq!(w.retries(), 3);
    }

    #[test]
    fn woken_tasks_are_not_retried() {
        let mut w = Watchdog::new(2, 100);
        w.arm(0, 0);
        w.arm(1, 0);
        w.disarm(0);
        assert_eq!(tick(&mut w, 100), [1]);
        // Parking again re-arms from the new park time.
        w.arm(0, 150);
        assert!(tick(&mut w, 249).is_empty());
        assert_eq!(tick(&mut w, 250), [0]);
    }

    #[test]
    fn the_tick_scans_once_per_timeout_while_nothing_is_due() {
        let mut w = Watchdog::new(2, 100);
        let mut scans = 0;
        let mut count_scans = |w: &mut Watchdog, now| {
            let before = w.next_scan;
            w.expire(now, |_| unreachable!("nothing is armed"));
            if w.next_scan != before {
                scans += 1;
            }
        };
        for now in 0..1_000 {
            count_scans(&mut w, now);
        }
        assert_eq!(scans, 9, "at ticks 100, 200, ..., 900");
        // A task parked right after a scan is still retried on time.
        w.arm(1, 950);
        assert!(tick(&mut w, 1_049).is_empty());
        assert_eq!(tick(&mut w, 1_050), [1]);
    }

    #[test]
    fn a_later_park_never_delays_an_earlier_deadline() {
        let mut w = Watchdog::new(2, 100);
        w.arm(0, 0);
        w.arm(1, 500);
        assert_eq!(tick(&mut w, 100), [0]);
        assert_eq!(tick(&mut w, 600), [1]);
    }

    #[test]
    fn releases_of_tasks_no_longer_parked_are_not_counted() {
        let mut w = Watchdog::new(2, 10);
        w.arm(0, 0);
        w.arm(1, 0);
        w.expire(10, |id| id == 1);
        assert_eq!(w.retries(), 1);
    }

    #[test]
    fn timeouts_in_ticks_round_up_and_cover_a_park_just_before_a_tick() {
        assert_eq!(
            timeout_ticks(50, 100),
            6,
            "5 periods of 10 ms, and the partial one"
        );
        assert_eq!(timeout_ticks(55, 100), 7);
        assert_eq!(timeout_ticks(1, 1_000), 2);
        assert_eq!(timeout_ticks(1, 10), 2);
        assert_eq!(timeout_ticks(60_000, 1_000), 60_001);
        // Parked right before tick 11 (the counter still says 10): retried at tick 16, 50 ms
        // after the park at the earliest.
        let mut w = Watchdog::new(1, timeout_ticks(50, 100));
        w.arm(0, 10);
        assert!(tick(&mut w, 15).is_empty());
        assert_eq!(tick(&mut w, 16), [0]);
    }
}
