//! The scheduler's run queue: task ids in a ring whose size is a power of two, at least
//! the number of tasks.
//!
//! A task is queued at most once (only a ready task is, and running or parking takes it
//! out), so the ring never fills and a push needs no capacity check; every push and pop is
//! an index mask and a store or a load. It replaces a `VecDeque` whose wrap-around and
//! growth checks cost about ten emulated instructions per operation on the async PF paths.
//! It grows only when a task is spawned, never in a trap.

use alloc::vec;
use alloc::vec::Vec;

/// Task ids in first-out order.
#[derive(Debug)]
pub struct RunQueue {
    /// `slots[head & mask .. tail & mask]`, wrapping; `slots.len()` is a power of two.
    slots: Vec<usize>,
    /// Free-running positions of the first entry and one past the last.
    head: usize,
    tail: usize,
}

impl Default for RunQueue {
    fn default() -> Self {
        Self {
            slots: vec![0; 1],
            head: 0,
            tail: 0,
        }
    }
}

impl RunQueue {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    pub fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head)
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Makes room for `ids` distinct entries (the number of tasks), keeping the order.
    pub fn reserve_for(&mut self, ids: usize) {
        let size = ids.max(1).next_power_of_two();
        if size <= self.slots.len() {
            return;
        }
        let mut slots = vec![0; size];
        for (i, slot) in slots.iter_mut().take(self.len()).enumerate() {
            *slot = self.slots[self.head.wrapping_add(i) & self.mask()];
        }
        self.tail = self.len();
        self.head = 0;
        self.slots = slots;
    }

    /// Queues `id` last.
    ///
    /// # Panics
    /// In debug builds, if the ring is full: a task queued twice, or not reserved for.
    pub fn push_back(&mut self, id: usize) {
        debug_assert!(self.len() < self.slots.len(), "run queue overflow");
        let slot = self.tail & self.mask();
        self.slots[slot] = id;
        self.tail = self.tail.wrapping_add(1);
    }

    /// Queues `id` first.
    pub fn push_front(&mut self, id: usize) {
        debug_assert!(self.len() < self.slots.len(), "run queue overflow");
        self.head = self.head.wrapping_sub(1);
        let slot = self.head & self.mask();
        self.slots[slot] = id;
    }

    /// Takes the first entry.
    pub fn pop_front(&mut self) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        let id = self.slots[self.head & self.mask()];
        self.head = self.head.wrapping_add(1);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::VecDeque;
    use proptest::prelude::*;

    #[test]
    fn first_in_first_out_with_front_pushes() {
        let mut q = RunQueue::default();
        q.reserve_for(4);
        assert_eq!(q.pop_front(), None);
        q.push_back(1);
        q.push_back(2);
        q.push_front(0);
        q.push_back(3);
        assert_eq!(q.len(), 4);
        let order: Vec<usize> = core::iter::from_fn(|| q.pop_front()).collect();
        assert_eq!(order, [0, 1, 2, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn growing_keeps_the_order_across_the_wrap() {
        let mut q = RunQueue::default();
        q.reserve_for(2);
        q.push_back(7);
        q.push_front(6);
        q.reserve_for(5);
        q.push_back(8);
        q.push_front(5);
        q.push_back(9);
        let order: Vec<usize> = core::iter::from_fn(|| q.pop_front()).collect();
        assert_eq!(order, [5, 6, 7, 8, 9]);
    }

    #[test]
    #[should_panic(expected = "run queue overflow")]
    #[cfg(debug_assertions)]
    fn a_full_ring_is_a_bug() {
        let mut q = RunQueue::default();
        q.reserve_for(2);
        q.push_back(0);
        q.push_back(1);
        q.push_back(2);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Back,
        Front,
        Pop,
    }

    proptest! {
        /// Any sequence that never queues more than the reserved entries behaves like a
        /// `VecDeque`.
        #[test]
        fn matches_a_vecdeque(reserve in 1usize..40, ops in prop::collection::vec(
            prop_oneof![Just(Op::Back), Just(Op::Front), Just(Op::Pop)], 0..300)) {
            let mut q = RunQueue::default();
            q.reserve_for(reserve);
            let mut model = VecDeque::new();
            for (next, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Back if model.len() < reserve => {
                        q.push_back(next);
                        model.push_back(next);
                    }
                    Op::Front if model.len() < reserve => {
                        q.push_front(next);
                        model.push_front(next);
                    }
                    _ => prop_assert_eq!(q.pop_front(), model.pop_front()),
                }
                prop_assert_eq!(q.len(), model.len());
            }
        }
    }
}
