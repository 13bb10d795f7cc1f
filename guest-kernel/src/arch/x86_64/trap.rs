//! The saved user state and the one Rust entry point every stub calls.

use super::{apf, apic, entry, msr};
use crate::kernel::{self, Cpu, Fault, Next};
use apf_pv::x86::PageFault;
use guest_kernel::sched::TaskId;
use x86_64::registers::control::Cr2;

/// System calls: `int3` from ring 3 (see [`super::usercall`]).
pub const SYSCALL_VECTOR: u8 = 3;
/// LAPIC timer interrupt.
pub const TIMER_VECTOR: u8 = 0x20;
/// The inter-processor interrupt of a wake from another CPU (`kernel::remote_wakes`).
pub const WAKE_VECTOR: u8 = 0x21;
/// LAPIC spurious interrupt: no EOI.
pub const SPURIOUS_VECTOR: u8 = 0xFF;
/// First vector that is not a CPU exception.
const FIRST_IRQ_VECTOR: u64 = 32;
const PAGE_FAULT_VECTOR: u64 = 14;

/// Registers as the entry stubs leave them on the stack (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// The kernel runs in ring 0 and tasks in ring 3, nothing in between: any non-zero
    /// privilege level in the saved CS is a task's (one emulated test, not a mask and a
    /// compare).
    pub fn is_from_user(&self) -> bool {
        self.cs & 3 != 0
    }
}

/// A trap's handler: gets the frame its stub built, returns the frame to resume (or goes
/// idle, [`entry::go_idle`]). The stub saved every register in the frame and restores them from the
/// frame it resumes, so a handler need preserve none of them: under this convention it
/// pushes and pops no callee-saved registers (six emulated instructions fewer per event),
/// and takes the frame in `r12`.
pub type Handler = extern "rust-preserve-none" fn(&mut TrapFrame) -> *mut TrapFrame;

/// Each vector's handler, called by the entry stubs. The timer and system calls have their
/// own; everything else goes to [`other`]. (The async PF events have entries and handlers
/// of their own; a #PF taken in the kernel comes here, an exception.)
pub static HANDLERS: [Handler; 256] = {
    let mut table: [Handler; 256] = [other; 256];
    table[SYSCALL_VECTOR as usize] = syscall;
    table[TIMER_VECTOR as usize] = timer;
    table[WAKE_VECTOR as usize] = wake;
    table
};

/// #PF from ring 3 (its entry sends the kernel's own to [`other`]): KVM's "page not
/// present" blocks the task; any other is the task's exception. `cpu` is the running
/// CPU's and `task` the faulting task, which the entry found above the frame.
pub(super) extern "rust-preserve-none" fn page_fault(
    f: &mut TrapFrame,
    cpu: &'static Cpu,
    task: TaskId,
) -> *mut TrapFrame {
    match apf::classify(&cpu.arch, Cr2::read_raw()) {
        PageFault::NotPresent(token) => resume(cpu, kernel::apf_not_present(cpu, task, token)),
        PageFault::Ordinary => resume(cpu, exception(f)),
    }
}

/// KVM's "page ready": its waiter runs next. `cpu` as for [`page_fault`] (an interrupt
/// arrives from ring 3 or the idle loop, whose stack holds the pointer too); the frame it
/// needs not, so its entry does not pass it.
pub(super) extern "rust-preserve-none" fn page_ready(cpu: &'static Cpu) -> *mut TrapFrame {
    let next = match apf::take_ready(&cpu.arch) {
        Some(token) => kernel::apf_ready(cpu, token),
        None => {
            apic::end_of_interrupt();
            kernel::next()
        }
    };
    resume(cpu, next)
}

/// `int3`: a task's system call; in the kernel, an exception.
extern "rust-preserve-none" fn syscall(f: &mut TrapFrame) -> *mut TrapFrame {
    if !f.is_from_user() {
        return other(f);
    }
    let (result, next) = kernel::syscall(f.rax, [f.rdi, f.rsi, f.rdx]);
    f.rax = result as u64;
    resume(kernel::this_cpu(), next)
}

extern "rust-preserve-none" fn timer(_: &mut TrapFrame) -> *mut TrapFrame {
    apic::end_of_interrupt();
    resume(kernel::this_cpu(), kernel::tick())
}

/// Another CPU woke tasks of this one.
extern "rust-preserve-none" fn wake(_: &mut TrapFrame) -> *mut TrapFrame {
    apic::end_of_interrupt();
    resume(kernel::this_cpu(), kernel::remote_wakes())
}

/// Every other vector: exceptions, the spurious interrupt, and interrupts nobody expects.
extern "rust-preserve-none" fn other(f: &mut TrapFrame) -> *mut TrapFrame {
    let next = match f.vector {
        v if v < FIRST_IRQ_VECTOR => {
            // A refused `msr::write_safe` resumes at once: it may come from boot code or
            // from inside another trap, where no task is to be scheduled.
            if msr::recover(f) {
                return f;
            }
            exception(f)
        }
        v if v == u64::from(SPURIOUS_VECTOR) => kernel::next(),
        v => {
            apic::end_of_interrupt();
            kernel::unexpected_interrupt(v);
            kernel::next()
        }
    };
    resume(kernel::this_cpu(), next)
}

/// Reports an exception; a task's ends the task (returns what runs next), the kernel's
/// stops the machine.
fn exception(f: &TrapFrame) -> Next {
    let fault = Fault {
        vector: f.vector,
        name: exception_name(f.vector),
        error_code: f.error_code,
        ip: f.rip,
        address: (f.vector == PAGE_FAULT_VECTOR).then(Cr2::read_raw),
    };
    if f.is_from_user() {
        kernel::task_fault(fault)
    } else {
        kernel::kernel_fault(fault, f.rsp)
    }
}

/// Starts running `next` from boot code.
pub fn enter(next: Next) -> ! {
    entry::restore(resume(kernel::this_cpu(), next))
}

/// Points `cpu` (the running CPU) at the next task's kernel stack and returns its frame;
/// with nothing to run, goes idle instead.
#[inline(always)]
fn resume(cpu: &Cpu, next: Next) -> *mut TrapFrame {
    match next {
        Next::Task(ctx) => {
            cpu.arch.set_kernel_stack(ctx.stack_top());
            ctx.frame()
        }
        Next::Idle => entry::go_idle(),
    }
}

/// Mnemonic and name of a CPU exception, for reports.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD error",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        _ => "reserved exception",
    }
}
