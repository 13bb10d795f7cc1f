//! `runner serve-bench`: boots the guest's `kv` UDP service once per mode (all memory
//! present; lazy memory with async PF off and on) and measures its request latency from
//! outside the guest, under the same open-loop load in every mode.
//!
//! The guest's network is a TAP device in a namespace of our own, and the load generator
//! runs in that namespace, so nothing else on the host sees the traffic.

mod bench;
mod icmp;
mod load;
mod malformed;
mod metrics;
mod mode;
mod plan;
mod report;
mod schedule;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::VmmKind;
use crate::lazy::LatencyModel;
use crate::{guest_arch::GuestArch, guest_build, units};
pub use mode::ServeMode;
use plan::Plan;

/// `runner serve-bench` arguments (the names are a contract with the README).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// VMM to boot the guest in: `builtin` (our KVM VMM, with lazy memory) or `qemu`
    /// (microvm; all memory present, so only modes present and kvm).
    #[arg(long, value_enum, default_value = "builtin")]
    pub vmm: VmmKind,
    /// Comma-separated modes: `present` (all memory present, async PF off: the baseline),
    /// `off` (lazy memory, async PF off), `kvm`, `vmm`, `adaptive` (lazy memory, that async
    /// PF mode as for `run --apf`) [default: present,off,kvm,vmm; with --vmm qemu:
    /// present,kvm].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub modes: Vec<ServeMode>,
    /// Page fetch latency of lazy memory, a model as for `runner run --latency`.
    #[arg(long, value_name = "MODEL", default_value = "fixed:1ms")]
    pub latency: LatencyModel,
    /// Requests per second, sent open loop: request i is due at i/RATE whether or not
    /// earlier ones were answered, and its latency counts from then.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// How long to send requests in each mode.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = units::parse_duration)]
    pub duration: Duration,
    /// Fraction of requests for hot keys (in memory the host populated); the others ask
    /// for a cold key, each once, whose first touch faults to the host.
    #[arg(long, value_name = "F", default_value_t = 0.9, value_parser = fraction)]
    pub hot_fraction: f64,
    /// Hot keys (one page each); hot requests pick one uniformly.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub hot_keys: u64,
    /// Worker tasks in the guest's service: while one waits for a page, the others can
    /// answer (with async PF).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub workers: u8,
    /// Also send N malformed datagrams spread over the run (truncated, unknown command,
    /// non-number key, oversized, empty, in turn); the service must refuse each and count it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub malformed: u64,
    /// Seed of the keys' values, the fetch latencies and the request mix.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Wall-clock limit of each mode's guest run: boot, load and drain.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = units::parse_timeout)]
    pub timeout: Duration,
    /// Write the parameters and every mode's results as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Draw latency against percentile, a line per mode and class, as an SVG chart here.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// Also write the tables printed on stdout as Markdown here.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Guest kernel ELF to boot (PVH) [default: build guest-kernel and boot it].
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Report VMM diagnostics (the QEMU command, lazy memory counts) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `--hot-fraction`: a number from 0 to 1.
fn fraction(value: &str) -> Result<f64, String> {
    let f: f64 = value
        .parse()
        .map_err(|_| format!("'{value}' is not a number"))?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("{value} is not between 0 and 1"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    GuestBuild(#[from] guest_build::Error),
    #[error("mode {mode}")]
    Mode {
        mode: ServeMode,
        #[source]
        source: bench::Error,
    },
    #[error(transparent)]
    Output(#[from] report::Error),
}

/// Runs every mode in turn and prints a table per mode; writes JSON and SVG when asked.
pub fn serve_bench(args: ServeArgs) -> Result<(), Error> {
    let plan = match Plan::new(&args) {
        Ok(plan) => plan,
        Err(message) => crate::compare::usage_error(&message),
    };
    let kernel = match &args.kernel {
        Some(kernel) => kernel.clone(),
        None => guest_build::build(GuestArch::X86_64)?,
    };
    let progress = crate::compare::progress_bar(plan.modes.len() as u64);
    let mut results = Vec::new();
    for &mode in &plan.modes {
        progress.set_message(format!("mode {mode}"));
        let setup = bench::Setup {
            plan: &plan,
            kernel: &kernel,
            latency: args.latency,
            timeout: args.timeout,
            verbose: args.verbose,
        };
        match setup.run(mode) {
            Ok(result) => results.push(result),
            Err(source) => {
                progress.finish_and_clear();
                return Err(Error::Mode { mode, source });
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let report = report::Report {
        plan: &plan,
        latency: args.latency,
        results: &results,
    };
    for table in report.tables() {
        println!("{}", table.text());
    }
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    if let Some(path) = &args.svg {
        report.write_svg(path)?;
    }
    if let Some(path) = &args.markdown {
        report.write_markdown(path)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    /// `ServeArgs` as clap parses them from `runner serve-bench ARGS`.
    pub fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: ServeArgs,
        }
        Cli::try_parse_from(std::iter::once("serve-bench").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.vmm, VmmKind::Builtin);
        assert!(args.modes.is_empty());
        assert_eq!(args.latency, "fixed:1ms".parse().unwrap());
        assert_eq!((args.rate, args.hot_keys, args.workers), (200, 64, 4));
        assert_eq!(args.duration, Duration::from_secs(5));
        assert_eq!(args.hot_fraction, 0.9);
        assert_eq!((args.malformed, args.seed), (0, 1));
        assert_eq!(args.timeout, Duration::from_secs(120));
        assert!(args.json.is_none() && args.svg.is_none() && args.kernel.is_none());
    }

    #[test]
    fn every_option() {
        let args = parse(&[
            "--vmm",
            "qemu",
            "--modes",
            "present,kvm",
            "--latency",
            "lognormal:1ms,10ms",
            "--rate",
            "50",
            "--duration",
            "2s",
            "--hot-fraction",
            "1",
            "--hot-keys",
            "8",
            "--workers",
            "1",
            "--malformed",
            "10",
            "--seed",
            "3",
            "--timeout",
            "30s",
            "--json",
            "/tmp/s.json",
            "--svg",
            "/tmp/s.svg",
            "--markdown",
            "/tmp/s.md",
            "--kernel",
            "/tmp/k",
            "-v",
        ])
        .unwrap();
        assert_eq!(args.modes, [ServeMode::Present, ServeMode::Kvm]);
        assert_eq!(
            (args.rate, args.hot_fraction, args.malformed),
            (50, 1.0, 10)
        );
        assert_eq!(args.json, Some(PathBuf::from("/tmp/s.json")));
        assert_eq!(args.markdown, Some(PathBuf::from("/tmp/s.md")));
        assert!(args.verbose);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--rate", "0"][..],
            &["--hot-fraction", "1.5"],
            &["--hot-fraction", "-0.1"],
            &["--hot-fraction", "most"],
            &["--hot-keys", "0"],
            &["--workers", "0"],
            &["--modes", "present,fast"],
            &["--duration", "5"],
            &["--vmm", "firecracker"],
        ] {
            let error = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }
}
