//! The builtin VMM: builds the VM, runs each vCPU on its own thread, serves lazy memory if
//! asked, and stops it all when the guest exits, a vCPU or the lazy memory server fails, or
//! the deadline passes; then saves guest RAM if asked and the guest succeeded.

pub mod arch;
mod kick;
pub mod memory;
mod unhandled_io;
pub mod virtio_net;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::affinity;
use crate::console::ConsoleSink;
use crate::lazy::source::{GeneratedPages, PageSource};
use crate::lazy::{self, LazyConfig};
use crate::outcome::{GuestOutcome, RunReport};
use crate::snapshot;

/// What the VM is built from.
pub struct VmConfig<'a> {
    pub kernel: &'a Path,
    pub mem_size: u64,
    pub cmdline: &'a str,
    pub vcpus: u8,
    /// Lazy guest memory (builtin VMM only).
    pub lazy: Option<LazyConfig>,
    /// Where lazy pages come from (a snapshot, with `--restore`); `None`: generated from the
    /// lazy seed.
    pub lazy_source: Option<Arc<dyn PageSource>>,
    /// Async PF mode; `None` leaves KVM's CPUID as it is.
    pub apf: Option<crate::apf::ApfMode>,
    /// `adaptive`'s threshold: faults expected sooner stay synchronous.
    pub async_threshold: std::time::Duration,
    /// Host misbehaviour to inject (`--inject`).
    pub inject: crate::inject::Injections,
    /// A network card (`runner serve-bench`); `None`: none.
    pub net: Option<NetConfig>,
}

/// A virtio-net card backed by a TAP device inside a network namespace, so that guest
/// traffic reaches only that namespace. The builtin VMM puts it on virtio-mmio at
/// [`NET_MMIO_BASE`]; QEMU (x86) on its microvm machine's virtio-mmio.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The namespace, as a bind mount (`/run/netns/NAME`).
    pub netns: std::path::PathBuf,
    /// The TAP device's name inside it.
    pub tap: String,
    pub mac: [u8; 6],
}

/// Where the builtin VMM's virtio-mmio network card is (one 4 KiB page, above the largest
/// guest RAM); the runner names it on the guest command line as Linux would
/// (`virtio_mmio.device=4K@0xd0000000:5`).
pub const NET_MMIO_BASE: u64 = 0xd000_0000;
pub const NET_MMIO_SIZE: u64 = 0x1000;
/// Its interrupt line (GSI), named on the command line; the guest's driver polls.
pub const NET_IRQ: u32 = 5;

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
    #[error("cannot read the host CPUs this process may run on (--pin)")]
    Affinity(#[source] io::Error),
    #[error("cannot pin vCPU {index}'s thread to host CPU {cpu}")]
    Pin {
        index: usize,
        cpu: usize,
        #[source]
        source: io::Error,
    },
    #[error("vCPU {index}")]
    Vcpu {
        index: usize,
        #[source]
        source: arch::VcpuError,
    },
    #[error(transparent)]
    LazyStart(#[from] lazy::StartError),
    #[error("serving lazy guest memory failed")]
    LazyMemory(#[source] lazy::Error),
    #[error("every vCPU thread ended without the guest exiting")]
    VcpusGone,
    #[error("cannot flush the guest console")]
    Console(#[source] io::Error),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SaveError),
    #[error(transparent)]
    Net(#[from] virtio_net::Error),
}

/// What ends a run: a vCPU thread reporting the guest's exit status or why the vCPU failed,
/// or the lazy memory server failing.
enum Report {
    Vcpu(usize, Result<u8, arch::VcpuError>),
    LazyMemory(lazy::Error),
}

/// Boots `config` and runs it until the guest exits or `timeout` passes. With `save_to`, a
/// guest that exits with status 0 has its RAM saved there as a snapshot (`crate::snapshot`).
pub fn run(
    config: &VmConfig<'_>,
    console: &ConsoleSink,
    timeout: Duration,
    verbose: bool,
    save_to: Option<&Path>,
) -> Result<RunReport, Error> {
    let mut vm = arch::Vm::new(config, console.clone())?;
    kick::install_handler()?;
    let (report, reports) = mpsc::channel();
    // `--pin`: the CPUs to pin to, vCPU i on the i-th (mod their count).
    let pin_to = match &config.lazy {
        Some(lazy) if lazy.pin => Some(affinity::allowed_cpus().map_err(Error::Affinity)?),
        _ => None,
    };
    let reader_cpu = pin_to.as_deref().map(|cpus| affinity::cpu_of_vcpu(0, cpus));
    let lazy = start_lazy(&mut vm, config, reader_cpu, &report)?;
    let started = Instant::now();
    let deadline = started.checked_add(timeout).ok_or(Error::TimeoutTooLarge)?;
    let stop = Arc::new(AtomicBool::new(false));

    let mut threads = Vec::new();
    for (index, vcpu) in vm.take_vcpus().into_iter().enumerate() {
        match spawn_vcpu(index, vcpu, Arc::clone(&stop), report.clone()) {
            Ok(thread) => threads.push(thread),
            Err(source) => {
                stop_all(&stop, threads, lazy.as_ref());
                return Err(Error::Spawn { index, source });
            }
        }
        if let Some(cpus) = &pin_to {
            let cpu = affinity::cpu_of_vcpu(index, cpus);
            if let Err(source) = affinity::pin(&threads[index], cpu) {
                stop_all(&stop, threads, lazy.as_ref());
                return Err(Error::Pin { index, cpu, source });
            }
        }
    }
    // Only the vCPU threads (and the lazy memory server's) hold senders now, so without a
    // server the channel closes if all vCPU threads end.
    drop(report);

    let first = reports.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    stop_all(&stop, threads, lazy.as_ref());
    let lazy = lazy.map(lazy::Server::finish);
    // No vCPU touches the card any more; a receive failure fails the run.
    let net = vm.finish_net().transpose()?;
    console.finish().map_err(Error::Console)?;
    if verbose {
        eprintln!(
            "runner: guest ran for {:?}; {}",
            started.elapsed(),
            vm.unhandled_io()
        );
    }
    let outcome = match first {
        Ok(Report::Vcpu(_, Ok(status))) => GuestOutcome::Exited(status),
        Ok(Report::Vcpu(index, Err(source))) => return Err(Error::Vcpu { index, source }),
        Ok(Report::LazyMemory(source)) => return Err(Error::LazyMemory(source)),
        Err(RecvTimeoutError::Timeout) => GuestOutcome::TimedOut {
            after: timeout,
            last_line: console.last_line(),
        },
        Err(RecvTimeoutError::Disconnected) => return Err(Error::VcpusGone),
    };
    // Every vCPU and the lazy memory server have stopped: RAM no longer changes. The server's
    // userfaultfd closed with it, so lazy pages it never served read as zeros, not as a wait.
    let snapshot = match (save_to, &outcome) {
        (Some(path), GuestOutcome::Exited(0)) => Some(snapshot::save(path, vm.memory())?),
        _ => None,
    };
    Ok(RunReport {
        outcome,
        lazy,
        user_apf: vm.user_apf().map(|apf| apf.stats()),
        el2_host: None,
        net,
        snapshot,
    })
}

/// Starts serving the VM's lazy range, if it has one, its fault reader pinned to `reader_cpu`
/// if given (`--pin`); a failure ends the run through `report`.
fn start_lazy(
    vm: &mut arch::Vm,
    config: &VmConfig<'_>,
    reader_cpu: Option<usize>,
    report: &mpsc::Sender<Report>,
) -> Result<Option<lazy::Server>, Error> {
    let Some((lazy, range)) = config.lazy.as_ref().zip(vm.take_lazy()) else {
        return Ok(None);
    };
    let source: Box<dyn PageSource> = match &config.lazy_source {
        Some(source) => Box::new(Arc::clone(source)),
        None => Box::new(GeneratedPages::new(lazy.seed)),
    };
    let report = report.clone();
    let observer = vm
        .user_apf()
        .cloned()
        .map(|apf| apf as Arc<dyn lazy::FaultObserver>);
    let settings = lazy::Settings {
        latency: lazy.latency,
        fetchers: lazy.fetchers,
        seed: lazy.seed,
        source,
        readahead: lazy.readahead,
        inject: config.inject.clone(),
        observer,
        reader_cpu,
    };
    let on_failure: lazy::OnFailure = Arc::new(move |error| {
        // The supervisor may have stopped listening: the run is ending anyway.
        let _ = report.send(Report::LazyMemory(error));
    });
    Ok(Some(lazy::Server::start(
        range.uffd,
        range.window,
        settings,
        on_failure,
    )?))
}

/// Runs `vcpu` on a new thread that reports how the guest ended, unless it was stopped.
fn spawn_vcpu(
    index: usize,
    vcpu: arch::Vcpu,
    stop: Arc<AtomicBool>,
    report: mpsc::Sender<Report>,
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
            let _ = report.send(Report::Vcpu(index, result));
        })
}

/// Stops every vCPU thread and waits for them: after this no guest code runs.
fn stop_all(stop: &AtomicBool, threads: Vec<JoinHandle<()>>, lazy: Option<&lazy::Server>) {
    stop.store(true, Ordering::Release);
    // A vCPU blocked on a lazy page in ring 0 sees its kick only once the page is in.
    if let Some(server) = lazy {
        server.release();
    }
    for thread in &threads {
        kick::kick(thread);
    }
    for thread in threads {
        // A vCPU thread that panicked has aborted the process (panic = "abort").
        let _ = thread.join();
    }
}
