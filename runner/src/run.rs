//! `runner run`: checks the request, builds the guest if no kernel was given, and boots it in
//! the chosen VMM.

use std::path::PathBuf;

use crate::cli::{RunArgs, VmmKind};
use crate::console::ConsoleSink;
use crate::guest_arch::Unsupported;
use crate::outcome::GuestOutcome;
use crate::vmm::VmConfig;
use crate::{guest_build, guest_cmdline, qemu, vmm};

/// One vCPU until the guest kernel brings up application processors.
const VCPUS: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error(transparent)]
    Cmdline(#[from] guest_cmdline::Error),
    #[error(transparent)]
    GuestBuild(#[from] guest_build::Error),
    #[error(transparent)]
    Builtin(#[from] vmm::Error),
    #[error(transparent)]
    Qemu(#[from] qemu::Error),
}

pub fn run(args: RunArgs) -> Result<GuestOutcome, Error> {
    // Cheap checks first, so a typo does not wait for a guest build.
    args.arch.ensure_supported()?;
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
    };
    let console = ConsoleSink::default();
    Ok(match args.vmm {
        VmmKind::Builtin => vmm::run(&config, &console, args.timeout, args.verbose)?,
        VmmKind::Qemu => qemu::run(&config, &console, args.timeout, args.verbose)?,
    })
}
