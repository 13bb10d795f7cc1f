//! Numbers of the guest ABI, named as in Linux's `asm/kvm_para.h`.

/// First CPUID leaf scanned for the KVM signature.
pub const KVM_CPUID_SIGNATURE: u32 = 0x4000_0000;
/// Last CPUID leaf scanned for the KVM signature: the base moves up when the VMM also
/// exposes other hypervisor leaves (e.g. Hyper-V's at 0x4000_0000).
pub const KVM_CPUID_SIGNATURE_LAST: u32 = 0x4000_FF00;
/// Distance between candidate base leaves.
pub const KVM_CPUID_BASE_STEP: u32 = 0x100;
/// The feature leaf relative to the base (`KVM_CPUID_FEATURES` = base + 1).
pub const KVM_CPUID_FEATURES_OFFSET: u32 = 1;

/// "KVMK" of "KVMKVMKVM\0\0\0" in EBX of the base leaf.
pub const KVM_SIGNATURE_EBX: u32 = 0x4b4d_564b;
/// "VMKV" of the signature, in ECX.
pub const KVM_SIGNATURE_ECX: u32 = 0x564b_4d56;
/// "M\0\0\0" of the signature, in EDX.
pub const KVM_SIGNATURE_EDX: u32 = 0x0000_004d;

/// Feature bit (EAX of the feature leaf): `MSR_KVM_ASYNC_PF_EN` exists.
pub const KVM_FEATURE_ASYNC_PF: u32 = 4;
/// Feature bit: delivery as a #PF VM-exit to a nested hypervisor is allowed (unused: this
/// guest hosts no guests, but it is part of the EN register's contract).
pub const KVM_FEATURE_ASYNC_PF_VMEXIT: u32 = 10;
/// Feature bit: interrupt-based page-ready (`MSR_KVM_ASYNC_PF_INT`/`_ACK`) exists; without
/// it the host delivers nothing, so it is required.
pub const KVM_FEATURE_ASYNC_PF_INT: u32 = 14;

/// Enables async PF and holds the shared area's physical address.
pub const MSR_KVM_ASYNC_PF_EN: u32 = 0x4b56_4d02;
/// Bits 7:0 are the page-ready interrupt vector.
pub const MSR_KVM_ASYNC_PF_INT: u32 = 0x4b56_4d06;
/// Written with [`ACK`] after a page-ready is consumed.
pub const MSR_KVM_ASYNC_PF_ACK: u32 = 0x4b56_4d07;

/// EN bit 0: async PF on for this vCPU.
pub const KVM_ASYNC_PF_ENABLED: u64 = 1 << 0;
/// EN bit 1: deliver not-present at CPL0 too (by default only for CPL≠0).
pub const KVM_ASYNC_PF_SEND_ALWAYS: u64 = 1 << 1;
/// EN bit 2: with a nested guest running, deliver as a #PF VM-exit to this (L1) guest.
pub const KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT: u64 = 1 << 2;
/// EN bit 3: page-ready by interrupt; without it async PF is effectively off.
pub const KVM_ASYNC_PF_DELIVERY_AS_INT: u64 = 1 << 3;
/// EN bits 5:4 are reserved: a non-zero value raises #GP.
pub const KVM_ASYNC_PF_RESERVED_MASK: u64 = 0x30;
/// EN bits 5:0 hold flags, so the shared area is aligned to this.
pub const KVM_ASYNC_PF_AREA_ALIGN: u64 = 64;
/// `MSR_KVM_ASYNC_PF_EN` value that turns async PF off: KVM drops its queue and sends no
/// more events, so the guest must release its own waiters.
pub const KVM_ASYNC_PF_DISABLED: u64 = 0;

/// Bit of the area's `flags`: this #PF is a "page not present" and CR2 holds its token.
pub const KVM_PV_REASON_PAGE_NOT_PRESENT: u32 = 1;

/// Value for [`MSR_KVM_ASYNC_PF_ACK`]: the page-ready was consumed, send the next.
pub const ACK: u64 = 1;
