//! Tasks' `park`/`wake` keys across CPUs: which task, on which CPU, waits for which key, and
//! the wakes that came before their park. One table for all CPUs (under the kernel's one lock
//! for it), so a wake on any CPU reaches every task parked on its key, wherever it runs, and
//! a wake nobody waited for is remembered once, for the next park of the key on any CPU.
//!
//! The table only decides; each CPU's scheduler blocks and unblocks its own tasks. A wake of
//! a task on another CPU goes through that CPU's [`WakeInbox`] and an interrupt, because
//! only a CPU itself may touch its scheduler.

use crate::bits::ones;
use crate::sched::{MAX_TASKS, Park, TaskId, Wake};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// Where a parked task waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Parked {
    key: u64,
    cpu: usize,
}

/// The parked tasks by id (each task parks at most once at a time) and the early wakes.
pub struct KeyedWaits {
    parked: [Option<Parked>; MAX_TASKS],
    /// How many slots of `parked` are taken: a wake stops looking once it has seen them.
    count: usize,
    /// Keys woken while nobody was parked on them, each once.
    early: Vec<u64>,
}

impl Default for KeyedWaits {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyedWaits {
    pub const fn new() -> Self {
        Self {
            parked: [None; MAX_TASKS],
            count: 0,
            early: Vec::new(),
        }
    }

    /// Task `task` on CPU `cpu` parks on `key`, unless a wake for `key` came first (that
    /// wake is then used up, and the task goes on).
    ///
    /// # Panics
    /// If the task is parked already, or its id is no task's (kernel bugs).
    pub fn park(&mut self, key: u64, cpu: usize, task: TaskId) -> Park {
        if let Some(pos) = self.early.iter().position(|&k| k == key) {
            self.early.swap_remove(pos);
            return Park::AlreadyWoken;
        }
        let slot = &mut self.parked[task];
        assert!(slot.is_none(), "task {task} parks twice");
        *slot = Some(Parked { key, cpu });
        self.count += 1;
        Park::Parked
    }

    /// Releases every task parked on `key`, telling `woke` each one's CPU and id; or, if
    /// none is, remembers the wake.
    pub fn wake(&mut self, key: u64, mut woke: impl FnMut(usize, TaskId)) -> Wake {
        let mut woken = 0;
        let mut seen = 0;
        for (task, slot) in self.parked.iter_mut().enumerate() {
            if seen == self.count {
                break;
            }
            let Some(parked) = *slot else { continue };
            seen += 1;
            if parked.key == key {
                *slot = None;
                woken += 1;
                woke(parked.cpu, task);
            }
        }
        self.count -= woken;
        if woken > 0 {
            return Wake::Woken(woken);
        }
        if !self.early.contains(&key) {
            self.early.push(key);
        }
        Wake::Early
    }

    /// How many tasks are parked.
    pub fn parked(&self) -> usize {
        self.count
    }
}

/// The tasks other CPUs woke for this one, as a set of ids: posting is one atomic OR, from
/// any CPU; the owning CPU takes them all with one swap per word, in its wake interrupt.
pub struct WakeInbox([AtomicU64; MAX_TASKS / 64]);

const _: () = assert!(MAX_TASKS.is_multiple_of(64));

impl Default for WakeInbox {
    fn default() -> Self {
        Self::new()
    }
}

impl WakeInbox {
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; MAX_TASKS / 64])
    }

    /// Adds `task`. Release: what the waker did before is visible to the CPU that takes it.
    pub fn post(&self, task: TaskId) {
        self.0[task / 64].fetch_or(1 << (task % 64), Ordering::Release);
    }

    /// Takes every posted task, lowest id first, handing each to `f`.
    pub fn drain(&self, mut f: impl FnMut(TaskId)) {
        for (word, bits) in self.0.iter().enumerate() {
            ones(bits.swap(0, Ordering::Acquire)).for_each(|bit| f(word * 64 + bit));
        }
    }
}

#[cfg(test)]
mod tests;
