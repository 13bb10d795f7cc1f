//! Guest RAM: anonymous private mappings in this process, registered with KVM as memory slots.
//! Part of it can be made lazy: registered with a userfaultfd, so that first touches wait for
//! the lazy memory server (`crate::lazy`) instead of getting zero pages.

use std::ops::Range;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use libc::c_void;
use userfaultfd::{FeatureFlags, Uffd, UffdBuilder};
use vm_memory::mmap::FromRangesError;
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::lazy::Window;

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
    #[error("lazy range {0:#x?} is not inside one region of guest RAM")]
    LazyOutsideRam(Range<u64>),
    #[error(
        "cannot create a userfaultfd that sees KVM's accesses (it needs root or \
         CAP_SYS_PTRACE, or sysctl vm.unprivileged_userfaultfd=1)"
    )]
    CreateUffd(#[source] userfaultfd::Error),
    #[error("cannot register the lazy range {range:#x?} with the userfaultfd")]
    RegisterUffd {
        range: Range<u64>,
        #[source]
        source: userfaultfd::Error,
    },
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

/// Guest RAM whose pages the lazy memory server must supply.
pub struct LazyRange {
    pub uffd: Uffd,
    pub window: Window,
}

/// Makes the guest-physical `range` of `memory` lazy: from now on a first touch of one of its
/// pages, by the guest through KVM or by this process, waits until the page is supplied through
/// the returned userfaultfd. Nothing may have touched the range before.
pub fn make_lazy(memory: &GuestMemoryMmap, range: Range<u64>) -> Result<LazyRange, Error> {
    let outside = || Error::LazyOutsideRam(range.clone());
    let region = memory
        .find_region(GuestAddress(range.start))
        .filter(|region| region.start_addr().raw_value() + region.len() >= range.end)
        .ok_or_else(outside)?;
    let offset =
        usize::try_from(range.start - region.start_addr().raw_value()).map_err(|_| outside())?;
    let window = Window::new(range.clone(), region.as_ptr() as usize + offset);
    // KVM touches guest memory from the kernel (get_user_pages, or its instruction emulator's
    // copies), so the userfaultfd must not be user-mode-only. The faulting thread's id tells
    // which vCPU waits for a page.
    let uffd = UffdBuilder::new()
        .close_on_exec(true)
        .non_blocking(true)
        .user_mode_only(false)
        .require_features(FeatureFlags::THREAD_ID)
        .create()
        .map_err(Error::CreateUffd)?;
    uffd.register(window.host_start() as *mut c_void, window.len())
        .map_err(|source| Error::RegisterUffd {
            range: range.clone(),
            source,
        })?;
    Ok(LazyRange { uffd, window })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use vm_memory::Bytes;
    use workloads::pages::PAGE_SIZE;

    const MIB: u64 = 1 << 20;

    #[test]
    fn lazy_ranges_must_lie_in_ram() {
        let memory = create(GuestAddress(0), 4 * MIB).expect("memory");
        for range in [2 * MIB..5 * MIB, 4 * MIB..5 * MIB] {
            assert!(matches!(
                make_lazy(&memory, range.clone()),
                Err(Error::LazyOutsideRam(r)) if r == range
            ));
        }
    }

    /// A touch of a lazy page waits for its contents, which the touch then sees; the fault
    /// names the touching thread.
    #[test]
    fn a_touch_waits_for_the_page_it_is_given() {
        let memory = create(GuestAddress(0), 4 * MIB).expect("memory");
        let lazy = make_lazy(&memory, 2 * MIB..4 * MIB).expect("userfaultfd");
        let gpa = 3 * MIB + 0x1000;
        thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let value: u64 = memory.read_obj(GuestAddress(gpa + 8)).expect("read");
                // SAFETY: gettid has no preconditions.
                (value, unsafe { libc::gettid() })
            });
            let (addr, thread_id) = loop {
                match lazy.uffd.read_event().expect("read event") {
                    Some(userfaultfd::Event::Pagefault {
                        addr, thread_id, ..
                    }) => break (addr as usize, thread_id),
                    Some(other) => panic!("unexpected {other:?}"),
                    None => thread::yield_now(),
                }
            };
            assert_eq!(lazy.window.page_of(addr), Some(gpa));
            let mut page = [0u8; PAGE_SIZE];
            page[8..16].copy_from_slice(&0x1234_5678_u64.to_le_bytes());
            // SAFETY: one page of our buffer into one missing page of the registered window.
            unsafe {
                lazy.uffd.copy(
                    page.as_ptr().cast(),
                    lazy.window.host(gpa) as *mut c_void,
                    PAGE_SIZE,
                    true,
                )
            }
            .expect("copy");
            let (value, reader_tid) = reader.join().expect("reader");
            assert_eq!(value, 0x1234_5678);
            assert_eq!(thread_id.as_raw(), reader_tid);
        });
    }
}
