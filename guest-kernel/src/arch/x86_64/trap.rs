//! The saved user state and the one Rust entry point every stub calls.

use super::{apf, apic, entry, msr};
use crate::kernel::{self, Fault, Next};
use apf_pv::x86::PageFault;
use x86_64::registers::control::Cr2;

/// System calls: `int3` from ring 3 (see [`super::usercall`]).
pub const SYSCALL_VECTOR: u8 = 3;
/// LAPIC timer interrupt.
pub const TIMER_VECTOR: u8 = 0x20;
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
    pub fn is_from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// Called by every stub with the frame it built; returns the frame to resume, or null for
/// the idle loop.
pub extern "C" fn dispatch(frame: *mut TrapFrame) -> *mut TrapFrame {
    // SAFETY: the stub passes the frame it just pushed on this stack.
    let f = unsafe { &mut *frame };
    // The async PF events first: each arm tested before theirs costs every one of them an
    // emulated compare and branch.
    let next = match f.vector {
        PAGE_FAULT_VECTOR => match apf::classify(Cr2::read_raw()) {
            PageFault::NotPresent(token) if f.is_from_user() => kernel::apf_not_present(token),
            _ => exception(f),
        },
        v if v == u64::from(apf::READY_VECTOR) => {
            apic::end_of_interrupt();
            match apf::take_ready() {
                Some(token) => kernel::apf_ready(token),
                None => kernel::next(),
            }
        }
        v if v == u64::from(SYSCALL_VECTOR) && f.is_from_user() => {
            let (result, next) = kernel::syscall(f.rax, [f.rdi, f.rsi, f.rdx]);
            f.rax = result as u64;
            next
        }
        v if v < FIRST_IRQ_VECTOR => {
            // A refused `msr::write_safe` resumes at once: it may come from boot code or
            // from inside another trap, where no task is to be scheduled.
            if msr::recover(f) {
                return frame;
            }
            exception(f)
        }
        v if v == u64::from(TIMER_VECTOR) => {
            apic::end_of_interrupt();
            kernel::tick()
        }
        v if v == u64::from(SPURIOUS_VECTOR) => kernel::next(),
        v => {
            apic::end_of_interrupt();
            kernel::unexpected_interrupt(v);
            kernel::next()
        }
    };
    resume(next)
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
    entry::restore(resume(next))
}

/// Points the CPU at the next task's kernel stack and returns its frame (null: idle).
fn resume(next: Next) -> *mut TrapFrame {
    match next {
        Next::Task(ctx) => {
            super::gdt::set_kernel_stack(ctx.stack_top());
            ctx.frame()
        }
        Next::Idle => core::ptr::null_mut(),
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
