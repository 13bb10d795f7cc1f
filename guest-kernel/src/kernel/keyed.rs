//! Tasks' `park` and `wake` system calls, across CPUs: one table (`KeyedWaits`, under one
//! spin lock) says who waits for which key on which CPU; each CPU blocks and unblocks only
//! its own tasks, so a wake of a task on another CPU is posted to that CPU's inbox and
//! signalled by an inter-processor interrupt, which it handles like any other trap
//! ([`remote_wakes`]). A parked task is blocked before its CPU can take that interrupt:
//! the park registers it and blocks it in one trap, with interrupts masked.
//!
//! The lock is taken only by these two calls, never by the async PF paths.

use super::{Kernel, Next, handle, per_cpu, this_cpu};
use crate::arch;
use guest_kernel::bits::ones;
use guest_kernel::keyed_waits::KeyedWaits;
use guest_kernel::sched::{Park, Wake};

static KEYED: spin::Mutex<KeyedWaits> = spin::Mutex::new(KeyedWaits::new());

/// The running task parks on `key`, unless a wake for it came first (on any CPU).
pub(super) fn park(k: &mut Kernel, key: u64) {
    let task = k.sched.current().expect("a system call comes from a task");
    if KEYED.lock().park(key, arch::cpu_index(), task) == Park::Parked {
        k.sched.block_current(task);
    }
}

/// Makes every task parked on `key` ready, on whichever CPU it runs; remembered for the
/// next park if none is.
pub(super) fn wake(k: &mut Kernel, key: u64) {
    let me = arch::cpu_index();
    // One interrupt per CPU with tasks to wake, sent once the lock is free again.
    let mut remote: u64 = 0;
    let outcome = KEYED.lock().wake(key, |cpu, task| {
        if cpu == me {
            k.sched.unblock(task);
        } else {
            per_cpu::cpu(cpu).inbox.post(task);
            remote |= 1 << cpu;
        }
    });
    if outcome == Wake::Early {
        k.sched.note_early_wake();
    }
    ones(remote).for_each(arch::send_wake);
}

/// The wake interrupt: the tasks other CPUs woke for this one become ready, and the
/// balancing requests and hand-overs are served (`balance`).
pub fn remote_wakes() -> Next {
    let cpu = this_cpu();
    handle(cpu, |k| {
        cpu.inbox.drain(|task| {
            k.sched.unblock(task);
            k.remote_wakes += 1;
        });
        super::balance::serve(k, &cpu.balance);
    })
}
