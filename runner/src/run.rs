//! `runner run` and `runner snapshot`: check the request, build the guest if no kernel was
//! given, and boot it in the chosen VMM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{RunArgs, SnapshotArgs, VmmKind};
use crate::console::ConsoleSink;
use crate::guest_arch::Unsupported;
use crate::lazy::LazyConfig;
use crate::lazy::source::PageSource;
use crate::outcome::{GuestOutcome, RunReport};
use crate::vmm::VmConfig;
use crate::{guest_build, guest_cmdline, qemu, snapshot, vmm};

/// One vCPU until the guest kernel brings up application processors.
const VCPUS: u8 = 1;

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
    #[error("--latency needs the builtin VMM: its userfaultfd handler serves lazy memory")]
    LazyNeedsBuiltin,
    #[error("snapshot needs the builtin VMM: it saves the RAM it maps")]
    SnapshotNeedsBuiltin,
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
    args.arch.ensure_supported()?;
    if args.latency.is_some() && args.vmm != VmmKind::Builtin {
        return Err(Error::LazyNeedsBuiltin);
    }
    let mut words = args.cmdline.clone();
    words.extend(args.apf.map(|mode| mode.guest_word().to_owned()));
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
        vcpus: VCPUS,
        lazy: args.latency.map(|latency| LazyConfig {
            latency,
            fetchers: args.fetchers,
            region: args.lazy,
            seed: args.seed,
        }),
        lazy_source,
        apf: args.apf,
    };
    let console = ConsoleSink::default();
    let report = match args.vmm {
        VmmKind::Builtin => vmm::run(&config, &console, args.timeout, args.verbose, save_to)?,
        VmmKind::Qemu => RunReport {
            outcome: qemu::run(&config, &console, args.timeout, args.verbose)?,
            lazy: None,
            snapshot: None,
        },
    };
    if let Some(stats) = report.lazy.as_ref().filter(|_| args.verbose) {
        eprintln!("runner: lazy memory: {stats}");
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
    use std::time::Duration;

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
