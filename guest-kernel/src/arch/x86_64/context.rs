//! A task's kernel-side state: its kernel stack, with the task's saved [`TrapFrame`] at the
//! top and, above it, the task's CPU. Tasks enter the kernel only from ring 3 with an
//! empty kernel stack, so the frame always sits at the same place and the context is just
//! the stack; and the async PF entries find the running CPU's state one load away from
//! the frame, where `str` and the index arithmetic cost five emulated instructions.

use super::gdt::{USER_CS, USER_SS};
use super::trap::TrapFrame;
use crate::arch::stack::KernelStack;
use crate::kernel::{self, Cpu};
use guest_kernel::sched::TaskId;
use x86_64::registers::rflags::RFlags;

/// The top of a task's kernel stack: RSP0 points at `cpu`, so a trap from ring 3 pushes
/// its frame right below it, and the #PF entry passes both words above it to its handler.
/// The idle stacks end the same way, without a task (see `entry`).
#[repr(C, align(16))]
pub struct StackTop {
    pub frame: TrapFrame,
    pub cpu: &'static Cpu,
    /// The task whose stack this is: the one a fault from ring 3 interrupted.
    pub task: TaskId,
}

/// Where the CPU pointer and the task id sit relative to the frame, for the entry stubs.
pub const CPU_ABOVE_FRAME: usize = core::mem::offset_of!(StackTop, cpu);
pub const TASK_ABOVE_FRAME: usize = core::mem::offset_of!(StackTop, task);
const _: () = assert!(
    CPU_ABOVE_FRAME == size_of::<TrapFrame>() && CPU_ABOVE_FRAME.is_multiple_of(16),
    "the frame ends where RSP0 points (16-byte aligned, as the CPU aligns it)"
);

/// Handle to a task's kernel stack.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    stack: KernelStack<StackTop>,
}

impl Context {
    /// Task `task` of CPU `cpu`, which starts in ring 3 at `entry(arg)` on the user stack
    /// ending at `user_stack_top`.
    pub fn new_user(
        entry: extern "C" fn(u64) -> !,
        arg: u64,
        user_stack_top: u64,
        cpu: usize,
        task: TaskId,
    ) -> Self {
        // The ABI expects the stack to look as after a `call`: 16-byte aligned minus 8.
        let rsp = (user_stack_top & !0xF) - 8;
        Self {
            stack: KernelStack::new(StackTop {
                frame: TrapFrame {
                    rip: entry as *const () as u64,
                    cs: u64::from(USER_CS),
                    rflags: (RFlags::INTERRUPT_FLAG | RFlags::from_bits_retain(0x2)).bits(),
                    rsp,
                    ss: u64::from(USER_SS),
                    rdi: arg,
                    ..TrapFrame::default()
                },
                cpu: kernel::cpu(cpu),
                task,
            }),
        }
    }

    /// The task now runs on CPU `cpu` (load balancing moved it; it is not running): its
    /// traps must find that CPU's state above the frame.
    pub fn move_to(&self, cpu: usize) {
        // SAFETY: the stack top is the task's own; the task is queued, not running, so no
        // trap reads it now, and only the CPU that holds the task writes it.
        unsafe { (*self.stack.frame()).cpu = kernel::cpu(cpu) };
    }

    /// Where the CPU starts pushing when the task enters the kernel (RSP0): the frame's
    /// end, below the CPU pointer.
    #[inline(always)]
    pub fn stack_top(&self) -> u64 {
        self.frame() as u64 + CPU_ABOVE_FRAME as u64
    }

    /// The task's saved user state.
    #[inline(always)]
    pub fn frame(&self) -> *mut TrapFrame {
        // The frame is the first field of the (`repr(C)`) stack top.
        self.stack.frame().cast()
    }
}
