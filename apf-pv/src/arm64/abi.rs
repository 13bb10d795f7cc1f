//! Numbers of the v4 guest ABI (`arm64-apf-sdei-abi.md` §2 and §6), named as in Gavin
//! Shan's never-merged series and Linux's `include/linux/arm-smccc.h`.

use sdei::smccc::{Convention, Owner, fast_call_id};

/// `ARM_SMCCC_VENDOR_HYP_CALL_UID` (§2.1): the hypervisor's UID in `x0..x3`.
pub const ARM_SMCCC_VENDOR_HYP_CALL_UID: u32 =
    fast_call_id(Convention::Smc32, Owner::VendorHypervisor, 0xFF01);
/// `ARM_SMCCC_VENDOR_HYP_KVM_FEATURES` (§2.1): bitmap of KVM's vendor calls in `x0`.
pub const ARM_SMCCC_VENDOR_HYP_KVM_FEATURES: u32 =
    fast_call_id(Convention::Smc32, Owner::VendorHypervisor, 0);
/// KVM's UID words in `x0..x3` (`ARM_SMCCC_VENDOR_HYP_UID_KVM_REG_0..3`).
pub const KVM_UID: [u32; 4] = [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];

/// KVM vendor function and feature bit of async PF in v4 (`ARM_SMCCC_KVM_FUNC_ASYNC_PF`).
/// Later pKVM kernels use 2 for `HYP_MEMINFO`, so a set bit alone proves nothing (§0).
pub const ARM_SMCCC_KVM_FUNC_ASYNC_PF: u16 = 2;
/// The async PF hypercall (§2.2): `x1` = sub-function, `x2`/`x3` = arguments.
pub const ASYNC_PF_FUNC_ID: u32 = fast_call_id(
    Convention::Smc32,
    Owner::VendorHypervisor,
    ARM_SMCCC_KVM_FUNC_ASYNC_PF,
);

/// Sub-function: protocol version in `x1` (see [`ASYNC_PF_VERSION_1_0`]).
pub const ASYNC_PF_VERSION: u64 = 0;
/// Sub-function: most tokens outstanding per vCPU (`ASYNC_PF_PER_VCPU`, 64).
pub const ASYNC_PF_SLOTS: u64 = 1;
/// Sub-function: the SDEI event number of "page not present" for this vCPU.
pub const ASYNC_PF_SDEI: u64 = 2;
/// Sub-function: the PPI INTID of "page ready" for this vCPU.
pub const ASYNC_PF_IRQ: u64 = 3;
/// Sub-function: set the control value, split over `x2` (bits 31:0) and `x3` (63:32).
pub const ASYNC_PF_ENABLE: u64 = 4;
/// Sub-function: a page-ready was consumed: lower the PPI, send the next.
pub const ASYNC_PF_IRQ_ACK: u64 = 5;

/// The only version v4 hosts report: 1.0.0.
pub const ASYNC_PF_VERSION_1_0: u64 = 0x01_0000;
/// Version bits 23:16: major; bits 15:8 minor, 7:0 revision.
pub const ASYNC_PF_VERSION_MAJOR_SHIFT: u32 = 16;
/// Version bits 15:8: minor.
pub const ASYNC_PF_VERSION_MINOR_SHIFT: u32 = 8;
/// Version bits 63:24 must be zero: anything else is not this protocol (e.g. pKVM's
/// function 2 answering).
pub const ASYNC_PF_VERSION_RESERVED_MASK: u64 = !0xff_ffff;

/// ENABLE bit 0: async PF on for this vCPU.
pub const KVM_ASYNC_PF_ENABLED: u64 = 1 << 0;
/// ENABLE bit 1: send not-present at EL1 too. An EL1-only kernel needs it (§2.9).
pub const KVM_ASYNC_PF_SEND_ALWAYS: u64 = 1 << 1;
/// ENABLE bits 63:6 are the control block's GPA, so the block is aligned to this.
pub const KVM_ASYNC_PF_AREA_ALIGN: u64 = 64;
/// ENABLE value that turns async PF off (the guest passes `x2 = x3 = 0`).
pub const KVM_ASYNC_PF_DISABLED: u64 = 0;

/// Control block `reason`: idle, the slot is free.
pub const KVM_PV_REASON_NONE: u32 = 0;
/// Control block `reason`: the SDEI event reports a page not present.
pub const KVM_PV_REASON_PAGE_NOT_PRESENT: u32 = 1;
/// Control block `reason`: the PPI reports a page ready.
pub const KVM_PV_REASON_PAGE_READY: u32 = 2;

/// v4's SDEI event number for async PF (`KVM_SDEI_ASYNC_PF_NUM`); informational: the
/// number in use is the one [`ASYNC_PF_SDEI`] returns.
pub const KVM_SDEI_ASYNC_PF_NUM: u32 = 0x4040_0001;

/// Bits of the `ENABLE` value that go in `x2`; the rest go in `x3`.
pub(super) const ENABLE_LOW_BITS: u32 = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_match_the_published_values() {
        assert_eq!(ARM_SMCCC_VENDOR_HYP_CALL_UID, 0x8600_FF01);
        assert_eq!(ARM_SMCCC_VENDOR_HYP_KVM_FEATURES, 0x8600_0000);
        assert_eq!(ASYNC_PF_FUNC_ID, 0x8600_0002);
    }

    #[test]
    fn version_fields() {
        assert_eq!(ASYNC_PF_VERSION_1_0 >> ASYNC_PF_VERSION_MAJOR_SHIFT, 1);
        assert_eq!(ASYNC_PF_VERSION_1_0 & ASYNC_PF_VERSION_RESERVED_MASK, 0);
        assert_eq!(1u64 << 24 & ASYNC_PF_VERSION_RESERVED_MASK, 1 << 24);
    }
}
