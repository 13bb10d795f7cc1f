//! `--vmm qemu`: boots the same kernel in QEMU/KVM (TCG where /dev/kvm is unusable), with the
//! builtin VMM's console, exit status and timeout semantics; the aarch64 guest boots in
//! `qemu-system-aarch64` under TCG, bare or under our EL2 host (`--vmm el2`). An x86_64 guest
//! with a network card boots on the microvm machine, QEMU inside the card's network namespace.

mod aarch64;
mod argv;
mod el2;
mod el2_stats;
mod exit_status;
mod output;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use argv::{Accel, Invocation, Net, args as x86_64_argv};
pub use el2::{GUEST_MIB as EL2_GUEST_MIB, MEM_SIZE as EL2_MEM_SIZE};
pub use el2_stats::El2HostStats;
use exit_status::NoExitStatus;
pub use exit_status::guest_status;
pub use output::forward_stderr;

use crate::console::ConsoleSink;
use crate::guest_arch::GuestArch;
use crate::outcome::GuestOutcome;
use crate::vmm::VmConfig;
use crate::vmm::arch::{KernelError, validate_kernel};

pub const QEMU_X86_64: &str = "qemu-system-x86_64";
const KVM_DEVICE: &str = "/dev/kvm";
/// What QEMU exits with when it fails by itself; also what a guest exit status of 0 becomes.
const QEMU_FAILURE_CODE: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Aarch64Kernel(#[from] aarch64::KernelError),
    #[error("{0} is not installed (scripts/setup installs it)")]
    NotInstalled(&'static str, #[source] io::Error),
    #[error("cannot start {0}")]
    Spawn(&'static str, #[source] io::Error),
    #[error("cannot start a thread to pass {0}'s output through")]
    OutputThread(&'static str, #[source] io::Error),
    #[error("cannot stop {0} after the timeout")]
    Kill(&'static str, #[source] io::Error),
    #[error("cannot wait for {0}")]
    Wait(&'static str, #[source] io::Error),
    #[error("{0} failed (exit code {1}); its messages are above")]
    Failed(&'static str, i32),
    #[error("{0} ended abnormally ({1})")]
    Abnormal(&'static str, ExitStatus),
    #[error(transparent)]
    NoExitStatus(#[from] NoExitStatus),
    #[error("cannot pass the guest console through")]
    Console(#[source] io::Error),
    #[error("the EL2 host stopped the run (its exit status {0}); its messages are above")]
    El2Host(u8),
    #[error("a network card is x86-only here")]
    NetX86Only,
    #[error("cannot open the network namespace {}", .0.display())]
    Netns(PathBuf, #[source] io::Error),
}

/// Boots `config`, an `arch` guest, in QEMU and waits for the guest's exit status, at most
/// `timeout`. With a network card, QEMU runs in the card's namespace, where its TAP is.
pub fn run(
    arch: GuestArch,
    config: &VmConfig<'_>,
    console: &ConsoleSink,
    timeout: Duration,
    verbose: bool,
) -> Result<GuestOutcome, Error> {
    let (program, args) = match arch {
        GuestArch::X86_64 => (QEMU_X86_64, x86_64_args(config)?),
        // Only the x86_64 guest has a virtio-net driver (and QEMU's arm `virt` board
        // would need its own transport description).
        GuestArch::Aarch64 if config.net.is_some() => return Err(Error::NetX86Only),
        GuestArch::Aarch64 => {
            aarch64::validate_kernel(config.kernel)?;
            let args = aarch64::args(&aarch64::Invocation {
                mem_size: config.mem_size,
                vcpus: config.vcpus,
                kernel: config.kernel,
                cmdline: config.cmdline,
            });
            (aarch64::QEMU, args)
        }
    };
    let netns = match &config.net {
        Some(net) => {
            Some(File::open(&net.netns).map_err(|error| Error::Netns(net.netns.clone(), error))?)
        }
        None => None,
    };
    launch(program, args, netns.as_ref(), console, timeout, verbose)
}

/// Boots `config`, an aarch64 guest, under the EL2 host ELF `host` (`--vmm el2`) and waits
/// for the guest's exit status, at most `timeout`, with the host's counts if it printed them
/// and the guest finished normally (else they may be out of date).
/// The host's own exits are errors. `console` must be watching for [`el2_stats::STATS_PREFIX`]
/// ([`el2_console`]).
pub fn run_el2(
    config: &VmConfig<'_>,
    host: &std::path::Path,
    console: &ConsoleSink,
    timeout: Duration,
    verbose: bool,
) -> Result<(GuestOutcome, Option<El2HostStats>), Error> {
    aarch64::validate_kernel(config.kernel)?;
    let args = el2::args(&el2::Invocation {
        host,
        guest: config.kernel,
        guest_cmdline: config.cmdline,
        lazy: config.lazy.as_ref(),
        apf: config.apf,
        inject: &config.inject,
    });
    let outcome = launch(el2::QEMU, args, None, console, timeout, verbose);
    // The host's statuses overlap the guest's encoded ones: its last line tells them apart.
    match el2::host_exit(console.last_line().as_deref()) {
        Some(status) => Err(Error::El2Host(status)),
        None => {
            let outcome = outcome?;
            let finished = matches!(outcome, GuestOutcome::Exited(status)
                if el2_stats::FINISHED_STATUSES.contains(&status));
            let stats = if finished {
                el2_host_stats(console)
            } else {
                None
            };
            Ok((outcome, stats))
        }
    }
}

/// The console for [`run_el2`]: it keeps the host's last summary line.
pub fn el2_console() -> ConsoleSink {
    ConsoleSink::watching(el2_stats::STATS_PREFIX)
}

/// The host's last summary line, read; one we cannot read is said, and the run keeps its
/// outcome without the counts.
fn el2_host_stats(console: &ConsoleSink) -> Option<El2HostStats> {
    let line = console.watched_line()?;
    El2HostStats::parse(&line)
        .inspect_err(|error| {
            eprintln!("runner: cannot read the EL2 host's counts {line:?}: {error}")
        })
        .ok()
}

/// Runs `program` with `args`, inside the network namespace `netns` if given, passing its
/// console through, and reads the guest's exit status from its exit code.
fn launch(
    program: &'static str,
    args: Vec<std::ffi::OsString>,
    netns: Option<&File>,
    console: &ConsoleSink,
    timeout: Duration,
    verbose: bool,
) -> Result<GuestOutcome, Error> {
    if verbose {
        eprintln!("runner: {program} {args:?}");
    }

    let mut command = Command::new(program);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(netns) = netns {
        enter_in_child(&mut command, netns);
    }
    let mut qemu = command.spawn().map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => Error::NotInstalled(program, error),
        _ => Error::Spawn(program, error),
    })?;
    let (console_ended, console_end) = mpsc::channel();
    let stdout = qemu.stdout.take().expect("stdout is piped");
    let stderr = qemu.stderr.take().expect("stderr is piped");
    let pumps =
        output::forward_console(stdout, console.clone(), console_ended).and_then(|console| {
            output::forward_stderr(stderr, program).map(|stderr| (console, stderr))
        });
    let (console_pump, stderr_pump) = match pumps {
        Ok(pumps) => pumps,
        Err(error) => {
            // Nothing would drain its output; do not leave it running.
            let _ = qemu.kill();
            let _ = qemu.wait();
            return Err(Error::OutputThread(program, error));
        }
    };

    // QEMU closes its stdout when it exits. In every other case (timeout, or nobody left to
    // drain its output) it must be stopped.
    let console_end = console_end.recv_timeout(timeout);
    if !matches!(console_end, Ok(Ok(()))) {
        qemu.kill().map_err(|error| Error::Kill(program, error))?;
    }
    let status = qemu.wait().map_err(|error| Error::Wait(program, error))?;
    join(console_pump);
    let qemu_complained = join(stderr_pump);

    match console_end {
        Err(RecvTimeoutError::Timeout) => {
            return Ok(GuestOutcome::TimedOut {
                after: timeout,
                last_line: console.last_line(),
            });
        }
        Ok(Err(error)) => return Err(Error::Console(error)),
        Ok(Ok(())) | Err(RecvTimeoutError::Disconnected) => {}
    }
    match status.code() {
        Some(QEMU_FAILURE_CODE) if qemu_complained => {
            Err(Error::Failed(program, QEMU_FAILURE_CODE))
        }
        Some(code) => Ok(GuestOutcome::Exited(exit_status::guest_status(code)?)),
        None => Err(Error::Abnormal(program, status)),
    }
}

/// Makes `command`'s child join the network namespace `netns` before it executes, so that
/// only the child (not the runner's threads) is in it and QEMU opens the TAP by its name
/// there. A failure to join is the spawn's error.
fn enter_in_child(command: &mut Command, netns: &File) {
    let fd = netns.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and only makes one system
    // call (async-signal-safe: no allocation, no locks); reading errno allocates nothing.
    // `fd` is the caller's open namespace file, which outlives the spawn (the child's copy
    // closes on exec: std opens files close-on-exec).
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// The x86_64 guest's QEMU arguments: KVM where usable, after the builtin VMM's own checks
/// of the kernel (same messages, before QEMU gives its own).
fn x86_64_args(config: &VmConfig<'_>) -> Result<Vec<std::ffi::OsString>, Error> {
    validate_kernel(config.kernel, config.mem_size)?;
    let accel = if kvm_usable() {
        Accel::Kvm
    } else {
        eprintln!(
            "runner: no usable {KVM_DEVICE}: falling back to TCG, timing numbers are not meaningful"
        );
        Accel::Tcg
    };
    Ok(argv::args(&Invocation {
        accel,
        mem_size: config.mem_size,
        vcpus: config.vcpus,
        kernel: config.kernel,
        cmdline: config.cmdline,
        apf: config.apf,
        tsc_khz: None,
        net: config.net.as_ref().map(|net| Net {
            tap: &net.tap,
            mac: net.mac,
        }),
    }))
}

pub fn kvm_usable() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(KVM_DEVICE)
        .is_ok()
}

/// A pump's result; a pump that panicked passes its panic on.
pub fn join<T>(thread: JoinHandle<T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
