//! A finished comparison: the table printed on stdout, the JSON and the SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::mode::Mode;
use super::plot;
use super::record::{Migration, RunRecord, UserApf};
use super::scenario::Scenario;
use super::sizing::Size;
use super::stats::{self, Summary, speedup};
use super::table::Table;
use super::tuning::Tuning;
use crate::guest_arch::GuestArch;

const NS_PER_MS: f64 = 1e6;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Plot(#[from] plot::Error),
}

/// The solo runs of the seed scenario: C (cpu alone) and F (mem alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Solo {
    pub cpu_ns: u64,
    pub mem_ns: u64,
}

/// Everything a comparison measured.
#[derive(Debug)]
pub struct Comparison {
    pub scenario: Scenario,
    pub latency: String,
    /// The latency model's mean, where a sweep places this comparison.
    pub latency_mean_ns: u64,
    pub arch: GuestArch,
    /// `--vmm` of the runs: builtin, el2 or qemu (through a post-copy migration).
    pub vmm: &'static str,
    /// `--bandwidth` of the migrations (qemu), bytes per second.
    pub bandwidth: Option<u64>,
    pub fetchers: u8,
    /// vCPUs of each run.
    pub cpus: u8,
    pub seed: u64,
    pub tuning: Tuning,
    pub size: Size,
    pub solo: Option<Solo>,
    /// (mode, repeat index, record), in run order.
    pub runs: Vec<(Mode, u32, RunRecord)>,
}

/// One mode's runs summarised: medians over the repeats, except the high-water mark.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeSummary {
    pub makespan: Summary,
    /// Against `off`; `None` without `off` runs.
    pub speedup: Option<f64>,
    /// Faults served per second of makespan.
    pub faults_per_s: f64,
    /// The most faults in flight in any run and the median of the runs' means (Little's
    /// law); `None` where the runs did not count them (the EL2 host).
    pub in_flight: Option<(u64, f64)>,
    /// Our VMM's "page not present" and "page ready" events and synchronous faults.
    pub user_apf: Option<UserApfCounts>,
    /// Medians of the runs' post-copy migrations (`--vmm qemu`).
    pub migration: Option<MigrationCounts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationCounts {
    pub postcopy_requests: u64,
    pub switchover_us: u64,
    pub total_ms: u64,
    pub blocktime_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserApfCounts {
    pub injected: u64,
    pub ready: u64,
    pub sync: u64,
}

impl ModeSummary {
    pub fn speedup_cell(&self) -> String {
        self.speedup
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}x"))
    }

    pub fn faults_per_s_cell(&self) -> String {
        format!("{:.0}", self.faults_per_s)
    }

    pub fn in_flight_cell(&self) -> String {
        self.in_flight.map_or_else(
            || "-".to_owned(),
            |(max, mean)| format!("{max} / {mean:.2}"),
        )
    }

    pub fn user_apf_cell(&self) -> String {
        self.user_apf.map_or_else(
            || "-".to_owned(),
            |u| format!("{} / {} / {}", u.injected, u.ready, u.sync),
        )
    }

    pub fn migration_cell(&self) -> String {
        self.migration.map_or_else(
            || "-".to_owned(),
            |m| {
                format!(
                    "{} / {:.1} / {} / {}",
                    m.postcopy_requests,
                    m.switchover_us as f64 / 1e3,
                    m.total_ms,
                    m.blocktime_ms
                )
            },
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "migration": self.migration.map(|m| json!({
                "postcopy_requests": m.postcopy_requests,
                "switchover_us": m.switchover_us,
                "total_ms": m.total_ms,
                "blocktime_ms": m.blocktime_ms,
            })),
            "makespan_ns": {
                "min": self.makespan.min,
                "median": self.makespan.median,
                "max": self.makespan.max,
            },
            "speedup": self.speedup,
            "faults_per_s": self.faults_per_s,
            "max_in_flight": self.in_flight.map(|(max, _)| max),
            "mean_in_flight": self.in_flight.map(|(_, mean)| mean),
            "user_apf": self.user_apf.map(|u| json!({
                "injected": u.injected,
                "ready": u.ready,
                "sync": u.sync,
            })),
        })
    }
}

/// Column headers of the makespan and the per-mode measures, shared by the tables here and
/// in `sweep`.
pub const THROUGHPUT_HEADER: &str = "faults/s";
pub const IN_FLIGHT_HEADER: &str = "in flight max / mean";
pub const USER_APF_HEADER: &str = "vmm apf injected / ready / sync";
pub const MIGRATION_HEADER: &str = "post-copy requests / switch ms / total ms / blocked ms";

/// Milliseconds with one decimal, from nanoseconds.
pub fn ms(ns: u64) -> String {
    format!("{:.1}", ns as f64 / NS_PER_MS)
}

impl Comparison {
    /// The best possible makespan: the two tasks fully overlapped, max(C, F).
    pub fn ideal_ns(&self) -> Option<u64> {
        self.solo.map(|s| s.cpu_ns.max(s.mem_ns))
    }

    pub fn modes(&self) -> Vec<Mode> {
        let mut modes: Vec<Mode> = self.runs.iter().map(|(m, _, _)| *m).collect();
        modes.sort();
        modes.dedup();
        modes
    }

    fn records(&self, mode: Mode) -> impl Iterator<Item = &RunRecord> {
        self.runs
            .iter()
            .filter(move |(m, _, _)| *m == mode)
            .map(|(_, _, r)| r)
    }

    fn summary(&self, mode: Mode, value: impl Fn(&RunRecord) -> Option<u64>) -> Option<Summary> {
        Summary::of(&self.records(mode).filter_map(value).collect::<Vec<_>>())
    }

    fn makespans(&self, mode: Mode) -> Option<Summary> {
        self.summary(mode, |r| Some(r.makespan_ns))
    }

    /// `mode`'s runs summarised; `None` if it did not run.
    pub fn mode_summary(&self, mode: Mode) -> Option<ModeSummary> {
        let makespan = self.makespans(mode)?;
        let max_in_flight = self
            .records(mode)
            .filter_map(|r| r.in_flight)
            .map(|f| f.max)
            .max();
        let mean_in_flight =
            stats::median(self.records(mode).filter_map(RunRecord::mean_in_flight));
        Some(ModeSummary {
            makespan,
            speedup: self
                .makespans(Mode::Off)
                .map(|off| speedup(&off, &makespan)),
            faults_per_s: stats::median(self.records(mode).map(RunRecord::faults_per_s))
                .unwrap_or(0.0),
            in_flight: max_in_flight.zip(mean_in_flight),
            user_apf: self.user_apf_counts(mode),
            migration: self.migration_counts(mode),
        })
    }

    /// Medians of the post-copy migrations of `mode`'s runs, if they went through one.
    fn migration_counts(&self, mode: Mode) -> Option<MigrationCounts> {
        let median = |value: fn(&Migration) -> u64| {
            self.summary(mode, |r| r.migration.as_ref().map(value))
                .map(|s| s.median)
        };
        Some(MigrationCounts {
            postcopy_requests: median(|m| m.postcopy_requests)?,
            switchover_us: median(|m| m.switchover_us)?,
            total_ms: median(|m| m.total_ms)?,
            blocktime_ms: median(|m| m.blocktime_ms)?,
        })
    }

    /// Whether the runs went through a post-copy migration (worth a column).
    pub fn has_migration(&self) -> bool {
        self.runs.iter().any(|(_, _, r)| r.migration.is_some())
    }

    /// Medians of our VMM's async PF counters over `mode`'s runs that reported them.
    fn user_apf_counts(&self, mode: Mode) -> Option<UserApfCounts> {
        let median = |value: fn(&UserApf) -> u64| {
            self.summary(mode, |r| r.user_apf.as_ref().map(value))
                .map(|s| s.median)
        };
        Some(UserApfCounts {
            injected: median(|u| u.injected)?,
            ready: median(|u| u.ready)?,
            sync: median(|u| u.sync)?,
        })
    }

    /// Whether any run reported our VMM's async PF counters (worth a column).
    pub fn has_user_apf(&self) -> bool {
        self.runs.iter().any(|(_, _, r)| r.user_apf.is_some())
    }

    /// Median makespan of `off` over the ideal bound: the most any mode could gain.
    pub fn ideal_speedup(&self) -> Option<f64> {
        let off = self.makespans(Mode::Off)?;
        Some(off.median as f64 / self.ideal_ns()?.max(1) as f64)
    }

    /// Median makespan of `off` over that of each mode.
    pub fn speedups(&self) -> BTreeMap<Mode, f64> {
        let Some(off) = self.makespans(Mode::Off) else {
            return BTreeMap::new();
        };
        self.modes()
            .into_iter()
            .filter_map(|m| Some((m, speedup(&off, &self.makespans(m)?))))
            .collect()
    }

    /// The table of every mode's makespans, task times, faults, throughput and faults in
    /// flight, with the ideal bound as a note.
    pub fn table(&self) -> Table {
        // A migration's pages come from the source QEMU, not from our fetchers.
        let source = match self.bandwidth {
            Some(rate) => format!("post-copy from a QEMU source pushing {} KiB/s", rate / 1024),
            None if self.cpus > 1 => format!("{} fetcher(s), {} vCPUs", self.fetchers, self.cpus),
            None => format!("{} fetcher(s)", self.fetchers),
        };
        let title = format!(
            "scenario {}, latency {}, {source}, {} pages per memory task{}{}, {} run(s) per mode",
            self.scenario,
            self.latency,
            self.size.pages,
            if self.size.cpu_rounds > 0 {
                format!(", {} cpu rounds", self.size.cpu_rounds)
            } else {
                String::new()
            },
            self.tuning.describe(),
            self.runs.len() / self.modes().len().max(1),
        );
        let user_apf = self.has_user_apf();
        let mut headers = vec![
            "mode",
            "makespan ms min / med / max",
            "cpu ms",
            "mem ms",
            "served",
            "verified",
            THROUGHPUT_HEADER,
            IN_FLIGHT_HEADER,
        ];
        if user_apf {
            headers.push(USER_APF_HEADER);
        }
        let migration = self.has_migration();
        if migration {
            headers.push(MIGRATION_HEADER);
        }
        headers.push("speedup");
        let mut table = Table::new(title, &headers);
        for mode in self.modes() {
            let summary = self.mode_summary(mode).expect("every listed mode ran");
            let makespan = summary.makespan;
            let task_ms = |name: &str| {
                self.summary(mode, |r| r.task(name).and_then(|t| t.duration_ns()))
                    .map_or_else(|| "-".to_owned(), |s| ms(s.median))
            };
            let served = self.summary(mode, |r| Some(r.faults_served)).expect("ran");
            let touched: u64 = self.records(mode).map(|r| r.pages_touched).sum();
            let verified: u64 = self.records(mode).map(|r| r.pages_verified).sum();
            let mut row = vec![
                mode.to_string(),
                format!(
                    "{} / {} / {}",
                    ms(makespan.min),
                    ms(makespan.median),
                    ms(makespan.max)
                ),
                task_ms("cpu"),
                task_ms("mem"),
                served.median.to_string(),
                format!("{verified}/{touched}"),
                summary.faults_per_s_cell(),
                summary.in_flight_cell(),
            ];
            if user_apf {
                row.push(summary.user_apf_cell());
            }
            if migration {
                row.push(summary.migration_cell());
            }
            row.push(summary.speedup_cell());
            table.row(row);
        }
        if let (Some(solo), Some(ideal)) = (self.solo, self.ideal_ns()) {
            let mut note = format!(
                "ideal max(C, F) = {} ms (C = cpu alone {} ms, F = mem alone {} ms)",
                ms(ideal),
                ms(solo.cpu_ns),
                ms(solo.mem_ns)
            );
            for mode in self.modes() {
                let median = self.makespans(mode).expect("ran").median;
                let _ = write!(
                    note,
                    "; {mode} is {:.2}x the ideal",
                    median as f64 / ideal.max(1) as f64
                );
            }
            table.note(note);
        }
        table
    }

    /// The JSON form (`compare --json`): the tuning's fields sit at the top level, beside
    /// the comparison's own.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "scenario": self.scenario.to_string(),
            "latency": self.latency,
            "arch": self.arch.name(),
            "vmm": self.vmm,
            "bandwidth": self.bandwidth,
            "fetchers": self.fetchers,
            "cpus": self.cpus,
            "seed": self.seed,
            "pages": self.size.pages,
            "cpu_rounds": self.size.cpu_rounds,
            "solo": self.solo.map(|s| json!({"cpu_ns": s.cpu_ns, "mem_ns": s.mem_ns})),
            "ideal_ns": self.ideal_ns(),
            "runs": self.runs.iter().map(|(mode, repeat, record)| {
                let mut run = record.to_json();
                run["mode"] = json!(mode.to_string());
                run["arch"] = json!(self.arch.name());
                run["repeat"] = json!(repeat);
                run
            }).collect::<Vec<_>>(),
            "speedup": self.speedups().into_iter()
                .map(|(m, x)| (m.to_string(), json!(x)))
                .collect::<serde_json::Map<_, _>>(),
            "modes": self.modes().into_iter()
                .filter_map(|m| Some((m.to_string(), self.mode_summary(m)?.to_json())))
                .collect::<serde_json::Map<_, _>>(),
        });
        if let (Value::Object(all), Value::Object(tuning)) = (&mut value, self.tuning.to_json()) {
            all.extend(tuning);
        }
        value
    }

    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        write_json_file(path, &self.to_json())
    }

    pub fn write_svg(&self, path: &Path) -> Result<(), Error> {
        let bars: Vec<(String, Summary)> = self
            .modes()
            .into_iter()
            .filter_map(|m| Some((m.to_string(), self.makespans(m)?)))
            .collect();
        let title = format!("{}, latency {}", self.scenario, self.latency);
        Ok(plot::makespans(path, &title, &bars, self.ideal_ns())?)
    }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json_file(path: &Path, value: &Value) -> Result<(), Error> {
    write_file(
        path,
        serde_json::to_string_pretty(value).expect("JSON values serialise") + "\n",
    )
}

/// Writes `text` to `path`, naming the path on failure.
pub fn write_file(path: &Path, text: String) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })
}

/// A small comparison for tests here and in `sweep`.
#[cfg(test)]
pub(super) mod test_support {
    use super::*;
    use crate::compare::record::{InFlight, TaskRecord};

    pub fn record(makespan_ns: u64, cpu_ns: u64) -> RunRecord {
        RunRecord {
            tasks: vec![TaskRecord {
                name: "cpu".to_owned(),
                status: 0,
                span_ns: Some((0, cpu_ns)),
                result: Some(1),
                pages_touched: 0,
                pages_verified: 0,
            }],
            makespan_ns,
            pages_touched: 10,
            pages_verified: 10,
            faults_served: 10,
            in_flight: Some(InFlight {
                max: 1,
                total_wait_ns: makespan_ns / 2,
            }),
            apf_not_present: 0,
            apf_ready: 0,
            user_apf: None,
            migration: None,
        }
    }

    pub fn comparison() -> Comparison {
        Comparison {
            scenario: Scenario::Seed,
            latency: "fixed:10ms".to_owned(),
            latency_mean_ns: 10_000_000,
            arch: GuestArch::X86_64,
            vmm: "builtin",
            bandwidth: None,
            fetchers: 1,
            cpus: 1,
            seed: 1,
            tuning: Tuning::default(),
            size: Size {
                pages: 10,
                cpu_rounds: 100,
            },
            solo: Some(Solo {
                cpu_ns: 90_000_000,
                mem_ns: 100_000_000,
            }),
            runs: vec![
                (Mode::Off, 0, record(210_000_000, 90_000_000)),
                (Mode::Off, 1, record(190_000_000, 90_000_000)),
                (Mode::Off, 2, record(200_000_000, 90_000_000)),
            ],
        }
    }
}

#[cfg(test)]
mod tests;
