//! When a fault is worth making async: the not-present/ready round trip costs the guest two
//! events and a task switch each way, which only pays when the page takes longer than that
//! (seed 001's debate). `vmm` always goes async; `adaptive` decides per fault from the
//! expected fetch time.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Every fault the guest can take asynchronously is made async (`--apf vmm`).
    Always,
    /// Only faults expected to take at least this long (`--apf adaptive`).
    Threshold(Duration),
}

impl Policy {
    /// Whether a fault whose page is expected in `expected` should be async.
    pub fn wants_async(self, expected: Duration) -> bool {
        match self {
            Policy::Always => true,
            Policy::Threshold(threshold) => expected >= threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_means_always_and_the_threshold_is_inclusive() {
        let us = Duration::from_micros;
        assert!(Policy::Always.wants_async(Duration::ZERO));
        let adaptive = Policy::Threshold(us(200));
        assert!(!adaptive.wants_async(Duration::ZERO));
        assert!(!adaptive.wants_async(us(199)));
        assert!(adaptive.wants_async(us(200)));
        assert!(adaptive.wants_async(Duration::from_secs(1)));
    }
}
