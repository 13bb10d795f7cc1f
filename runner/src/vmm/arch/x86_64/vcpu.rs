//! One vCPU: created and configured by the VM, then moved to its own thread to run.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kvm_bindings::{
    CpuId, KVM_INTERNAL_ERROR_DELIVERY_EV, KVM_INTERNAL_ERROR_EMULATION,
    KVM_INTERNAL_ERROR_SIMUL_EX, KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON, KVM_SYSTEM_EVENT_CRASH,
    KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};
use vm_memory::GuestAddress;

use super::io_bus::{self, AfterWrite, IoBus};
use super::user_apf::{self, UserApf};
use super::{cpuid, regs};
use crate::vmm::{VcpuStop, kick};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create vCPU {index}")]
    Create {
        index: u8,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error(transparent)]
    Cpuid(#[from] cpuid::Error),
    #[error(transparent)]
    Regs(#[from] regs::Error),
    #[error("KVM_RUN failed")]
    Run(#[source] kvm_ioctls::Error),
    #[error(transparent)]
    Io(#[from] io_bus::Error),
    #[error("guest triple-faulted ({0})")]
    TripleFault(CpuState),
    #[error("guest halted with interrupts off ({0})")]
    Halted(CpuState),
    #[error("KVM internal error: {what} (suberror {suberror}, data {data:x?}; {cpu})")]
    Internal {
        what: &'static str,
        suberror: u32,
        data: Vec<u64>,
        cpu: CpuState,
    },
    #[error("VM entry failed with hardware reason {reason:#x} ({cpu})")]
    FailEntry { reason: u64, cpu: CpuState },
    #[error("guest requested {0} without an exit status")]
    SystemEvent(String),
    #[error("unexpected VM exit {exit} ({cpu})")]
    UnexpectedExit { exit: String, cpu: CpuState },
    #[error("cannot read the vCPU's registers to report how it failed")]
    Registers(#[source] kvm_ioctls::Error),
    #[error(transparent)]
    UserApf(#[from] user_apf::Error),
}

/// The registers that show where and in which mode a guest failed.
#[derive(Debug)]
pub struct CpuState {
    rip: u64,
    rsp: u64,
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
}

impl fmt::Display for CpuState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rip={:#x} rsp={:#x} cr0={:#x} cr3={:#x} cr4={:#x} efer={:#x}",
            self.rip, self.rsp, self.cr0, self.cr3, self.cr4, self.efer
        )
    }
}

/// What the run loop does after an exit. Failures are described after the exit's borrow of the
/// vCPU ends, because describing them reads registers.
enum Next {
    Resume,
    Stop(VcpuStop),
    Fail(Failure),
}

enum Failure {
    TripleFault,
    Halted,
    Internal,
    FailEntry(u64),
    SystemEvent(u32),
    Unexpected(String),
}

pub struct Vcpu {
    index: usize,
    fd: VcpuFd,
    io: Arc<Mutex<IoBus>>,
    /// The VMM's async PF host (`--apf vmm|adaptive`): it owns the async PF MSRs and kicks.
    user_apf: Option<Arc<UserApf>>,
}

impl Vcpu {
    /// Creates vCPU `index` with its CPUID; its APIC ID is its index.
    pub fn new(
        vm: &VmFd,
        index: u8,
        supported_cpuid: &CpuId,
        io: Arc<Mutex<IoBus>>,
        user_apf: Option<Arc<UserApf>>,
    ) -> Result<Self, Error> {
        let mut fd = vm
            .create_vcpu(u64::from(index))
            .map_err(|source| Error::Create { index, source })?;
        cpuid::configure(&fd, supported_cpuid, index)?;
        if let Some(apf) = &user_apf {
            apf.sync_kicked_state(&mut fd);
        }
        Ok(Vcpu {
            index: usize::from(index),
            fd,
            io,
            user_apf,
        })
    }

    /// Makes this the boot vCPU, starting at the PVH entry point. The others wait for the
    /// guest's INIT/SIPI in the in-kernel LAPIC.
    pub fn set_boot_state(
        &self,
        entry: GuestAddress,
        start_info: GuestAddress,
    ) -> Result<(), Error> {
        Ok(regs::set_pvh_entry_state(&self.fd, entry, start_info)?)
    }

    /// Runs the guest on the calling thread until it exits, fails, or `stop` is set and the
    /// thread kicked.
    pub fn run(mut self, stop: &AtomicBool) -> Result<VcpuStop, Error> {
        let immediate_exit = NonNull::from(&mut self.fd.get_kvm_run().immediate_exit);
        // SAFETY: `_armed` is a local of this function, so it is dropped before `self`, whose
        // `fd` owns the `kvm_run` mapping that `immediate_exit` points into.
        let _armed = unsafe { kick::arm(immediate_exit) };
        if let Some(apf) = &self.user_apf {
            // SAFETY: gettid has no preconditions.
            apf.attach(self.index, unsafe { libc::gettid() });
        }
        let result = self.run_loop(stop);
        if let Some(apf) = &self.user_apf {
            apf.detach(self.index);
        }
        result
    }

    fn run_loop(&mut self, stop: &AtomicBool) -> Result<VcpuStop, Error> {
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(VcpuStop::Stopped);
            }
            let next = match self.fd.run() {
                Ok(exit) => handle_exit(&self.io, self.user_apf.as_deref(), self.index, exit)?,
                // A kick: clear the flag it may have set, then look at `stop` and, for an
                // async PF kick, make the abandoned fault async.
                Err(error) if error.errno() == libc::EINTR => {
                    self.fd.set_kvm_immediate_exit(0);
                    if let Some(apf) = &self.user_apf
                        && !stop.load(Ordering::Acquire)
                    {
                        apf.kicked(self.index, &mut self.fd)?;
                    }
                    Next::Resume
                }
                // An application processor waiting for its startup IPI: KVM_RUN blocks
                // until an event arrives (INIT, SIPI), then asks to be called again.
                Err(error) if error.errno() == libc::EAGAIN => Next::Resume,
                Err(error) => return Err(Error::Run(error)),
            };
            match next {
                Next::Resume => {}
                Next::Stop(stop) => return Ok(stop),
                Next::Fail(failure) => return Err(self.describe(failure)),
            }
        }
    }

    fn describe(&mut self, failure: Failure) -> Error {
        let cpu = match self.cpu_state() {
            Ok(cpu) => cpu,
            Err(error) => return error,
        };
        match failure {
            Failure::TripleFault => Error::TripleFault(cpu),
            Failure::Halted => Error::Halted(cpu),
            Failure::Internal => {
                let run = self.fd.get_kvm_run();
                // SAFETY: the last exit was KVM_EXIT_INTERNAL_ERROR, for which KVM fills the
                // `internal` member of the exit union; it is plain integers.
                let internal = unsafe { run.__bindgen_anon_1.internal };
                let ndata = usize::try_from(internal.ndata)
                    .unwrap_or(usize::MAX)
                    .min(internal.data.len());
                Error::Internal {
                    what: internal_error_name(internal.suberror),
                    suberror: internal.suberror,
                    data: internal.data[..ndata].to_vec(),
                    cpu,
                }
            }
            Failure::FailEntry(reason) => Error::FailEntry { reason, cpu },
            Failure::SystemEvent(kind) => Error::SystemEvent(system_event_name(kind)),
            Failure::Unexpected(exit) => Error::UnexpectedExit { exit, cpu },
        }
    }

    fn cpu_state(&self) -> Result<CpuState, Error> {
        let regs = self.fd.get_regs().map_err(Error::Registers)?;
        let sregs = self.fd.get_sregs().map_err(Error::Registers)?;
        Ok(CpuState {
            rip: regs.rip,
            rsp: regs.rsp,
            cr0: sregs.cr0,
            cr3: sregs.cr3,
            cr4: sregs.cr4,
            efer: sregs.efer,
        })
    }
}

/// Handles one exit; I/O goes to the shared bus, async PF MSR accesses (which exit only with
/// the VMM's async PF host) to `user_apf`, everything else ends the run.
fn handle_exit(
    io: &Mutex<IoBus>,
    user_apf: Option<&UserApf>,
    index: usize,
    exit: VcpuExit<'_>,
) -> Result<Next, Error> {
    let bus = || io.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(match exit {
        VcpuExit::IoIn(port, data) => {
            bus().port_read(port, data);
            Next::Resume
        }
        VcpuExit::IoOut(port, data) => match bus().port_write(port, data)? {
            AfterWrite::Resume => Next::Resume,
            AfterWrite::GuestExit(status) => Next::Stop(VcpuStop::GuestExit(status)),
        },
        VcpuExit::MmioRead(address, data) => {
            bus().mmio_read(address, data);
            Next::Resume
        }
        VcpuExit::MmioWrite(address, data) => {
            bus().mmio_write(address, data);
            Next::Resume
        }
        VcpuExit::X86Wrmsr(exit) if let Some(apf) = user_apf => {
            *exit.error = u8::from(!apf.write_msr(index, exit.index, exit.data)?);
            Next::Resume
        }
        VcpuExit::X86Rdmsr(exit) if let Some(apf) = user_apf => {
            *exit.data = apf.read_msr(index, exit.index);
            *exit.error = 0;
            Next::Resume
        }
        VcpuExit::Shutdown => Next::Fail(Failure::TripleFault),
        // With the in-kernel LAPIC, KVM handles HLT itself unless nothing can wake the vCPU.
        VcpuExit::Hlt => Next::Fail(Failure::Halted),
        VcpuExit::InternalError => Next::Fail(Failure::Internal),
        VcpuExit::FailEntry(reason, _cpu) => Next::Fail(Failure::FailEntry(reason)),
        VcpuExit::SystemEvent(kind, _) => Next::Fail(Failure::SystemEvent(kind)),
        other => Next::Fail(Failure::Unexpected(format!("{other:?}"))),
    })
}

fn internal_error_name(suberror: u32) -> &'static str {
    match suberror {
        // On hosts that emulate ring 0 (see host-facts.md) this is an instruction the
        // emulator lacks, such as SSE or VEX in kernel code.
        KVM_INTERNAL_ERROR_EMULATION => "KVM could not emulate an instruction",
        KVM_INTERNAL_ERROR_SIMUL_EX => "exception while delivering an exception",
        KVM_INTERNAL_ERROR_DELIVERY_EV => "event delivery failed",
        KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON => "unexpected exit reason",
        _ => "unknown suberror",
    }
}

fn system_event_name(kind: u32) -> String {
    match kind {
        KVM_SYSTEM_EVENT_SHUTDOWN => "a shutdown".to_owned(),
        KVM_SYSTEM_EVENT_RESET => "a reset".to_owned(),
        KVM_SYSTEM_EVENT_CRASH => "a crash report".to_owned(),
        other => format!("system event {other}"),
    }
}
