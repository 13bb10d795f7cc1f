//! aarch64 (QEMU `virt`, GICv3): an EL1 kernel with EL0 tasks, the generic timer for
//! preemption, `svc` system calls, a PL011 console and a semihosting exit.
//!
//! The interface is the x86_64 one, item for item: [`boot_info`], [`RAM_START`],
//! [`Context`], [`Regions`], [`Serial`], [`Calibration`], [`init_cpu`], [`init_paging`],
//! [`init_interrupts`], [`start_timer`], [`enter`], [`exit`], [`timestamp`],
//! [`missing_feature`], [`in_user_mode`], [`syscall`], [`divide_by_zero`] and the async PF
//! pair (not available here yet).

mod boot;
mod boot_info;
mod context;
mod cpu;
mod entry;
mod exception;
mod exit;
mod gic;
mod paging;
mod platform;
mod serial;
mod timer;
mod trap;
mod usercall;

pub use boot_info::boot_info;
pub use context::Context;
pub use cpu::{in_user_mode, missing_feature, timestamp};
pub use exit::exit;
pub use paging::Regions;
pub use platform::RAM_START;
pub use serial::Serial;
pub use timer::Calibration;
pub use usercall::{divide_by_zero, syscall};

use core::fmt;
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
    Some(timer::calibration())
}

/// Why async page faults cannot be enabled.
#[derive(Debug)]
pub struct Unavailable;

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the aarch64 guest has no async PF protocol yet")
    }
}

/// Async PF needs a host protocol (SDEI and a PPI from our EL2 host) the aarch64 guest does
/// not speak yet, so `apf=on` stops at detection.
pub fn detect_async_pf() -> Result<AsyncPf, Unavailable> {
    Err(Unavailable)
}

/// Proof that the host offers async PF: none can exist on aarch64 yet.
pub enum AsyncPf {}

impl AsyncPf {
    pub fn probe(&self, _test: ApfTest) -> Outcome {
        match *self {}
    }
}

/// Never reached: [`detect_async_pf`] fails first.
pub fn enable_async_pf() -> Result<(), Unavailable> {
    Err(Unavailable)
}

/// Nothing to turn off: async PF is never on.
pub fn disable_async_pf() {}

/// Starts preemption at `hz`.
pub fn start_timer(calibration: &Calibration, hz: u32) {
    timer::start(calibration, hz);
    gic::enable_ppi(timer::INTID);
}

/// Leaves boot code for good: runs whatever the scheduler picks.
pub fn enter(next: crate::kernel::Next) -> ! {
    trap::enter(next)
}
