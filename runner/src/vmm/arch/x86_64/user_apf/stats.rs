//! What the VMM's async PF host did in a run, for `--verbose` and the run report.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use apf_pv::waiters::{BROADCAST, Token};

use super::vcpu_state::SyncReason;
use crate::inject::{Applied, applied_json, write_applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserApfStats {
    /// Fault messages from vCPU threads.
    pub faults: u64,
    /// Fault messages from other threads (the VMM's own accesses): never async.
    pub other_threads: u64,
    /// vCPUs kicked out of `KVM_RUN` to take a fault asynchronously.
    pub kicks: u64,
    /// "Page not present" events injected.
    pub injected: u64,
    /// "Page ready" events sent, broadcasts included.
    pub ready: u64,
    /// Broadcast wakes sent (after each enabling write).
    pub broadcasts: u64,
    /// Page-ready acknowledgements.
    pub acks: u64,
    /// Tokens dropped because the guest disabled async PF.
    pub dropped: u64,
    /// Guest MSR writes refused with #GP.
    pub refused_msr_writes: u64,
    /// Page-ready MSIs the guest's APIC refused (kept and sent again later).
    pub msi_blocked: u64,
    /// Each vCPU's not-present and page-ready events (by vCPU index = APIC ID), for the
    /// check against what each guest CPU counted.
    pub per_vcpu: Vec<VcpuCounts>,
    /// Faults left synchronous, by reason.
    pub sync: BTreeMap<SyncReason, u64>,
    /// From sending each kick to its vCPU being out of the guest, summed: the first part of
    /// this VMM's cost per async fault.
    pub kick_wait: Duration,
    /// From then to the "page not present" being injected (the checks and ioctls), summed
    /// over the faults injected.
    pub inject_time: Duration,
    /// Misbehaviour put in on purpose (`--inject`): how often each was applied.
    pub injected_faults: Applied,
}

/// One vCPU's share of the events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuCounts {
    pub injected: u64,
    /// Page-ready events, broadcasts included.
    pub ready: u64,
}

impl UserApfStats {
    /// Empty counters for a VM of `vcpus` vCPUs.
    pub fn new(vcpus: usize) -> Self {
        UserApfStats {
            per_vcpu: vec![VcpuCounts::default(); vcpus],
            ..Default::default()
        }
    }

    /// A not-present injected into vCPU `index`.
    pub fn count_injected(&mut self, index: usize) {
        self.injected += 1;
        self.per_vcpu[index].injected += 1;
    }

    /// A page-ready for `token` sent to vCPU `index`.
    pub fn count_ready(&mut self, index: usize, token: Token) {
        self.ready += 1;
        self.per_vcpu[index].ready += 1;
        if token == BROADCAST {
            self.broadcasts += 1;
        }
    }

    pub fn count_sync(&mut self, reason: SyncReason) {
        *self.sync.entry(reason).or_default() += 1;
    }

    pub fn synchronous(&self) -> u64 {
        self.sync.values().sum()
    }

    /// Mean kick wait per kick and injection time per injected fault.
    fn means(&self) -> (Duration, Duration) {
        let per = |total: Duration, n: u64| total / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        (
            per(self.kick_wait, self.kicks),
            per(self.inject_time, self.injected),
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let (kick_mean, inject_mean) = self.means();
        let sync: serde_json::Map<_, _> = SyncReason::ALL
            .iter()
            .map(|&reason| {
                let count = self.sync.get(&reason).copied().unwrap_or(0);
                (reason.name().to_owned(), serde_json::json!(count))
            })
            .collect();
        serde_json::json!({
            "faults": self.faults,
            "other_threads": self.other_threads,
            "kicks": self.kicks,
            "injected": self.injected,
            "ready": self.ready,
            "broadcasts": self.broadcasts,
            "acks": self.acks,
            "dropped": self.dropped,
            "refused_msr_writes": self.refused_msr_writes,
            "msi_blocked": self.msi_blocked,
            "vcpus": self.per_vcpu.iter().map(|v| serde_json::json!({
                "injected": v.injected,
                "ready": v.ready,
            })).collect::<Vec<_>>(),
            "kick_wait_mean_ns": ns(kick_mean),
            "inject_mean_ns": ns(inject_mean),
            "synchronous": self.synchronous(),
            "sync": sync,
            "injected_faults": applied_json(&self.injected_faults),
        })
    }
}

impl fmt::Display for UserApfStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vCPU faults: {} injected not-present, {} synchronous (",
            self.faults,
            self.injected,
            self.synchronous()
        )?;
        let mut first = true;
        for (reason, count) in &self.sync {
            let separator = if first { "" } else { ", " };
            write!(f, "{separator}{} {count}", reason.name())?;
            first = false;
        }
        write!(
            f,
            "); {} kicks (mean {:?} to leave the guest, {:?} to inject), {} page-ready \
             ({} broadcast), {} acks, {} dropped, {} refused MSR writes",
            self.kicks,
            self.means().0,
            self.means().1,
            self.ready,
            self.broadcasts,
            self.acks,
            self.dropped,
            self.refused_msr_writes
        )?;
        write_applied(f, &self.injected_faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_per_vcpu() {
        let mut stats = UserApfStats::new(2);
        stats.count_injected(1);
        stats.count_ready(1, (7 << 12) | 1);
        stats.count_ready(0, BROADCAST);
        stats.count_ready(0, (8 << 12) | 1);
        assert_eq!(
            stats.per_vcpu,
            [
                VcpuCounts {
                    injected: 0,
                    ready: 2
                },
                VcpuCounts {
                    injected: 1,
                    ready: 1
                }
            ]
        );
        assert_eq!((stats.injected, stats.ready, stats.broadcasts), (1, 3, 1));
        assert_eq!(stats.to_json()["vcpus"][1]["injected"], 1);
    }

    #[test]
    fn json_lists_every_sync_reason_and_the_total() {
        let mut stats = UserApfStats {
            faults: 5,
            injected: 2,
            ..Default::default()
        };
        stats.count_sync(SyncReason::Fast);
        stats.count_sync(SyncReason::Fast);
        stats.count_sync(SyncReason::Present);
        let json = stats.to_json();
        assert_eq!(json["vcpus"], serde_json::json!([]));
        assert_eq!(json["synchronous"], 3);
        assert_eq!(json["sync"]["fast"], 2);
        assert_eq!(json["sync"]["present"], 1);
        assert_eq!(json["sync"]["full"], 0);
        assert_eq!(
            json["sync"].as_object().unwrap().len(),
            SyncReason::ALL.len()
        );
        assert_eq!(json["injected"], 2);
        let timed = UserApfStats {
            kicks: 4,
            kick_wait: Duration::from_micros(100),
            injected: 2,
            inject_time: Duration::from_micros(20),
            ..Default::default()
        };
        assert_eq!(timed.to_json()["kick_wait_mean_ns"], 25_000);
        assert_eq!(timed.to_json()["inject_mean_ns"], 10_000);
        assert_eq!(json["injected_faults"], serde_json::json!({}));
        assert_eq!(
            stats.to_string(),
            "5 vCPU faults: 2 injected not-present, 3 synchronous (fast 2, present 1); \
             0 kicks (mean 0ns to leave the guest, 0ns to inject), 0 page-ready (0 broadcast), \
             0 acks, 0 dropped, 0 refused MSR writes"
        );
        stats
            .injected_faults
            .insert(crate::inject::Inject::DropReady, 3);
        assert_eq!(stats.to_json()["injected_faults"]["drop-ready"], 3);
        assert!(stats.to_string().ends_with("; injected drop-ready x3"));
    }
}
