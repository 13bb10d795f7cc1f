//! The KVM set-up that lets this VMM play async PF's host part (host-facts.md, "Userspace-
//! driven async PF"): without HLT exits KVM does no halt-based async PF of its own, so each
//! fault on a lazy page is taken by its vCPU's thread, which the userfaultfd message names;
//! exception payloads let the VMM inject a #PF with its CR2; and the MSR filter sends the
//! guest's async PF MSR accesses to the VMM instead of KVM.

use apf_pv::x86::{MSR_KVM_ASYNC_PF_ACK, MSR_KVM_ASYNC_PF_EN, MSR_KVM_ASYNC_PF_INT};
use kvm_bindings::{
    KVM_CAP_EXCEPTION_PAYLOAD, KVM_CAP_X86_DISABLE_EXITS, KVM_CAP_X86_USER_SPACE_MSR,
    KVM_MSR_EXIT_REASON_FILTER, KVM_X86_DISABLE_EXITS_HLT, kvm_enable_cap,
};
use kvm_ioctls::{MsrFilterDefaultAction, MsrFilterRange, MsrFilterRangeFlags, VmFd};

/// The filtered range: KVM's paravirtual MSRs from 0x4b564d00, one bitmap byte's worth.
const KVM_MSR_BASE: u32 = 0x4b56_4d00;
const FILTERED_MSRS: u32 = 8;

#[derive(Debug, thiserror::Error)]
#[error("cannot {what} (needed by --apf vmm and adaptive)")]
pub struct Error {
    what: &'static str,
    #[source]
    source: kvm_ioctls::Error,
}

/// Enables what the VMM's async PF host needs; call before creating the irqchip and vCPUs.
pub fn enable(vm: &VmFd) -> Result<(), Error> {
    let step = |what| move |source| Error { what, source };
    enable_cap(vm, KVM_CAP_X86_DISABLE_EXITS, KVM_X86_DISABLE_EXITS_HLT)
        .map_err(step("disable HLT exits"))?;
    enable_cap(vm, KVM_CAP_EXCEPTION_PAYLOAD, 1).map_err(step("enable exception payloads"))?;
    enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER)
        .map_err(step("enable MSR exits to userspace"))?;
    let bitmap = [allowed_bitmap()];
    let range = MsrFilterRange {
        flags: MsrFilterRangeFlags::READ | MsrFilterRangeFlags::WRITE,
        base: KVM_MSR_BASE,
        msr_count: FILTERED_MSRS,
        bitmap: &bitmap,
    };
    vm.set_msr_filter(MsrFilterDefaultAction::ALLOW, &[range])
        .map_err(step("filter the async PF MSRs"))
}

fn enable_cap(vm: &VmFd, cap: u32, arg: u32) -> Result<(), kvm_ioctls::Error> {
    let mut enable = kvm_enable_cap {
        cap,
        ..Default::default()
    };
    enable.args[0] = u64::from(arg);
    vm.enable_cap(&enable)
}

/// The filter's bitmap for the range: 1 lets KVM handle the MSR, 0 makes its accesses exit.
fn allowed_bitmap() -> u8 {
    [
        MSR_KVM_ASYNC_PF_EN,
        MSR_KVM_ASYNC_PF_INT,
        MSR_KVM_ASYNC_PF_ACK,
    ]
    .iter()
    .fold(u8::MAX, |bitmap, msr| bitmap & !(1 << (msr - KVM_MSR_BASE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_async_pf_msrs_exit() {
        // 0x4b564d02, 06 and 07 exit; the clock MSRs and the rest stay with KVM.
        assert_eq!(allowed_bitmap(), 0b0011_1011);
    }
}
