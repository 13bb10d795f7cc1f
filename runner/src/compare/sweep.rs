//! `compare --latency-sweep`: one comparison per latency, summarised as speedup against
//! latency, where the cross-over shows: async PF pays only when a fetch takes longer than
//! the guest's cost of handling an async fault.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::mode::Mode;
use super::plot;
use super::report::{Comparison, Error};

/// Speedup of each mode (and the ideal's) at each latency.
pub fn table(sweep: &[Comparison]) -> String {
    let modes = modes(sweep);
    let mut out = String::from("speedup against off, by latency\n");
    let _ = write!(out, "{:<24}", "latency");
    for mode in &modes {
        let _ = write!(out, " {:>9}", mode.to_string());
    }
    let _ = writeln!(out, " {:>9}", "ideal");
    for c in sweep {
        let speedups = c.speedups();
        let _ = write!(out, "{:<24}", c.latency);
        for mode in &modes {
            match speedups.get(mode) {
                Some(x) => write!(out, " {:>8.2}x", x),
                None => write!(out, " {:>9}", "-"),
            }
            .expect("writing to a String cannot fail");
        }
        match c.ideal_speedup() {
            Some(x) => writeln!(out, " {:>8.2}x", x),
            None => writeln!(out, " {:>9}", "-"),
        }
        .expect("writing to a String cannot fail");
    }
    out
}

fn modes(sweep: &[Comparison]) -> Vec<Mode> {
    let mut modes: Vec<Mode> = sweep
        .iter()
        .flat_map(|c| c.speedups().into_keys())
        .collect();
    modes.sort();
    modes.dedup();
    modes
}

/// `{"sweep": [comparison, ...]}`, each comparison as `compare --json` writes it.
pub fn to_json(sweep: &[Comparison]) -> Value {
    json!({ "sweep": sweep.iter().map(Comparison::to_json).collect::<Vec<_>>() })
}

pub fn write_json(sweep: &[Comparison], path: &Path) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(&to_json(sweep)).expect("JSON values serialise");
    std::fs::write(path, text + "\n").map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Speedup against the latency's mean, one line per async PF mode and one for the ideal
/// (`off` is the dashed 1x baseline).
pub fn write_svg(sweep: &[Comparison], path: &Path) -> Result<(), Error> {
    let at = |c: &Comparison| c.latency_mean_ns as f64 / 1e6;
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = modes(sweep)
        .into_iter()
        .filter(|&mode| mode != Mode::Off)
        .map(|mode| {
            let points = sweep
                .iter()
                .filter_map(|c| Some((at(c), *c.speedups().get(&mode)?)))
                .collect();
            (mode.to_string(), points)
        })
        .collect();
    let ideal: Vec<(f64, f64)> = sweep
        .iter()
        .filter_map(|c| Some((at(c), c.ideal_speedup()?)))
        .collect();
    if !ideal.is_empty() {
        lines.push(("ideal".to_owned(), ideal));
    }
    let title = format!(
        "{}: speedup against off",
        sweep.first().map_or("", |c| c.scenario.as_str())
    );
    Ok(plot::speedups(path, &title, &lines)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::test_support::{comparison, record};

    fn sweep() -> Vec<Comparison> {
        let mut fast = comparison();
        fast.latency = "fixed:100us".to_owned();
        fast.latency_mean_ns = 100_000;
        let mut slow = comparison();
        for (i, run) in [100_000_000, 110_000_000, 120_000_000]
            .into_iter()
            .enumerate()
        {
            slow.runs
                .push((Mode::Kvm, i as u32, record(run, 90_000_000)));
        }
        vec![fast, slow]
    }

    #[test]
    fn table_lists_each_latency_with_its_speedups() {
        let t = table(&sweep());
        assert!(t.contains("fixed:100us"), "{t}");
        assert!(t.contains("1.82x"), "kvm at 10 ms: 200 / 110: {t}");
        assert!(t.contains("2.00x"), "the ideal: {t}");
        assert!(
            t.lines().nth(2).unwrap().contains(" -"),
            "no kvm run at 100 us: {t}"
        );
    }

    #[test]
    fn json_holds_every_comparison() {
        let j = to_json(&sweep());
        assert_eq!(j["sweep"].as_array().unwrap().len(), 2);
        assert!(j["sweep"][1]["speedup"]["kvm"].as_f64().unwrap() > 1.8);
    }

    #[test]
    fn svg_is_written() {
        let path = std::env::temp_dir().join(format!("sweep-test-{}.svg", std::process::id()));
        write_svg(&sweep(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.contains("speedup") && svg.contains("kvm") && svg.contains("ideal"));
    }
}
