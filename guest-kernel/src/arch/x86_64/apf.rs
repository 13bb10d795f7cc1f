//! KVM async page faults on x86: the per-vCPU shared area and the two events.
//!
//! "Page not present" arrives as a #PF whose shared-area flag is set, with the token in CR2;
//! "page ready" arrives as an interrupt on [`READY_VECTOR`] with the token in the area. The
//! protocol logic is `apf_pv::x86`; this module only touches the hardware.

use apf_pv::waiters::Token;
use apf_pv::x86::{self, ApfArea, CpuidResult, PageFault, Unavailable};
use core::arch::x86_64::__cpuid;
use core::cell::UnsafeCell;
use x86_64::registers::model_specific::Msr;

/// The page-ready vector: Linux's HYPERVISOR_CALLBACK_VECTOR, above the kernel's others.
pub const READY_VECTOR: u8 = 0xF3;

/// The shared area KVM writes `flags` and `token` into. One vCPU, so one area.
struct Area(UnsafeCell<ApfArea>);

// SAFETY: only the one CPU touches it, in handlers that run with interrupts off.
unsafe impl Sync for Area {}

static AREA: Area = Area(UnsafeCell::new(ApfArea::new()));

fn area() -> &'static mut ApfArea {
    // SAFETY: handlers run with interrupts off on the one CPU, so accesses never overlap;
    // KVM's own writes are why the area's accessors are volatile.
    unsafe { &mut *AREA.0.get() }
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: KVM's async PF MSRs, written only after `detect` found them advertised.
    unsafe { Msr::new(msr).write(value) }
}

/// Turns async PF on: the vector first (the spec's order: an enable without it could
/// deliver the broadcast that enabling queues on vector 0), then the area with
/// ENABLED | DELIVERY_AS_INT. Without SEND_ALWAYS: only ring-3 faults become async.
pub fn enable() -> Result<(), Unavailable> {
    x86::detect(|leaf| {
        let r = __cpuid(leaf);
        CpuidResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    })?;
    let gpa = AREA.0.get() as u64;
    let value = x86::enable_value(gpa, false).expect("the area is 64-byte aligned");
    wrmsr(x86::MSR_KVM_ASYNC_PF_INT, u64::from(READY_VECTOR));
    wrmsr(x86::MSR_KVM_ASYNC_PF_EN, value);
    Ok(())
}

/// Turns async PF off; no events arrive afterwards.
pub fn disable() {
    wrmsr(x86::MSR_KVM_ASYNC_PF_EN, x86::KVM_ASYNC_PF_DISABLED);
}

/// Whether a #PF is KVM's "page not present" (consuming the flag) or an ordinary fault.
pub fn classify(cr2: u64) -> PageFault {
    x86::classify(area(), cr2)
}

/// The token of a page-ready interrupt, acknowledged so KVM can send the next one; `None`
/// for a spurious interrupt (empty token slot).
pub fn take_ready() -> Option<Token> {
    let token = x86::take_ready_token(area())?;
    wrmsr(x86::MSR_KVM_ASYNC_PF_ACK, x86::ACK);
    Some(token)
}
