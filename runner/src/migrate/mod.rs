//! `runner migrate`: boots the guest in a source QEMU/KVM, migrates it with post-copy to a
//! destination QEMU on the same machine, both driven over QMP, and lets it finish there. The
//! migration stream goes through [`shaper`], which delays each post-copy page request by
//! `--latency`; `--bandwidth` caps QEMU's background transfer. The guest's exit status,
//! console and `RESULT` come from the destination.
//!
//! The guest takes part through `hold=console` (added to its command line): it writes its
//! workload pages and says `hold: ready`; the runner migrates and, once the destination runs,
//! releases it with a byte on its console, so its timed phase faults on pages still on the
//! source. After its `RESULT` it holds again (`hold: finished`) until the migration has
//! completed and its statistics are read.

mod process;
mod qmp;
mod sequence;
pub mod shaper;
mod stats;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;

use crate::apf::ApfMode;
use crate::console::ConsoleSink;
use crate::lazy::LatencyModel;
use crate::outcome::{GuestOutcome, RunReport};
use crate::qemu::{self, Accel, Invocation};
use crate::vmm::arch::{KernelError, validate_kernel};
use crate::{guest_build, guest_cmdline, units};
use process::{ConsoleEvent, QemuProcess};
use qmp::{Monitor, QmpMonitor};
use sequence::{Guest, Plan, Side, Stop};
use shaper::{Acks, Delay, Shaper, ShaperStats};
pub use stats::MigrationStats;

/// One vCPU, as `runner run`.
const VCPUS: u8 = 1;
/// The guest command-line word that makes the guest wait for the runner.
const HOLD_WORD: &str = "hold=console";
/// How long a source that has handed its guest over gets to quit when asked.
const QUIT_GRACE: Duration = Duration::from_secs(5);

/// `--apf`'s parser: `off` and `kvm` only, so clap lists just those and refuses the rest.
fn migrate_apf_mode() -> impl clap::builder::TypedValueParser<Value = ApfMode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["off", "kvm"]).map(|mode| {
        <ApfMode as clap::ValueEnum>::from_str(&mode, false).expect("off and kvm are modes")
    })
}

/// `runner migrate` arguments (the names are a contract with the README).
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Guest kernel ELF to boot (PVH) [default: build guest-kernel and boot it].
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Guest RAM: bytes, or a number with K, M or G (32M..=3G).
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = units::parse_mem_size)]
    pub mem: u64,
    /// Wall-clock limit for the whole run, boot to the destination's exit.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = units::parse_timeout)]
    pub timeout: Duration,
    /// Delay each post-copy page request on its way from the destination to the source by
    /// a time drawn from MODEL (as for `runner run --latency`) [default: no delay].
    #[arg(long, value_name = "MODEL")]
    pub latency: Option<LatencyModel>,
    /// Seed of the --latency draws.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "latency")]
    pub seed: u64,
    /// QEMU's max-postcopy-bandwidth: bytes per second of the background transfer during
    /// post-copy, as a size (`8M` = 8 MiB/s); requested pages skip this limit. Lifted once
    /// the guest has finished, so the migration completes [default: no limit].
    #[arg(long, value_name = "RATE", value_parser = units::parse_bandwidth)]
    pub bandwidth: Option<u64>,
    /// `off` (kvm-asyncpf=off, guest apf=off) or `kvm` (KVM's async PF on the destination's
    /// post-copy faults) [default: leave both as they are]. The other modes need our VMM,
    /// which a QEMU destination does not have.
    #[arg(long, value_name = "MODE", value_parser = migrate_apf_mode())]
    pub apf: Option<ApfMode>,
    /// Let the shaper acknowledge the source's streams when the kernel would (delayed ACKs),
    /// as a destination QEMU receiving directly does, instead of at once. QEMU sends
    /// requested pages with Nagle's algorithm on, so with several requests in flight each
    /// page after the first then waits up to ~40 ms for an ACK.
    #[arg(long)]
    pub delayed_acks: bool,
    /// Extra argument for the destination QEMU only (repeatable), e.g. to check what a
    /// destination that differs from the source does.
    #[arg(long = "dest-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub dest_args: Vec<OsString>,
    /// Also write how the run went (guest status, the migration, the shaper) as JSON.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Report the QEMU commands on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Guest command line, joined with single spaces (`hold=console` and `source=guest` are
    /// added).
    #[arg(last = true, value_name = "GUEST_CMDLINE")]
    pub cmdline: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the guest command line has {0:?}: under migration the guest writes its own pages \
         (source=guest) and the runner sets hold=console"
    )]
    GuestWord(String),
    #[error("post-copy migration with async PF needs KVM: /dev/kvm is unusable")]
    NoKvm,
    #[error("cannot read the host's TSC frequency from KVM")]
    TscKhz(#[source] kvm_ioctls::Error),
    #[error("cannot make the run's directory {}", .0.display())]
    TempDir(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Cmdline(#[from] guest_cmdline::Error),
    #[error(transparent)]
    GuestBuild(#[from] guest_build::Error),
    #[error(transparent)]
    Qemu(#[from] qemu::Error),
    #[error(transparent)]
    Qmp(#[from] qmp::Error),
    #[error(transparent)]
    Migration(Stop),
    #[error("the {side} QEMU failed ({status}); its messages are above")]
    QemuFailed {
        side: &'static str,
        status: std::process::ExitStatus,
    },
    #[error("cannot wait for the {0} QEMU")]
    Wait(&'static str, #[source] std::io::Error),
    #[error("cannot write the run report {}", .0.display())]
    Report(PathBuf, #[source] std::io::Error),
}

/// How a migration run went.
#[derive(Debug)]
pub struct MigrateReport {
    pub run: RunReport,
    /// None if the run stopped before the migration completed.
    pub migration: Option<MigrationStats>,
    pub shaper: Option<ShaperStats>,
}

impl MigrateReport {
    fn to_json(&self) -> serde_json::Value {
        let mut json = self.run.to_json();
        json["migration"] = self
            .migration
            .as_ref()
            .map_or(serde_json::Value::Null, MigrationStats::to_json);
        json["shaper"] = self
            .shaper
            .as_ref()
            .map_or(serde_json::Value::Null, ShaperStats::to_json);
        json
    }
}

pub fn migrate(args: MigrateArgs) -> Result<MigrateReport, Error> {
    // Cheap checks first, so a typo does not wait for a guest build.
    let cmdline = guest_cmdline::from_words(&guest_words(&args.cmdline, args.apf)?)?;
    if !qemu::kvm_usable() {
        return Err(Error::NoKvm);
    }
    let kernel = match &args.kernel {
        Some(kernel) => kernel.clone(),
        None => guest_build::build(crate::guest_arch::GuestArch::X86_64)?,
    };
    validate_kernel(&kernel, args.mem)?;
    let deadline = Instant::now() + args.timeout;
    let dir = RunDir::create()?;
    let base = qemu::x86_64_argv(&Invocation {
        accel: Accel::Kvm,
        mem_size: args.mem,
        vcpus: VCPUS,
        kernel: &kernel,
        cmdline: &cmdline,
        apf: args.apf,
        tsc_khz: Some(host_tsc_khz()?),
        net: None,
    });
    let console = ConsoleSink::default();
    let (events, lines) = mpsc::channel();
    let spawn = |side: Side, extra: &[OsString]| {
        let mut argv = base.clone();
        argv.extend(side_args(side, &dir.0));
        argv.extend_from_slice(extra);
        if args.verbose {
            eprintln!("runner: {} {argv:?}", qemu::QEMU_X86_64);
        }
        QemuProcess::spawn(side, qemu::QEMU_X86_64, &argv, &console, events.clone())
    };
    let mut destination = spawn(Side::Destination, &args.dest_args)?;
    let mut source = spawn(Side::Source, &[])?;
    drop(events);

    let connect = |process: &mut QemuProcess| {
        let side = process.side();
        QmpMonitor::connect(side.name(), &qmp_path(&dir.0, side), deadline, || {
            process.is_running()
        })
    };
    let monitors = connect(&mut destination).and_then(|d| Ok((connect(&mut source)?, d)));
    let (mut source_qmp, mut destination_qmp) = match monitors {
        Ok(monitors) => monitors,
        // A QEMU that died while starting says why on stderr; name it, not the socket.
        Err(error) => {
            return Err(failed_qemu(&mut [&mut destination, &mut source]).unwrap_or(error.into()));
        }
    };

    let mut shaper = None;
    let acks = if args.delayed_acks {
        Acks::Delayed
    } else {
        Acks::Quick
    };
    let delay = args.latency.map(|model| Delay {
        model,
        seed: args.seed,
    });
    let sequence = {
        let mut guest = Consoles {
            lines: &lines,
            destination: &mut destination,
        };
        let plan = Plan {
            bandwidth: args.bandwidth,
            deadline,
        };
        sequence::run(
            &mut source_qmp,
            &mut destination_qmp,
            &mut guest,
            plan,
            |to| {
                let started = Shaper::start(to, delay, acks)?;
                let address = started.local_addr();
                shaper = Some(started);
                Ok(address)
            },
        )
    };
    let shaper_stats = shaper.as_ref().map(Shaper::stats);
    let (outcome, migration) = match sequence {
        Ok(stats) => {
            let outcome = exit_outcome(&mut destination, deadline, args.timeout, &console)?;
            quit(&mut source_qmp, &mut source);
            (outcome, Some(stats))
        }
        Err(Stop::Ended { side, waiting_for }) => {
            let process = match side {
                Side::Source => &mut source,
                Side::Destination => &mut destination,
            };
            let outcome = exit_outcome(process, deadline, args.timeout, &console)?;
            eprintln!(
                "runner: the guest ended on the {} while the runner waited for {waiting_for:?}; \
                 the migration did not complete",
                side.name()
            );
            (outcome, None)
        }
        Err(Stop::TimedOut(what)) => {
            eprintln!("runner: timed out waiting for {what}");
            let outcome = GuestOutcome::TimedOut {
                after: args.timeout,
                last_line: console.last_line(),
            };
            (outcome, None)
        }
        // A QEMU that quit mid-migration (e.g. a destination that rejected the stream)
        // said why on stderr, and its monitor broke: name the QEMU, keep what the sequence
        // saw as the detail.
        Err(stop) => {
            return Err(match failed_qemu(&mut [&mut destination, &mut source]) {
                Some(failed) => {
                    eprintln!("runner: {stop}");
                    failed
                }
                None => Error::Migration(stop),
            });
        }
    };
    if let Some(stats) = &migration {
        eprintln!("runner: migration: {stats}");
    }
    if let Some(stats) = &shaper_stats {
        eprintln!("runner: shaper: {stats}");
    }
    let report = MigrateReport {
        run: RunReport {
            outcome,
            lazy: None,
            user_apf: None,
            el2_host: None,
            net: None,
            snapshot: None,
        },
        migration,
        shaper: shaper_stats,
    };
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report.to_json()).expect("JSON values serialise");
        std::fs::write(path, text + "\n").map_err(|source| Error::Report(path.clone(), source))?;
    }
    Ok(report)
}

/// The guest's words with the ones migration needs: the hold, pages written by the guest,
/// and the async PF mode.
fn guest_words(words: &[String], apf: Option<ApfMode>) -> Result<Vec<String>, Error> {
    if let Some(word) = words
        .iter()
        .find(|word| word.starts_with("hold=") || word.as_str() == "source=host")
    {
        return Err(Error::GuestWord(word.clone()));
    }
    let mut words = words.to_vec();
    if !words.iter().any(|word| word.starts_with("source=")) {
        words.push("source=guest".to_owned());
    }
    words.push(HOLD_WORD.to_owned());
    words.extend(apf.map(|mode| mode.guest_word().to_owned()));
    Ok(words)
}

/// Each side's own QEMU options: a name that says whose it is (`ps` shows it), its QMP
/// socket, and for the destination, an incoming migration set up over QMP.
fn side_args(side: Side, dir: &Path) -> Vec<OsString> {
    let qmp = format!("unix:{},server=on,wait=off", qmp_path(dir, side).display());
    let name = format!("{RUN_DIR_PREFIX}{}-{}", std::process::id(), side.name());
    let mut args: Vec<OsString> = ["-name", &name, "-qmp", &qmp]
        .into_iter()
        .map(OsString::from)
        .collect();
    if side == Side::Destination {
        args.extend(["-incoming", "defer"].map(OsString::from));
    }
    args
}

fn qmp_path(dir: &Path, side: Side) -> PathBuf {
    dir.join(format!("{}.qmp", side.name()))
}

/// The host's TSC rate, which both QEMUs pin so that `+invtsc` may migrate.
fn host_tsc_khz() -> Result<u32, Error> {
    let vcpu = kvm_ioctls::Kvm::new()
        .and_then(|kvm| kvm.create_vm())
        .and_then(|vm| vm.create_vcpu(0))
        .map_err(Error::TscKhz)?;
    vcpu.get_tsc_khz().map_err(Error::TscKhz)
}

/// How long a QEMU whose monitor broke gets to exit before the runner gives up on naming it.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// If one of `processes` exits within [`EXIT_GRACE`] (it failed: its monitor broke or the
/// sequence could not go on), that failure.
fn failed_qemu(processes: &mut [&mut QemuProcess]) -> Option<Error> {
    let grace = Instant::now() + EXIT_GRACE;
    loop {
        let exited = processes.iter_mut().find_map(|process| {
            let status = process.wait_until(Instant::now()).ok().flatten()?;
            Some(Error::QemuFailed {
                side: process.side().name(),
                status,
            })
        });
        if exited.is_some() || Instant::now() >= grace {
            return exited;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The guest's exit status from `process`'s exit, by `deadline`.
fn exit_outcome(
    process: &mut QemuProcess,
    deadline: Instant,
    timeout: Duration,
    console: &ConsoleSink,
) -> Result<GuestOutcome, Error> {
    let side = process.side().name();
    let Some(status) = process
        .wait_until(deadline)
        .map_err(|error| Error::Wait(side, error))?
    else {
        return Ok(GuestOutcome::TimedOut {
            after: timeout,
            last_line: console.last_line(),
        });
    };
    let complained = process.complained();
    let _ = console.finish();
    match status.code().map(qemu::guest_status) {
        Some(Ok(guest)) if !complained => Ok(GuestOutcome::Exited(guest)),
        _ => Err(Error::QemuFailed { side, status }),
    }
}

/// Asks the source, which handed its guest over, to quit; it is killed if it does not.
fn quit(monitor: &mut QmpMonitor, process: &mut QemuProcess) {
    // The answer may not arrive: QEMU closes the monitor as it quits.
    let _ = monitor.execute(&qapi::qmp::quit {});
    let _ = process.wait_until(Instant::now() + QUIT_GRACE);
}

/// The guest's side of the sequence: the hold lines on either console, and the byte on the
/// destination's that releases a hold.
struct Consoles<'a> {
    lines: &'a Receiver<ConsoleEvent>,
    destination: &'a mut QemuProcess,
}

impl Guest for Consoles<'_> {
    fn wait_for(&mut self, side: Side, line: &'static str, deadline: Instant) -> Result<(), Stop> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(ConsoleEvent::Line(from, text)) if from == side && text == line => {
                    return Ok(());
                }
                Ok(ConsoleEvent::Line(..)) => {}
                Ok(ConsoleEvent::Closed(ended)) => {
                    return Err(Stop::Ended {
                        side: ended,
                        waiting_for: line,
                    });
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Stop::TimedOut(format!(
                        "the guest's {line:?} on the {} console",
                        side.name()
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Stop::Ended {
                        side,
                        waiting_for: line,
                    });
                }
            }
        }
    }

    fn release(&mut self) -> Result<(), Stop> {
        self.destination.send_byte().map_err(Stop::Release)
    }
}

/// The prefix of a run directory's name; the runner's pid follows.
const RUN_DIR_PREFIX: &str = "runner-migrate-";

/// The run's directory for the QMP sockets, removed with everything in it when dropped.
struct RunDir(PathBuf);

impl RunDir {
    /// Also removes the directories of earlier runs whose runner is gone: a runner killed by
    /// a signal (Ctrl-C) takes its QEMUs with it but cannot run `Drop`.
    fn create() -> Result<Self, Error> {
        let temp = std::env::temp_dir();
        if let Ok(entries) = std::fs::read_dir(&temp) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let dead = run_dir_pid(&name.to_string_lossy())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                if dead {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let path = temp.join(format!("{RUN_DIR_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|error| Error::TempDir(path.clone(), error))?;
        Ok(Self(path))
    }
}

/// The pid in a run directory's name (`runner-migrate-<pid>`), if `name` is one.
fn run_dir_pid(name: &str) -> Option<u32> {
    let pid = name.strip_prefix(RUN_DIR_PREFIX)?;
    pid.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| pid.parse().ok())?
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|&word| word.to_owned()).collect()
    }

    #[test]
    fn only_run_directories_name_a_pid() {
        assert_eq!(run_dir_pid("runner-migrate-4321"), Some(4321));
        for other in [
            "runner-migrate-",
            "runner-migrate-12x",
            "runner-migrate-+5",
            "runner-compare-1",
        ] {
            assert_eq!(run_dir_pid(other), None, "{other}");
        }
    }

    #[test]
    fn the_guest_is_told_to_hold_and_to_write_its_pages() {
        assert_eq!(
            guest_words(&words(&["scenario=seed", "pages=64"]), Some(ApfMode::Kvm)).unwrap(),
            [
                "scenario=seed",
                "pages=64",
                "source=guest",
                "hold=console",
                "apf=on"
            ]
        );
        assert_eq!(
            guest_words(&words(&["source=guest"]), None).unwrap(),
            ["source=guest", "hold=console"]
        );
        for bad in ["source=host", "hold=console", "hold=x"] {
            assert!(
                matches!(guest_words(&words(&[bad]), None), Err(Error::GuestWord(w)) if w == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn each_side_has_its_socket_and_only_the_destination_listens() {
        let dir = Path::new("/run/x");
        let strings = |side| -> Vec<String> {
            side_args(side, dir)
                .into_iter()
                .map(|arg| arg.into_string().unwrap())
                .collect()
        };
        let source = strings(Side::Source);
        assert_eq!(
            source[2..],
            ["-qmp", "unix:/run/x/source.qmp,server=on,wait=off"]
        );
        assert!(source[1].ends_with("-source"));
        let destination = strings(Side::Destination);
        assert_eq!(destination[4..], ["-incoming", "defer"]);
    }
}
