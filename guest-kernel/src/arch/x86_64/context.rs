//! A task's kernel-side state: its kernel stack, with the task's saved [`TrapFrame`] at the
//! top. Tasks enter the kernel only from ring 3 with an empty kernel stack, so the frame
//! always sits at the same place and the context is just the stack.

use super::gdt::{USER_CS, USER_SS};
use super::trap::TrapFrame;
use alloc::boxed::Box;
use core::ptr::NonNull;
use x86_64::registers::rflags::RFlags;

const KERNEL_STACK_SIZE: usize = 16 * 1024;

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
    /// A task that starts in ring 3 at `entry(arg)` on the user stack ending at `user_stack_top`.
    pub fn new_user(entry: extern "C" fn(u64) -> !, arg: u64, user_stack_top: u64) -> Self {
        // Not zeroed: only the frame below is ever read before being written, and every
        // byte cleared would be an emulated ring-0 store.
        let stack = NonNull::from(Box::leak(Box::<KernelStack>::new_uninit()));
        // The ABI expects the stack to look as after a `call`: 16-byte aligned minus 8.
        let rsp = (user_stack_top & !0xF) - 8;
        let ctx = Self {
            stack: stack.cast(),
        };
        // SAFETY: the frame lies inside the freshly allocated stack.
        unsafe {
            *ctx.frame() = TrapFrame {
                rip: entry as *const () as u64,
                cs: u64::from(USER_CS),
                rflags: (RFlags::INTERRUPT_FLAG | RFlags::from_bits_retain(0x2)).bits(),
                rsp,
                ss: u64::from(USER_SS),
                rdi: arg,
                ..TrapFrame::default()
            };
        }
        ctx
    }

    /// Where the CPU starts pushing when the task enters the kernel.
    pub fn stack_top(&self) -> u64 {
        self.stack.as_ptr() as u64 + KERNEL_STACK_SIZE as u64
    }

    /// The task's saved user state.
    pub fn frame(&self) -> *mut TrapFrame {
        (self.stack_top() as usize - size_of::<TrapFrame>()) as *mut TrapFrame
    }
}
