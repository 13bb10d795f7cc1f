//! `runner compare`: runs a scenario under lazy memory with async PF off and on, repeated,
//! plus the solo runs that give the ideal bound, and reports makespans and speedups as a
//! table, JSON and an SVG chart.
//!
//! Every guest run is a `runner run` child process: a guest that hangs or a VMM that fails
//! ends that run with its message, and the comparison says which run it was.

mod mode;
pub(crate) mod plot;
mod record;
pub(crate) mod report;
mod runs;
mod scenario;
mod sizing;
pub(crate) mod stats;
mod sweep;
pub(crate) mod table;
mod tuning;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::VmmKind;
use crate::guest_arch::GuestArch;
use crate::lazy::{LatencyModel, MAX_FETCHERS};
use crate::{guest_build, units};
pub use mode::Mode;
use report::Comparison;
use runs::Runner;
use scenario::{Scenario, Scenarios};
use sweep::{Axis, Sweep};
use table::Table;
use tuning::Tuning;

/// `--bandwidth`'s default under `--vmm qemu`: 1 MiB/s of background transfer is 256 pages
/// a second, well below the rate at which the workloads touch pages at 10 ms and faster
/// (every memory task waits for one page at a time), so the pages they touch are mostly
/// requested, which is what the comparison is about.
const DEFAULT_BANDWIDTH: u64 = 1 << 20;

/// `runner compare` arguments (the names are a contract with the README and the issues).
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Guest architecture.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: GuestArch,
    /// Where the lazy memory comes from: `builtin` (our VMM's userfaultfd, x86_64), `el2`
    /// (our arm64 EL2 host, aarch64) or `qemu` (x86_64: every run is a real post-copy
    /// migration between two QEMU/KVM, `runner migrate`, with --latency on each page
    /// request; modes off and kvm) [default: builtin on x86_64, el2 on aarch64].
    #[arg(long, value_enum)]
    pub vmm: Option<VmmKind>,
    /// With --vmm qemu: QEMU's background transfer bandwidth during post-copy (`runner
    /// migrate --bandwidth`), as a size per second [default: 1M: post-copy then lasts
    /// seconds and the workload waits on it; uncapped, QEMU pushes this guest's RAM over
    /// loopback in about 60 ms and leaves almost nothing to wait for].
    #[arg(long, value_name = "RATE", value_parser = units::parse_bandwidth)]
    pub bandwidth: Option<u64>,
    /// `seed` (one CPU and one memory task), `mlp:K` (K memory tasks), `cpu` or `mem`; a list
    /// `mlp:K1,K2,...` is an MLP sweep: one comparison per k at one --latency, then tables of
    /// throughput and faults in flight by k and mode; --svg draws throughput against k.
    #[arg(long, value_name = "SCENARIO", default_value = "seed")]
    pub scenario: Scenarios,
    /// Page fetch latency model, as for `runner run --latency`.
    #[arg(long, value_name = "MODEL", default_value = "fixed:10ms")]
    pub latency: LatencyModel,
    /// Compare at each of these latencies instead (comma-separated models): a table per
    /// latency and one of speedup against latency; --svg draws speedup against latency. Not
    /// with an MLP sweep.
    #[arg(
        long,
        value_name = "MODELS",
        value_delimiter = ',',
        conflicts_with = "latency"
    )]
    pub latency_sweep: Vec<LatencyModel>,
    /// Comma-separated modes (off, kvm, vmm, adaptive on x86_64; off, el2 on aarch64)
    /// [default: off and every async PF mode this build supports for --arch].
    #[arg(long, value_delimiter = ',')]
    pub modes: Vec<Mode>,
    /// Runs of each mode.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Write the comparison as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Draw the makespans (a sweep: speedup or throughput against the swept value) as an SVG
    /// chart here.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// Also write the tables printed on stdout as Markdown here.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Concurrent page fetches (1: a serial device) [default: k for mlp:k, so the device
    /// never limits the faults in flight and each mode shows how many it keeps there; 1
    /// otherwise].
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_FETCHERS))
    )]
    pub fetchers: Option<u8>,
    /// Seed of the pages' contents and of the fetch latencies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// vCPUs of every run (`runner run --cpus`): the guest spreads the tasks over them, each
    /// with its own async PF (x86_64, --vmm builtin).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: u8,
    /// Pages per memory task [default: sized so the fault wait, all tasks together, is about
    /// 0.6 s].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub pages: Option<u64>,
    /// Rounds of the CPU task's hash chain [default: calibrated to match the fault wait].
    #[arg(long = "cpu-work", value_parser = clap::value_parser!(u64).range(1..))]
    pub cpu_work: Option<u64>,
    /// Guest kernel ELF to boot (PVH on x86_64) [default: build guest-kernel for --arch].
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Wall-clock limit for each guest run.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = units::parse_timeout)]
    pub timeout: Duration,
    #[command(flatten)]
    pub tuning: Tuning,
}

impl CompareArgs {
    /// Combinations clap cannot see, refused before anything runs.
    fn check(&self, modes: &[Mode]) -> Result<(), String> {
        let vmm = self.vmm();
        if !supported_vmms(self.arch).contains(&vmm) {
            return Err(format!(
                "--vmm {} has no lazy memory for {} (use {})",
                vmm_name(vmm),
                self.arch.name(),
                supported_vmms(self.arch)
                    .iter()
                    .map(|&v| vmm_name(v))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        if vmm == VmmKind::Qemu {
            let builtin_only = [
                (self.fetchers.is_some(), "--fetchers"),
                (self.tuning.readahead.is_some(), "--readahead"),
                (!self.tuning.inject.is_empty(), "--inject"),
                (self.tuning.pin, "--pin"),
            ];
            if let Some((_, option)) = builtin_only.iter().find(|(given, _)| *given) {
                return Err(format!(
                    "{option} is our VMM's: under --vmm qemu, QEMU serves the pages"
                ));
            }
        } else if self.bandwidth.is_some() {
            return Err("--bandwidth is the post-copy migration's (--vmm qemu)".to_owned());
        }
        if self.cpus != 1 && vmm != VmmKind::Builtin {
            return Err(format!(
                "--cpus {} needs --vmm builtin: the migration and the EL2 host run one vCPU",
                self.cpus
            ));
        }
        if self.scenario.0.len() > 1 && !self.latency_sweep.is_empty() {
            return Err(format!(
                "an MLP sweep (--scenario {}) runs at one --latency; \
                 it cannot be combined with --latency-sweep",
                self.scenario
            ));
        }
        if self.arch == GuestArch::Aarch64 {
            let builtin_only = [
                (self.fetchers.is_some_and(|n| n != 1), "--fetchers"),
                (self.tuning.readahead.is_some(), "--readahead"),
                (self.tuning.pin, "--pin"),
            ];
            if let Some((_, option)) = builtin_only.iter().find(|(given, _)| *given) {
                return Err(format!(
                    "{option} is the x86 VMM's: the arm64 EL2 host fetches one page at a time"
                ));
            }
        }
        self.tuning.check(modes)
    }

    /// `--vmm`, or the one with lazy memory for `--arch`.
    fn vmm(&self) -> VmmKind {
        self.vmm.unwrap_or(supported_vmms(self.arch)[0])
    }

    /// `--bandwidth` with its default, for migrations.
    fn bandwidth(&self) -> Option<u64> {
        (self.vmm() == VmmKind::Qemu).then_some(self.bandwidth.unwrap_or(DEFAULT_BANDWIDTH))
    }

    /// `--fetchers`, or its default for `scenario` (a knob of the x86 VMM's lazy memory; the
    /// EL2 host has none, and under QEMU the shaper delays every request on its own).
    fn fetchers_for(&self, scenario: Scenario) -> u8 {
        if self.vmm() != VmmKind::Builtin {
            return 1;
        }
        self.fetchers.unwrap_or(match scenario {
            Scenario::Mlp(k) => u8::try_from(k).unwrap_or(MAX_FETCHERS).min(MAX_FETCHERS),
            _ => 1,
        })
    }

    /// Each comparison to make, (scenario, latency), and what varies between them.
    fn points(&self) -> (Axis, Vec<(Scenario, LatencyModel)>) {
        if self.scenario.0.len() > 1 {
            let points = self.scenario.0.iter().map(|&s| (s, self.latency));
            return (Axis::Mlp, points.collect());
        }
        let scenario = self.scenario.0[0];
        let latencies = match self.latency_sweep.as_slice() {
            [] => std::slice::from_ref(&self.latency),
            sweep => sweep,
        };
        let points = latencies.iter().map(|l| (scenario, *l));
        (Axis::Latency, points.collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "mode {mode} is not available for {arch} with --vmm {vmm} in this build (available: \
         {available})"
    )]
    ModeNotAvailable {
        mode: Mode,
        arch: &'static str,
        vmm: &'static str,
        available: String,
    },
    #[error("{scenario} with {pages} pages needs {mib} MiB of guest RAM, more than {limit}")]
    TooBig {
        scenario: Scenario,
        pages: u64,
        mib: u64,
        limit: u64,
    },
    #[error(transparent)]
    GuestBuild(#[from] guest_build::Error),
    #[error("cannot start `runner run` for {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}):\n{output}")]
    RunFailed {
        what: String,
        status: String,
        output: String,
    },
    #[error("{what}: {source}")]
    Record {
        what: String,
        #[source]
        source: record::Error,
    },
    #[error("{what}: the runner's report {path} is unreadable: {message}")]
    Report {
        what: String,
        path: String,
        message: String,
    },
    #[error("{what}: only {verified} of {touched} pages had the right contents")]
    Unverified {
        what: String,
        verified: u64,
        touched: u64,
    },
    #[error(transparent)]
    Output(#[from] report::Error),
}

/// Runs the comparison (one per latency with `--latency-sweep`, one per k with an MLP sweep)
/// and prints its tables; writes JSON, SVG and Markdown when asked.
pub fn compare(args: CompareArgs) -> Result<(), Error> {
    let modes = modes(&args)?;
    if let Err(message) = args.check(&modes) {
        usage_error(&message);
    }
    let kernel = match &args.kernel {
        Some(kernel) => kernel.clone(),
        None => guest_build::build(args.arch)?,
    };
    let (axis, points) = args.points();
    let total = points
        .iter()
        .map(|&(scenario, _)| runs_per_point(&args, scenario, modes.len()))
        .sum();
    let progress = progress_bar(total);
    let mut comparisons = Vec::new();
    for (scenario, latency) in points {
        let mut runner = Runner {
            args: &args,
            kernel: kernel.clone(),
            scenario,
            latency,
            progress: &progress,
        };
        comparisons.push(runner.comparison(&modes)?);
    }
    progress.finish_and_clear();
    let mut tables: Vec<Table> = comparisons.iter().map(Comparison::table).collect();
    if let [single] = comparisons.as_slice() {
        if let Some(path) = &args.json {
            single.write_json(path)?;
        }
        if let Some(path) = &args.svg {
            single.write_svg(path)?;
        }
    } else {
        let sweep = Sweep {
            axis,
            points: comparisons,
        };
        tables.extend(sweep.tables());
        if let Some(path) = &args.json {
            sweep.write_json(path)?;
        }
        if let Some(path) = &args.svg {
            sweep.write_svg(path)?;
        }
    }
    for table in &tables {
        println!("{}", table.text());
    }
    if let Some(path) = &args.markdown {
        let markdown: Vec<String> = tables.iter().map(Table::markdown).collect();
        report::write_file(path, markdown.join("\n"))?;
    }
    Ok(())
}

/// Exits with clap's usage status (2) and `message`, as for any other bad argument.
pub(crate) fn usage_error(message: &str) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::ArgumentConflict,
        format!("{message}\n"),
    )
    .exit()
}

/// Guest runs one comparison makes: calibration, solo runs, and every mode's repeats.
fn runs_per_point(args: &CompareArgs, scenario: Scenario, modes: usize) -> u64 {
    let calibrate = scenario.has_cpu() && args.cpu_work.is_none();
    let solo = if scenario == Scenario::Seed { 2 } else { 0 };
    u64::from(args.repeat) * modes as u64 + u64::from(calibrate) + solo
}

/// The requested modes, or by default every mode the architecture supports.
fn modes(args: &CompareArgs) -> Result<Vec<Mode>, Error> {
    // A QEMU destination serves post-copy faults through KVM alone.
    let available = match args.vmm() {
        VmmKind::Qemu => &[Mode::Off, Mode::Kvm],
        VmmKind::Builtin | VmmKind::El2 => Mode::supported(args.arch),
    };
    if args.modes.is_empty() {
        return Ok(available.to_vec());
    }
    let mut modes = args.modes.clone();
    modes.dedup();
    if let Some(&mode) = modes.iter().find(|m| !available.contains(m)) {
        return Err(Error::ModeNotAvailable {
            mode,
            arch: args.arch.name(),
            vmm: vmm_name(args.vmm()),
            available: available
                .iter()
                .map(Mode::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(modes)
}

pub(crate) fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}

/// The `--vmm`s with lazy memory for `arch`, the default first: our KVM VMM or a post-copy
/// migration between QEMUs on x86_64, the EL2 host in QEMU on aarch64. Every arch has one,
/// so `compare` runs on each.
fn supported_vmms(arch: GuestArch) -> &'static [VmmKind] {
    match arch {
        GuestArch::X86_64 => &[VmmKind::Builtin, VmmKind::Qemu],
        GuestArch::Aarch64 => &[VmmKind::El2],
    }
}

fn vmm_name(vmm: VmmKind) -> &'static str {
    match vmm {
        VmmKind::Builtin => "builtin",
        VmmKind::Qemu => "qemu",
        VmmKind::El2 => "el2",
    }
}

#[cfg(test)]
mod tests {
    use super::runs::guest_words;
    use super::sizing::Size;
    use super::*;

    use clap::Parser;

    /// `CompareArgs` as clap parses them from `runner compare ARGS`.
    fn parse(args: &[&str]) -> Result<CompareArgs, clap::Error> {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: CompareArgs,
        }
        Cli::try_parse_from(std::iter::once("compare").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn an_mlp_list_is_a_sweep_over_k_at_one_latency() {
        let args = parse(&["--scenario", "mlp:4,1", "--latency", "1ms"]).unwrap();
        let (axis, points) = args.points();
        assert_eq!(axis, Axis::Mlp);
        let scenarios: Vec<Scenario> = points.iter().map(|(s, _)| *s).collect();
        assert_eq!(scenarios, [Scenario::Mlp(1), Scenario::Mlp(4)]);
        assert!(points.iter().all(|(_, l)| l.to_string() == "fixed:1ms"));
        assert_eq!(args.check(&[Mode::Off]), Ok(()));

        let args = parse(&["--scenario", "mlp:1,4", "--latency-sweep", "1ms,2ms"]).unwrap();
        let err = args.check(&[Mode::Off]).unwrap_err();
        assert!(err.contains("--latency-sweep"), "{err}");
    }

    #[test]
    fn a_latency_sweep_has_a_point_per_latency() {
        let args = parse(&["--scenario", "mlp:4", "--latency-sweep", "1ms,2ms"]).unwrap();
        let (axis, points) = args.points();
        assert_eq!(axis, Axis::Latency);
        assert_eq!(points.len(), 2);
        assert_eq!(args.check(&[Mode::Off]), Ok(()), "one k: a latency sweep");
        let (_, points) = parse(&[]).unwrap().points();
        assert_eq!(points, [(Scenario::Seed, "fixed:10ms".parse().unwrap())]);
    }

    #[test]
    fn fetchers_default_to_k_for_mlp() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.fetchers_for(Scenario::Seed), 1);
        assert_eq!(args.fetchers_for(Scenario::Mlp(16)), 16);
        let args = parse(&["--fetchers", "2"]).unwrap();
        assert_eq!(args.fetchers_for(Scenario::Mlp(16)), 2, "as given");
    }

    #[test]
    fn tuning_options_are_validated() {
        let args = parse(&["--async-threshold", "150us", "--readahead", "8"]).unwrap();
        assert_eq!(args.tuning.readahead, Some(8));
        assert!(args.check(&[Mode::Off, Mode::Adaptive]).is_ok());
        assert!(args.check(&[Mode::Off, Mode::Kvm]).is_err());
        for bad in [
            ["--async-threshold", "150"].as_slice(),
            &["--async-threshold", "fast"],
            &["--readahead", "1025"],
            &["--readahead", "-1"],
            &["--fetchers", "0"],
        ] {
            let err = parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn a_migration_comparison_takes_its_own_options_and_modes() {
        let args = parse(&["--vmm", "qemu", "--bandwidth", "4M"]).unwrap();
        assert_eq!(modes(&args).unwrap(), [Mode::Off, Mode::Kvm]);
        assert_eq!(args.check(&[Mode::Off, Mode::Kvm]), Ok(()));
        assert_eq!(args.bandwidth(), Some(4 << 20));
        assert_eq!(args.fetchers_for(Scenario::Mlp(8)), 1);
        assert_eq!(
            parse(&["--vmm", "qemu"]).unwrap().bandwidth(),
            Some(DEFAULT_BANDWIDTH)
        );
        assert_eq!(parse(&[]).unwrap().bandwidth(), None);
        let vmm = parse(&["--vmm", "qemu", "--modes", "off,vmm"]).unwrap();
        let error = modes(&vmm).unwrap_err().to_string();
        assert!(error.contains("--vmm qemu"), "{error}");
        for (bad, says) in [
            (&["--vmm", "qemu", "--fetchers", "2"][..], "--fetchers"),
            (&["--vmm", "qemu", "--readahead", "2"], "--readahead"),
            (&["--vmm", "qemu", "--pin"], "--pin"),
            (&["--arch", "aarch64", "--pin"], "--pin"),
            (&["--bandwidth", "1M"], "--bandwidth"),
            (&["--arch", "aarch64", "--vmm", "qemu"], "--vmm qemu"),
            (&["--vmm", "el2"], "--vmm el2"),
        ] {
            let error = parse(bad).unwrap().check(&[Mode::Off]).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
        let size = Size {
            pages: 8,
            cpu_rounds: 10,
        };
        assert_eq!(
            guest_words(Scenario::Mem, size, 3, VmmKind::Qemu),
            ["scenario=mem", "source=guest", "seed=3", "pages=8"]
        );
    }
}
