//! CPU feature checks the kernel depends on.

use core::arch::x86_64::{__cpuid, _rdtsc};

const CPUID_FEATURES: u32 = 1;
const ECX_X2APIC: u32 = 1 << 21;

/// The reason the kernel cannot run on this CPU, if any.
pub fn missing_feature() -> Option<&'static str> {
    let leaf1 = __cpuid(CPUID_FEATURES);
    (leaf1.ecx & ECX_X2APIC == 0).then_some("x2APIC (CPUID.1:ECX bit 21)")
}

/// TSC now.
pub fn timestamp() -> u64 {
    // SAFETY: `rdtsc` has no side effects; CR4.TSD is clear, so it also works in ring 3.
    unsafe { _rdtsc() }
}

/// True when running in ring 3 (the panic handler needs to know which side it is on).
pub fn in_user_mode() -> bool {
    use x86_64::instructions::segmentation::{CS, Segment};
    CS::get_reg().rpl() == x86_64::PrivilegeLevel::Ring3
}
