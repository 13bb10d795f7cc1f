//! Load balancing: a CPU with nothing to run takes a waiting task from the CPU that has the
//! most, so one CPU does not idle while another's tasks queue (a CPU whose own tasks are
//! done stays up for this until every task has exited).
//!
//! Only ready tasks move: a running one cannot, and a task parked on async PF waits for a
//! page-ready the host sends to the vCPU that took its fault, so it stays with that CPU's
//! waiter table. Each CPU still touches only its own scheduler: on its timer tick an idle
//! CPU asks the busiest (by the queue lengths each CPU publishes on its tick) with a bit in
//! that CPU's `thieves` and the wake interrupt; that CPU gives away the back of its queue
//! into the asker's `arrivals` and interrupts it, and the asker takes the task in. The
//! async PF paths do none of this: it costs them nothing.

use super::{Kernel, per_cpu};
use crate::arch::{self, Context};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use guest_kernel::bits::ones;
use guest_kernel::sched::{MAX_TASKS, Migrant};

/// What a CPU shares with the others for balancing.
pub struct Balance {
    /// Its ready tasks not running, as of its last tick.
    waiting: AtomicUsize,
    /// The CPUs that asked it for a task, a bit each.
    thieves: AtomicU32,
    /// Tasks other CPUs gave it, to take in.
    arrivals: spin::Mutex<heapless::Vec<Migrant<Context>, MAX_TASKS>>,
}

impl Balance {
    pub const fn new() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            thieves: AtomicU32::new(0),
            arrivals: spin::Mutex::new(heapless::Vec::new()),
        }
    }
}

/// On the running CPU's tick, with several CPUs: publishes its queue and, if it is idle (and
/// `balance=on`), asks the CPU with the most waiting tasks for one. One CPU pays a test.
#[inline]
pub(super) fn on_tick(k: &Kernel) {
    let cpus = per_cpu::cpus();
    if cpus == 1 {
        return;
    }
    publish_and_ask(k, arch::cpu_index(), cpus);
}

#[cold]
fn publish_and_ask(k: &Kernel, me: usize, cpus: usize) {
    let waiting = k.sched.waiting();
    per_cpu::cpu(me)
        .balance
        .waiting
        .store(waiting, Ordering::Relaxed);
    if !k.config.balance || waiting > 0 || k.sched.current().is_some() {
        return;
    }
    let busiest = (0..cpus)
        .filter(|&cpu| cpu != me)
        .map(|cpu| {
            (
                per_cpu::cpu(cpu).balance.waiting.load(Ordering::Relaxed),
                cpu,
            )
        })
        .max();
    if let Some((waiting, victim)) = busiest
        && waiting > 0
    {
        per_cpu::cpu(victim)
            .balance
            .thieves
            .fetch_or(1 << me, Ordering::Relaxed);
        arch::send_wake(victim);
    }
}

/// In the wake interrupt of the CPU whose state is `k` and `own`: gives each CPU that
/// asked a task that would wait here, and takes in the tasks given to this one.
pub(super) fn serve(k: &mut Kernel, own: &Balance) {
    for thief in ones(own.thieves.swap(0, Ordering::Relaxed).into()) {
        let Some(migrant) = k.sched.give_away() else {
            break;
        };
        migrant.ctx.move_to(thief);
        per_cpu::cpu(thief)
            .balance
            .arrivals
            .lock()
            .push(migrant)
            .unwrap_or_else(|_| unreachable!("at most MAX_TASKS tasks exist"));
        k.given_away += 1;
        arch::send_wake(thief);
    }
    let arrivals = core::mem::take(&mut *own.arrivals.lock());
    for migrant in arrivals {
        k.sched.adopt(migrant);
        k.taken_in += 1;
    }
}

/// Wakes every other CPU, so those that stayed up only to balance see that no task is left.
pub(super) fn all_done(me: usize) {
    (0..per_cpu::cpus())
        .filter(|&cpu| cpu != me)
        .for_each(arch::send_wake);
}
