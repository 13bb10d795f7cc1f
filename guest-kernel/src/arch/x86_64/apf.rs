//! KVM async page faults on x86: the per-vCPU shared area and the two events.
//!
//! "Page not present" arrives as a #PF whose shared-area flag is set, with the token in CR2;
//! "page ready" arrives as an interrupt on [`READY_VECTOR`] with the token in the area. The
//! protocol logic is `apf_pv::x86`; this module only touches the hardware. Writes a host
//! may refuse go through [`msr::write_safe`], so a refusal is reported, not fatal.

use super::cpu_local::CpuLocal;
use super::{apic, msr};
use apf_pv::waiters::{BROADCAST, Token};
use apf_pv::x86::{self, CpuidResult, PageFault, Unavailable};
use core::arch::x86_64::__cpuid;
use core::cell::UnsafeCell;
use guest_kernel::apf::{MsrWrite, Refused};
use x86_64::registers::model_specific::Msr;

/// The page-ready vector: Linux's HYPERVISOR_CALLBACK_VECTOR, above the kernel's others.
pub const READY_VECTOR: u8 = 0xF3;

/// The scratch area `apf-test` registers instead of a CPU's area: `flags` and `token` as in
/// the UAPI, with the token slot never free, so the host delivers no page-ready into it.
#[repr(C, align(64))]
struct ProbeArea(UnsafeCell<[u32; 2]>);

// SAFETY: only the host writes it; the kernel just takes its address.
unsafe impl Sync for ProbeArea {}

const _: () = assert!(align_of::<ProbeArea>() as u64 == x86::KVM_ASYNC_PF_AREA_ALIGN);

/// Any non-zero token keeps the slot busy.
static PROBE_AREA: ProbeArea = ProbeArea(UnsafeCell::new([0, BROADCAST]));

/// Guest-physical address of the probe's scratch area (memory is identity-mapped).
pub fn probe_area() -> u64 {
    PROBE_AREA.0.get() as u64
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: KVM's async PF MSRs, written only after `detect` found them advertised.
    unsafe { Msr::new(msr).write(value) }
}

/// Whether the KVM CPUID leaves advertise async PF with interrupt-based page-ready.
pub fn detect() -> Result<(), Unavailable> {
    x86::detect(|leaf| {
        let r = __cpuid(leaf);
        CpuidResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    })
    .map(|_| ())
}

/// One async PF MSR write the host may refuse (#GP), e.g. a probe's deliberately bad one.
pub fn write(w: MsrWrite) -> Result<(), Refused> {
    msr::write_safe(w)
}

/// Turns async PF on for the running CPU (after [`detect`]): the vector first (the spec's order: an enable
/// without it could deliver the broadcast that enabling queues on vector 0), then the area
/// with ENABLED | DELIVERY_AS_INT. Without SEND_ALWAYS: only ring-3 faults become async.
/// The host may refuse either write; async PF is then off.
pub fn enable() -> Result<(), Refused> {
    let gpa = crate::kernel::this_cpu().arch.apf_area_address();
    let value = x86::enable_value(gpa, false).expect("the area is 64-byte aligned");
    write(MsrWrite {
        msr: x86::MSR_KVM_ASYNC_PF_INT,
        value: u64::from(READY_VECTOR),
    })?;
    write(MsrWrite {
        msr: x86::MSR_KVM_ASYNC_PF_EN,
        value,
    })
}

/// Turns async PF off for the running CPU; no events arrive on it afterwards.
pub fn disable() {
    wrmsr(x86::MSR_KVM_ASYNC_PF_EN, x86::KVM_ASYNC_PF_DISABLED);
}

/// Whether a #PF on `cpu` (the running CPU) is KVM's "page not present" (consuming the
/// flag) or an ordinary fault.
#[inline(always)]
pub fn classify(cpu: &CpuLocal, cr2: u64) -> PageFault {
    // SAFETY: the running CPU's own area (in its `CpuLocal`), used by its handlers with
    // interrupts off, so accesses never overlap; KVM's own writes are why the area's
    // accessors are volatile.
    x86::classify(unsafe { &mut *cpu.apf_area() }, cr2)
}

/// The token of a page-ready interrupt, with the interrupt ended (EOI) and acknowledged
/// so KVM can send the next one; `None` for a spurious interrupt (empty token slot), which
/// the caller ends itself.
#[inline(always)]
pub fn take_ready(cpu: &CpuLocal) -> Option<Token> {
    // SAFETY: as in `classify`.
    let token = x86::take_ready_token(unsafe { &mut *cpu.apf_area() })?;
    // SAFETY: the x2APIC's EOI register, then KVM's ACK MSR (written only after `detect`
    // found it advertised and the slot is free, see `take_ready_token`). One block, so the
    // registers of the second write are set with one instruction: both take 0 in EDX, and
    // EOI takes 0 in EAX, ACK 1.
    unsafe {
        core::arch::asm!(
            "wrmsr",
            "mov ecx, {ack_msr}",
            "inc eax",
            "wrmsr",
            ack_msr = const x86::MSR_KVM_ASYNC_PF_ACK,
            inout("ecx") apic::EOI_MSR => _,
            inout("eax") 0u32 => _,
            in("edx") 0u32,
            options(nostack, preserves_flags)
        )
    };
    const _: () = assert!(x86::ACK == 1, "inc eax makes the ACK value");
    Some(token)
}
