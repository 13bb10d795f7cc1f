//! What one migration did, as QEMU's `query-migrate` reports it on both sides at the end,
//! plus the guest's pause measured from the STOP/RESUME events.

use std::fmt;

use qapi::qmp::MigrationInfo;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MigrationStats {
    /// Source: from `migrate` to completion, ms.
    pub total_time_ms: Option<i64>,
    /// Source: QEMU's own downtime figure, ms. For post-copy QEMU 10 is not consistent: in
    /// back-to-back runs of one command it gave 1 ms (the switch) or the whole post-copy
    /// phase (~1300 ms), so `switchover_us` is the figure to use; this one is kept as QEMU
    /// said it.
    pub downtime_ms: Option<i64>,
    /// From the source's STOP to the destination's RESUME: the time the guest ran nowhere.
    pub switchover_us: Option<u64>,
    /// Source: page requests the destination sent during post-copy.
    pub postcopy_requests: Option<i64>,
    /// Source: bytes sent, all phases, and those sent during post-copy.
    pub transferred_bytes: Option<i64>,
    pub postcopy_bytes: Option<u64>,
    /// Source: non-zero pages sent.
    pub normal_pages: Option<i64>,
    /// Destination: total time its vCPUs were blocked on missing pages, ms (the
    /// `postcopy-blocktime` capability).
    pub blocktime_ms: Option<u32>,
}

impl MigrationStats {
    pub fn new(
        source: &MigrationInfo,
        destination: &MigrationInfo,
        switchover_us: Option<u64>,
    ) -> Self {
        let ram = source.ram.as_ref();
        Self {
            total_time_ms: source.total_time,
            downtime_ms: source.downtime,
            switchover_us,
            postcopy_requests: ram.map(|ram| ram.postcopy_requests),
            transferred_bytes: ram.map(|ram| ram.transferred),
            postcopy_bytes: ram.map(|ram| ram.postcopy_bytes),
            normal_pages: ram.map(|ram| ram.normal),
            blocktime_ms: destination.postcopy_blocktime,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "total_time_ms": self.total_time_ms,
            "downtime_ms": self.downtime_ms,
            "switchover_us": self.switchover_us,
            "postcopy_requests": self.postcopy_requests,
            "transferred_bytes": self.transferred_bytes,
            "postcopy_bytes": self.postcopy_bytes,
            "normal_pages": self.normal_pages,
            "blocktime_ms": self.blocktime_ms,
        })
    }
}

/// A missing value prints as `?`.
struct Maybe<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Maybe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("?"),
        }
    }
}

impl fmt::Display for MigrationStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "completed in {} ms (guest paused {} us at the switch; QEMU's downtime figure {} ms), \
             {} post-copy page requests, {} pages sent ({} bytes, {} in post-copy), \
             destination vCPUs blocked {} ms",
            Maybe(self.total_time_ms),
            Maybe(self.switchover_us),
            Maybe(self.downtime_ms),
            Maybe(self.postcopy_requests),
            Maybe(self.normal_pages),
            Maybe(self.transferred_bytes),
            Maybe(self.postcopy_bytes),
            Maybe(self.blocktime_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `query-migrate` answers as QEMU 10 gives them (trimmed to what we read and what the
    /// schema requires).
    fn info(json: &str) -> MigrationInfo {
        serde_json::from_str(json).expect("a query-migrate answer")
    }

    const SOURCE: &str = r#"{"status": "completed", "total-time": 629, "downtime": 626,
        "setup-time": 1, "ram": {"transferred": 5000000, "remaining": 0, "total": 268435456,
        "duplicate": 64000, "normal": 1200, "normal-bytes": 4915200, "dirty-pages-rate": 0,
        "mbps": 63.5, "dirty-sync-count": 2, "postcopy-requests": 9, "page-size": 4096,
        "multifd-bytes": 0, "pages-per-second": 100, "precopy-bytes": 100,
        "downtime-bytes": 200, "postcopy-bytes": 4999700, "dirty-sync-missed-zero-copy": 0}}"#;

    #[test]
    fn reads_both_sides() {
        let stats = MigrationStats::new(
            &info(SOURCE),
            &info(r#"{"status": "completed", "postcopy-blocktime": 17}"#),
            Some(20_500),
        );
        assert_eq!(
            stats,
            MigrationStats {
                total_time_ms: Some(629),
                downtime_ms: Some(626),
                switchover_us: Some(20_500),
                postcopy_requests: Some(9),
                transferred_bytes: Some(5_000_000),
                postcopy_bytes: Some(4_999_700),
                normal_pages: Some(1200),
                blocktime_ms: Some(17),
            }
        );
        assert_eq!(stats.to_json()["postcopy_requests"], 9);
        assert_eq!(
            stats.to_string(),
            "completed in 629 ms (guest paused 20500 us at the switch; QEMU's downtime figure 626 ms), \
             9 post-copy page requests, 1200 pages sent (5000000 bytes, 4999700 in post-copy), \
             destination vCPUs blocked 17 ms"
        );
    }

    #[test]
    fn missing_values_stay_missing() {
        let stats = MigrationStats::new(&info("{}"), &info("{}"), None);
        assert_eq!(stats, MigrationStats::default());
        assert!(stats.to_json()["total_time_ms"].is_null());
        assert!(stats.to_string().starts_with("completed in ? ms"));
    }
}
