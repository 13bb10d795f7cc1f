//! The saved state of an interrupted context and the one Rust entry point every vector calls.

use super::entry::{self, SPSR_EL0T};
use super::{apf, exception, gic, timer};
use crate::arch::stack::Stack;
use crate::kernel::{self, Fault, Next};
use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, Readable};
use core::mem::offset_of;
use guest_kernel::cmdline::MAX_CPUS;

/// Registers as the vectors leave them on the stack (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapFrame {
    /// x0..x30.
    pub x: [u64; 31],
    pub sp_el0: u64,
    /// Where the context resumes (ELR_EL1) and its PSTATE (SPSR_EL1).
    pub elr: u64,
    pub spsr: u64,
    pub fpcr: u64,
    pub fpsr: u64,
    /// The FP/SIMD registers: Rust code on both sides of the trap uses them.
    pub q: [u128; 32],
}

pub const FRAME_SIZE: usize = size_of::<TrapFrame>();
/// Offsets the vectors store at, each the first of a pair one `stp` writes.
pub const FRAME_X30: usize = offset_of!(TrapFrame, x) + 30 * 8;
pub const FRAME_ELR: usize = offset_of!(TrapFrame, elr);
pub const FRAME_FPCR: usize = offset_of!(TrapFrame, fpcr);
pub const FRAME_Q: usize = offset_of!(TrapFrame, q);
const _: () = assert!(
    offset_of!(TrapFrame, sp_el0) == FRAME_X30 + 8
        && offset_of!(TrapFrame, spsr) == FRAME_ELR + 8
        && offset_of!(TrapFrame, fpsr) == FRAME_FPCR + 8
        && FRAME_SIZE.is_multiple_of(16),
    "TrapFrame does not match the vectors' stores"
);

/// SPSR_EL1 of the idle context: EL1 on SP_EL1 (EL1h), every exception unmasked.
const SPSR_EL1H: u64 = 0b0101;
/// Low two bits of a vector's number (its offset / 0x80): what kind of exception it is.
const VECTOR_KIND_MASK: u64 = 0b11;
const VECTOR_SYNC: u64 = 0;
const VECTOR_IRQ: u64 = 1;
const VECTOR_FIQ: u64 = 2;

impl TrapFrame {
    /// A frame that resumes at `elr` with PSTATE `spsr` and SP_EL0 `sp_el0`, all else zero.
    pub fn new(elr: u64, spsr: u64, sp_el0: u64) -> Self {
        Self {
            x: [0; 31],
            sp_el0,
            elr,
            spsr,
            fpcr: 0,
            fpsr: 0,
            q: [0; 32],
        }
    }

    /// A task (EL0) frame that starts at `entry` with `x0 = arg` on the user stack `sp`.
    pub fn user(entry: u64, arg: u64, sp: u64) -> Self {
        let mut frame = Self::new(entry, SPSR_EL0T, sp);
        frame.x[0] = arg;
        frame
    }

    fn is_from_user(&self) -> bool {
        entry::is_el0(self.spsr)
    }
}

/// The software-generated interrupt of a wake from another CPU (`kernel::remote_wakes`).
pub const WAKE_SGI: u32 = 0;

const IDLE_STACK_SIZE: usize = 16 * 1024;

/// Each CPU's: the idle loop runs here, and interrupts taken while idle are handled here;
/// its frame is at the top, so popping it leaves the stack empty.
static IDLE_STACKS: [Stack<IDLE_STACK_SIZE>; MAX_CPUS] = [const { Stack::new() }; MAX_CPUS];

/// The frame that (re-)enters the running CPU's idle loop; rebuilt each time.
fn idle_frame() -> *mut TrapFrame {
    let top = IDLE_STACKS[super::cpu_index()].top();
    let frame = (top as usize - FRAME_SIZE) as *mut TrapFrame;
    // SAFETY: the frame lies inside this CPU's idle stack, used only by this CPU with
    // exceptions masked; whatever frame was there has been read.
    unsafe { frame.write(TrapFrame::new(entry::idle_loop_address(), SPSR_EL1H, 0)) };
    frame
}

/// Called by every vector with the frame it built and the vector's number; returns the frame
/// to resume.
pub extern "C" fn dispatch(frame: *mut TrapFrame, vector: u64) -> *mut TrapFrame {
    // SAFETY: the vector passes the frame it just pushed on this stack.
    let f = unsafe { &mut *frame };
    let next = match vector & VECTOR_KIND_MASK {
        VECTOR_SYNC => {
            let esr = ESR_EL1.get();
            let class = ESR_EL1.read(ESR_EL1::EC);
            if class == exception::SVC64 && f.is_from_user() {
                let (result, next) = kernel::syscall(f.x[8], [f.x[0], f.x[1], f.x[2]]);
                f.x[0] = result as u64;
                next
            } else {
                report(f, class, esr)
            }
        }
        VECTOR_IRQ => interrupt(),
        VECTOR_FIQ => {
            kernel::unexpected_interrupt(vector);
            kernel::next()
        }
        _ => report(f, exception::SERROR, ESR_EL1.get()),
    };
    resume(next)
}

/// An interrupt from the GIC: the timer tick, async PF's page-ready, another CPU's wake, or
/// one nobody asked for; or the entry an async PF "page not present" completes through
/// (see `apf`).
fn interrupt() -> Next {
    if let Some(token) = apf::take_not_present() {
        let cpu = kernel::this_cpu();
        return kernel::apf_not_present(cpu, kernel::current_task(cpu), token);
    }
    let Some(intid) = gic::acknowledge() else {
        return kernel::next();
    };
    if apf::is_page_ready(intid) {
        // Slot cleared and IRQ_ACK made first: an EOI with the line still high would take
        // the same page-ready again.
        let token = apf::take_page_ready();
        gic::end_of_interrupt(intid);
        match token {
            Some(token) => kernel::apf_ready(kernel::this_cpu(), token),
            None => kernel::next(),
        }
    } else if intid == WAKE_SGI {
        gic::end_of_interrupt(intid);
        kernel::remote_wakes()
    } else if intid == timer::INTID {
        // The timer's line is level-triggered: it drops once the deadline moves, which must
        // happen before the interrupt ends or it is pending again at once.
        timer::rearm();
        gic::end_of_interrupt(intid);
        kernel::tick()
    } else {
        gic::end_of_interrupt(intid);
        kernel::unexpected_interrupt(u64::from(intid));
        kernel::next()
    }
}

/// An exception of class `class` (syndrome `esr`): ends the task (returns what runs next),
/// or the kernel.
fn report(f: &TrapFrame, class: u64, esr: u64) -> Next {
    let fault = Fault {
        vector: class,
        name: exception::name(class),
        error_code: esr,
        ip: f.elr,
        address: exception::has_address(class).then(|| FAR_EL1.get()),
    };
    if f.is_from_user() {
        kernel::task_fault(fault)
    } else {
        // The interrupted kernel code's stack pointer, above this frame.
        let sp = f as *const TrapFrame as u64 + FRAME_SIZE as u64;
        kernel::kernel_fault(fault, sp)
    }
}

/// Starts running `next` from boot code.
pub fn enter(next: Next) -> ! {
    entry::restore(resume(next))
}

/// The frame of the next context.
fn resume(next: Next) -> *mut TrapFrame {
    match next {
        Next::Task(ctx) => ctx.frame(),
        Next::Idle => idle_frame(),
    }
}
