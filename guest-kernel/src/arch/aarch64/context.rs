//! A task's kernel-side state: its kernel stack, with the task's saved [`TrapFrame`] at the
//! top. Tasks enter the kernel only from EL0 with an empty kernel stack, so the frame always
//! sits at the same place and the context is just the stack.

use super::trap::{FRAME_SIZE, TrapFrame};
use alloc::boxed::Box;
use core::ptr::NonNull;

const KERNEL_STACK_SIZE: usize = 16 * 1024;
/// The AAPCS64 stack pointer alignment.
const STACK_ALIGN: u64 = 16;

#[repr(C, align(16))]
struct KernelStack([u8; KERNEL_STACK_SIZE]);

/// Handle to a task's kernel stack.
///
/// Stacks are never freed: the kernel runs a fixed set of tasks and an exited task's stack
/// may still be the one the exit path runs on.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    stack: NonNull<KernelStack>,
}

// SAFETY: the stack is owned by this context alone and only used by the one CPU.
unsafe impl Send for Context {}

impl Context {
    /// A task that starts at EL0 at `entry(arg)` on the user stack ending at `user_stack_top`.
    pub fn new_user(entry: extern "C" fn(u64) -> !, arg: u64, user_stack_top: u64) -> Self {
        let stack = NonNull::from(Box::leak(Box::<KernelStack>::new_uninit()));
        let ctx = Self {
            stack: stack.cast(),
        };
        let sp = user_stack_top & !(STACK_ALIGN - 1);
        // SAFETY: the frame lies inside the freshly allocated stack.
        unsafe {
            ctx.frame()
                .write(TrapFrame::user(entry as *const () as u64, arg, sp))
        };
        ctx
    }

    /// The task's saved state; popping it leaves SP_EL1 at the top of the stack.
    pub fn frame(&self) -> *mut TrapFrame {
        (self.stack.as_ptr() as usize + KERNEL_STACK_SIZE - FRAME_SIZE) as *mut TrapFrame
    }
}
