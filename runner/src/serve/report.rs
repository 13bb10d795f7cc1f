//! A `serve-bench` run's results: a table per mode, the JSON file and the SVG chart.

use std::path::Path;

use serde_json::{Value, json};

use super::bench::ModeResult;
use super::metrics::{self, Latencies, Summary};
use super::plan::Plan;
use super::schedule::Class;
use crate::compare::plot;
pub use crate::compare::report::Error;
use crate::compare::report::{write_file, write_json_file};
use crate::compare::table::Table;
use crate::lazy::LatencyModel;

const CLASSES: [Class; 2] = [Class::Hot, Class::Cold];

pub struct Report<'a> {
    pub plan: &'a Plan,
    pub latency: LatencyModel,
    pub results: &'a [ModeResult],
}

impl Report<'_> {
    fn host(&self) -> &'static str {
        match self.plan.vmm {
            crate::cli::VmmKind::Builtin => "builtin",
            crate::cli::VmmKind::Qemu => "qemu",
            crate::cli::VmmKind::El2 => "el2",
        }
    }

    pub fn tables(&self) -> Vec<Table> {
        self.results.iter().map(|r| self.table(r)).collect()
    }

    fn table(&self, result: &ModeResult) -> Table {
        let load = &self.plan.load;
        let mut table = Table::new(
            format!(
                "kv service, mode {} ({} VMM, latency {}, {} requests/s, {:.0}% hot, {} workers)",
                result.mode,
                self.host(),
                self.latency,
                load.rate,
                load.hot_fraction * 100.0,
                self.plan.workers
            ),
            &["class", "count", "p50 ms", "p99 ms", "p99.9 ms", "max ms"],
        );
        for class in CLASSES {
            let s = Latencies::of(&result.samples, class).summary();
            table.row(vec![
                class.name().to_owned(),
                s.count.to_string(),
                ms(s.p50),
                ms(s.p99),
                ms(s.p999),
                ms(s.max),
            ]);
        }
        let o = metrics::overtaking(&result.samples);
        table.note(format!(
            "hot answered during cold waits: {}; cold requests overtaken: {}; ICMP RTT {} ms",
            o.hot_answered_during_cold_wait,
            o.cold_overtaken,
            ms_f(result.icmp_rtt.as_secs_f64() * 1e3)
        ));
        table
    }

    pub fn to_json(&self) -> Value {
        let load = &self.plan.load;
        let modes: Vec<Value> = self
            .results
            .iter()
            .map(|result| {
                let o = metrics::overtaking(&result.samples);
                let mut classes = serde_json::Map::new();
                for class in CLASSES {
                    let summary = Latencies::of(&result.samples, class).summary();
                    classes.insert(class.name().to_owned(), summary_json(summary));
                }
                json!({
                    "host": self.host(),
                    "mode": result.mode.name(),
                    "latency": self.latency.to_string(),
                    "rate": load.rate,
                    "counts": {
                        "requests": load.requests,
                        "answered": result.samples.len(),
                        "malformed": load.malformed,
                    },
                    "latency_us": classes,
                    "hot_answered_during_cold_wait": o.hot_answered_during_cold_wait,
                    "cold_overtaken": o.cold_overtaken,
                    "icmp_rtt_us": u64::try_from(result.icmp_rtt.as_micros()).unwrap_or(u64::MAX),
                    "lazy": result.lazy,
                })
            })
            .collect();
        json!({
            "parameters": {
                "host": self.host(),
                "latency": self.latency.to_string(),
                "latency_mean_ns": u64::try_from(self.latency.mean().as_nanos()).unwrap_or(u64::MAX),
                "rate": load.rate,
                "duration_ms": u64::try_from(self.plan.duration.as_millis()).unwrap_or(u64::MAX),
                "requests": load.requests,
                "hot_fraction": load.hot_fraction,
                "hot_keys": load.hot_keys,
                "cold_keys": load.cold_keys,
                "workers": self.plan.workers,
                "malformed": load.malformed,
                "seed": load.seed,
                "mem_mib": self.plan.mem_mib,
            },
            "modes": modes,
        })
    }

    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        write_json_file(path, &self.to_json())
    }

    /// The tables as Markdown (the benchmark report).
    pub fn write_markdown(&self, path: &Path) -> Result<(), Error> {
        let tables: Vec<String> = self.tables().iter().map(|t| t.markdown()).collect();
        write_file(path, tables.join("\n"))
    }

    pub fn write_svg(&self, path: &Path) -> Result<(), Error> {
        let series: Vec<(String, Vec<(f64, f64)>)> = self
            .results
            .iter()
            .flat_map(|result| {
                CLASSES.map(|class| {
                    let curve = Latencies::of(&result.samples, class).curve();
                    let points = curve
                        .iter()
                        .map(|&(q, us)| (1.0 / (1.0 - q), us as f64 / 1e3))
                        .collect();
                    (format!("{} {}", result.mode, class.name()), points)
                })
            })
            .filter(|(_, points): &(String, Vec<_>)| !points.is_empty())
            .collect();
        let title = format!(
            "kv request latency ({} VMM, fetch latency {}, {}/s)",
            self.host(),
            self.latency,
            self.plan.load.rate
        );
        plot::percentiles(path, &title, &series)?;
        Ok(())
    }
}

fn summary_json(s: Summary) -> Value {
    json!({
        "count": s.count,
        "p50": s.p50,
        "p99": s.p99,
        "p999": s.p999,
        "max": s.max,
    })
}

/// Microseconds as milliseconds, `-` for an empty class.
fn ms(micros: u64) -> String {
    ms_f(micros as f64 / 1e3)
}

/// Three decimals below 10 ms, two above: microseconds stay visible where they matter.
fn ms_f(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::metrics::Sample;
    use crate::serve::mode::ServeMode;
    use crate::serve::tests::parse;
    use std::time::Duration;

    fn results() -> Vec<ModeResult> {
        let sample = |class, sent, received| Sample {
            class,
            sent: Duration::from_micros(sent),
            received: Duration::from_micros(received),
            latency: Duration::from_micros(received - sent),
        };
        vec![ModeResult {
            mode: ServeMode::Kvm,
            icmp_rtt: Duration::from_micros(150),
            samples: vec![
                sample(Class::Cold, 0, 1500),
                sample(Class::Hot, 100, 300),
                sample(Class::Hot, 5000, 5200),
            ],
            lazy: None,
        }]
    }

    #[test]
    fn a_table_per_mode_with_a_row_per_class() {
        let plan = Plan::new(&parse(&[]).unwrap()).unwrap();
        let results = results();
        let report = Report {
            plan: &plan,
            latency: "1ms".parse().unwrap(),
            results: &results,
        };
        let text = report.tables()[0].text();
        assert!(
            text.contains("mode kvm (builtin VMM, latency fixed:1ms"),
            "{text}"
        );
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(rows[2], ["hot", "2", "0.200", "0.200", "0.200", "0.200"]);
        assert_eq!(rows[3], ["cold", "1", "1.500", "1.500", "1.500", "1.500"]);
        assert!(
            text.contains(
                "hot answered during cold waits: 1; cold requests overtaken: 1; ICMP RTT 0.150 ms"
            ),
            "{text}"
        );
        let json = report.to_json();
        assert_eq!(json["parameters"]["requests"], 1000);
        let mode = &json["modes"][0];
        assert_eq!(mode["mode"], "kvm");
        assert_eq!(mode["latency_us"]["cold"]["p50"], 1500);
        assert_eq!(mode["latency_us"]["hot"]["count"], 2);
        assert_eq!(mode["cold_overtaken"], 1);
        assert_eq!(mode["icmp_rtt_us"], 150);
        let svg = std::env::temp_dir().join(format!("serve-bench-{}.svg", std::process::id()));
        report.write_svg(&svg).unwrap();
        let drawn = std::fs::read_to_string(&svg).unwrap();
        let _ = std::fs::remove_file(&svg);
        assert!(drawn.contains("kvm cold") && drawn.contains("kvm hot"));
        assert_eq!(ms_f(12.345), "12.35");
    }
}
