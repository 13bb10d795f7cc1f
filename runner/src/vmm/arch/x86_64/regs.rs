//! The boot vCPU's register state at the PVH entry point (Xen's `pvh.pandoc`; Firecracker's
//! `configure_segments_and_sregs` for `BootProtocol::PvhBoot`): 32-bit protected mode, paging
//! off, flat segments, `ebx` = guest-physical address of `hvm_start_info`.

use kvm_bindings::{kvm_dtable, kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Address, GuestAddress};

use super::gdt;
use super::layout::BOOT_GDT_ADDR;

const CR0_PE: u64 = 1 << 0;
/// Hard-wired to 1 on every CPU since the 486; set so the value reads back unchanged.
const CR0_ET: u64 = 1 << 4;
/// Bit 1 of RFLAGS is reserved and always 1; everything else (IF included) starts clear.
const RFLAGS_RESERVED_ONE: u64 = 1 << 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the boot vCPU's special registers")]
    GetSregs(#[source] kvm_ioctls::Error),
    #[error("cannot set the boot vCPU's special registers")]
    SetSregs(#[source] kvm_ioctls::Error),
    #[error("cannot set the boot vCPU's registers")]
    SetRegs(#[source] kvm_ioctls::Error),
}

/// Puts `vcpu` at the PVH entry `entry` with the start info at `start_info`.
pub fn set_pvh_entry_state(
    vcpu: &VcpuFd,
    entry: GuestAddress,
    start_info: GuestAddress,
) -> Result<(), Error> {
    let sregs = vcpu.get_sregs().map_err(Error::GetSregs)?;
    vcpu.set_sregs(&pvh_sregs(sregs)).map_err(Error::SetSregs)?;
    vcpu.set_regs(&pvh_regs(entry, start_info))
        .map_err(Error::SetRegs)
}

/// `current` with the PVH entry's segments, descriptor tables and control registers.
fn pvh_sregs(current: kvm_sregs) -> kvm_sregs {
    let data = gdt::segment(gdt::DATA_INDEX);
    kvm_sregs {
        cs: gdt::segment(gdt::CODE_INDEX),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        tr: gdt::segment(gdt::TSS_INDEX),
        gdt: kvm_dtable {
            base: BOOT_GDT_ADDR,
            limit: gdt::BOOT_GDT_LIMIT,
            ..Default::default()
        },
        // An empty IDT: an exception before the guest installs its own becomes a triple
        // fault, which the runner reports with the registers.
        idt: kvm_dtable::default(),
        cr0: CR0_PE | CR0_ET,
        cr3: 0,
        cr4: 0,
        efer: 0,
        ..current
    }
}

fn pvh_regs(entry: GuestAddress, start_info: GuestAddress) -> kvm_regs {
    kvm_regs {
        rip: entry.raw_value(),
        rbx: start_info.raw_value(),
        rflags: RFLAGS_RESERVED_ONE,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sregs_follow_the_pvh_entry_state() {
        let sregs = pvh_sregs(kvm_sregs {
            cr0: 0x6000_0010,
            cr4: 0x20,
            efer: 0x500,
            apic_base: 0xfee0_0900,
            ..Default::default()
        });
        assert_eq!((sregs.cs.type_, sregs.cs.db, sregs.cs.l), (0xb, 1, 0));
        assert_eq!((sregs.cs.base, sregs.cs.limit), (0, 0xffff_ffff));
        for data in [sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss] {
            assert_eq!((data.type_, data.base, data.limit), (0x3, 0, 0xffff_ffff));
        }
        assert_eq!((sregs.tr.type_, sregs.tr.present), (0xb, 1));
        assert_eq!((sregs.gdt.base, sregs.gdt.limit), (BOOT_GDT_ADDR, 31));
        assert_eq!(
            (sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer),
            (0x11, 0, 0, 0)
        );
        // Not part of the entry state: kept as KVM set it.
        assert_eq!(sregs.apic_base, 0xfee0_0900);
    }

    #[test]
    fn regs_enter_with_start_info_in_ebx() {
        let regs = pvh_regs(GuestAddress(0x10_0000), GuestAddress(0x6000));
        assert_eq!((regs.rip, regs.rbx, regs.rflags), (0x10_0000, 0x6000, 0x2));
        assert_eq!((regs.rax, regs.rsp), (0, 0));
    }
}
