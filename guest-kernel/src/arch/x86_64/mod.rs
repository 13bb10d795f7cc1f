//! x86_64: PVH boot, ring-3 tasks, x2APIC timer, trap-gate system calls, isa-debug-exit.

mod apf;
mod apic;
mod boot;
mod boot_info;
mod context;
mod cpu;
mod entry;
mod exit;
mod gdt;
mod idt;
mod paging;
mod pic;
mod pit;
mod serial;
mod trap;
mod usercall;

pub use boot_info::boot_info;
pub use context::Context;
pub use cpu::{in_user_mode, missing_feature, timestamp};
pub use exit::exit;
pub use paging::Regions;
pub use serial::Serial;
pub use usercall::{divide_by_zero, syscall};

pub use apic::Calibration;

/// Where guest-physical RAM starts (the PC memory map starts at 0).
pub const RAM_START: u64 = 0;

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

/// Enables KVM async page faults, or says why they are unavailable.
pub fn enable_async_pf() -> Result<(), apf_pv::x86::Unavailable> {
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

/// Leaves boot code for good: runs whatever the scheduler picks.
pub fn enter(next: crate::kernel::Next) -> ! {
    trap::enter(next)
}
