//! What x86_64 keeps per CPU: the TSS (whose RSP0 every switch sets) and the async PF
//! area KVM writes. Both live in the CPU's [`Cpu`](crate::kernel::Cpu), beside its kernel
//! state, so that the async PF paths reach all three from the one pointer they find above
//! the frame.

use apf_pv::x86::ApfArea;
use core::cell::UnsafeCell;
use x86_64::VirtAddr;
use x86_64::structures::tss::TaskStateSegment;

pub struct CpuLocal {
    tss: UnsafeCell<TaskStateSegment>,
    apf_area: UnsafeCell<ApfArea>,
}

// SAFETY: each CPU touches only its own TSS and area, with interrupts off: `gdt::init`
// sets the TSS's #DF stack before loading it, the scheduler its RSP0 afterwards, and the
// async PF handlers read and clear the area (KVM's own writes are why the area's accessors
// are volatile).
unsafe impl Sync for CpuLocal {}

impl CpuLocal {
    pub const fn new() -> Self {
        Self {
            tss: UnsafeCell::new(TaskStateSegment::new()),
            apf_area: UnsafeCell::new(ApfArea::new()),
        }
    }

    /// The TSS, for the GDT's descriptor and for setting it up before it is loaded.
    pub(super) fn tss(&self) -> *mut TaskStateSegment {
        self.tss.get()
    }

    /// Sets the stack the CPU switches to when a ring-3 task is interrupted.
    #[inline(always)]
    pub(super) fn set_kernel_stack(&self, top: u64) {
        // SAFETY: kernel stacks are identity-mapped low memory, always canonical, so the
        // switch path (where every instruction is emulated) needs no check or sign
        // extension; and interrupts are off in the kernel, so the CPU cannot read RSP0
        // concurrently. The caller runs on this CPU (see the `Sync` impl).
        unsafe { (*self.tss.get()).privilege_stack_table[0] = VirtAddr::new_unsafe(top) };
    }

    /// The async PF area, for this CPU's handlers (see the `Sync` impl).
    #[inline(always)]
    pub(super) fn apf_area(&self) -> *mut ApfArea {
        self.apf_area.get()
    }

    /// The area's guest-physical address (memory is identity-mapped), for the enable MSR.
    pub(super) fn apf_area_address(&self) -> u64 {
        self.apf_area.get() as u64
    }
}
