//! Round-robin scheduler shared by both architectures.
//!
//! It is a plain state machine: a task's context is a handle the arch layer fixed at spawn
//! (on x86_64 the task's kernel stack, where every trap saves the task's registers); the
//! kernel reports what happened (tick, yield, park, wake, exit), asks
//! [`Scheduler::schedule_context`] which task runs next and resumes that task's context.
//! The kernel only ever runs with interrupts masked (every entry is an interrupt gate or
//! `syscall` with IF cleared), so no locking is needed inside; the caller owns the instance.
//!
//! Parking is keyed: a task parks on a `u64` key and any context (interrupt handlers
//! included) wakes the key. A wake that arrives before the park is remembered, so the
//! later park returns at once (the async-PF "page ready before not-present handled" race).

use crate::run_queue::RunQueue;
use crate::task_table::TaskTable;
pub use crate::task_table::{MAX_TASKS, TaskId};
use alloc::vec::Vec;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    Running,
    /// Parked on a key: any wake of the key makes it ready.
    Parked(u64),
    /// Blocked by the kernel on something that tracks it by id (the async PF waiter
    /// table): only an unblock of this task makes it ready.
    Blocked,
    Exited(i64),
}

/// [`State`] without its payload, which sits beside it (see [`Scheduler`]): one byte.
/// Ready and running are one phase: which runnable task runs is what
/// [`Scheduler::current`] says, so switching between two changes no phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Runnable,
    Parked,
    Blocked,
    Exited,
}

/// A task as reports see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    pub name: &'static str,
    pub state: State,
    /// How many times the task was switched in (after the first dispatch).
    pub dispatches: u64,
}

/// What [`Scheduler::park_current`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Park {
    /// The task is parked and no longer current.
    Parked,
    /// A wake for the key had already arrived: it was consumed and the task keeps running.
    AlreadyWoken,
}

/// What [`Scheduler::wake`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// This many parked tasks became ready.
    Woken(usize),
    /// Nobody was parked on the key: the wake is remembered for the next park.
    Early,
}

/// A ready task on its way to another CPU's scheduler: everything this one kept of it.
#[derive(Clone, Copy, Debug)]
pub struct Migrant<C> {
    pub id: TaskId,
    pub name: &'static str,
    pub ctx: C,
    pub dispatches: u64,
}

/// Counters reported in the result line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Switches from one task to a different one (computed by [`Scheduler::stats`]).
    pub switches: u64,
    /// Timer ticks that moved the running task to the back of the queue.
    pub preemptions: u64,
    pub parks: u64,
    pub wakes: u64,
    /// Wakes that arrived before their park.
    pub early_wakes: u64,
}

/// The per-CPU scheduler.
#[derive(Debug)]
pub struct Scheduler<C> {
    /// The tasks' names; which ids this CPU holds.
    names: TaskTable<&'static str>,
    /// The rest of each task, a field per array, indexed by id (masked, as in the
    /// [`TaskTable`]): the async PF paths touch two or three tasks per event, and with
    /// elements of at most eight bytes each access is one instruction, the id scaled in
    /// its address, with no test that the task exists (ids come from `spawn_as`; slots of
    /// ids no task holds stay `Ready` and are never switched to).
    phases: [Phase; MAX_TASKS],
    /// The key of a parked task, the status of an exited one.
    payloads: [u64; MAX_TASKS],
    /// The arch's saved context, fixed at spawn.
    contexts: [Option<C>; MAX_TASKS],
    /// How many times the task was switched in (after the first dispatch).
    dispatches: [u64; MAX_TASKS],
    ready: RunQueue,
    /// The running task, with a copy of its context: resuming it needs no lookup.
    current: Option<Running<C>>,
    /// The task that ran last, to count real switches. It starts as task 0, which is the
    /// first to run (the run queue starts in spawn order), so the first dispatch counts no
    /// switch, as "switched in from another task" says, without an `Option` to test on
    /// every dispatch.
    last: TaskId,
    /// Tasks that have not exited.
    live: usize,
    early_wakes: Vec<u64>,
    stats: Stats,
}

/// The running task and its context.
#[derive(Clone, Copy, Debug)]
struct Running<C> {
    id: TaskId,
    ctx: C,
}

impl<C: Copy> Default for Scheduler<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Copy> Scheduler<C> {
    /// A scheduler without tasks, usable in a `static`.
    pub const fn new() -> Self {
        Self {
            names: TaskTable::new(),
            phases: [Phase::Runnable; MAX_TASKS],
            payloads: [0; MAX_TASKS],
            contexts: [const { None }; MAX_TASKS],
            dispatches: [0; MAX_TASKS],
            ready: RunQueue::new(),
            current: None,
            last: 0,
            live: 0,
            early_wakes: Vec::new(),
            stats: Stats {
                switches: 0,
                preemptions: 0,
                parks: 0,
                wakes: 0,
                early_wakes: 0,
            },
        }
    }

    /// Adds a ready task at the back of the run queue, under the next id.
    pub fn spawn(&mut self, name: &'static str, ctx: C) -> TaskId {
        let id = self.names.next_id();
        self.spawn_as(id, name, ctx);
        id
    }

    /// [`Scheduler::spawn`] under a given `id`: with several CPUs the kernel hands out the
    /// (global) ids and each CPU's scheduler gets its own tasks.
    pub fn spawn_as(&mut self, id: TaskId, name: &'static str, ctx: C) {
        if self.names.is_empty() {
            // The first task runs first: its first dispatch is no switch.
            self.last = id;
        }
        self.names.insert(id, name);
        let slot = id % MAX_TASKS;
        self.phases[slot] = Phase::Runnable;
        self.contexts[slot] = Some(ctx);
        self.ready.push_back(id);
        self.live += 1;
    }

    /// True if this CPU was given no task at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn current(&self) -> Option<TaskId> {
        self.current.map(|r| r.id)
    }

    /// Task `id`.
    ///
    /// # Panics
    /// If there is no task `id`.
    pub fn task(&self, id: TaskId) -> TaskInfo {
        self.info(id, self.names[id])
    }

    pub fn tasks(&self) -> impl Iterator<Item = TaskInfo> {
        self.entries().map(|(_, t)| t)
    }

    /// Every task with its id (with several CPUs, ids have gaps: other CPUs' tasks).
    pub fn entries(&self) -> impl Iterator<Item = (TaskId, TaskInfo)> {
        self.names
            .entries()
            .map(|(id, name)| (id, self.info(id, name)))
    }

    fn info(&self, id: TaskId, name: &'static str) -> TaskInfo {
        let slot = id % MAX_TASKS;
        let payload = self.payloads[slot];
        TaskInfo {
            name,
            state: match self.phases[slot] {
                Phase::Runnable if self.current() == Some(id) => State::Running,
                Phase::Runnable => State::Ready,
                Phase::Parked => State::Parked(payload),
                Phase::Blocked => State::Blocked,
                Phase::Exited => State::Exited(payload as i64),
            },
            dispatches: self.dispatches[slot],
        }
    }

    /// Task `id`'s phase.
    #[inline(always)]
    fn phase_mut(&mut self, id: TaskId) -> &mut Phase {
        &mut self.phases[id % MAX_TASKS]
    }

    /// The counters; `switches` is the sum of every task's `dispatches`, which the switch
    /// path keeps instead of two counters.
    pub fn stats(&self) -> Stats {
        Stats {
            switches: self
                .names
                .entries()
                .map(|(id, _)| self.dispatches[id % MAX_TASKS])
                .sum(),
            ..self.stats
        }
    }

    /// True once every task has exited (and there was at least one). Counted, not scanned:
    /// every switch to idle asks.
    #[inline]
    pub fn all_exited(&self) -> bool {
        self.live == 0 && !self.names.is_empty()
    }

    /// Timer tick: the running task goes to the back of the queue.
    pub fn tick(&mut self) {
        if self.requeue_current() {
            self.stats.preemptions += 1;
        }
    }

    /// The running task gives up the rest of its slice.
    pub fn yield_current(&mut self) {
        self.requeue_current();
    }

    /// Moves the running task to the back of the queue; true if another task was waiting.
    #[inline]
    fn requeue_current(&mut self) -> bool {
        let Some(Running { id, .. }) = self.current.take() else {
            return false;
        };
        let others_waiting = !self.ready.is_empty();
        self.requeue(id);
        others_waiting
    }

    /// Task `id`, which was running, goes to the back of the queue.
    #[inline]
    fn requeue(&mut self, id: TaskId) {
        self.ready.push_back(id);
    }

    /// Parks the running task on `key`, unless a wake for `key` came first.
    ///
    /// # Panics
    /// If no task is running (a kernel bug: only tasks park).
    pub fn park_current(&mut self, key: u64) -> Park {
        let id = self.current().expect("park_current without a running task");
        if let Some(pos) = self.early_wakes.iter().position(|&k| k == key) {
            self.early_wakes.swap_remove(pos);
            return Park::AlreadyWoken;
        }
        *self.phase_mut(id) = Phase::Parked;
        self.payloads[id % MAX_TASKS] = key;
        self.current = None;
        self.stats.parks += 1;
        Park::Parked
    }

    /// Blocks the running task until [`Scheduler::unblock`] (or one of its variants) names
    /// it: for waits that something else tracks by task id and that cannot be woken early,
    /// because that something decided the task must wait (the async PF waiter table does).
    /// No key, so blocking and unblocking are a store each, and no task's `wake` reaches it.
    ///
    /// `id` is the running task's, as [`Scheduler::current`] just told the caller: the
    /// async PF path needs it before it decides to block, and passing it spares the
    /// emulated test of `current` a second time (a debug build checks it).
    #[inline]
    pub fn block_current(&mut self, id: TaskId) {
        debug_assert_eq!(
            self.current(),
            Some(id),
            "block_current of a task not running"
        );
        self.current = None;
        *self.phase_mut(id) = Phase::Blocked;
        self.stats.parks += 1;
    }

    /// Counts a wake that found no task parked on its key, which something else (the
    /// kernel's table of tasks' keys across CPUs) remembered.
    pub fn note_early_wake(&mut self) {
        self.stats.wakes += 1;
        self.stats.early_wakes += 1;
    }

    /// Makes every task parked on `key` ready, or remembers the wake if none is.
    pub fn wake(&mut self, key: u64) -> Wake {
        self.wake_to(key, false)
    }

    /// Like [`Scheduler::wake`], but the woken tasks run next: they go to the front of the
    /// run queue and the running task to the back. For tasks that waited for a page: they
    /// use it and usually block again at once, so the page costs the running task little,
    /// while waiting for the end of its time slice would leave the fetcher idle.
    pub fn wake_first(&mut self, key: u64) -> Wake {
        let outcome = self.wake_to(key, true);
        if let Wake::Woken(_) = outcome {
            self.requeue_current();
        }
        outcome
    }

    /// Makes task `id` ready (at the back of the queue) if it is blocked; false if it is
    /// not (it was unblocked already, or never blocked), which changes nothing.
    pub fn unblock(&mut self, id: TaskId) -> bool {
        self.unblock_to(id, false)
    }

    /// [`Scheduler::unblock`], with the task running next as for [`Scheduler::wake_first`]:
    /// at the front of the queue, and the running task to the back.
    pub fn unblock_first(&mut self, id: TaskId) -> bool {
        let unblocked = self.unblock_to(id, true);
        if unblocked {
            self.requeue_current();
        }
        unblocked
    }

    /// [`Scheduler::unblock_first`] for one page-ready, without the run queue: the task
    /// becomes the running one at once and the running task goes to the back. The outcome
    /// is the same as unblocking it first and scheduling, minus a push and a pop on the hot
    /// path of every page-ready. (Several unblocks in a row, as a broadcast makes, use
    /// [`Scheduler::unblock_first`], which keeps them in their order.)
    ///
    /// Returns the context that runs now (the unblocked task's), or `None` if `id` was not
    /// blocked, which changes nothing: the page-ready path resumes it without asking
    /// [`Scheduler::schedule_context`] again.
    #[inline]
    pub fn run_unblocked(&mut self, id: TaskId) -> Option<C> {
        if !self.is_blocked(id) {
            return None;
        }
        let slot = id % MAX_TASKS;
        self.phases[slot] = Phase::Runnable;
        let ctx = self.contexts[slot].expect("a task that runs has a context");
        match self.current.replace(Running { id, ctx }) {
            // Another task ran (so it ran last, not the blocked `id`): a switch.
            Some(Running { id: runner, .. }) => {
                self.requeue(runner);
                self.dispatches[slot] += 1;
            }
            // Idle: a switch unless `id` ran last.
            None if self.last != id => self.dispatches[slot] += 1,
            None => {}
        }
        self.last = id;
        self.stats.wakes += 1;
        Some(ctx)
    }

    /// [`Scheduler::block_current`] of task `id`, then the next ready task runs: returns
    /// its context, or `None` if none is ready (idle). The not-present path in one call,
    /// without asking [`Scheduler::schedule_context`] whether a task still runs.
    #[inline]
    pub fn block_and_switch(&mut self, id: TaskId) -> Option<C> {
        self.block_current(id);
        let next = self.ready.pop_front()?;
        let slot = next % MAX_TASKS;
        // `next` was queued, so it is not `id`, the task that ran last: always a switch.
        self.dispatches[slot] += 1;
        self.last = next;
        let ctx = self.contexts[slot].expect("a queued task has a context");
        self.current = Some(Running { id: next, ctx });
        Some(ctx)
    }

    /// Whether task `id` is blocked (an id no task holds never is).
    #[inline]
    fn is_blocked(&self, id: TaskId) -> bool {
        self.phases[id % MAX_TASKS] == Phase::Blocked
    }

    fn unblock_to(&mut self, id: TaskId, front: bool) -> bool {
        if !self.is_blocked(id) {
            return false;
        }
        *self.phase_mut(id) = Phase::Runnable;
        if front {
            self.ready.push_front(id);
        } else {
            self.ready.push_back(id);
        }
        self.stats.wakes += 1;
        true
    }

    fn wake_to(&mut self, key: u64, front: bool) -> Wake {
        let mut woken = 0;
        // Ids no task holds keep their first state, never a parked one.
        for id in 0..self.names.next_id() {
            let slot = id % MAX_TASKS;
            if self.phases[slot] == Phase::Parked && self.payloads[slot] == key {
                self.phases[slot] = Phase::Runnable;
                if front {
                    self.ready.push_front(id);
                } else {
                    self.ready.push_back(id);
                }
                woken += 1;
            }
        }
        self.stats.wakes += 1;
        if woken > 0 {
            return Wake::Woken(woken);
        }
        if !self.early_wakes.contains(&key) {
            self.early_wakes.push(key);
        }
        self.stats.early_wakes += 1;
        Wake::Early
    }

    /// How many ready tasks wait for the CPU (the running one not counted).
    pub fn waiting(&self) -> usize {
        self.ready.len()
    }

    /// Gives up the ready task that would wait longest (the back of the queue) to another
    /// CPU, if this one would leave it waiting: another task runs or waits before it. A
    /// running, parked or blocked task never moves (an async PF waiter's token is this
    /// CPU's).
    pub fn give_away(&mut self) -> Option<Migrant<C>> {
        let keep = usize::from(self.current.is_none());
        if self.ready.len() <= keep {
            return None;
        }
        let id = self.ready.pop_back()?;
        let slot = id % MAX_TASKS;
        let name = self.names.remove(id).expect("a queued task is held");
        let ctx = self.contexts[slot]
            .take()
            .expect("a queued task has a context");
        self.live -= 1;
        Some(Migrant {
            id,
            name,
            ctx,
            dispatches: core::mem::take(&mut self.dispatches[slot]),
        })
    }

    /// Takes in a task another CPU gave away: it is ready, at the back of the queue.
    pub fn adopt(&mut self, migrant: Migrant<C>) {
        self.spawn_as(migrant.id, migrant.name, migrant.ctx);
        self.dispatches[migrant.id % MAX_TASKS] = migrant.dispatches;
    }

    /// Ends the running task with `status`.
    ///
    /// # Panics
    /// If no task is running.
    pub fn exit_current(&mut self, status: i64) -> TaskId {
        let Running { id, .. } = self
            .current
            .take()
            .expect("exit_current without a running task");
        *self.phase_mut(id) = Phase::Exited;
        self.payloads[id % MAX_TASKS] = status as u64;
        self.live -= 1;
        id
    }

    /// Picks the task to run: the current one if it is still running, else the head of the
    /// run queue. `None` means idle (everything parked or exited).
    #[inline]
    pub fn schedule(&mut self) -> Option<TaskId> {
        self.schedule_context()?;
        self.current()
    }

    /// [`Scheduler::schedule`], returning the context of the task that runs: what the trap
    /// path resumes.
    #[inline]
    pub fn schedule_context(&mut self) -> Option<C> {
        if self.current.is_none() {
            let next = self.ready.pop_front()?;
            self.dispatch(next);
        }
        self.current.map(|r| r.ctx)
    }

    /// Makes `next` (not queued) the running task.
    #[inline]
    fn dispatch(&mut self, next: TaskId) {
        self.current = Some(self.make_running(next));
    }

    /// Makes task `id` (runnable) the running one, counting a switch if another ran
    /// `last` (and making it the last); returns what becomes [`Scheduler::current`].
    #[inline]
    fn make_running(&mut self, id: TaskId) -> Running<C> {
        let slot = id % MAX_TASKS;
        if self.last != id {
            self.dispatches[slot] += 1;
        }
        self.last = id;
        let ctx = self.contexts[slot].expect("a task that runs has a context");
        Running { id, ctx }
    }
}

#[cfg(test)]
mod tests;
