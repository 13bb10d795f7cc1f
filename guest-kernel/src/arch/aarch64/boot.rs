//! Entry from QEMU's ELF loader: EL1, MMU and caches off, every exception masked, no
//! arguments (the device tree is at [`DTB_ADDRESS`]).
//!
//! The stub turns on FP/SIMD (Rust code uses NEON registers, even for plain copies), takes
//! the boot stack, clears .bss and calls [`start`], which turns the MMU on with a boot map
//! before any other Rust code runs: with the MMU off every access is Device memory, where
//! exclusive (atomic) and unaligned accesses are not allowed.

use super::platform::DTB_ADDRESS;
use super::{entry, paging};
use aarch64_cpu::registers::{TPIDRRO_EL0, Writeable};
use core::arch::global_asm;

/// CPACR_EL1.FPEN = 0b11: FP/SIMD instructions do not trap at EL1 or EL0 (Arm ARM D23.2.34).
const CPACR_FPEN_NO_TRAP: u64 = 0b11 << 20;
/// Size of the stack `kernel_main` starts on.
const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    .section .bss.boot, "aw", @nobits
    .p2align 4
boot_stack: .skip {stack_size}
boot_stack_top:

    .section .text.boot, "ax"
    .global _start
_start:
    mov x0, #{cpacr}
    msr cpacr_el1, x0
    isb
    adrp x0, boot_stack_top
    add x0, x0, :lo12:boot_stack_top
    mov sp, x0
    /* Clear .bss: a warm reset must not see stale state. */
    adrp x0, {bss_start}
    add x0, x0, :lo12:{bss_start}
    adrp x1, {bss_end}
    add x1, x1, :lo12:{bss_end}
1:  cmp x0, x1
    b.hs 2f
    stp xzr, xzr, [x0], #16
    b 1b
2:  bl {start}
3:  wfe
    b 3b
"#,
    cpacr = const CPACR_FPEN_NO_TRAP,
    stack_size = const BOOT_STACK_SIZE,
    bss_start = sym crate::arch::layout::__bss_start,
    bss_end = sym crate::arch::layout::__bss_end,
    start = sym start,
);

/// First Rust code: the MMU on, then the arch-neutral kernel with the device tree.
extern "C" fn start() -> ! {
    // The kernel runs now, not a task (its reset value is unknown).
    TPIDRRO_EL0.set(0);
    super::smp::set_cpu_index(0);
    paging::enable_boot_map();
    // Before anything can fault: a boot-time exception is reported, not a silent hang.
    entry::install_vectors();
    crate::kernel_main(DTB_ADDRESS)
}
