//! `runner run` and `runner snapshot`: check the request, build the guest if no kernel was
//! given, and boot it in the chosen VMM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::apf::ApfMode;
use crate::cli::{RunArgs, SnapshotArgs, VmmKind};
use crate::console::ConsoleSink;
use crate::guest_arch::Unsupported;
use crate::inject::{Inject, InjectExt, Injections};
use crate::lazy::source::PageSource;
use crate::lazy::{LazyConfig, LazyRegion};
use crate::outcome::{GuestOutcome, RunReport};
use crate::vmm::VmConfig;
use crate::{guest_build, guest_cmdline, qemu, snapshot, vmm};

/// The most CPUs the guest kernel starts (its `MAX_CPUS`).
pub const MAX_GUEST_CPUS: u8 = 8;

/// `--async-threshold`'s default: a little above a synchronous fault's cost and below the
/// not-present/ready round trip on our hosts (host-facts.md: ~42 us vs ~150 us), so only
/// fetches that clearly outlast the round trip are made async.
pub(crate) const DEFAULT_ASYNC_THRESHOLD: Duration = Duration::from_micros(200);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the run report {}", path.display())]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error(
        "--latency needs the builtin VMM (its userfaultfd handler serves lazy memory) or the \
         EL2 host (--vmm el2)"
    )]
    LazyNeedsBuiltin,
    #[error("--apf el2 needs --vmm el2, which takes only --apf off or el2")]
    El2ApfMismatch,
    #[error("{0} is the builtin VMM's; the EL2 host (--vmm el2) has none")]
    NotForEl2(&'static str),
    #[error(
        "--vmm el2 runs the guest in the host's {} MiB: --mem must be 512M (QEMU's -m)",
        qemu::EL2_GUEST_MIB
    )]
    El2MemSize,
    #[error("snapshot needs the builtin VMM: it saves the RAM it maps")]
    SnapshotNeedsBuiltin,
    #[error(
        "--apf {0:?} needs the builtin VMM with --latency: it delivers async page faults for \
         the lazy pages it serves"
    )]
    UserApfNeedsLazyMemory(ApfMode),
    #[error("--async-threshold only applies to --apf adaptive")]
    ThresholdWithoutAdaptive,
    #[error("--inject {0} needs --apf vmm, adaptive or el2: only our own async PF hosts misbehave")]
    InjectNeedsUserApf(&'static str),
    #[error("--inject spikes needs --latency: it slows lazy memory's fetches")]
    SpikesNeedLatency,
    #[error("--cpus 0: a guest needs at least one vCPU")]
    NoCpus,
    #[error(
        "--cpus {asked}: this host has {host} CPU(s) to run vCPUs on (and the guest kernel starts \
         at most {MAX_GUEST_CPUS})"
    )]
    TooManyCpus { asked: u8, host: usize },
    #[error(
        "--cpus {0} needs --vmm builtin or qemu (x86_64), or --vmm qemu (aarch64): the EL2 host \
         runs one vCPU"
    )]
    CpusNotSupported(u8),
    #[error("the guest command line's 'cpus=' is the runner's: give the vCPU count with --cpus")]
    CpusInCmdline,
    #[error(transparent)]
    Cmdline(#[from] guest_cmdline::Error),
    #[error(transparent)]
    Restore(#[from] snapshot::OpenError),
    #[error(transparent)]
    GuestBuild(#[from] guest_build::Error),
    #[error(transparent)]
    Builtin(#[from] vmm::Error),
    #[error(transparent)]
    Qemu(#[from] qemu::Error),
}

pub fn run(args: RunArgs) -> Result<RunReport, Error> {
    boot(args, None)
}

/// Boots as `run` does and saves guest RAM to `args.out` if the guest exits with status 0;
/// otherwise says why nothing was saved (the exit status is the guest's, as for `run`).
pub fn snapshot(args: SnapshotArgs) -> Result<RunReport, Error> {
    if args.run.vmm != VmmKind::Builtin {
        return Err(Error::SnapshotNeedsBuiltin);
    }
    let verbose = args.run.verbose;
    let report = boot(args.run, Some(&args.out))?;
    match &report.snapshot {
        Some(saved) if verbose => eprintln!("runner: {saved}"),
        Some(_) => {}
        None => eprintln!("runner: {}", not_saved_message(&args.out, &report.outcome)),
    }
    Ok(report)
}

fn boot(args: RunArgs, save_to: Option<&Path>) -> Result<RunReport, Error> {
    // Cheap checks first, so a typo does not wait for a guest build.
    args.arch.ensure_supported(args.vmm)?;
    if args.latency.is_some() && args.vmm == VmmKind::Qemu {
        return Err(Error::LazyNeedsBuiltin);
    }
    check_el2(&args)?;
    let async_threshold = async_threshold(&args)?;
    let inject = injections(&args)?;
    check_cpus(&args)?;
    let mut words = args.cmdline.clone();
    words.extend(args.apf.map(|mode| mode.guest_word().to_owned()));
    if args.cpus > 1 {
        words.push(format!("cpus={}", args.cpus));
    }
    let cmdline = guest_cmdline::from_words(&words)?;
    let lazy_source = match &args.restore {
        Some(path) => {
            let image: Arc<dyn PageSource> = Arc::new(snapshot::Image::open(path, args.mem)?);
            Some(image)
        }
        None => None,
    };
    let kernel: PathBuf = match args.kernel {
        Some(kernel) => kernel,
        None => guest_build::build(args.arch)?,
    };
    let config = VmConfig {
        kernel: &kernel,
        mem_size: args.mem,
        cmdline: &cmdline,
        vcpus: args.cpus,
        lazy: args.latency.map(|latency| LazyConfig {
            latency,
            fetchers: args.fetchers,
            region: args.lazy,
            seed: args.seed,
            readahead: args.readahead,
            pin: args.pin,
        }),
        lazy_source,
        apf: args.apf,
        async_threshold,
        inject,
        net: None,
    };
    let console = match args.vmm {
        VmmKind::El2 => qemu::el2_console(),
        VmmKind::Builtin | VmmKind::Qemu => ConsoleSink::default(),
    };
    let report = match args.vmm {
        VmmKind::Builtin => vmm::run(&config, &console, args.timeout, args.verbose, save_to)?,
        VmmKind::Qemu => RunReport {
            outcome: qemu::run(args.arch, &config, &console, args.timeout, args.verbose)?,
            lazy: None,
            user_apf: None,
            el2_host: None,
            net: None,
            snapshot: None,
        },
        VmmKind::El2 => {
            let host = guest_build::build_el2_host()?;
            let (outcome, el2_host) =
                qemu::run_el2(&config, &host, &console, args.timeout, args.verbose)?;
            RunReport {
                outcome,
                lazy: None,
                user_apf: None,
                el2_host,
                net: None,
                snapshot: None,
            }
        }
    };
    if args.verbose {
        if let Some(stats) = &report.lazy {
            eprintln!("runner: lazy memory: {stats}");
        }
        if let Some(stats) = &report.user_apf {
            eprintln!("runner: async PF by the VMM: {stats}");
        }
        if let Some(stats) = &report.el2_host {
            eprintln!("runner: the EL2 host: {stats}");
        }
        if let Some(stats) = &report.net {
            eprintln!("runner: network card: {stats}");
        }
    }
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report.to_json()).expect("JSON values serialise");
        std::fs::write(path, text + "\n").map_err(|source| Error::Report {
            path: path.clone(),
            source,
        })?;
    }
    Ok(report)
}

/// `--cpus`: at least one, no more than the host runs at once (a vCPU thread that waits
/// for a host CPU stalls its guest CPU, and a spinning boot CPU waits for it), not under
/// the EL2 host (one vCPU); and only through `--cpus`, so the VMM's vCPUs and the guest's agree.
fn check_cpus(args: &RunArgs) -> Result<(), Error> {
    if args.cmdline.iter().any(|word| word.starts_with("cpus=")) {
        return Err(Error::CpusInCmdline);
    }
    if args.cpus == 0 {
        return Err(Error::NoCpus);
    }
    if args.cpus == 1 {
        return Ok(());
    }
    if args.vmm == VmmKind::El2 {
        return Err(Error::CpusNotSupported(args.cpus));
    }
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    if usize::from(args.cpus) > host || args.cpus > MAX_GUEST_CPUS {
        return Err(Error::TooManyCpus {
            asked: args.cpus,
            host,
        });
    }
    Ok(())
}

/// `--apf el2` and `--vmm el2` go together, and the EL2 host has only what it implements:
/// its own RAM size, one fetcher, the workload region lazy, pages from the seed.
fn check_el2(args: &RunArgs) -> Result<(), Error> {
    let el2 = args.vmm == VmmKind::El2;
    let apf_fits = match args.apf {
        None | Some(ApfMode::Off) => true,
        Some(ApfMode::El2) => el2,
        Some(ApfMode::Kvm | ApfMode::Vmm | ApfMode::Adaptive) => !el2,
    };
    if !apf_fits {
        return Err(Error::El2ApfMismatch);
    }
    if !el2 {
        return Ok(());
    }
    if args.mem != qemu::EL2_MEM_SIZE {
        return Err(Error::El2MemSize);
    }
    let unsupported = [
        (args.fetchers != 1, "--fetchers"),
        (args.lazy != LazyRegion::Workload, "--lazy all"),
        (args.restore.is_some(), "--restore"),
        (args.readahead != 0, "--readahead"),
        (args.pin, "--pin"),
    ];
    match unsupported.into_iter().find(|(given, _)| *given) {
        Some((_, option)) => Err(Error::NotForEl2(option)),
        None => Ok(()),
    }
}

/// The adaptive policy's threshold; checks that the userspace async PF modes have the lazy
/// memory whose faults they deliver.
fn async_threshold(args: &RunArgs) -> Result<Duration, Error> {
    let mode = args.apf.unwrap_or(ApfMode::Off);
    if mode.is_userspace() && (args.latency.is_none() || args.vmm != VmmKind::Builtin) {
        return Err(Error::UserApfNeedsLazyMemory(mode));
    }
    match args.async_threshold {
        Some(_) if mode != ApfMode::Adaptive => Err(Error::ThresholdWithoutAdaptive),
        threshold => Ok(threshold.unwrap_or(DEFAULT_ASYNC_THRESHOLD)),
    }
}

/// The misbehaviour to inject, if the run has what each one acts on.
fn injections(args: &RunArgs) -> Result<Injections, Error> {
    // Our x86 VMM's host and the arm64 EL2 host can misbehave; KVM cannot be made to.
    let userspace = args
        .apf
        .is_some_and(|mode| mode.is_userspace() || mode == ApfMode::El2);
    for &inject in &args.inject {
        if inject.needs_userspace_apf() && !userspace {
            return Err(Error::InjectNeedsUserApf(inject.name()));
        }
        if inject == Inject::Spikes && args.latency.is_none() {
            return Err(Error::SpikesNeedLatency);
        }
    }
    Ok(args.inject.iter().copied().collect())
}

/// Why `runner snapshot` wrote nothing (a timeout also gets its own message).
fn not_saved_message(out: &Path, outcome: &GuestOutcome) -> String {
    let why = match outcome {
        GuestOutcome::Exited(status) => format!("the guest exited with status {status}"),
        GuestOutcome::TimedOut { .. } => "the guest did not exit in time".to_owned(),
    };
    format!("{why}: no snapshot written to {}", out.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn run_args(args: &[&str]) -> RunArgs {
        let args = ["runner", "run"].iter().chain(args);
        match Cli::try_parse_from(args).expect("valid").command {
            Command::Run(run) => run,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn userspace_async_pf_needs_lazy_memory_in_the_builtin_vmm() {
        for args in [
            &["--apf", "vmm"][..],
            &["--apf", "adaptive", "--vmm", "qemu"],
            &["--apf", "vmm", "--vmm", "qemu", "--latency", "1ms"],
        ] {
            let error = async_threshold(&run_args(args)).unwrap_err();
            assert!(
                matches!(error, Error::UserApfNeedsLazyMemory(_)),
                "{args:?}: {error}"
            );
        }
        let args = run_args(&["--apf", "vmm", "--latency", "1ms"]);
        assert_eq!(async_threshold(&args).unwrap(), DEFAULT_ASYNC_THRESHOLD);
    }

    #[test]
    fn injections_need_what_they_act_on() {
        let args = run_args(&[
            "--latency",
            "1ms",
            "--apf",
            "vmm",
            "--inject",
            "drop-ready,spikes",
        ]);
        assert_eq!(injections(&args).unwrap().len(), 2);
        let args = run_args(&["--latency", "1ms", "--apf", "kvm", "--inject", "spikes"]);
        assert_eq!(injections(&args).unwrap().len(), 1);
        let args = run_args(&["--latency", "1ms", "--apf", "kvm", "--inject", "reorder"]);
        assert!(matches!(
            injections(&args),
            Err(Error::InjectNeedsUserApf("reorder"))
        ));
        let args = run_args(&["--inject", "spikes"]);
        assert!(matches!(injections(&args), Err(Error::SpikesNeedLatency)));
    }

    #[test]
    fn the_threshold_is_adaptive_only() {
        let args = run_args(&[
            "--latency",
            "1ms",
            "--apf",
            "adaptive",
            "--async-threshold",
            "1ms",
        ]);
        assert_eq!(async_threshold(&args).unwrap(), Duration::from_millis(1));
        for mode in ["vmm", "kvm"] {
            let args = run_args(&[
                "--latency",
                "1ms",
                "--apf",
                mode,
                "--async-threshold",
                "1ms",
            ]);
            assert!(matches!(
                async_threshold(&args),
                Err(Error::ThresholdWithoutAdaptive)
            ));
        }
    }

    #[test]
    fn el2_takes_its_own_apf_mode_and_options() {
        let el2 = |extra: &[&str]| {
            let mut args = vec!["--arch", "aarch64", "--vmm", "el2"];
            args.extend_from_slice(extra);
            check_el2(&run_args(&args))
        };
        assert!(el2(&["--latency", "1ms", "--seed", "3", "--apf", "el2"]).is_ok());
        assert!(el2(&["--apf", "off"]).is_ok());
        assert!(matches!(el2(&["--apf", "kvm"]), Err(Error::El2ApfMismatch)));
        assert!(matches!(
            check_el2(&run_args(&["--apf", "el2"])),
            Err(Error::El2ApfMismatch)
        ));
        assert!(matches!(el2(&["--mem", "256M"]), Err(Error::El2MemSize)));
        assert!(matches!(
            el2(&["--latency", "1ms", "--fetchers", "2"]),
            Err(Error::NotForEl2("--fetchers"))
        ));
        assert!(matches!(
            el2(&["--latency", "1ms", "--pin"]),
            Err(Error::NotForEl2("--pin"))
        ));
        assert!(check_el2(&run_args(&["--apf", "kvm"])).is_ok());
    }

    #[test]
    fn a_failed_snapshot_run_says_why_nothing_was_saved() {
        let out = Path::new("/tmp/s.snap");
        assert_eq!(
            not_saved_message(out, &GuestOutcome::Exited(3)),
            "the guest exited with status 3: no snapshot written to /tmp/s.snap"
        );
        let timed_out = GuestOutcome::TimedOut {
            after: Duration::from_secs(1),
            last_line: None,
        };
        assert_eq!(
            not_saved_message(out, &timed_out),
            "the guest did not exit in time: no snapshot written to /tmp/s.snap"
        );
    }
}
