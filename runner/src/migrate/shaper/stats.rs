//! What the shaper counts and reports: the delays it drew and those the requests waited, the
//! bytes and messages it passed on.

use std::fmt;
use std::time::Duration;

use super::Acks;
use super::return_path::{Message, PageRequest, decode_page_request};
use crate::units::format_fine_duration;

/// The shortest, mean and longest of some delays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DelayStats {
    pub min: Duration,
    pub mean: Duration,
    pub max: Duration,
}

impl DelayStats {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "min_ns": nanos(self.min),
            "mean_ns": nanos(self.mean),
            "max_ns": nanos(self.max),
        })
    }
}

impl fmt::Display for DelayStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "min {} mean {} max {}",
            format_rounded(self.min),
            format_rounded(self.mean),
            format_rounded(self.max)
        )
    }
}

/// What the shaper has proxied so far, over all its connections.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShaperStats {
    /// Connections proxied (accepted and connected to the destination).
    pub connections: u64,
    /// Bytes copied from the source to the destination.
    pub forward_bytes: u64,
    /// Whole return-path messages read from the destination (a truncated tail is not one).
    pub return_messages: u64,
    /// Return-path messages of type `REQ_PAGES_ID` or `REQ_PAGES`.
    pub page_requests: u64,
    /// The pages they asked for: each request's length over 4 KiB, at least 1.
    pub pages_requested: u64,
    /// The model's draws for page requests; `None` without a model or before a request.
    pub drawn: Option<DelayStats>,
    /// How long page requests actually took from their last byte read to their write;
    /// `None` before one was written.
    pub measured: Option<DelayStats>,
    pub acks: Acks,
}

impl ShaperStats {
    /// The counts as JSON, durations in integer nanoseconds (`min_ns`, `mean_ns`, `max_ns`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "connections": self.connections,
            "forward_bytes": self.forward_bytes,
            "return_messages": self.return_messages,
            "page_requests": self.page_requests,
            "pages_requested": self.pages_requested,
            "drawn": self.drawn.map(DelayStats::to_json),
            "measured": self.measured.map(DelayStats::to_json),
            "acks": self.acks.name(),
        })
    }
}

impl fmt::Display for ShaperStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.page_requests == 0 {
            write!(f, "no page requests")?;
        } else {
            write!(
                f,
                "{} ({})",
                plural(self.page_requests, "page request"),
                plural(self.pages_requested, "page")
            )?;
            match self.drawn {
                Some(drawn) => write!(f, " delayed: drawn {drawn}")?,
                None => write!(f, " not delayed")?,
            }
            if let Some(measured) = self.measured {
                let separator = if self.drawn.is_some() { "," } else { ":" };
                write!(f, "{separator} measured {measured}")?;
            }
        }
        write!(
            f,
            "; {:.1} MiB forward, {}, {}",
            self.forward_bytes as f64 / f64::from(1u32 << 20),
            plural(self.return_messages, "return message"),
            plural(self.connections, "connection")
        )?;
        if self.acks == Acks::Delayed {
            write!(f, ", delayed ACKs")?;
        }
        Ok(())
    }
}

pub fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Durations are reported in u64 nanoseconds: 584 years of them.
pub fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `duration` rounded to the microsecond (exact below one), written as `parse_duration`
/// reads it: measured times are never round, and their nanoseconds are noise.
pub fn format_rounded(duration: Duration) -> String {
    const MICROSECOND: u64 = 1_000;
    let nanos = nanos(duration);
    let rounded = if nanos < MICROSECOND {
        nanos
    } else {
        nanos.saturating_add(MICROSECOND / 2) / MICROSECOND * MICROSECOND
    };
    format_fine_duration(Duration::from_nanos(rounded))
}

/// Minimum, maximum and sum of some durations.
#[derive(Debug, Default)]
pub struct DurationTally {
    pub count: u64,
    pub total_nanos: u128,
    pub min: Duration,
    pub max: Duration,
}

impl DurationTally {
    pub fn add(&mut self, duration: Duration) {
        if self.count == 0 {
            (self.min, self.max) = (duration, duration);
        } else {
            self.min = self.min.min(duration);
            self.max = self.max.max(duration);
        }
        self.count += 1;
        self.total_nanos += duration.as_nanos();
    }

    pub fn summary(&self) -> Option<DelayStats> {
        (self.count > 0).then(|| DelayStats {
            min: self.min,
            mean: Duration::from_nanos(
                u64::try_from(self.total_nanos / u128::from(self.count)).unwrap_or(u64::MAX),
            ),
            max: self.max,
        })
    }
}

/// The counts behind `ShaperStats`, kept by the copy threads. One lock for all of them: it
/// is taken once per read, not per byte.
#[derive(Debug, Default)]
pub struct Tally {
    pub connections: u64,
    pub forward_bytes: u64,
    pub return_messages: u64,
    pub page_requests: u64,
    pub pages_requested: u64,
    pub drawn: DurationTally,
    pub measured: DurationTally,
}

impl Tally {
    pub fn return_message(&mut self, message: &Message, drawn: Option<Duration>) {
        self.return_messages += 1;
        if message.kind.is_page_request() {
            self.page_requests += 1;
            self.pages_requested += decode_page_request(message).map_or(1, PageRequest::pages);
        }
        if let Some(drawn) = drawn {
            self.drawn.add(drawn);
        }
    }

    pub fn snapshot(&self) -> ShaperStats {
        ShaperStats {
            connections: self.connections,
            forward_bytes: self.forward_bytes,
            return_messages: self.return_messages,
            page_requests: self.page_requests,
            pages_requested: self.pages_requested,
            drawn: self.drawn.summary(),
            measured: self.measured.summary(),
            acks: Acks::default(),
        }
    }
}
