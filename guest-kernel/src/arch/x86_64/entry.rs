//! Every way into the kernel: 256 interrupt/exception stubs (system calls arrive as #BP,
//! see [`super::usercall`]).
//!
//! All of them build the same [`TrapFrame`] on the current task's kernel stack and call
//! their vector's handler from [`trap::HANDLERS`], which returns the frame to resume: the
//! same one or another task's (a context switch is just a different stack pointer), or
//! does not return but goes idle ([`go_idle`]). Every task resumes through `iretq`, so a task preempted by the
//! timer and one that made a system call are resumed the same way. The table call is one
//! indirect `call` where a `match` on the vector cost every async PF event its compares.
//! The two async PF events (#PF and page-ready) skip even that: their gates point at
//! entries of their own (`trap_direct_<vector>`) that build the same frame and call their
//! handler directly.
//!
//! The idle loop (one per CPU) has no state worth keeping, and on our KVM every ring-0 instruction is
//! emulated (about a microsecond each): so a trap taken in the idle loop does not save its
//! registers (it only makes room for the frame), and going idle restores nothing (it
//! starts the loop afresh on the idle stack). The idle loop keeps interrupts off except
//! inside `sti; hlt`, so every interrupt it takes arrives with the return address
//! `idle_halted`, which is how `trap_common` recognises it with one comparison: no task can
//! run at that kernel address. Exceptions skip the comparison (their stubs jump past it):
//! the idle loop's `cli`, `jmp`, `sti` and `hlt` raise none, and saving registers is never
//! wrong, only unneeded.
//!
//! [`TrapFrame`]: super::trap::TrapFrame
//! [`trap::HANDLERS`]: super::trap::HANDLERS

use crate::kernel::{self, Cpu};
use core::arch::global_asm;
use core::cell::UnsafeCell;
use guest_kernel::cmdline::MAX_CPUS;
use x86_64::structures::idt::ExceptionVector;

/// Bytes per interrupt stub; [`stub_address`] relies on it.
const STUB_SIZE: u64 = 16;

/// Each CPU's idle-loop stack: interrupts taken while idle run their handlers on it (ring
/// 0, no stack switch). A power of two: `idle_enter` finds its CPU's with a shift.
const IDLE_STACK_SIZE: usize = 8 * 1024;
const _: () = assert!(IDLE_STACK_SIZE.is_power_of_two());

/// An idle stack, which ends like a task's kernel stack (see `Context`): with its CPU's
/// pointer right above where the loop starts, so a trap taken while idle has it right above
/// its frame too (the CPU pushes the frame at the 16-byte aligned stack pointer).
#[repr(C, align(16))]
struct IdleStack {
    stack: UnsafeCell<[u8; IDLE_STACK_SIZE - size_of::<IdleTop>()]>,
    top: UnsafeCell<IdleTop>,
}

#[repr(C, align(16))]
struct IdleTop {
    cpu: Option<&'static Cpu>,
}

const _: () = assert!(size_of::<IdleStack>() == IDLE_STACK_SIZE && size_of::<IdleTop>() == 16);

// SAFETY: each CPU uses only its own idle stack; Rust code writes the top once, before the
// CPU first goes idle (`init_idle_stack`).
unsafe impl Sync for IdleStack {}

static IDLE_STACKS: [IdleStack; MAX_CPUS] = [const {
    IdleStack {
        stack: UnsafeCell::new([0; IDLE_STACK_SIZE - size_of::<IdleTop>()]),
        top: UnsafeCell::new(IdleTop { cpu: None }),
    }
}; MAX_CPUS];

/// Records CPU `cpu`'s state at the top of its idle stack; before it first goes idle.
pub fn init_idle_stack(cpu: usize) {
    // SAFETY: the CPU has not used its idle stack yet (see the `Sync` impl).
    unsafe { (*IDLE_STACKS[cpu].top.get()).cpu = Some(kernel::cpu(cpu)) };
}

const _: () = assert!(
    size_of::<super::trap::TrapFrame>() == (15 + 2 + 5) * 8,
    "trap_from_idle makes room for the 15 registers trap_common pushes"
);

global_asm!(
    r#"
    .macro SAVE_REGISTERS
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    .endm

    /* After the handler: resume the frame it returned (a handler that goes idle does not
       return, see go_idle). */
    .macro RESUME
    movq %rax, %rsp
    .endm

    .macro RESTORE_REGISTERS
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp              /* vector and error code */
    iretq
    .endm

    .section .text
    .p2align 4
    .global trap_stubs
trap_stubs:
    .set vector, 0
    .rept 256
    .p2align 4
    /* Exceptions that push an error code: #DF #TS #NP #SS #GP #PF #AC #CP #VC #SX. */
    .if (vector == 8) || (vector >= 10 && vector <= 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    pushq $0
    .endif
    pushq $vector
    .if vector < 32
    jmp trap_save
    .else
    jmp trap_common
    .endif
    .set vector, vector + 1
    .endr
    .p2align 4
    .global trap_stubs_end
trap_stubs_end:

trap_common:
    cmpq $idle_halted, 16(%rsp)  /* the interrupted RIP, above the vector and error code */
    je trap_from_idle
trap_save:
    SAVE_REGISTERS
trap_dispatch:
    movq %rsp, %r12             /* the frame: a preserve-none handler's argument */
    movq {vector_offset}(%rsp), %rax
    call *{handlers}(, %rax, 8)
    RESUME
    .global trap_restore
trap_restore:
    RESTORE_REGISTERS

    /* The async PF events' own entries: the handler called directly, not through the
       table (named trap_direct_<vector> for bench/insns). */
    .global trap_direct_14
trap_direct_14:
    testb $3, 16(%rsp)          /* CS, above the error code and RIP: from ring 3? */
    jz trap_stubs + 14 * {stub_size}   /* no: the kernel's own, an exception */
    pushq $14
    SAVE_REGISTERS
    movq %rsp, %r12
    movq {cpu_above_frame}(%rsp), %r13  /* the task's CPU and id (see Context) */
    movq {task_above_frame}(%rsp), %r14
    call {page_fault}
    RESUME
    RESTORE_REGISTERS

    .global trap_direct_243
trap_direct_243:
    subq $16, %rsp              /* error code and vector: its handler reads neither */
    cmpq $idle_halted, 16(%rsp)
    je 2f
    SAVE_REGISTERS
1:
    movq {cpu_above_frame}(%rsp), %r12  /* a task's or the idle stack's CPU (no frame) */
    call {page_ready}
    RESUME
    RESTORE_REGISTERS
2:
    subq $(15 * 8), %rsp        /* as trap_from_idle */
    jmp 1b

trap_from_idle:
    subq $(15 * 8), %rsp        /* room for the registers, left unsaved */
    jmp trap_dispatch

    /* The idle context: halts until the next interrupt, on its CPU's own stack, the one
       after (TSS selector - first TSS selector) / 16 idle stacks (see gdt::cpu_index),
       below the CPU pointer at its top (see IdleStack). */
    .global idle_enter
idle_enter:
    str %ax
    movzwl %ax, %eax
    subl ${first_tss}, %eax
    shll ${idle_shift}, %eax
    leaq {idle_stacks} + {idle_stack_size} - {idle_top}(%rax), %rsp
idle_loop:
    sti                         /* takes effect after hlt: no interrupt slips in between */
    hlt
    .global idle_halted
idle_halted:
    cli
    jmp idle_loop
"#,
    handlers = sym super::trap::HANDLERS,
    page_fault = sym super::trap::page_fault,
    page_ready = sym super::trap::page_ready,
    vector_offset = const core::mem::offset_of!(super::trap::TrapFrame, vector),
    idle_stack_size = const IDLE_STACK_SIZE,
    idle_stacks = sym IDLE_STACKS,
    idle_top = const size_of::<IdleTop>(),
    stub_size = const STUB_SIZE,
    cpu_above_frame = const super::context::CPU_ABOVE_FRAME,
    task_above_frame = const super::context::TASK_ABOVE_FRAME,
    first_tss = const super::gdt::FIRST_TSS,
    idle_shift = const IDLE_STACK_SIZE.trailing_zeros() - super::gdt::TSS_DESCRIPTOR_SIZE.trailing_zeros(),
    options(att_syntax)
);

unsafe extern "C" {
    fn trap_stubs();
    fn trap_stubs_end();
}

/// Resumes `frame`, a complete frame built by the kernel, for good: from boot code.
pub fn restore(frame: *mut super::trap::TrapFrame) -> ! {
    // SAFETY: `trap_restore` pops the frame and returns to it with iretq.
    unsafe {
        core::arch::asm!(
            "mov rsp, {frame}",
            "jmp trap_restore",
            frame = in(reg) frame,
            options(noreturn)
        )
    }
}

/// Leaves the current stack for the idle loop: what a trap does instead of returning a
/// frame when nothing can run, so the entries' return path needs no test for it.
pub fn go_idle() -> ! {
    // SAFETY: `idle_enter` switches to this CPU's idle stack and needs nothing; whatever
    // the current stack held is dead (a trap's frame is saved state, kept by its task).
    unsafe { core::arch::asm!("jmp idle_enter", options(noreturn)) }
}

/// True if every stub fits its slot. The assembler cannot check this (jumps may be
/// relaxed), so the IDT set-up checks it once.
pub fn stubs_fit() -> bool {
    trap_stubs_end as *const () as u64 - trap_stubs as *const () as u64 == 256 * STUB_SIZE
}

unsafe extern "C" {
    fn trap_direct_14();
    fn trap_direct_243();
}

const _: () = assert!(
    ExceptionVector::Page as u8 == 14 && super::apf::READY_VECTOR == 243,
    "the direct entries' names carry their vectors"
);

/// Where `vector`'s IDT gate points: the async PF events' own entries, which call their
/// handler directly (a jump and a table load fewer on each event), or the vector's stub.
pub fn entry_address(vector: u8) -> u64 {
    const PAGE_FAULT: u8 = ExceptionVector::Page as u8;
    match vector {
        PAGE_FAULT => trap_direct_14 as *const () as u64,
        super::apf::READY_VECTOR => trap_direct_243 as *const () as u64,
        _ => trap_stubs as *const () as u64 + u64::from(vector) * STUB_SIZE,
    }
}
