//! The EL2 host's counts, read from its `el2: STATS ...` console line (`el2-host`'s
//! `host/stats.rs`). The host lives inside QEMU and has no other way out: it prints the line
//! when the guest turns async PF off (the guest kernel's last step before it exits), and on
//! its own exits. A guest that never enabled async PF leaves no line.

use std::fmt;

use crate::inject::{Applied, Inject, applied_json, write_applied};

/// How the host's summary line starts on the console.
pub const STATS_PREFIX: &str = "el2: STATS ";

/// The guest statuses of a normal finish (`guest-kernel/src/exit_status.rs`: every task ran,
/// and all succeeded or some failed). Only then did the guest turn async PF off as its last
/// step, so the host's last line holds the whole run; after a panic or a timeout it may be
/// from an earlier turn-off (`apf-cycle`) and is not kept.
pub const FINISHED_STATUSES: [u8; 2] = [0, 1];

/// What the EL2 host did for one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct El2HostStats {
    /// Lazy pages served while the vCPU waited.
    pub sync_faults: u64,
    pub waited_ns: u64,
    pub hypercalls: u64,
    /// "Page not present" events (SDEI) sent to the guest.
    pub not_present: u64,
    /// "Page ready" PPIs sent, broadcasts included.
    pub page_ready: u64,
    /// Faults on a page whose async fetch was still running.
    pub refaults: u64,
    pub forwarded_irqs: u64,
    /// How often each `--inject` fault was applied.
    pub injected_faults: Applied,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("it does not start with {STATS_PREFIX:?}")]
    NotStats,
    #[error("'{0}' is not name=count")]
    NotACount(String),
    #[error("unknown counter '{0}'")]
    UnknownCounter(String),
    #[error("'{0}' is given twice")]
    Repeated(String),
    #[error("it lacks '{0}'")]
    Missing(&'static str),
}

impl El2HostStats {
    /// The counters the host always prints, in its order.
    const COUNTERS: [&'static str; 7] = [
        "sync_faults",
        "waited_ns",
        "hypercalls",
        "not_present",
        "page_ready",
        "refaults",
        "forwarded_irqs",
    ];

    /// Parses the whole console line, prefix included. Strict: a line we cannot read fully
    /// is reported rather than half-believed.
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let words = line
            .strip_prefix(STATS_PREFIX)
            .ok_or(ParseError::NotStats)?;
        let mut stats = Self::default();
        let mut seen = [false; Self::COUNTERS.len()];
        for word in words.split_whitespace() {
            let (name, count) = word
                .split_once('=')
                .and_then(|(name, count)| Some((name, count.parse::<u64>().ok()?)))
                .ok_or_else(|| ParseError::NotACount(word.to_owned()))?;
            let repeated = || ParseError::Repeated(name.to_owned());
            match Self::COUNTERS.iter().position(|&c| c == name) {
                Some(at) if seen[at] => return Err(repeated()),
                Some(at) => {
                    *stats.counter_mut(at) = count;
                    seen[at] = true;
                }
                None => {
                    let inject = Inject::parse(name)
                        .ok_or_else(|| ParseError::UnknownCounter(name.to_owned()))?;
                    if stats.injected_faults.insert(inject, count).is_some() {
                        return Err(repeated());
                    }
                }
            }
        }
        match seen.iter().position(|&seen| !seen) {
            Some(at) => Err(ParseError::Missing(Self::COUNTERS[at])),
            None => Ok(stats),
        }
    }

    fn counter_mut(&mut self, at: usize) -> &mut u64 {
        [
            &mut self.sync_faults,
            &mut self.waited_ns,
            &mut self.hypercalls,
            &mut self.not_present,
            &mut self.page_ready,
            &mut self.refaults,
            &mut self.forwarded_irqs,
        ]
        .into_iter()
        .nth(at)
        .expect("an index into COUNTERS")
    }

    /// The `run --report` object: the counters under their host names, and the injections
    /// under `injected_faults` as in the VMM's `user_apf` object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sync_faults": self.sync_faults,
            "waited_ns": self.waited_ns,
            "hypercalls": self.hypercalls,
            "not_present": self.not_present,
            "page_ready": self.page_ready,
            "refaults": self.refaults,
            "forwarded_irqs": self.forwarded_irqs,
            "injected_faults": applied_json(&self.injected_faults),
        })
    }
}

impl fmt::Display for El2HostStats {
    /// For `run -v`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} not-present, {} page-ready, {} synchronous ({} ms waited), {} refaults, {} hypercalls",
            self.not_present,
            self.page_ready,
            self.sync_faults,
            self.waited_ns / 1_000_000,
            self.refaults,
            self.hypercalls
        )?;
        write_applied(f, &self.injected_faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "el2: STATS sync_faults=4 waited_ns=8065512 hypercalls=552 \
                        not_present=252 page_ready=288 refaults=0 forwarded_irqs=15";

    #[test]
    fn the_hosts_line_is_read_whole() {
        let stats = El2HostStats::parse(LINE).unwrap();
        assert_eq!(
            stats,
            El2HostStats {
                sync_faults: 4,
                waited_ns: 8065512,
                hypercalls: 552,
                not_present: 252,
                page_ready: 288,
                refaults: 0,
                forwarded_irqs: 15,
                injected_faults: Applied::new(),
            }
        );
        assert_eq!(stats.to_json()["page_ready"], 288);
    }

    #[test]
    fn injected_faults_follow_the_counters() {
        let line = format!("{LINE} duplicate-ready=36 drop-ready=0");
        let stats = El2HostStats::parse(&line).unwrap();
        assert_eq!(
            stats.injected_faults,
            Applied::from([(Inject::DuplicateReady, 36), (Inject::DropReady, 0)])
        );
        let json = stats.to_json();
        assert_eq!(json["injected_faults"]["duplicate-ready"], 36);
        assert!(
            stats
                .to_string()
                .ends_with("; injected duplicate-ready x36; injected drop-ready x0")
        );
    }

    #[test]
    fn a_line_not_fully_understood_is_refused() {
        assert_eq!(
            El2HostStats::parse("kernel: STATS x=1"),
            Err(ParseError::NotStats)
        );
        assert_eq!(
            El2HostStats::parse(&format!("{LINE} teleport=3")),
            Err(ParseError::UnknownCounter("teleport".to_owned()))
        );
        assert_eq!(
            El2HostStats::parse(&format!("{LINE} refaults=-1")),
            Err(ParseError::NotACount("refaults=-1".to_owned()))
        );
        assert_eq!(
            El2HostStats::parse(&LINE.replace(" hypercalls=552", "")),
            Err(ParseError::Missing("hypercalls"))
        );
        assert_eq!(
            El2HostStats::parse(&format!("{LINE} refaults=1")),
            Err(ParseError::Repeated("refaults".to_owned()))
        );
        assert_eq!(
            El2HostStats::parse(&format!("{LINE} reorder=1 reorder=2")),
            Err(ParseError::Repeated("reorder".to_owned()))
        );
    }
}
