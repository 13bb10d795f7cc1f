//! `--vmm qemu`: boots the same kernel in QEMU/KVM (TCG where /dev/kvm is unusable), with the
//! builtin VMM's console, exit status and timeout semantics.

mod argv;
mod exit_status;
mod output;

use std::fs::OpenOptions;
use std::io;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use argv::{Accel, Invocation};
use exit_status::NoExitStatus;

use crate::console::ConsoleSink;
use crate::outcome::GuestOutcome;
use crate::vmm::VmConfig;
use crate::vmm::arch::{KernelError, validate_kernel};

const QEMU: &str = "qemu-system-x86_64";
const KVM_DEVICE: &str = "/dev/kvm";
/// What QEMU exits with when it fails by itself; also what a guest exit status of 0 becomes.
const QEMU_FAILURE_CODE: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("{QEMU} is not installed (scripts/setup installs it)")]
    NotInstalled(#[source] io::Error),
    #[error("cannot start {QEMU}")]
    Spawn(#[source] io::Error),
    #[error("cannot start a thread to pass {QEMU}'s output through")]
    OutputThread(#[source] io::Error),
    #[error("cannot stop {QEMU} after the timeout")]
    Kill(#[source] io::Error),
    #[error("cannot wait for {QEMU}")]
    Wait(#[source] io::Error),
    #[error("{QEMU} failed (exit code {0}); its messages are above")]
    Failed(i32),
    #[error("{QEMU} ended abnormally ({0})")]
    Abnormal(ExitStatus),
    #[error(transparent)]
    NoExitStatus(#[from] NoExitStatus),
    #[error("cannot pass the guest console through")]
    Console(#[source] io::Error),
}

/// Boots `config` in QEMU and waits for the guest's exit status, at most `timeout`.
pub fn run(
    config: &VmConfig<'_>,
    console: &ConsoleSink,
    timeout: Duration,
    verbose: bool,
) -> Result<GuestOutcome, Error> {
    // Same checks and messages as the builtin VMM, before QEMU gives its own.
    validate_kernel(config.kernel, config.mem_size)?;
    let accel = if kvm_usable() {
        Accel::Kvm
    } else {
        eprintln!(
            "runner: no usable {KVM_DEVICE}: falling back to TCG, timing numbers are not meaningful"
        );
        Accel::Tcg
    };
    let args = argv::args(&Invocation {
        accel,
        mem_size: config.mem_size,
        vcpus: config.vcpus,
        kernel: config.kernel,
        cmdline: config.cmdline,
        apf: config.apf,
    });
    if verbose {
        eprintln!("runner: {QEMU} {args:?}");
    }

    let mut qemu = Command::new(QEMU)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => Error::NotInstalled(error),
            _ => Error::Spawn(error),
        })?;
    let (console_ended, console_end) = mpsc::channel();
    let stdout = qemu.stdout.take().expect("stdout is piped");
    let stderr = qemu.stderr.take().expect("stderr is piped");
    let pumps = output::forward_console(stdout, console.clone(), console_ended)
        .and_then(|console| output::forward_stderr(stderr, QEMU).map(|stderr| (console, stderr)));
    let (console_pump, stderr_pump) = match pumps {
        Ok(pumps) => pumps,
        Err(error) => {
            // Nothing would drain its output; do not leave it running.
            let _ = qemu.kill();
            let _ = qemu.wait();
            return Err(Error::OutputThread(error));
        }
    };

    // QEMU closes its stdout when it exits. In every other case (timeout, or nobody left to
    // drain its output) it must be stopped.
    let console_end = console_end.recv_timeout(timeout);
    if !matches!(console_end, Ok(Ok(()))) {
        qemu.kill().map_err(Error::Kill)?;
    }
    let status = qemu.wait().map_err(Error::Wait)?;
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
        Some(QEMU_FAILURE_CODE) if qemu_complained => Err(Error::Failed(QEMU_FAILURE_CODE)),
        Some(code) => Ok(GuestOutcome::Exited(exit_status::guest_status(code)?)),
        None => Err(Error::Abnormal(status)),
    }
}

fn kvm_usable() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(KVM_DEVICE)
        .is_ok()
}

/// A pump's result; a pump that panicked passes its panic on.
fn join<T>(thread: JoinHandle<T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
