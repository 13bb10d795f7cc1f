//! A fake firmware for host tests: records every call and answers from a closure.

extern crate alloc;

use crate::smccc::Conduit;
use alloc::vec::Vec;
use core::cell::RefCell;

/// A [`Conduit`] that logs each call's `x0..x5` and returns what `respond` computes from
/// them, so a test can script a firmware or hypervisor and then check the exact calls.
pub struct MockConduit<F> {
    respond: F,
    calls: RefCell<Vec<[u64; 6]>>,
}

impl<F: Fn([u64; 6]) -> [u64; 4]> MockConduit<F> {
    /// A fake whose answer depends on the call (e.g. on the function ID in `args[0]`).
    pub fn new(respond: F) -> Self {
        Self {
            respond,
            calls: RefCell::new(Vec::new()),
        }
    }

    /// The calls made so far, oldest first.
    pub fn calls(&self) -> Vec<[u64; 6]> {
        self.calls.borrow().clone()
    }
}

impl MockConduit<fn([u64; 6]) -> [u64; 4]> {
    /// A fake that answers every call with the same `x0..x3`.
    pub fn replying(results: [u64; 4]) -> MockConduit<impl Fn([u64; 6]) -> [u64; 4]> {
        MockConduit::new(move |_| results)
    }
}

impl<F: Fn([u64; 6]) -> [u64; 4]> Conduit for MockConduit<F> {
    fn call(&self, args: [u64; 6]) -> [u64; 4] {
        self.calls.borrow_mut().push(args);
        (self.respond)(args)
    }
}
