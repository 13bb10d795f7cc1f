//! GDT and TSS: the segments for ring 0 and ring 3, and the stacks the CPU switches to.

use crate::arch::stack::Stack;
use core::cell::UnsafeCell;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// Selectors, checked against the GDT at start-up. The order (kernel code, kernel data,
/// user data, user code) is the one `syscall`/`sysret` would need (see `usercall` for why
/// system calls use a trap gate on our KVM).
pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_SS: u16 = 0x10;
pub const USER_SS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;

/// IST slot used for #DF so a kernel stack overflow is still reported.
pub const DOUBLE_FAULT_IST: u16 = 0;
const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

/// The TSS: written by the scheduler on every switch (RSP0), read by the CPU.
struct Tss(UnsafeCell<TaskStateSegment>);

// SAFETY: only touched with interrupts off on the one CPU that owns it.
unsafe impl Sync for Tss {}

static TSS: Tss = Tss(UnsafeCell::new(TaskStateSegment::new()));
static DOUBLE_FAULT_STACK: Stack<DOUBLE_FAULT_STACK_SIZE> = Stack::new();
static GDT: Once<GlobalDescriptorTable> = Once::new();

/// Loads the GDT and TSS and reloads every segment register.
pub fn init() {
    let df_top = VirtAddr::new(DOUBLE_FAULT_STACK.top());
    // SAFETY: before the TSS is loaded nothing else reads it.
    unsafe { (*TSS.0.get()).interrupt_stack_table[usize::from(DOUBLE_FAULT_IST)] = df_top };
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let selectors = [
            gdt.append(Descriptor::kernel_code_segment()),
            gdt.append(Descriptor::kernel_data_segment()),
            gdt.append(Descriptor::user_data_segment()),
            gdt.append(Descriptor::user_code_segment()),
        ];
        assert_eq!(
            selectors.map(|s| s.0),
            [KERNEL_CS, KERNEL_SS, USER_SS, USER_CS],
            "GDT layout does not match the selectors the entry stubs use"
        );
        // SAFETY: TSS is a static, so the descriptor stays valid for the kernel's life.
        gdt.append(unsafe { Descriptor::tss_segment_unchecked(TSS.0.get()) });
        gdt
    });
    gdt.load();
    let tss = SegmentSelector(KERNEL_SS + 0x18);
    // SAFETY: the selectors name the descriptors just loaded.
    unsafe {
        CS::set_reg(SegmentSelector(KERNEL_CS));
        SS::set_reg(SegmentSelector(KERNEL_SS));
        DS::set_reg(SegmentSelector(KERNEL_SS));
        ES::set_reg(SegmentSelector(KERNEL_SS));
        load_tss(tss);
    }
}

/// Sets the stack the CPU switches to when a ring-3 task is interrupted.
pub fn set_kernel_stack(top: u64) {
    // SAFETY: kernel stacks are identity-mapped low memory, always canonical, so the switch
    // path (where every instruction is emulated) needs no check or sign extension; and
    // interrupts are off in the kernel, so the CPU cannot read RSP0 concurrently.
    unsafe { (*TSS.0.get()).privilege_stack_table[0] = VirtAddr::new_unsafe(top) };
}
