//! `runner run`: checks the request, builds the guest if no kernel was given, and boots it in
//! the chosen VMM.

use std::path::PathBuf;

use crate::cli::{RunArgs, VmmKind};
use crate::console::ConsoleSink;
use crate::guest_arch::Unsupported;
use crate::lazy::LazyConfig;
use crate::outcome::RunReport;
use crate::vmm::VmConfig;
use crate::{guest_build, guest_cmdline, qemu, vmm};

/// One vCPU until the guest kernel brings up application processors.
const VCPUS: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error("--latency needs the builtin VMM: its userfaultfd handler serves lazy memory")]
    LazyNeedsBuiltin,
    #[error(transparent)]
    Cmdline(#[from] guest_cmdline::Error),
    #[error(transparent)]
    GuestBuild(#[from] guest_build::Error),
    #[error(transparent)]
    Builtin(#[from] vmm::Error),
    #[error(transparent)]
    Qemu(#[from] qemu::Error),
}

pub fn run(args: RunArgs) -> Result<RunReport, Error> {
    // Cheap checks first, so a typo does not wait for a guest build.
    args.arch.ensure_supported()?;
    if args.latency.is_some() && args.vmm != VmmKind::Builtin {
        return Err(Error::LazyNeedsBuiltin);
    }
    let cmdline = guest_cmdline::from_words(&args.cmdline)?;
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
    };
    let console = ConsoleSink::default();
    let report = match args.vmm {
        VmmKind::Builtin => vmm::run(&config, &console, args.timeout, args.verbose)?,
        VmmKind::Qemu => RunReport {
            outcome: qemu::run(&config, &console, args.timeout, args.verbose)?,
            lazy: None,
        },
    };
    if let Some(stats) = report.lazy.as_ref().filter(|_| args.verbose) {
        eprintln!("runner: lazy memory: {stats}");
    }
    Ok(report)
}
