//! `runner compare`: runs a scenario under lazy memory with async PF off and on, repeated,
//! plus the solo runs that give the ideal bound, and reports makespans and speedups as a
//! table, JSON and an SVG chart.
//!
//! Every guest run is a `runner run` child process: a guest that hangs or a VMM that fails
//! ends that run with its message, and the comparison says which run it was.

mod mode;
mod plot;
mod record;
mod report;
mod scenario;
mod sizing;
pub(crate) mod stats;
mod sweep;
pub(crate) mod table;
mod tuning;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::cli::VmmKind;
use crate::guest_arch::GuestArch;
use crate::lazy::{LatencyModel, MAX_FETCHERS};
use crate::qemu::{EL2_GUEST_MIB, EL2_MEM_SIZE};
use crate::{guest_build, units};
pub use mode::Mode;
use record::RunRecord;
use report::{Comparison, Solo};
use scenario::{Scenario, Scenarios};
use sizing::Size;
use sweep::{Axis, Sweep};
use table::Table;
use tuning::Tuning;

/// What one synchronous lazy fault costs here beyond the injected latency (measured: a
/// plain userfaultfd fault is 40-60 us on our KVM); used only to size workloads.
const SYNC_FAULT_COST: Duration = Duration::from_micros(60);
/// Hash-chain rounds of the calibration run that measures this machine's CPU speed.
const CALIBRATION_ROUNDS: u64 = 50_000_000;
/// Guest RAM below the workload region, and slack above it.
const WORKLOAD_BASE_MIB: u64 = 64;
const SLACK_MIB: u64 = 16;
const MAX_MEM_MIB: u64 = 3 << 10;
const PAGE: u64 = 4096;
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
            ];
            if let Some((_, option)) = builtin_only.iter().find(|(given, _)| *given) {
                return Err(format!(
                    "{option} is our VMM's: under --vmm qemu, QEMU serves the pages"
                ));
            }
        } else if self.bandwidth.is_some() {
            return Err("--bandwidth is the post-copy migration's (--vmm qemu)".to_owned());
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
            let points = self.scenario.0.iter().map(|&s| (s, self.latency.clone()));
            return (Axis::Mlp, points.collect());
        }
        let scenario = self.scenario.0[0];
        let latencies = match self.latency_sweep.as_slice() {
            [] => std::slice::from_ref(&self.latency),
            sweep => sweep,
        };
        let points = latencies.iter().map(|l| (scenario, l.clone()));
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
fn usage_error(message: &str) -> ! {
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

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}

/// Guest RAM for `pages` per memory task: the workload region plus slack, in 64 MiB steps,
/// if an `arch` guest can have that much: our VMM's limit on x86_64, what the EL2 host
/// leaves its guest on aarch64 (it is built for one RAM size and keeps its top).
fn mem_mib(arch: GuestArch, scenario: Scenario, pages: u64) -> Result<u64, Error> {
    let workload_mib = (scenario.mem_tasks() * pages * PAGE).div_ceil(1 << 20);
    let mib = (WORKLOAD_BASE_MIB + workload_mib + SLACK_MIB).next_multiple_of(64);
    let limit = match arch {
        GuestArch::X86_64 => MAX_MEM_MIB,
        GuestArch::Aarch64 => EL2_GUEST_MIB,
    };
    if mib > limit {
        return Err(Error::TooBig {
            scenario,
            pages,
            mib,
            limit,
        });
    }
    Ok(mib)
}

/// Starts guest runs for one comparison.
struct Runner<'a> {
    args: &'a CompareArgs,
    kernel: PathBuf,
    scenario: Scenario,
    latency: LatencyModel,
    progress: &'a ProgressBar,
}

impl Runner<'_> {
    /// Sizes the scenario for this latency, runs the solo runs and every mode's repeats.
    fn comparison(&mut self, modes: &[Mode]) -> Result<Comparison, Error> {
        let args = self.args;
        let scenario = self.scenario;
        let mean = self.latency.mean();
        let pages = args
            .pages
            .unwrap_or_else(|| sizing::pages_for(mean, SYNC_FAULT_COST, scenario.mem_tasks()));
        let cpu_rounds = match args.cpu_work {
            Some(rounds) => rounds,
            None if scenario.has_cpu() => {
                let size = Size {
                    pages,
                    cpu_rounds: CALIBRATION_ROUNDS,
                };
                let cal = self.run("calibration (cpu alone)", Scenario::Cpu, Mode::Off, size)?;
                let took = Duration::from_nanos(
                    cal.task("cpu").and_then(|t| t.duration_ns()).unwrap_or(0),
                );
                let wait = (mean + SYNC_FAULT_COST) * u32::try_from(pages).unwrap_or(u32::MAX);
                sizing::rounds_for(wait, CALIBRATION_ROUNDS, took)
            }
            None => 0,
        };
        let size = Size { pages, cpu_rounds };
        let solo = if scenario == Scenario::Seed {
            let cpu = self.run("solo cpu", Scenario::Cpu, Mode::Off, size)?;
            let mem = self.run("solo mem", Scenario::Mem, Mode::Off, size)?;
            Some(Solo {
                cpu_ns: cpu.makespan_ns,
                mem_ns: mem.makespan_ns,
            })
        } else {
            None
        };
        let mut runs = Vec::new();
        for &mode in modes {
            for repeat in 0..args.repeat {
                let what = format!(
                    "{scenario} at {} mode {mode} run {}",
                    self.latency,
                    repeat + 1
                );
                runs.push((mode, repeat, self.run(&what, scenario, mode, size)?));
            }
        }
        Ok(Comparison {
            scenario,
            latency: self.latency.to_string(),
            latency_mean_ns: u64::try_from(mean.as_nanos()).unwrap_or(u64::MAX),
            arch: args.arch,
            vmm: vmm_name(args.vmm()),
            bandwidth: args.bandwidth(),
            fetchers: args.fetchers_for(scenario),
            seed: args.seed,
            tuning: args.tuning.clone(),
            size,
            solo,
            runs,
        })
    }

    /// One guest run of `scenario` in `mode`, checked: status 0 and every page verified.
    fn run(
        &mut self,
        what: &str,
        scenario: Scenario,
        mode: Mode,
        size: Size,
    ) -> Result<RunRecord, Error> {
        self.progress.set_message(what.to_owned());
        let report = std::env::temp_dir().join(format!(
            "runner-compare-{}-{}.json",
            std::process::id(),
            self.progress.position()
        ));
        let output = self
            .command(scenario, mode, size, &report)?
            .output()
            .map_err(|source| Error::Spawn {
                what: what.to_owned(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report_json = std::fs::read_to_string(&report);
        let _ = std::fs::remove_file(&report);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Error::RunFailed {
                what: what.to_owned(),
                status: output.status.to_string(),
                output: tail(&format!("{stdout}{stderr}"), 12),
            });
        }
        let report_json: Value = report_json
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
            .map_err(|message| Error::Report {
                what: what.to_owned(),
                path: report.display().to_string(),
                message,
            })?;
        let record = record::parse(&stdout, &report_json).map_err(|source| Error::Record {
            what: what.to_owned(),
            source,
        })?;
        if record.pages_verified != record.pages_touched {
            return Err(Error::Unverified {
                what: what.to_owned(),
                verified: record.pages_verified,
                touched: record.pages_touched,
            });
        }
        self.progress.inc(1);
        Ok(record)
    }

    /// The `runner run` command line for one run.
    fn command(
        &self,
        scenario: Scenario,
        mode: Mode,
        size: Size,
        report: &std::path::Path,
    ) -> Result<Command, Error> {
        let args = self.args;
        let exe = std::env::current_exe().map_err(|source| Error::Spawn {
            what: "the runner binary".to_owned(),
            source,
        })?;
        let mem_mib = mem_mib(args.arch, scenario, size.pages)?;
        let vmm = args.vmm();
        let mut command = Command::new(exe);
        match vmm {
            VmmKind::Qemu => command.arg("migrate"),
            VmmKind::Builtin | VmmKind::El2 => {
                command
                    .arg("run")
                    .args(["--vmm", vmm_name(vmm), "--arch", args.arch.name()])
            }
        };
        command
            .arg("--kernel")
            .arg(&self.kernel)
            .arg("--timeout")
            .arg(format!("{}ms", args.timeout.as_millis()))
            .args(["--latency", &self.latency.to_string()])
            .args(["--seed", &args.seed.to_string()]);
        if let Some(bandwidth) = args.bandwidth() {
            command.args(["--bandwidth", &bandwidth.to_string()]);
        }
        match args.arch {
            GuestArch::X86_64 if vmm == VmmKind::Qemu => {
                command.args(["--mem", &format!("{mem_mib}M")])
            }
            GuestArch::X86_64 => command
                .args(["--mem", &format!("{mem_mib}M")])
                .args(["--fetchers", &args.fetchers_for(scenario).to_string()]),
            // The EL2 host is built for one RAM size; mem_mib checked that the guest's part fits.
            GuestArch::Aarch64 => command.args(["--mem", &format!("{}M", EL2_MEM_SIZE >> 20)]),
        };
        command
            .args(args.tuning.run_args(mode))
            .arg("--report")
            .arg(report)
            .arg("--")
            .args(guest_words(scenario, size, args.seed, vmm));
        Ok(command)
    }
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

/// The guest command line of one run (the async PF mode is added by `runner run --apf` or
/// `runner migrate --apf`). Under a migration the guest writes its pages itself: QEMU has
/// no page source.
fn guest_words(scenario: Scenario, size: Size, seed: u64, vmm: VmmKind) -> Vec<String> {
    let source = match vmm {
        VmmKind::Qemu => "source=guest",
        VmmKind::Builtin | VmmKind::El2 => "source=host",
    };
    let mut words = vec![
        format!("scenario={scenario}"),
        source.to_owned(),
        format!("seed={seed}"),
        format!("pages={}", size.pages),
    ];
    if scenario.has_cpu() {
        words.push(format!("cpu={}", size.cpu_rounds));
    }
    words
}

/// The last `lines` lines of `text`, for error messages.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
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
    fn memory_fits_the_workload() {
        assert_eq!(mem_mib(GuestArch::X86_64, Scenario::Cpu, 100).unwrap(), 128);
        assert_eq!(
            mem_mib(GuestArch::X86_64, Scenario::Seed, 256).unwrap(),
            128
        );
        // 64 tasks x 4096 pages = 1 GiB of workload.
        assert_eq!(
            mem_mib(GuestArch::X86_64, Scenario::Mlp(64), 4096).unwrap(),
            1152
        );
        assert!(matches!(
            mem_mib(GuestArch::X86_64, Scenario::Mlp(64), 1 << 20),
            Err(Error::TooBig { .. })
        ));
    }

    #[test]
    fn guest_command_lines() {
        let size = Size {
            pages: 60,
            cpu_rounds: 1000,
        };
        assert_eq!(
            guest_words(Scenario::Seed, size, 7, VmmKind::Builtin),
            [
                "scenario=seed",
                "source=host",
                "seed=7",
                "pages=60",
                "cpu=1000"
            ]
        );
        assert_eq!(
            guest_words(Scenario::Mlp(4), size, 7, VmmKind::Builtin),
            ["scenario=mlp:4", "source=host", "seed=7", "pages=60"]
        );
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

    #[test]
    fn tails_keep_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
