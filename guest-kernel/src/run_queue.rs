//! The scheduler's run queue: task ids in a ring of [`MAX_TASKS`] slots.
//!
//! A task is queued at most once (only a ready task is, and running or parking takes it
//! out), so the ring never fills and a push needs no capacity check; every push and pop is
//! an index mask by a constant and a store or a load. It replaces a `VecDeque` whose
//! wrap-around and growth checks cost about ten emulated instructions per operation on the
//! async PF paths.

use crate::task_table::{MAX_TASKS, TaskId};

/// Task ids in first-out order.
#[derive(Debug)]
pub struct RunQueue {
    /// `slots[head % MAX_TASKS .. tail % MAX_TASKS]`, wrapping.
    /// Inline, not boxed: one load less per push and pop (1 KiB).
    slots: [TaskId; MAX_TASKS],
    /// Free-running positions of the first entry and one past the last.
    head: usize,
    tail: usize,
}

impl Default for RunQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl RunQueue {
    pub const fn new() -> Self {
        Self {
            slots: [0; MAX_TASKS],
            head: 0,
            tail: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head)
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Queues `id` last.
    ///
    /// # Panics
    /// In debug builds, if the ring is full: a task queued twice.
    #[inline]
    pub fn push_back(&mut self, id: TaskId) {
        debug_assert!(self.len() < MAX_TASKS, "run queue overflow");
        self.slots[self.tail % MAX_TASKS] = id;
        self.tail = self.tail.wrapping_add(1);
    }

    /// Queues `id` first.
    #[inline]
    pub fn push_front(&mut self, id: TaskId) {
        debug_assert!(self.len() < MAX_TASKS, "run queue overflow");
        self.head = self.head.wrapping_sub(1);
        self.slots[self.head % MAX_TASKS] = id;
    }

    /// Takes the last entry: the task that would wait longest.
    pub fn pop_back(&mut self) -> Option<TaskId> {
        if self.is_empty() {
            return None;
        }
        self.tail = self.tail.wrapping_sub(1);
        Some(self.slots[self.tail % MAX_TASKS])
    }

    /// Takes the first entry.
    #[inline]
    pub fn pop_front(&mut self) -> Option<TaskId> {
        if self.is_empty() {
            return None;
        }
        let id = self.slots[self.head % MAX_TASKS];
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
    fn the_order_holds_across_the_wrap() {
        let mut q = RunQueue::default();
        q.push_front(6);
        q.push_back(7);
        for id in 0..3 * MAX_TASKS {
            q.push_back(id);
            assert_eq!(q.pop_front(), Some(if id < 2 { 6 + id } else { id - 2 }));
        }
        assert_eq!(q.len(), 2);
    }

    #[test]
    #[should_panic(expected = "run queue overflow")]
    #[cfg(debug_assertions)]
    fn a_full_ring_is_a_bug() {
        let mut q = RunQueue::default();
        for id in 0..=MAX_TASKS {
            q.push_back(id);
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Back,
        Front,
        Pop,
    }

    proptest! {
        /// Any sequence that never queues more than `limit` entries (up to the capacity)
        /// behaves like a `VecDeque`.
        #[test]
        fn matches_a_vecdeque(limit in 1usize..=MAX_TASKS, ops in prop::collection::vec(
            prop_oneof![Just(Op::Back), Just(Op::Front), Just(Op::Pop)], 0..600)) {
            let mut q = RunQueue::default();
            let mut model = VecDeque::new();
            for (next, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Back if model.len() < limit => {
                        q.push_back(next);
                        model.push_back(next);
                    }
                    Op::Front if model.len() < limit => {
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
