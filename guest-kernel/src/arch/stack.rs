//! Stacks: statically allocated ones for the contexts that are not tasks (idle, #DF), and
//! each task's kernel stack, with the task's saved frame at the top.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// A stack in `.bss` (an `UnsafeCell`, so it is never placed in read-only data).
#[repr(C, align(16))]
pub struct Stack<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the CPU writes the stack, Rust code only takes its address.
unsafe impl<const N: usize> Sync for Stack<N> {}

impl<const N: usize> Stack<N> {
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }

    /// The initial stack pointer (stacks grow down).
    pub fn top(&self) -> u64 {
        self.0.get() as u64 + N as u64
    }
}

const KERNEL_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct KernelStackMemory([u8; KERNEL_STACK_SIZE]);

/// Handle to a task's kernel stack, whose top holds the task's saved trap frame `F`.
///
/// Tasks enter the kernel only from user mode with an empty kernel stack, so the frame always
/// sits at the same place and the stack is all of a task's kernel-side state. Stacks are
/// never freed: the kernel runs a fixed set of tasks and an exited task's stack may still be
/// the one the exit path runs on.
pub struct KernelStack<F> {
    stack: NonNull<KernelStackMemory>,
    frame: PhantomData<*mut F>,
}

// SAFETY: the stack is owned by this task alone and only used by the one CPU.
unsafe impl<F: Send> Send for KernelStack<F> {}

// By hand: a derive would ask `F` for the same traits, though only a pointer is copied.
impl<F> Clone for KernelStack<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for KernelStack<F> {}

impl<F> fmt::Debug for KernelStack<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.stack.fmt(f)
    }
}

impl<F> KernelStack<F> {
    /// A fresh stack with `frame` saved at its top.
    pub fn new(frame: F) -> Self {
        const {
            assert!(
                size_of::<F>() <= KERNEL_STACK_SIZE && align_of::<F>() <= 16,
                "the frame does not fit at the top of a kernel stack"
            )
        };
        // Not zeroed: only the frame is ever read before being written, and on x86_64 every
        // byte cleared would be an emulated ring-0 store.
        let stack = NonNull::from(Box::leak(Box::<KernelStackMemory>::new_uninit()));
        let stack = Self {
            stack: stack.cast(),
            frame: PhantomData,
        };
        // SAFETY: the frame lies inside the freshly allocated stack.
        unsafe { stack.frame().write(frame) };
        stack
    }

    /// Where the stack starts (it grows down): what is left once the frame is popped.
    pub fn top(&self) -> u64 {
        self.stack.as_ptr() as u64 + KERNEL_STACK_SIZE as u64
    }

    /// The task's saved state.
    pub fn frame(&self) -> *mut F {
        (self.top() as usize - size_of::<F>()) as *mut F
    }
}
