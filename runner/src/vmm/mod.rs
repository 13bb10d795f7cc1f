//! The builtin VMM: builds the VM, runs each vCPU on its own thread, and stops them all when
//! the guest exits, a vCPU fails, or the deadline passes.

pub mod arch;
mod kick;
mod memory;
mod unhandled_io;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::console::ConsoleSink;
use crate::outcome::GuestOutcome;

/// What the VM is built from.
pub struct VmConfig<'a> {
    pub kernel: &'a Path,
    pub mem_size: u64,
    pub cmdline: &'a str,
    pub vcpus: u8,
}

/// Why a vCPU's run loop ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum VcpuStop {
    /// The guest wrote its exit status.
    GuestExit(u8),
    /// The supervisor asked it to stop.
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Vm(#[from] arch::VmError),
    #[error(transparent)]
    KickHandler(#[from] kick::InstallError),
    #[error("the timeout is too far in the future")]
    TimeoutTooLarge,
    #[error("cannot start the thread of vCPU {index}")]
    Spawn {
        index: usize,
        #[source]
        source: io::Error,
    },
    #[error("vCPU {index}")]
    Vcpu {
        index: usize,
        #[source]
        source: arch::VcpuError,
    },
    #[error("every vCPU thread ended without the guest exiting")]
    VcpusGone,
    #[error("cannot flush the guest console")]
    Console(#[source] io::Error),
}

/// What a vCPU thread reports: the guest's exit status, or why the vCPU failed.
type VcpuReport = (usize, Result<u8, arch::VcpuError>);

/// Boots `config` and runs it until the guest exits or `timeout` passes.
pub fn run(
    config: &VmConfig<'_>,
    console: &ConsoleSink,
    timeout: Duration,
    verbose: bool,
) -> Result<GuestOutcome, Error> {
    let mut vm = arch::Vm::new(config, console.clone())?;
    kick::install_handler()?;
    let started = Instant::now();
    let deadline = started.checked_add(timeout).ok_or(Error::TimeoutTooLarge)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (report, reports) = mpsc::channel();

    let mut threads = Vec::new();
    for (index, vcpu) in vm.take_vcpus().into_iter().enumerate() {
        match spawn_vcpu(index, vcpu, Arc::clone(&stop), report.clone()) {
            Ok(thread) => threads.push(thread),
            Err(source) => {
                stop_all(&stop, threads);
                return Err(Error::Spawn { index, source });
            }
        }
    }
    // Only the vCPU threads hold senders now, so the channel closes if all of them end.
    drop(report);

    let first = reports.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    stop_all(&stop, threads);
    console.finish().map_err(Error::Console)?;
    if verbose {
        eprintln!(
            "runner: guest ran for {:?}; {}",
            started.elapsed(),
            vm.unhandled_io()
        );
    }
    match first {
        Ok((_, Ok(status))) => Ok(GuestOutcome::Exited(status)),
        Ok((index, Err(source))) => Err(Error::Vcpu { index, source }),
        Err(RecvTimeoutError::Timeout) => Ok(GuestOutcome::TimedOut {
            after: timeout,
            last_line: console.last_line(),
        }),
        Err(RecvTimeoutError::Disconnected) => Err(Error::VcpusGone),
    }
}

/// Runs `vcpu` on a new thread that reports how the guest ended, unless it was stopped.
fn spawn_vcpu(
    index: usize,
    vcpu: arch::Vcpu,
    stop: Arc<AtomicBool>,
    report: mpsc::Sender<VcpuReport>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("vcpu{index}"))
        .spawn(move || {
            let result = match vcpu.run(&stop) {
                Ok(VcpuStop::Stopped) => return,
                Ok(VcpuStop::GuestExit(status)) => Ok(status),
                Err(error) => Err(error),
            };
            // The supervisor may have stopped listening (timeout): nothing to do then.
            let _ = report.send((index, result));
        })
}

/// Stops every vCPU thread and waits for them: after this no guest code runs.
fn stop_all(stop: &AtomicBool, threads: Vec<JoinHandle<()>>) {
    stop.store(true, Ordering::Release);
    for thread in &threads {
        kick::kick(thread);
    }
    for thread in threads {
        // A vCPU thread that panicked has aborted the process (panic = "abort").
        let _ = thread.join();
    }
}
