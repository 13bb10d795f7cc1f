//! GDT and TSS: the segments for ring 0 and ring 3, and the stacks the CPU switches to.

use crate::arch::stack::Stack;
use guest_kernel::cmdline::MAX_CPUS;
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

/// Each CPU's TSS descriptor (16 bytes) follows the four segments; CPU `i` loads the `i`-th,
/// which is how [`cpu_index`] tells the CPUs apart.
pub const FIRST_TSS: u16 = 0x28;
pub const TSS_DESCRIPTOR_SIZE: u16 = 16;
/// Null, four segments, then two entries per TSS.
const GDT_ENTRIES: usize = 5 + 2 * MAX_CPUS;

static DOUBLE_FAULT_STACKS: [Stack<DOUBLE_FAULT_STACK_SIZE>; MAX_CPUS] =
    [const { Stack::new() }; MAX_CPUS];
static GDT: Once<GlobalDescriptorTable<GDT_ENTRIES>> = Once::new();

/// Loads the GDT and CPU `cpu`'s TSS and reloads every segment register: the boot CPU
/// first, then each application processor as it starts.
pub fn init(cpu: usize) {
    super::entry::init_idle_stack(cpu);
    let df_top = VirtAddr::new(DOUBLE_FAULT_STACKS[cpu].top());
    // SAFETY: before the TSS is loaded nothing else reads it.
    unsafe { (*tss(cpu)).interrupt_stack_table[usize::from(DOUBLE_FAULT_IST)] = df_top };
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::empty();
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
        for i in 0..MAX_CPUS {
            // SAFETY: the TSSs are in statics (each CPU's `Cpu`), so the descriptors stay
            // valid for the kernel's life.
            let selector = gdt.append(unsafe { Descriptor::tss_segment_unchecked(tss(i)) });
            assert_eq!(selector.0, tss_selector(i), "TSS descriptors out of place");
        }
        gdt
    });
    gdt.load();
    // SAFETY: the selectors name the descriptors just loaded.
    unsafe {
        CS::set_reg(SegmentSelector(KERNEL_CS));
        SS::set_reg(SegmentSelector(KERNEL_SS));
        DS::set_reg(SegmentSelector(KERNEL_SS));
        ES::set_reg(SegmentSelector(KERNEL_SS));
        load_tss(SegmentSelector(tss_selector(cpu)));
    }
}

const fn tss_selector(cpu: usize) -> u16 {
    FIRST_TSS + cpu as u16 * TSS_DESCRIPTOR_SIZE
}

/// The running CPU's index, from the TSS it loaded: `str` is one instruction, needs no
/// memory, and no task can change it (a GS base could be changed by a task loading GS).
#[inline(always)]
pub fn cpu_index() -> usize {
    let selector: u16;
    // SAFETY: `str` only reads the task register.
    unsafe {
        core::arch::asm!("str {0:x}", out(reg) selector, options(pure, nomem, nostack, preserves_flags))
    };
    usize::from(selector.wrapping_sub(FIRST_TSS) / TSS_DESCRIPTOR_SIZE) % MAX_CPUS
}

/// CPU `cpu`'s TSS.
fn tss(cpu: usize) -> *mut TaskStateSegment {
    crate::kernel::cpu(cpu).arch.tss()
}
