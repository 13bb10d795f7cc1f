//! A task's kernel-side state: its kernel stack, with the task's saved [`TrapFrame`] at the
//! top. Tasks enter the kernel only from ring 3 with an empty kernel stack, so the frame
//! always sits at the same place and the context is just the stack.

use super::gdt::{USER_CS, USER_SS};
use super::trap::TrapFrame;
use crate::arch::stack::KernelStack;
use x86_64::registers::rflags::RFlags;

/// Handle to a task's kernel stack.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    stack: KernelStack<TrapFrame>,
}

impl Context {
    /// A task that starts in ring 3 at `entry(arg)` on the user stack ending at `user_stack_top`.
    pub fn new_user(entry: extern "C" fn(u64) -> !, arg: u64, user_stack_top: u64) -> Self {
        // The ABI expects the stack to look as after a `call`: 16-byte aligned minus 8.
        let rsp = (user_stack_top & !0xF) - 8;
        Self {
            stack: KernelStack::new(TrapFrame {
                rip: entry as *const () as u64,
                cs: u64::from(USER_CS),
                rflags: (RFlags::INTERRUPT_FLAG | RFlags::from_bits_retain(0x2)).bits(),
                rsp,
                ss: u64::from(USER_SS),
                rdi: arg,
                ..TrapFrame::default()
            }),
        }
    }

    /// Where the CPU starts pushing when the task enters the kernel.
    pub fn stack_top(&self) -> u64 {
        self.stack.top()
    }

    /// The task's saved user state.
    pub fn frame(&self) -> *mut TrapFrame {
        self.stack.frame()
    }
}
