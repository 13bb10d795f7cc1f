//! The scheduler's tasks, in a table of fixed capacity indexed by task id.
//!
//! The async PF paths look a task up two or three times per event, and on our KVM every
//! ring-0 instruction is emulated (about a microsecond each). A `Vec` lookup loads the length
//! and compares against it each time; here the capacity is a power-of-two constant, so a
//! lookup masks the id and tests the slot, and the slot test is the one the caller's state
//! check needs anyway. Ids are handed out by the scheduler and stay below
//! the table's capacity, so the mask never changes an id: it only lets the compiler see that
//! the index is in bounds. (An id of [`MAX_TASKS`] or more is no id this table gave out; a
//! debug build stops at one.)

/// The most tasks a kernel runs: a power of two, above the largest scenario (`mlp:96` plus
/// the cpu task of `seed`).
pub const MAX_TASKS: usize = 128;
const _: () = assert!(MAX_TASKS.is_power_of_two());

/// Index of a task in the table; stable for the task's life and after its exit.
pub type TaskId = usize;

/// Up to [`MAX_TASKS`] values of `T`, by id.
pub struct TaskTable<T> {
    /// Inline, not boxed: one load less per lookup. On one CPU every slot below `end` is
    /// `Some`; with several, each CPU's table holds the ids of its own tasks only.
    slots: [Option<T>; MAX_TASKS],
    /// One past the highest id held.
    end: usize,
}

impl<T> Default for TaskTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TaskTable<T> {
    pub const fn new() -> Self {
        Self {
            slots: [const { None }; MAX_TASKS],
            end: 0,
        }
    }

    /// The id after the highest held: the next one on a single CPU.
    pub fn next_id(&self) -> TaskId {
        self.end
    }

    /// Adds `value` under `id`, which a kernel with several CPUs hands out itself (its
    /// task ids are global, each CPU's table holds its own).
    ///
    /// # Panics
    /// If `id` is [`MAX_TASKS`] or more, or already held.
    pub fn insert(&mut self, id: TaskId, value: T) {
        assert!(id < MAX_TASKS, "more than {MAX_TASKS} tasks");
        assert!(self.slots[id].is_none(), "task id {id} given twice");
        self.slots[id] = Some(value);
        self.end = self.end.max(id + 1);
    }

    /// True if no task was ever added (a task removed again still counts).
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// Takes task `id` out (it moved to another CPU's table).
    pub fn remove(&mut self, id: TaskId) -> Option<T> {
        self.slots.get_mut(id)?.take()
    }

    /// Task `id`, if the table holds one.
    #[inline]
    pub fn get(&self, id: TaskId) -> Option<&T> {
        debug_assert!(id < MAX_TASKS, "task id {id} was never handed out");
        self.slots[id % MAX_TASKS].as_ref()
    }

    #[inline]
    pub fn get_mut(&mut self, id: TaskId) -> Option<&mut T> {
        debug_assert!(id < MAX_TASKS, "task id {id} was never handed out");
        self.slots[id % MAX_TASKS].as_mut()
    }

    /// Every task, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots[..self.end].iter().flatten()
    }

    /// Every task with its id, in id order.
    pub fn entries(&self) -> impl Iterator<Item = (TaskId, &T)> {
        self.slots[..self.end]
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| Some((id, slot.as_ref()?)))
    }
}

impl<T> core::ops::Index<TaskId> for TaskTable<T> {
    type Output = T;

    /// # Panics
    /// If there is no task `id`.
    #[inline]
    fn index(&self, id: TaskId) -> &T {
        self.get(id).expect("no such task")
    }
}

impl<T> core::ops::IndexMut<TaskId> for TaskTable<T> {
    #[inline]
    fn index_mut(&mut self, id: TaskId) -> &mut T {
        self.get_mut(id).expect("no such task")
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for TaskTable<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_order_lookups_and_iteration() {
        let mut t = TaskTable::default();
        assert!(t.is_empty());
        assert_eq!(t.next_id(), 0);
        t.insert(0, 'a');
        assert_eq!(t.next_id(), 1);
        t.insert(1, 'b');
        assert_eq!(t[1], 'b');
        t[0] = 'c';
        assert_eq!(t.iter().collect::<Vec<_>>(), [&'c', &'b']);
        assert_eq!(t.get(2), None, "not inserted");
        assert_eq!(t.get_mut(MAX_TASKS - 1), None);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "task id 128 was never handed out")]
    fn an_id_past_the_capacity_is_a_bug() {
        let mut t = TaskTable::default();
        t.insert(0, 0);
        t.get(MAX_TASKS);
    }

    #[test]
    fn inserted_ids_leave_holes_that_iteration_skips() {
        let mut t = TaskTable::default();
        t.insert(1, 'b');
        t.insert(3, 'd');
        assert!(!t.is_empty());
        assert_eq!(t.get(0), None);
        assert_eq!(t.iter().collect::<Vec<_>>(), [&'b', &'d']);
        assert_eq!(t.entries().collect::<Vec<_>>(), [(1, &'b'), (3, &'d')]);
        assert_eq!(t.next_id(), 4, "past the highest id");
    }

    #[test]
    #[should_panic(expected = "task id 1 given twice")]
    fn an_id_is_inserted_once() {
        let mut t = TaskTable::default();
        t.insert(1, 'a');
        t.insert(1, 'b');
    }

    #[test]
    #[should_panic(expected = "more than 128 tasks")]
    fn a_full_table_refuses_more() {
        let mut t = TaskTable::default();
        for i in 0..=MAX_TASKS {
            t.insert(i, i);
        }
    }
}
