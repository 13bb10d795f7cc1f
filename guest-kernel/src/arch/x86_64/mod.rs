//! x86_64: PVH boot, ring-3 tasks, x2APIC timer, trap-gate system calls, isa-debug-exit.

mod apf;
mod apic;
mod boot;
mod context;
mod cpu;
mod entry;
mod exit;
mod gdt;
mod idt;
mod layout;
mod msr;
mod paging;
mod pic;
mod pit;
mod serial;
mod stack;
mod trap;
mod usercall;

pub use context::Context;
pub use cpu::{in_user_mode, missing_feature, timestamp};
pub use exit::exit;
pub use paging::Regions;
pub use serial::Serial;
pub use usercall::{divide_by_zero, syscall};

use core::ops::Range;
use guest_kernel::apf::{MsrWrite, Refused};

pub use apic::Calibration;

/// Kernel image ranges (code, read-only data, data + .bss).
pub fn image() -> (Range<u64>, Range<u64>, Range<u64>) {
    (layout::text(), layout::rodata(), layout::kernel_data())
}

/// `len` bytes of physical memory at `paddr` (identity-mapped below 1 GiB during boot).
///
/// # Safety
/// The range must be RAM the VMM initialised, not modified while the slice lives.
pub unsafe fn physical(paddr: u64, len: usize) -> &'static [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { core::slice::from_raw_parts(paddr as *const u8, len) }
}

/// Descriptor tables and exception handlers (which include the system-call gate).
pub fn init_cpu() {
    gdt::init();
    idt::init();
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

/// Whether the host offers KVM async page faults (CPUID), or why not.
pub fn detect_async_pf() -> Result<(), apf_pv::x86::Unavailable> {
    apf::detect()
}

/// Enables KVM async page faults (after [`detect_async_pf`]); the host may refuse (#GP).
pub fn enable_async_pf() -> Result<(), Refused> {
    apf::enable()
}

/// One async PF MSR write the host may refuse: an `apf-test` probe's.
pub fn write_async_pf_msr(w: MsrWrite) -> Result<(), Refused> {
    apf::write(w)
}

/// Guest-physical address of the scratch area `apf-test` probes register.
pub fn async_pf_probe_area() -> u64 {
    apf::probe_area()
}

/// Turns KVM async page faults off.
pub fn disable_async_pf() {
    apf::disable()
}

/// Starts preemption at `hz`.
pub fn start_timer(calibration: &Calibration, hz: u32) {
    apic::start_timer(calibration, hz, trap::TIMER_VECTOR);
}

/// Leaves boot code for good: runs whatever the scheduler picks.
pub fn enter(next: crate::kernel::Next) -> ! {
    trap::enter(next)
}
