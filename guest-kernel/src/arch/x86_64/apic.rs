//! Local APIC in x2APIC mode (MSR access, no MMIO mapping): the periodic preemption timer.

use super::pit;
use core::arch::x86_64::__cpuid;
use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const X2APIC_ID: u32 = 0x802;
/// The x2APIC EOI register (the page-ready path writes it with its ACK, see `apf`).
pub(super) const EOI_MSR: u32 = 0x80B;
const X2APIC_ICR: u32 = 0x830;
const X2APIC_SPURIOUS: u32 = 0x80F;
const X2APIC_LVT_TIMER: u32 = 0x832;
const X2APIC_TIMER_INITIAL: u32 = 0x838;
const X2APIC_TIMER_CURRENT: u32 = 0x839;
const X2APIC_TIMER_DIVIDE: u32 = 0x83E;
const SPURIOUS_APIC_ENABLE: u64 = 1 << 8;
/// ICR delivery modes and level (SDM Vol. 3, 11.6.1); x2APIC puts the destination in bits
/// 63..32.
const ICR_INIT: u64 = 0b101 << 8;
const ICR_STARTUP: u64 = 0b110 << 8;
const ICR_LEVEL_ASSERT: u64 = 1 << 14;
const ICR_DESTINATION_SHIFT: u32 = 32;
const LVT_MASKED: u64 = 1 << 16;
const LVT_TIMER_PERIODIC: u64 = 1 << 17;
/// Divide configuration value for "divide by 16".
const TIMER_DIVIDE_BY_16: u64 = 0b0011;
const TIMER_DIVISOR: u64 = 16;

fn write(msr: u32, value: u64) {
    // SAFETY: x2APIC registers; the caller checked x2APIC support before `init`.
    unsafe { Msr::new(msr).write(value) }
}

fn read(msr: u32) -> u64 {
    // SAFETY: as in `write`.
    unsafe { Msr::new(msr).read() }
}

/// Switches the local APIC to x2APIC mode and enables it, timer masked.
pub fn init(spurious_vector: u8) {
    let base = read(IA32_APIC_BASE);
    // xAPIC must be enabled before (or together with) x2APIC.
    write(IA32_APIC_BASE, base | APIC_BASE_ENABLE);
    write(IA32_APIC_BASE, base | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
    write(
        X2APIC_SPURIOUS,
        SPURIOUS_APIC_ENABLE | u64::from(spurious_vector),
    );
    write(X2APIC_LVT_TIMER, LVT_MASKED);
}

/// The TSC and APIC timer frequencies, and where they come from.
pub struct Calibration {
    pub tsc_khz: u64,
    /// APIC timer input clock, in kHz, before the divider.
    pub apic_khz: u64,
    source: &'static str,
}

impl core::fmt::Display for Calibration {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "TSC {} kHz, APIC timer {} kHz ({})",
            self.tsc_khz, self.apic_khz, self.source
        )
    }
}

/// CPUID leaf 1 ECX: running under a hypervisor.
const CPUID_HYPERVISOR: u32 = 1 << 31;
/// The hypervisor's first leaf (EAX: its highest leaf) and the timing leaf (VMware's, which
/// QEMU and our VMM fill): EAX = TSC kHz, EBX = APIC timer bus kHz.
const LEAF_HYPERVISOR: u32 = 0x4000_0000;
const LEAF_TIMING: u32 = 0x4000_0010;

/// The frequencies the host states in the timing leaf, if it has one. Preferred to a PIT
/// measurement, which an emulated PIT on a loaded host gets wrong by 10% and more.
fn from_timing_leaf() -> Option<Calibration> {
    if __cpuid(1).ecx & CPUID_HYPERVISOR == 0 || __cpuid(LEAF_HYPERVISOR).eax < LEAF_TIMING {
        return None;
    }
    let timing = __cpuid(LEAF_TIMING);
    (timing.eax != 0 && timing.ebx != 0).then(|| Calibration {
        tsc_khz: u64::from(timing.eax),
        apic_khz: u64::from(timing.ebx),
        source: "from the host",
    })
}

/// The TSC and APIC timer frequencies: from the host's timing leaf, or measured over one
/// PIT window; `None` without either.
pub fn calibrate() -> Option<Calibration> {
    from_timing_leaf().or_else(measure)
}

/// Measures the TSC and the APIC timer clock over one PIT window; `None` without a PIT.
fn measure() -> Option<Calibration> {
    write(X2APIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    write(X2APIC_TIMER_INITIAL, u64::from(u32::MAX));
    let window = pit::measure(|| {
        (
            super::cpu::timestamp(),
            u64::from(u32::MAX) - read(X2APIC_TIMER_CURRENT),
        )
    });
    write(X2APIC_TIMER_INITIAL, 0);
    let window = window?;
    let khz = |ticks| guest_kernel::clock::khz_from_window(ticks, window.ns).unwrap_or(0);
    Some(Calibration {
        tsc_khz: khz(window.end.0 - window.start.0),
        apic_khz: khz(window.end.1 - window.start.1) * TIMER_DIVISOR,
        source: "measured against the PIT",
    })
}

/// Starts the periodic timer at `hz` on `vector`.
pub fn start_timer(calibration: &Calibration, hz: u32, vector: u8) {
    let count = (calibration.apic_khz * 1000 / TIMER_DIVISOR / u64::from(hz)).max(1);
    write(X2APIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    write(X2APIC_LVT_TIMER, LVT_TIMER_PERIODIC | u64::from(vector));
    write(X2APIC_TIMER_INITIAL, count.min(u64::from(u32::MAX)));
}

pub fn end_of_interrupt() {
    write(EOI_MSR, 0);
}

/// This CPU's x2APIC ID.
pub fn id() -> u32 {
    read(X2APIC_ID) as u32
}

/// Sends the fixed interrupt `vector` to the CPU with x2APIC ID `apic_id`.
pub fn send_fixed(apic_id: u32, vector: u8) {
    // A write to the x2APIC's ICR is not ordered after earlier stores (Linux's
    // `weak_wrmsr_fence`): without the fence the target could take the interrupt before it
    // sees what the sender stored for it.
    // SAFETY: a fence has no other effect.
    unsafe { core::arch::asm!("mfence", "lfence", options(nostack, preserves_flags)) };
    write(
        X2APIC_ICR,
        u64::from(apic_id) << ICR_DESTINATION_SHIFT | ICR_LEVEL_ASSERT | u64::from(vector),
    );
}

/// Sends INIT to the CPU with x2APIC ID `apic_id`: it waits for a startup IPI.
pub fn send_init(apic_id: u32) {
    write(
        X2APIC_ICR,
        u64::from(apic_id) << ICR_DESTINATION_SHIFT | ICR_INIT | ICR_LEVEL_ASSERT,
    );
}

/// Sends a startup IPI: the CPU starts in real mode at `page` * 4 KiB.
pub fn send_startup(apic_id: u32, page: u8) {
    write(
        X2APIC_ICR,
        u64::from(apic_id) << ICR_DESTINATION_SHIFT
            | ICR_STARTUP
            | ICR_LEVEL_ASSERT
            | u64::from(page),
    );
}
