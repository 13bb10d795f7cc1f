//! Sweeps: one comparison per point of an axis, summarised as tables and a line chart.
//! `--latency-sweep` shows the cross-over (async PF pays only when a fetch takes longer than
//! the guest's cost of handling an async fault); an MLP sweep (`--scenario mlp:1,4,16,32`)
//! shows how many faults each mode keeps in flight and the fault throughput that buys.

use std::path::Path;

use serde_json::{Value, json};

use super::mode::Mode;
use super::plot::{self, Lines};
use super::report::{
    self, Comparison, Error, IN_FLIGHT_HEADER, THROUGHPUT_HEADER, USER_APF_HEADER, ms,
};
use super::table::Table;

/// What varies from one comparison of a sweep to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// The fetch latency (`--latency-sweep`).
    Latency,
    /// The memory tasks k of `mlp:k` (`--scenario mlp:K1,K2,...`).
    Mlp,
}

impl Axis {
    fn name(self) -> &'static str {
        match self {
            Axis::Latency => "latency",
            Axis::Mlp => "k",
        }
    }

    /// Where a comparison sits on the axis, as the tables show it.
    fn label(self, c: &Comparison) -> String {
        match self {
            Axis::Latency => c.latency.clone(),
            Axis::Mlp => c.scenario.mem_tasks().to_string(),
        }
    }

    /// Where a comparison sits on the chart's (logarithmic) x axis.
    fn x(self, c: &Comparison) -> f64 {
        match self {
            Axis::Latency => c.latency_mean_ns as f64 / 1e6,
            Axis::Mlp => c.scenario.mem_tasks() as f64,
        }
    }
}

/// The comparisons of a sweep, in axis order.
#[derive(Debug)]
pub struct Sweep {
    pub axis: Axis,
    pub points: Vec<Comparison>,
}

impl Sweep {
    /// The speedup matrix, then every point's modes in detail.
    pub fn tables(&self) -> Vec<Table> {
        vec![self.speedup_table(), self.detail_table()]
    }

    fn modes(&self) -> Vec<Mode> {
        let mut modes: Vec<Mode> = self.points.iter().flat_map(Comparison::modes).collect();
        modes.sort();
        modes.dedup();
        modes
    }

    /// Speedup of each mode (and the ideal's, where known) at each point.
    fn speedup_table(&self) -> Table {
        let modes = self.modes();
        let with_ideal = self.points.iter().any(|c| c.ideal_speedup().is_some());
        let names: Vec<String> = modes.iter().map(Mode::to_string).collect();
        let mut headers: Vec<&str> = vec![self.axis.name()];
        headers.extend(names.iter().map(String::as_str));
        if with_ideal {
            headers.push("ideal");
        }
        let title = format!("speedup against off, by {}", self.axis.name());
        let mut table = Table::new(title, &headers);
        let cell = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}x"));
        for c in &self.points {
            let speedups = c.speedups();
            let mut row = vec![self.axis.label(c)];
            row.extend(modes.iter().map(|m| cell(speedups.get(m).copied())));
            if with_ideal {
                row.push(cell(c.ideal_speedup()));
            }
            table.row(row);
        }
        table
    }

    /// One row per point and mode: median makespan, speedup, throughput, faults in flight.
    fn detail_table(&self) -> Table {
        let user_apf = self.points.iter().any(Comparison::has_user_apf);
        let mut headers = vec![
            self.axis.name(),
            "mode",
            "fetchers",
            "makespan ms",
            "speedup",
            THROUGHPUT_HEADER,
            IN_FLIGHT_HEADER,
        ];
        if user_apf {
            headers.push(USER_APF_HEADER);
        }
        let title = format!(
            "by {} and mode: median makespan, fault throughput and faults in flight",
            self.axis.name()
        );
        let mut table = Table::new(title, &headers).label_columns(2);
        for c in &self.points {
            for mode in c.modes() {
                let s = c.mode_summary(mode).expect("every listed mode ran");
                let mut row = vec![
                    self.axis.label(c),
                    mode.to_string(),
                    c.fetchers.to_string(),
                    ms(s.makespan.median),
                    s.speedup_cell(),
                    s.faults_per_s_cell(),
                    s.in_flight_cell(),
                ];
                if user_apf {
                    row.push(s.user_apf_cell());
                }
                table.row(row);
            }
        }
        table
    }

    /// `{"sweep": [...]}` for a latency sweep, `{"mlp_sweep": [...]}` for an MLP sweep, each
    /// comparison as `compare --json` writes it.
    pub fn to_json(&self) -> Value {
        let key = match self.axis {
            Axis::Latency => "sweep",
            Axis::Mlp => "mlp_sweep",
        };
        let points: Vec<Value> = self.points.iter().map(Comparison::to_json).collect();
        json!({ key: points })
    }

    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        report::write_json_file(path, &self.to_json())
    }

    /// A latency sweep draws speedup against the latency's mean, one line per async PF mode
    /// and one for the ideal (`off` is the dashed 1x baseline); an MLP sweep draws every
    /// mode's fault throughput against k.
    pub fn write_svg(&self, path: &Path) -> Result<(), Error> {
        let line = |name: String, y: &dyn Fn(&Comparison) -> Option<f64>| {
            let points = self
                .points
                .iter()
                .filter_map(|c| Some((self.axis.x(c), y(c)?)))
                .collect::<Vec<_>>();
            (name, points)
        };
        let scenario = self.points.first().map(|c| c.scenario.to_string());
        let latency = self.points.first().map(|c| c.latency.clone());
        match self.axis {
            Axis::Latency => {
                let mut series: Vec<_> = self
                    .modes()
                    .into_iter()
                    .filter(|&mode| mode != Mode::Off)
                    .map(|mode| line(mode.to_string(), &|c| c.speedups().get(&mode).copied()))
                    .collect();
                let ideal = line("ideal".to_owned(), &Comparison::ideal_speedup);
                if !ideal.1.is_empty() {
                    series.push(ideal);
                }
                let title = format!("{}: speedup against off", scenario.unwrap_or_default());
                let chart = Lines {
                    title: &title,
                    x_desc: "fetch latency, mean (ms)",
                    y_desc: "speedup against off",
                    baseline: Some(1.0),
                    series: &series,
                };
                Ok(plot::lines(path, &chart)?)
            }
            Axis::Mlp => {
                let series: Vec<_> = self
                    .modes()
                    .into_iter()
                    .map(|mode| {
                        line(mode.to_string(), &|c| {
                            Some(c.mode_summary(mode)?.faults_per_s)
                        })
                    })
                    .collect();
                let title = format!("mlp:k at {}: fault throughput", latency.unwrap_or_default());
                let chart = Lines {
                    title: &title,
                    x_desc: "memory tasks k",
                    y_desc: "faults served per second",
                    baseline: None,
                    series: &series,
                };
                Ok(plot::lines(path, &chart)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::test_support::{comparison, record};
    use crate::compare::scenario::Scenario;

    fn with_kvm(mut c: Comparison) -> Comparison {
        for (i, run) in [100_000_000, 110_000_000, 120_000_000]
            .into_iter()
            .enumerate()
        {
            c.runs.push((Mode::Kvm, i as u32, record(run, 90_000_000)));
        }
        c
    }

    fn latency_sweep() -> Sweep {
        let mut fast = comparison();
        fast.latency = "fixed:100us".to_owned();
        fast.latency_mean_ns = 100_000;
        Sweep {
            axis: Axis::Latency,
            points: vec![fast, with_kvm(comparison())],
        }
    }

    fn mlp_sweep() -> Sweep {
        let points = [1, 4]
            .into_iter()
            .map(|k| {
                let mut c = with_kvm(comparison());
                c.scenario = Scenario::Mlp(k);
                c.fetchers = k as u8;
                c.solo = None;
                c
            })
            .collect();
        Sweep {
            axis: Axis::Mlp,
            points,
        }
    }

    #[test]
    fn the_speedup_table_lists_each_latency() {
        let t = latency_sweep().tables()[0].text();
        assert!(t.starts_with("speedup against off, by latency"), "{t}");
        assert!(t.contains("fixed:100us"), "{t}");
        assert!(t.contains("1.82x"), "kvm at 10 ms: 200 / 110: {t}");
        assert!(t.contains("2.00x"), "the ideal: {t}");
        assert!(
            t.lines().nth(2).unwrap().contains(" -"),
            "no kvm run at 100 us: {t}"
        );
    }

    #[test]
    fn the_detail_table_has_a_row_per_point_and_mode() {
        let t = mlp_sweep().tables()[1].text();
        let rows: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(rows.len(), 4, "{t}");
        // k = 4, kvm: median 110 ms, 10 faults: 91 per second.
        assert!(
            rows[3].starts_with("4  kvm ") && rows[3].contains("110.0"),
            "{t}"
        );
        assert!(rows[3].contains("1.82x") && rows[3].contains(" 91 "), "{t}");
        assert!(t.contains(IN_FLIGHT_HEADER), "{t}");
        let speedups = mlp_sweep().tables()[0].text();
        assert!(!speedups.contains("ideal"), "no ideal for mlp: {speedups}");
    }

    #[test]
    fn json_holds_every_comparison_under_the_axis_key() {
        let j = latency_sweep().to_json();
        assert_eq!(j["sweep"].as_array().unwrap().len(), 2);
        assert!(j["sweep"][1]["speedup"]["kvm"].as_f64().unwrap() > 1.8);
        let j = mlp_sweep().to_json();
        let points = j["mlp_sweep"].as_array().unwrap();
        assert_eq!(points[1]["scenario"], "mlp:4");
        assert_eq!(points[1]["fetchers"], 4);
        assert!(points[1]["modes"]["kvm"]["faults_per_s"].as_f64().unwrap() > 90.0);
    }

    #[test]
    fn svgs_are_written() {
        for (name, sweep, expect) in [
            ("latency", latency_sweep(), "speedup against off"),
            ("mlp", mlp_sweep(), "faults served per second"),
        ] {
            let path =
                std::env::temp_dir().join(format!("sweep-test-{}-{name}.svg", std::process::id()));
            sweep.write_svg(&path).unwrap();
            let svg = std::fs::read_to_string(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(svg.contains(expect) && svg.contains("kvm"), "{name}");
        }
    }
}
