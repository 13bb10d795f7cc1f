//! A task's kernel-side state: its kernel stack, with the task's saved [`TrapFrame`] at the
//! top. Tasks enter the kernel only from EL0 with an empty kernel stack, so the frame always
//! sits at the same place and the context is just the stack.

use super::trap::TrapFrame;
use crate::arch::stack::KernelStack;

/// The AAPCS64 stack pointer alignment.
const STACK_ALIGN: u64 = 16;

/// Handle to a task's kernel stack.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    stack: KernelStack<TrapFrame>,
}

impl Context {
    /// A task that starts at EL0 at `entry(arg)` on the user stack ending at `user_stack_top`.
    /// Its CPU (`_cpu`) and id (`_task`) need no record: aarch64 finds the running CPU's
    /// state by its index (TPIDR_EL1) and the task from the scheduler.
    pub fn new_user(
        entry: extern "C" fn(u64) -> !,
        arg: u64,
        user_stack_top: u64,
        _cpu: usize,
        _task: usize,
    ) -> Self {
        let sp = user_stack_top & !(STACK_ALIGN - 1);
        Self {
            stack: KernelStack::new(TrapFrame::user(entry as *const () as u64, arg, sp)),
        }
    }

    /// The task now runs on CPU `_cpu`: nothing records it (see [`Context::new_user`]).
    pub fn move_to(&self, _cpu: usize) {}

    /// The task's saved state; popping it leaves SP_EL1 at the top of the stack.
    pub fn frame(&self) -> *mut TrapFrame {
        self.stack.frame()
    }
}
