//! The scheduler's tasks, in a table of fixed capacity indexed by task id.
//!
//! The async PF paths look a task up two or three times per event, and on our KVM every
//! ring-0 instruction is emulated (about a microsecond each). A `Vec` lookup loads the length
//! and compares against it each time; here the capacity is a power-of-two constant, so a
//! lookup masks the id and tests the slot, and the slot test is the one the caller's state
//! check needs anyway. Ids are handed out in order by [`TaskTable::push`] and stay below
//! the number of tasks, so the mask never changes an id: it only lets the compiler see that
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
    /// `slots[..len]` are `Some`, the rest `None`. Inline, not boxed: one load less per
    /// lookup.
    slots: [Option<T>; MAX_TASKS],
    len: usize,
}

impl<T> Default for TaskTable<T> {
    fn default() -> Self {
        Self {
            slots: [const { None }; MAX_TASKS],
            len: 0,
        }
    }
}

impl<T> TaskTable<T> {
    /// Adds `value` under the next id.
    ///
    /// # Panics
    /// If the table holds [`MAX_TASKS`] already (the command line's limits keep every
    /// scenario below it).
    pub fn push(&mut self, value: T) -> TaskId {
        let id = self.len;
        assert!(id < MAX_TASKS, "more than {MAX_TASKS} tasks");
        self.slots[id] = Some(value);
        self.len += 1;
        id
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
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
        self.slots[..self.len].iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots[..self.len].iter_mut().flatten()
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
        assert_eq!(t.push('a'), 0);
        assert_eq!(t.push('b'), 1);
        assert_eq!(t[1], 'b');
        t[0] = 'c';
        assert_eq!(t.iter().collect::<Vec<_>>(), [&'c', &'b']);
        assert_eq!(t.get(2), None, "not pushed");
        assert_eq!(t.get_mut(MAX_TASKS - 1), None);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "task id 128 was never handed out")]
    fn an_id_past_the_capacity_is_a_bug() {
        let mut t = TaskTable::default();
        t.push(0);
        t.get(MAX_TASKS);
    }

    #[test]
    #[should_panic(expected = "more than 128 tasks")]
    fn a_full_table_refuses_more() {
        let mut t = TaskTable::default();
        for i in 0..=MAX_TASKS {
            t.push(i);
        }
    }
}
