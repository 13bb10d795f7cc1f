//! Statically allocated stacks for the contexts that are not tasks (idle, #DF).

use core::cell::UnsafeCell;

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
