//! The guest runs of one comparison: sizing a point's workload, starting each `runner run`
//! (or `runner migrate`) child with the comparison's options, and checking what it
//! reported (status 0, every page verified) before it counts.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::Value;

use super::mode::Mode;
use super::record::{self, RunRecord};
use super::report::{Comparison, Solo};
use super::scenario::Scenario;
use super::sizing::{self, Size};
use super::{CompareArgs, Error, vmm_name};
use crate::cli::VmmKind;
use crate::guest_arch::GuestArch;
use crate::lazy::LatencyModel;
use crate::qemu::{EL2_GUEST_MIB, EL2_MEM_SIZE};

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
pub(super) struct Runner<'a> {
    pub args: &'a CompareArgs,
    pub kernel: PathBuf,
    pub scenario: Scenario,
    pub latency: LatencyModel,
    pub progress: &'a ProgressBar,
}

impl Runner<'_> {
    /// Sizes the scenario for this latency, runs the solo runs and every mode's repeats.
    pub fn comparison(&mut self, modes: &[Mode]) -> Result<Comparison, Error> {
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
            cpus: args.cpus,
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
                .args(["--fetchers", &args.fetchers_for(scenario).to_string()])
                .args(["--cpus", &args.cpus.to_string()]),
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

/// The guest command line of one run (the async PF mode is added by `runner run --apf` or
/// `runner migrate --apf`). Under a migration the guest writes its pages itself: QEMU has
/// no page source.
pub(super) fn guest_words(scenario: Scenario, size: Size, seed: u64, vmm: VmmKind) -> Vec<String> {
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
    fn tails_keep_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
