//! PVH entry: 32-bit protected mode with paging off, `ebx` = `hvm_start_info`.
//!
//! The stub identity-maps the first GiB with 2 MiB pages (enough for the kernel, its heap
//! and the boot information), enters long mode and calls [`crate::kernel_main`]; Rust code
//! then builds the real page tables. It is short on purpose: every instruction here is
//! emulated by our KVM.

use core::arch::global_asm;
use x86_64::registers::control::{Cr0Flags, Cr4Flags};
use x86_64::registers::model_specific::EferFlags;
use x86_64::structures::paging::PageTableFlags;

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the note type that makes an ELF bootable by PVH loaders.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `IA32_EFER`.
const MSR_EFER: u32 = 0xC000_0080;
/// Size of the stack `kernel_main` starts on (it becomes the first interrupt stack too).
const BOOT_STACK_SIZE: usize = 64 * 1024;
/// Boot GDT selectors (the real GDT, loaded later, keeps the same kernel selectors).
const BOOT_CODE64: u16 = 0x08;
const BOOT_DATA: u16 = 0x10;
const BOOT_CODE32: u16 = 0x18;

global_asm!(
    r#"
    /* From 32-bit protected mode: the boot page tables, PAE, long mode and NX, paging on
       (the boot CPU's entry and every other CPU's trampoline). */
    .macro enter_long_mode
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl ${cr4_pae}, %eax
    movl %eax, %cr4
    movl ${msr_efer}, %ecx
    rdmsr
    orl ${efer_bits}, %eax
    wrmsr
    movl %cr0, %eax
    orl ${cr0_bits}, %eax
    movl %eax, %cr0
    .endm

    .section .note.Xen, "a", @note
    .p2align 2
    .long 4                     /* name size: "Xen\0" */
    .long 8                     /* desc size */
    .long {note_type}
    .asciz "Xen"
    .p2align 2
    .quad pvh_start32           /* 8 bytes: QEMU reads 64 bits for ELF64, linux-loader 32 */
    .p2align 2

    .section .bss.boot, "aw", @nobits
    .p2align 12
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096
    .p2align 4
boot_stack: .skip {stack_size}
    .global boot_stack_top
boot_stack_top:

    .section .rodata.boot, "a"
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* 0x10: data, DPL 0 */
    .quad 0x00cf9a000000ffff    /* 0x18: 32-bit code, for application processors */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi             /* keep hvm_start_info for kernel_main */

    movl ${bss_start}, %edi     /* clear .bss: a warm reload must not see stale state */
    movl ${bss_end}, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    movl $(boot_pdpt + {table_flags}), boot_pml4
    movl $(boot_pd + {table_flags}), boot_pdpt
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl ${huge_flags}, %eax
    movl %eax, boot_pd(, %ecx, 8)
    incl %ecx
    cmpl $512, %ecx
    jb 1b

    enter_long_mode

    lgdt boot_gdt_ptr
    ljmp ${code64}, $2f

    .code64
2:  movw ${data}, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    leaq boot_stack_top(%rip), %rsp
    movl %esi, %edi
    call {kernel_main}
3:  hlt
    jmp 3b

    /* An application processor's first code, copied to the page its startup IPI names
       (real mode, CS:IP = page:0): to protected mode through the boot GDT, then to long
       mode on the boot page tables (they map this page and the kernel), as above. */
    .section .rodata.ap_trampoline, "a"
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl {trampoline} + (ap_gdt_ptr - ap_trampoline_start)
    movl %cr0, %eax
    orl ${cr0_pe}, %eax
    movl %eax, %cr0
    ljmpl ${code32}, ${trampoline} + (ap_protected - ap_trampoline_start)
    .code32
ap_protected:
    movw ${data}, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr0, %eax             /* INIT leaves caching disabled (CD, NW): enable it */
    andl ${cache_on}, %eax
    movl %eax, %cr0
    enter_long_mode
    ljmpl ${code64}, $ap_long
    .p2align 2
ap_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
    .global ap_trampoline_end
ap_trampoline_end:

    /* In the kernel image: the boot CPU's final page tables and the stack it prepared. */
    .section .text.boot, "ax"
    .code64
ap_long:
    movw ${data}, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq {ap_cr3}(%rip), %rax
    movq %rax, %cr3
    movq {ap_stack}(%rip), %rsp
    call {ap_entry}
4:  hlt
    jmp 4b
"#,
    note_type = const XEN_ELFNOTE_PHYS32_ENTRY,
    stack_size = const BOOT_STACK_SIZE,
    bss_start = sym crate::arch::layout::__bss_start,
    bss_end = sym crate::arch::layout::__bss_end,
    table_flags = const PageTableFlags::PRESENT.bits() | PageTableFlags::WRITABLE.bits(),
    huge_flags = const PageTableFlags::PRESENT.bits()
        | PageTableFlags::WRITABLE.bits()
        | PageTableFlags::HUGE_PAGE.bits(),
    cr4_pae = const Cr4Flags::PHYSICAL_ADDRESS_EXTENSION.bits(),
    msr_efer = const MSR_EFER,
    efer_bits = const EferFlags::LONG_MODE_ENABLE.bits() | EferFlags::NO_EXECUTE_ENABLE.bits(),
    cr0_bits = const Cr0Flags::PAGING.bits()
        | Cr0Flags::WRITE_PROTECT.bits()
        | Cr0Flags::PROTECTED_MODE_ENABLE.bits(),
    code64 = const BOOT_CODE64,
    data = const BOOT_DATA,
    kernel_main = sym crate::kernel_main,
    trampoline = const super::smp::TRAMPOLINE,
    cr0_pe = const Cr0Flags::PROTECTED_MODE_ENABLE.bits(),
    cache_on = const !(Cr0Flags::CACHE_DISABLE.bits() | Cr0Flags::NOT_WRITE_THROUGH.bits()) as u32,
    code32 = const BOOT_CODE32,
    ap_cr3 = sym super::smp::AP_CR3,
    ap_stack = sym super::smp::AP_STACK,
    ap_entry = sym super::smp::ap_entry,
    options(att_syntax)
);
