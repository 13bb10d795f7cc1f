//! Guest RAM: anonymous private mappings in this process, registered with KVM as memory slots.
//! (A later change makes part of it lazy with userfaultfd; it only touches this module.)

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::mmap::FromRangesError;
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot map {size} bytes of guest RAM")]
    Map {
        size: u64,
        #[source]
        source: FromRangesError,
    },
    #[error("guest RAM of {0} bytes does not fit in this process's address space")]
    TooLarge(u64),
    #[error("cannot register guest RAM slot {slot} with KVM")]
    Register {
        slot: u32,
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// Maps `size` bytes of RAM at guest-physical address `start`. The kernel populates pages when
/// first touched, so a large guest costs only what it uses.
pub fn create(start: GuestAddress, size: u64) -> Result<GuestMemoryMmap, Error> {
    let len = usize::try_from(size).map_err(|_| Error::TooLarge(size))?;
    GuestMemoryMmap::from_ranges(&[(start, len)]).map_err(|source| Error::Map { size, source })
}

/// Registers every region of `memory` with the VM, one slot each in order.
///
/// The caller keeps `memory` mapped for as long as `vm` exists: KVM keeps the host addresses.
pub fn register(vm: &VmFd, memory: &GuestMemoryMmap) -> Result<(), Error> {
    for (slot, region) in (0u32..).zip(memory.iter()) {
        let slot_region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the range is one whole mapping owned by `memory`, which the caller keeps alive
        // as long as the VM (see above), and the slots do not overlap because the regions of a
        // `GuestMemoryMmap` do not.
        unsafe { vm.set_user_memory_region(slot_region) }
            .map_err(|source| Error::Register { slot, source })?;
    }
    Ok(())
}
