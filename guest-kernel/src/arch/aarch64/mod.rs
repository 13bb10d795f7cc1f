//! aarch64 (QEMU `virt`, GICv3): an EL1 kernel with EL0 tasks, the generic timer for
//! preemption, `svc` system calls, a PL011 console and a semihosting exit.
//!
//! The interface is the x86_64 one, item for item: [`boot_info`], [`RAM_START`],
//! [`Context`], [`CpuLocal`], [`Serial`], [`Calibration`], [`init_cpu`], [`init_paging`] (of the shared
//! [`Regions`]), [`init_interrupts`], [`start_timer`], [`enter`], [`exit`], [`timestamp`],
//! [`missing_feature`], [`in_user_mode`], [`syscall`], [`divide_by_zero`] and async PF
//! ([`detect_async_pf`], [`enable_async_pf`], [`disable_async_pf`]) and CPUs
//! ([`cpu_index`], [`prepare_cpus`], [`start_cpu`], [`cpu_online`], [`send_wake`],
//! [`halt_forever`]).
//!
//! Several CPUs: the boot CPU starts each other with PSCI `CPU_ON` (`smp`); each has its
//! redistributor, timer, vectors and idle stack. Async PF stays CPU 0's: its control block
//! and SDEI state are per boot (no SMP host offers arm64 async PF: our EL2 host runs one
//! vCPU), so another CPU's enable is refused with that reason and it runs without.

mod apf;
mod boot;
mod boot_info;
mod context;
mod cpu;
mod cpu_local;
mod entry;
mod exception;
mod exit;
mod gic;
mod paging;
mod platform;
mod serial;
mod smp;
mod timer;
mod trap;
mod usercall;

pub use boot_info::boot_info;
pub use context::Context;
pub use cpu::{in_user_mode, missing_feature, timestamp};
pub use cpu_local::CpuLocal;
pub use exit::exit;
pub use platform::RAM_START;
pub use serial::Serial;
pub use smp::cpu_index;
pub use timer::Calibration;
pub use usercall::{divide_by_zero, syscall};

use super::Regions;
use crate::println;
use guest_kernel::apf::Outcome;
use guest_kernel::cmdline::ApfTest;

/// Nothing left to set up: the entry code installed the exception vectors before the
/// first Rust code could fault.
pub fn init_cpu() {}

/// Builds the final translation tables.
pub fn init_paging(regions: &Regions) {
    paging::init(regions);
}

/// Brings up the GIC (distributor, this CPU's redistributor and CPU interface) and reads the
/// generic timer's frequency, which firmware (here QEMU) sets: nothing needs measuring.
pub fn init_interrupts() -> Option<Calibration> {
    gic::init();
    gic::enable_private(trap::WAKE_SGI);
    Some(timer::calibration())
}

/// Whether the host offers arm64 async page faults (SMCCC discovery, SDEI): proof that it
/// does, with both notifications set up, or why not.
pub fn detect_async_pf() -> Result<AsyncPf, apf::Unavailable> {
    apf::prepare().map(|()| AsyncPf(()))
}

/// The host offers async PF (only [`detect_async_pf`] makes one).
pub struct AsyncPf(());

impl AsyncPf {
    /// `apf-test`: `bad-area` is an `ASYNC_PF_ENABLE` with a control block outside RAM,
    /// which the host must refuse (an accepted one is turned off again); `vector:N` is x86's
    /// `MSR_KVM_ASYNC_PF_INT`, which has no arm64 counterpart (the host names the PPI), so
    /// nothing is written and it is reported as refused.
    pub fn probe(&self, test: ApfTest) -> Outcome {
        match test {
            ApfTest::BadArea => match apf::enable_outside_ram() {
                Ok(()) => {
                    println!("apf-test: ENABLE with a block outside RAM: accepted");
                    apf::disable();
                    Outcome::Accepted
                }
                Err(refused) => {
                    println!("apf-test: block outside RAM: {refused}");
                    Outcome::Refused
                }
            },
            ApfTest::Int(value) => {
                println!("apf-test: vector:{value:#x} is an x86 MSR write; none on aarch64");
                Outcome::Refused
            }
        }
    }
}

/// Enables async PF on the running CPU (after [`detect_async_pf`]); the host may refuse,
/// and any CPU but the boot CPU is refused here (see the module comment).
pub fn enable_async_pf() -> Result<(), apf::Refused> {
    if cpu_index() != 0 {
        return Err(apf::Refused::NotBootCpu);
    }
    apf::enable()
}

/// Turns async PF off.
pub fn disable_async_pf() {
    apf::disable()
}

/// Starts preemption at `hz`.
pub fn start_timer(calibration: &Calibration, hz: u32) {
    timer::start(calibration, hz);
    gic::enable_private(timer::INTID);
}

/// Interrupts CPU `cpu` to take the wakes posted to its inbox.
pub fn send_wake(cpu: usize) {
    gic::send_sgi(cpu, trap::WAKE_SGI);
}

/// Leaves boot code for good: runs whatever the scheduler picks.
pub fn enter(next: crate::kernel::Next) -> ! {
    trap::enter(next)
}

/// Nothing to put in place: a CPU that `CPU_ON` starts needs nothing below the kernel.
pub fn prepare_cpus() {}

/// Starts CPU `cpu` on `stack_top` to run `main`, and waits until it is online (see
/// `smp`); `tsc_khz` is the counter's frequency.
pub fn start_cpu(
    cpu: usize,
    stack_top: u64,
    tsc_khz: u64,
    main: fn(usize) -> !,
) -> Result<(), smp::StartError> {
    smp::start(cpu, stack_top, tsc_khz, main)
}

/// What a started CPU's `main` calls once set up: the boot CPU may start the next one.
pub fn cpu_online() {
    smp::online()
}

/// Stops this CPU for good: interrupts masked, waiting forever.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: masks interrupts at EL1; nothing runs on this CPU afterwards.
        unsafe { core::arch::asm!("msr daifset, #0xf", "wfi", options(nomem, nostack)) };
    }
}
