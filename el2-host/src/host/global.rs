//! The host's state, reachable from the exception vectors.
//!
//! The host runs on one CPU with exceptions masked at EL2 (taking an exception to EL2 sets
//! `PSTATE.DAIF`), so the state is only ever used by one activation at a time: the boot path
//! until it enters the guest, then each guest exit in turn.

use core::cell::UnsafeCell;

/// A value with one user at a time, by the argument above.
pub struct Global<T>(UnsafeCell<Option<T>>);

// SAFETY: one CPU, and no EL2 code is ever interrupted (see the module doc), so accesses
// never overlap.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new() -> Self {
        Self(UnsafeCell::new(None))
    }

    /// Stores the value; called once, before any exception can reach [`Global::get`].
    pub fn set(&self, value: T) {
        // SAFETY: see the module doc: no other reference is live while the boot path runs.
        unsafe { *self.0.get() = Some(value) }
    }

    /// The value, while one exit is handled. `None` before [`Global::set`].
    #[allow(clippy::mut_from_ref)]
    pub fn get(&self) -> Option<&mut T> {
        // SAFETY: see the module doc: each exit handler is the only user while it runs, and
        // drops the reference before returning to the guest.
        unsafe { (*self.0.get()).as_mut() }
    }
}
