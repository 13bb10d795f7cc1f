//! MSR writes the host may refuse. A host answers a value it will not take with #GP (KVM
//! does for reserved async PF bits); [`write_safe`] survives that, as Linux's `wrmsr_safe`
//! does with its exception table: its `wrmsr` sits at a known address, and the #GP handler
//! ([`recover`]) resumes a ring-0 fault there at a fixup that reports the refusal. Every
//! other #GP stays fatal.

use super::trap::TrapFrame;
use core::arch::global_asm;
use guest_kernel::apf::{MsrWrite, Refused};
use x86_64::structures::idt::ExceptionVector;

global_asm!(
    r#"
    .section .text
    /* u32 wrmsr_safe(u32 msr = edi, u64 value = rsi): 0 if written, 1 after a #GP. */
    .global wrmsr_safe
wrmsr_safe:
    mov ecx, edi
    mov eax, esi
    mov rdx, rsi
    shr rdx, 32
    .global wrmsr_safe_write
wrmsr_safe_write:
    wrmsr
    xor eax, eax
    ret
    .global wrmsr_safe_fixup
wrmsr_safe_fixup:
    mov eax, 1
    ret
"#
);

unsafe extern "C" {
    fn wrmsr_safe(msr: u32, value: u64) -> u32;
    fn wrmsr_safe_write();
    fn wrmsr_safe_fixup();
}

/// Writes `w`; the host's #GP comes back as [`Refused`] instead of stopping the kernel.
pub fn write_safe(w: MsrWrite) -> Result<(), Refused> {
    // SAFETY: callers write only KVM's async PF MSRs, which change no state the kernel's
    // memory safety depends on; a #GP is recovered by `recover`.
    match unsafe { wrmsr_safe(w.msr, w.value) } {
        0 => Ok(()),
        _ => Err(Refused(w)),
    }
}

/// If `frame` is the #GP of [`write_safe`]'s `wrmsr` (ring 0, exactly that instruction),
/// points it at the fixup and returns true: resume it. Anything else is left alone.
pub fn recover(frame: &mut TrapFrame) -> bool {
    let ours = frame.vector == ExceptionVector::GeneralProtection as u64
        && !frame.is_from_user()
        && frame.rip == wrmsr_safe_write as *const () as u64;
    if ours {
        frame.rip = wrmsr_safe_fixup as *const () as u64;
    }
    ours
}
