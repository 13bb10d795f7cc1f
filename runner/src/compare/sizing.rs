//! Sizing the `seed` scenario so that its CPU work C and its memory task's fault wait F are
//! about equal at the chosen latency: that is where async PF can gain the most (up to 2x,
//! makespan max(C, F) instead of C + F).

use std::time::Duration;

/// Aim for a fault wait of about this long, so one run stays short but far above noise.
const TARGET_WAIT: Duration = Duration::from_millis(600);
/// Bounds on the memory task's pages (at least a few faults; at most 256 MiB).
const MIN_PAGES: u64 = 16;
const MAX_PAGES: u64 = 65_536;
/// Bounds on the CPU work, in hash-chain rounds.
const MIN_ROUNDS: u64 = 1_000;
const MAX_ROUNDS: u64 = 1_000_000_000_000;

/// The seed scenario's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub pages: u64,
    pub cpu_rounds: u64,
}

/// Pages for each of `tasks` memory tasks such that all their serial fetches take about
/// [`TARGET_WAIT`] at `mean_latency` (plus the `per_page_overhead` of a synchronous fault
/// here, which matters at small latencies). Splitting one total among the tasks keeps the
/// faults of `mlp:k` the same for every k, so an MLP sweep compares like with like.
pub fn pages_for(mean_latency: Duration, per_page_overhead: Duration, tasks: u64) -> u64 {
    let per_page = (mean_latency + per_page_overhead).as_nanos().max(1);
    let total = (TARGET_WAIT.as_nanos() / per_page) as u64;
    (total / tasks.max(1)).clamp(MIN_PAGES, MAX_PAGES)
}

/// CPU rounds that take about `wait`, given a calibration run of `rounds` rounds that took
/// `took`.
pub fn rounds_for(wait: Duration, rounds: u64, took: Duration) -> u64 {
    let per_round = took.as_nanos().max(1) as f64 / rounds.max(1) as f64;
    ((wait.as_nanos() as f64 / per_round) as u64).clamp(MIN_ROUNDS, MAX_ROUNDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_fill_the_target_wait_together() {
        let ms = Duration::from_millis;
        assert_eq!(pages_for(ms(10), Duration::ZERO, 1), 60);
        assert_eq!(pages_for(ms(1), Duration::ZERO, 1), 600);
        // Overhead counts at small latencies.
        assert_eq!(
            pages_for(Duration::from_micros(30), Duration::from_micros(30), 1),
            10_000
        );
        assert_eq!(
            pages_for(Duration::from_secs(1), Duration::ZERO, 1),
            MIN_PAGES
        );
        assert_eq!(pages_for(Duration::ZERO, Duration::ZERO, 1), MAX_PAGES);
        // Memory tasks share the pages.
        assert_eq!(pages_for(ms(1), Duration::ZERO, 4), 150);
        assert_eq!(pages_for(ms(1), Duration::ZERO, 32), 18);
        assert_eq!(
            pages_for(ms(10), Duration::ZERO, 32),
            MIN_PAGES,
            "at least a few"
        );
        assert_eq!(
            pages_for(ms(1), Duration::ZERO, 0),
            600,
            "no memory task: as one"
        );
    }

    #[test]
    fn rounds_scale_with_the_calibration() {
        let ms = Duration::from_millis;
        // 1M rounds in 4 ms: 4 ns a round; 600 ms is 150M rounds.
        assert_eq!(rounds_for(ms(600), 1_000_000, ms(4)), 150_000_000);
        assert_eq!(rounds_for(ms(0), 1_000_000, ms(4)), MIN_ROUNDS);
        // A degenerate calibration counts as 1 ns a round rather than dividing by zero.
        assert_eq!(rounds_for(ms(600), 0, Duration::ZERO), 600_000_000);
    }
}
