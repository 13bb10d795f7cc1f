//! A finished comparison: the table printed on stdout, the JSON and the SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::mode::Mode;
use super::plot;
use super::record::RunRecord;
use super::sizing::Size;
use super::stats::{Summary, speedup};
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
    pub scenario: String,
    pub latency: String,
    /// The latency model's mean, where a sweep places this comparison.
    pub latency_mean_ns: u64,
    pub arch: GuestArch,
    pub fetchers: u8,
    pub seed: u64,
    pub size: Size,
    pub solo: Option<Solo>,
    /// (mode, repeat index, record), in run order.
    pub runs: Vec<(Mode, u32, RunRecord)>,
}

impl Comparison {
    /// The best possible makespan: the two tasks fully overlapped, max(C, F).
    pub fn ideal_ns(&self) -> Option<u64> {
        self.solo.map(|s| s.cpu_ns.max(s.mem_ns))
    }

    fn modes(&self) -> Vec<Mode> {
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

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario {}, latency {}, {} fetcher(s), {} pages per memory task{}, {} run(s) per mode",
            self.scenario,
            self.latency,
            self.fetchers,
            self.size.pages,
            if self.size.cpu_rounds > 0 {
                format!(", {} cpu rounds", self.size.cpu_rounds)
            } else {
                String::new()
            },
            self.runs.len() / self.modes().len().max(1),
        );
        let _ = writeln!(
            out,
            "{:<9} {:>26} {:>9} {:>9} {:>7} {:>11} {:>8}",
            "mode", "makespan ms min/med/max", "cpu ms", "mem ms", "served", "verified", "speedup"
        );
        let speedups = self.speedups();
        for mode in self.modes() {
            let makespan = self.makespans(mode).expect("every listed mode ran");
            let task_ms = |name: &str| {
                self.summary(mode, |r| r.task(name).and_then(|t| t.duration_ns()))
                    .map(|s| format!("{:.1}", s.median as f64 / NS_PER_MS))
                    .unwrap_or_else(|| "-".to_owned())
            };
            let served = self.summary(mode, |r| Some(r.faults_served)).expect("ran");
            let touched: u64 = self.records(mode).map(|r| r.pages_touched).sum();
            let verified: u64 = self.records(mode).map(|r| r.pages_verified).sum();
            let _ = writeln!(
                out,
                "{:<9} {:>26} {:>9} {:>9} {:>7} {:>11} {:>7.2}x",
                mode.to_string(),
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    makespan.min as f64 / NS_PER_MS,
                    makespan.median as f64 / NS_PER_MS,
                    makespan.max as f64 / NS_PER_MS
                ),
                task_ms("cpu"),
                task_ms("mem"),
                served.median,
                format!("{verified}/{touched}"),
                speedups.get(&mode).copied().unwrap_or(f64::NAN),
            );
        }
        if let (Some(solo), Some(ideal)) = (self.solo, self.ideal_ns()) {
            let _ = write!(
                out,
                "ideal max(C, F) = {:.1} ms (C = cpu alone {:.1} ms, F = mem alone {:.1} ms)",
                ideal as f64 / NS_PER_MS,
                solo.cpu_ns as f64 / NS_PER_MS,
                solo.mem_ns as f64 / NS_PER_MS
            );
            for mode in self.modes() {
                let median = self.makespans(mode).expect("ran").median;
                let _ = write!(
                    out,
                    "; {mode} is {:.2}x the ideal",
                    median as f64 / ideal.max(1) as f64
                );
            }
            out.push('\n');
        }
        out
    }

    /// The JSON form (`compare --json`).
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "latency": self.latency,
            "arch": self.arch.name(),
            "fetchers": self.fetchers,
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
        })
    }

    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(&self.to_json()).expect("JSON values serialise");
        std::fs::write(path, text + "\n").map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        })
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

/// A small comparison for tests here and in `sweep`.
#[cfg(test)]
pub(super) mod test_support {
    use super::*;
    use crate::compare::record::TaskRecord;

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
            apf_not_present: 0,
            apf_ready: 0,
        }
    }

    pub fn comparison() -> Comparison {
        Comparison {
            scenario: "seed".to_owned(),
            latency: "fixed:10ms".to_owned(),
            latency_mean_ns: 10_000_000,
            arch: GuestArch::X86_64,
            fetchers: 1,
            seed: 1,
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
mod tests {
    use super::test_support::comparison;
    use super::*;

    #[test]
    fn ideal_and_speedup() {
        let c = comparison();
        assert_eq!(c.ideal_ns(), Some(100_000_000));
        assert_eq!(c.speedups().get(&Mode::Off), Some(&1.0));
    }

    #[test]
    fn the_ideal_speedup_is_off_over_the_ideal() {
        assert_eq!(comparison().ideal_speedup(), Some(2.0));
    }

    #[test]
    fn table_shows_medians_and_the_ideal() {
        let t = comparison().table();
        assert!(t.contains("190.0 / 200.0 / 210.0"), "{t}");
        assert!(t.contains("10/10") || t.contains("30/30"), "{t}");
        assert!(t.contains("ideal max(C, F) = 100.0 ms"), "{t}");
        assert!(t.contains("off is 2.00x the ideal"), "{t}");
    }

    #[test]
    fn json_has_the_documented_fields() {
        let j = comparison().to_json();
        for key in ["scenario", "latency", "runs", "ideal_ns", "speedup"] {
            assert!(!j[key].is_null(), "{key} missing: {j}");
        }
        let run = &j["runs"][0];
        for key in [
            "mode",
            "arch",
            "repeat",
            "makespan_ns",
            "tasks",
            "pages_touched",
            "pages_verified",
            "faults_served",
            "apf_not_present",
            "apf_ready",
        ] {
            assert!(!run[key].is_null(), "run.{key} missing: {run}");
        }
        assert_eq!(j["speedup"]["off"], 1.0);
    }

    #[test]
    fn svg_is_written() {
        let path = std::env::temp_dir().join(format!("compare-test-{}.svg", std::process::id()));
        comparison().write_svg(&path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("makespan (ms)"));
    }
}
