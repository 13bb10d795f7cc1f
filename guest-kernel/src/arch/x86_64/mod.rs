//! x86_64: PVH boot, ring-3 tasks, x2APIC timer, trap-gate system calls, isa-debug-exit.

mod apf;
mod apic;
mod boot;
mod boot_info;
mod context;
mod cpu;
mod cpu_local;
mod entry;
mod exit;
mod gdt;
mod idt;
mod msr;
mod paging;
mod pic;
mod pit;
mod serial;
mod smp;
mod trap;
mod usercall;

pub use boot_info::boot_info;
pub use context::Context;
pub use cpu::{in_user_mode, missing_feature, timestamp};
pub use cpu_local::CpuLocal;
pub use exit::exit;
pub use gdt::cpu_index;
pub use serial::Serial;
pub use usercall::{divide_by_zero, syscall};

use super::Regions;
use crate::println;
use guest_kernel::apf::{DISABLE, Outcome, Probe, Refused};
use guest_kernel::cmdline::ApfTest;

pub use apic::Calibration;

/// Where guest-physical RAM starts (the PC memory map starts at 0).
pub const RAM_START: u64 = 0;

/// The boot CPU's descriptor tables and exception handlers (which include the
/// system-call gate).
pub fn init_cpu() {
    gdt::init(0);
    idt::init();
}

/// Puts the code other CPUs start in where their startup IPI points; before
/// [`init_paging`], whose tables no longer map it.
pub fn prepare_cpus() {
    smp::install_trampoline();
}

/// Why another CPU did not start.
pub type CpuStartError = smp::NotStarted;

/// Starts CPU `cpu` on `stack_top` running `main` (with its index) and waits until it is
/// online (see [`cpu_online`]); `tsc_khz` times the wait.
pub fn start_cpu(
    cpu: usize,
    stack_top: u64,
    tsc_khz: u64,
    main: fn(usize) -> !,
) -> Result<(), CpuStartError> {
    smp::start(cpu, stack_top, tsc_khz, main)
}

/// Called by a started CPU once it no longer needs what the boot CPU handed it.
pub fn cpu_online() {
    smp::online()
}

/// Stops this CPU for good: interrupts masked, halted (a CPU whose tasks are done, while
/// others still run theirs).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Builds the final page tables.
pub fn init_paging(regions: &Regions) {
    paging::init(regions);
}

/// Silences the legacy PICs, enables the local APIC and measures the TSC and APIC timer
/// clocks; `None` if there is no reference clock to measure them against.
pub fn init_interrupts() -> Option<Calibration> {
    pic::disable();
    apic::init(trap::SPURIOUS_VECTOR);
    apic::calibrate()
}

/// Whether the host offers KVM async page faults (CPUID): proof that it does, or why not.
pub fn detect_async_pf() -> Result<AsyncPf, apf_pv::x86::Unavailable> {
    apf::detect().map(|()| AsyncPf(()))
}

/// The host offers async PF (only [`detect_async_pf`] makes one).
pub struct AsyncPf(());

impl AsyncPf {
    /// Makes `test`'s deliberately wrong MSR write (`apf-test`) and reports what the host
    /// did with it. If the host took it, the probe goes on as the plan says and ends
    /// disabled, so the real enable starts from a clean state either way.
    pub fn probe(&self, test: ApfTest) -> Outcome {
        let probe = Probe::new(test, apf::probe_area());
        let result = apf::write(probe.tested);
        match result {
            Ok(()) => println!("apf-test: {}: accepted", probe.tested),
            Err(refused) => println!("apf-test: {refused}"),
        }
        if result.is_ok() {
            for w in probe.enable.into_iter().chain([DISABLE]) {
                if let Err(refused) = apf::write(w) {
                    println!("apf-test: then {refused}");
                }
            }
        }
        Outcome::from(&result)
    }
}

/// Enables KVM async page faults (after [`detect_async_pf`]); the host may refuse (#GP).
pub fn enable_async_pf() -> Result<(), Refused> {
    apf::enable()
}

/// Turns KVM async page faults off.
pub fn disable_async_pf() {
    apf::disable()
}

/// Starts preemption at `hz`.
pub fn start_timer(calibration: &Calibration, hz: u32) {
    apic::start_timer(calibration, hz, trap::TIMER_VECTOR);
}

/// Interrupts CPU `cpu` (APIC ID `cpu`) to take the wakes posted to its inbox.
pub fn send_wake(cpu: usize) {
    apic::send_fixed(cpu as u32, trap::WAKE_VECTOR);
}

/// Leaves boot code for good: runs whatever the scheduler picks.
pub fn enter(next: crate::kernel::Next) -> ! {
    trap::enter(next)
}
