//! The CPUID each vCPU sees: everything KVM supports, with the vCPU's APIC ID filled in.
//!
//! x2APIC (leaf 1) and KVM's paravirtual leaves 0x4000_0000/0x4000_0001 stay as KVM reports
//! them: the guest uses x2APIC; the async page fault feature bits in 0x4000_0001 are hidden
//! or shown by `--apf` ([`apply_apf_mode`]).

use crate::apf::{ApfMode, KVM_FEATURES_LEAF};
use kvm_bindings::{CpuId, kvm_cpuid_entry2};
use kvm_ioctls::VcpuFd;

const LEAF_FEATURES: u32 = 0x1;
/// The hypervisor's first leaf: EAX is the highest hypervisor leaf.
const LEAF_HYPERVISOR: u32 = 0x4000_0000;
/// The hypervisor timing leaf (VMware's, which QEMU fills too): EAX = TSC kHz, EBX = the
/// local APIC timer's bus kHz.
pub const LEAF_TIMING: u32 = 0x4000_0010;
/// KVM's local APIC bus frequency (1 ns per bus cycle, `APIC_BUS_CYCLE_NS_DEFAULT`).
const KVM_APIC_BUS_KHZ: u32 = 1_000_000;
const LEAF_EXTENDED_TOPOLOGY: u32 = 0xb;
const LEAF_EXTENDED_TOPOLOGY_V2: u32 = 0x1f;
/// Leaf 1 EBX bits 31..24: the initial (8-bit) APIC ID.
const INITIAL_APIC_ID_SHIFT: u32 = 24;
const INITIAL_APIC_ID_MASK: u32 = 0xff << INITIAL_APIC_ID_SHIFT;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot set the CPUID of vCPU {apic_id}")]
    Set {
        apic_id: u8,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("cannot read vCPU {apic_id}'s TSC frequency")]
    TscKhz {
        apic_id: u8,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("no room for the timing leaf in vCPU {apic_id}'s CPUID")]
    Full { apic_id: u8 },
}

/// Gives `vcpu` the CPUID `supported` (from `KVM_GET_SUPPORTED_CPUID`) with its APIC ID and
/// the timing leaf: the guest then knows its TSC and APIC timer frequencies exactly instead
/// of measuring them against the PIT, which is off by 10% and more on a loaded host.
pub fn configure(vcpu: &VcpuFd, supported: &CpuId, apic_id: u8) -> Result<(), Error> {
    let mut cpuid = supported.clone();
    set_apic_id(cpuid.as_mut_slice(), apic_id);
    let tsc_khz = vcpu
        .get_tsc_khz()
        .map_err(|source| Error::TscKhz { apic_id, source })?;
    let timing = add_timing_leaf(cpuid.as_mut_slice(), tsc_khz);
    if let Some(entry) = timing {
        cpuid.push(entry).map_err(|_| Error::Full { apic_id })?;
    }
    vcpu.set_cpuid2(&cpuid)
        .map_err(|source| Error::Set { apic_id, source })
}

/// Raises the highest hypervisor leaf to the timing leaf and fills the timing leaf if
/// `entries` has it; otherwise returns the entry to add.
fn add_timing_leaf(entries: &mut [kvm_cpuid_entry2], tsc_khz: u32) -> Option<kvm_cpuid_entry2> {
    for entry in entries.iter_mut() {
        if entry.function == LEAF_HYPERVISOR {
            entry.eax = entry.eax.max(LEAF_TIMING);
        }
    }
    let timing = kvm_cpuid_entry2 {
        function: LEAF_TIMING,
        eax: tsc_khz,
        ebx: KVM_APIC_BUS_KHZ,
        ..Default::default()
    };
    match entries.iter_mut().find(|e| e.function == LEAF_TIMING) {
        Some(entry) => {
            *entry = timing;
            None
        }
        None => Some(timing),
    }
}

/// Shows the guest KVM's async PF feature bits, or hides them, as `mode` says.
pub fn apply_apf_mode(entries: &mut [kvm_cpuid_entry2], mode: ApfMode) {
    for entry in entries
        .iter_mut()
        .filter(|e| e.function == KVM_FEATURES_LEAF)
    {
        entry.eax = mode.kvm_features(entry.eax);
    }
}

/// Writes `apic_id` wherever CPUID reports the executing CPU's APIC ID, so each vCPU's
/// CPUID agrees with its LAPIC.
fn set_apic_id(entries: &mut [kvm_cpuid_entry2], apic_id: u8) {
    for entry in entries {
        match entry.function {
            LEAF_FEATURES => {
                entry.ebx = (entry.ebx & !INITIAL_APIC_ID_MASK)
                    | u32::from(apic_id) << INITIAL_APIC_ID_SHIFT;
            }
            // Every sub-leaf reports the full x2APIC ID in EDX.
            LEAF_EXTENDED_TOPOLOGY | LEAF_EXTENDED_TOPOLOGY_V2 => entry.edx = u32::from(apic_id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X2APIC: u32 = 1 << 21;

    fn entry(function: u32, index: u32, ebx: u32, ecx: u32, edx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: 0x0101_0101,
            ebx,
            ecx,
            edx,
            ..Default::default()
        }
    }

    fn patched(apic_id: u8) -> Vec<kvm_cpuid_entry2> {
        let mut entries = vec![
            entry(0x0, 0, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
            entry(
                LEAF_FEATURES,
                0,
                0x0008_0800,
                X2APIC | 0x8000_0000,
                0x178b_fbff,
            ),
            entry(LEAF_EXTENDED_TOPOLOGY, 0, 1, 0x100, 0x77),
            entry(LEAF_EXTENDED_TOPOLOGY, 1, 1, 0x201, 0x77),
            entry(KVM_FEATURES_LEAF, 0, 0, 0, 0),
        ];
        entries[4].eax = 0x0100_7efb;
        set_apic_id(&mut entries, apic_id);
        entries
    }

    #[test]
    fn leaf_1_carries_the_initial_apic_id() {
        let entries = patched(3);
        assert_eq!(entries[1].ebx, 0x0308_0800);
        assert_eq!(patched(0)[1].ebx, 0x0008_0800);
    }

    #[test]
    fn every_topology_subleaf_carries_the_x2apic_id() {
        let entries = patched(5);
        assert_eq!((entries[2].edx, entries[3].edx), (5, 5));
        assert_eq!((entries[2].ecx, entries[3].ecx), (0x100, 0x201));
    }

    #[test]
    fn the_timing_leaf_gives_the_frequencies_and_is_reachable() {
        let mut entries = patched(0);
        entries.push(entry(LEAF_HYPERVISOR, 0, 0x4b4d_564b, 0x564b_4d56, 0x4d));
        entries[5].eax = 0x4000_0001;
        let added = add_timing_leaf(&mut entries, 2_600_000).expect("a new leaf");
        assert_eq!(
            (added.function, added.eax, added.ebx),
            (LEAF_TIMING, 2_600_000, 1_000_000)
        );
        assert_eq!(entries[5].eax, LEAF_TIMING, "the highest hypervisor leaf");
        assert_eq!(entries[5].ebx, 0x4b4d_564b, "the signature is kept");
        entries.push(added);
        assert!(
            add_timing_leaf(&mut entries, 2_900_000).is_none(),
            "updated in place"
        );
        assert_eq!(entries[6].eax, 2_900_000);
    }

    #[test]
    fn other_bits_and_leaves_are_kept() {
        let entries = patched(7);
        assert_eq!(entries[1].ecx, X2APIC | 0x8000_0000);
        assert_eq!(entries[1].edx, 0x178b_fbff);
        assert_eq!(entries[0].ebx, 0x756e_6547);
        assert_eq!(entries[4].eax, 0x0100_7efb);
    }
}
