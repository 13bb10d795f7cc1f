//! Where each CPU's state lives, and the one way a trap borrows it.

use super::Kernel;
use super::balance::Balance;
use crate::arch;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};
use guest_kernel::cmdline::MAX_CPUS;
use guest_kernel::keyed_waits::WakeInbox;

/// One CPU's state: its architecture's (on x86_64 its TSS and async PF area) and its
/// kernel state, side by side, so that a trap reaches all of it from one pointer (x86_64
/// keeps that pointer above every frame it saves, see `arch::Context`).
pub struct Cpu {
    #[cfg_attr(
        target_arch = "aarch64",
        expect(
            dead_code,
            reason = "aarch64 keeps nothing else per CPU (see its CpuLocal)"
        )
    )]
    pub arch: arch::CpuLocal,
    /// Borrowed by one of the CPU's traps at a time (see [`with`]). A kernel without
    /// tasks until [`install`] puts the real one in: a constant, so the `static` needs no
    /// `Option` and no trap tests for one.
    kernel: UnsafeCell<Kernel>,
    /// Tasks of this CPU that other CPUs woke (see `keyed`), and what `balance` exchanges
    /// with the others: the parts other CPUs write, atomically or under the lock.
    pub inbox: WakeInbox,
    pub balance: Balance,
    /// Set while [`with`] lends the state out: a debug build catches a nested borrow.
    #[cfg(debug_assertions)]
    borrowed: core::sync::atomic::AtomicBool,
}

// SAFETY: a CPU's kernel state is touched by its own CPU's trap handlers (interrupts
// masked, see `with`), by the boot CPU before that CPU starts, and by the CPU that prints
// the report after every other CPU has stopped for good (see `finish`); the inbox and the
// balancing state are atomics and a lock; the arch part says for itself.
unsafe impl Sync for Cpu {}

impl Cpu {
    const fn new() -> Self {
        Self {
            arch: arch::CpuLocal::new(),
            kernel: UnsafeCell::new(Kernel::EMPTY),
            inbox: WakeInbox::new(),
            balance: Balance::new(),
            #[cfg(debug_assertions)]
            borrowed: core::sync::atomic::AtomicBool::new(false),
        }
    }
}

static PER_CPU: [Cpu; MAX_CPUS] = [const { Cpu::new() }; MAX_CPUS];

/// CPU `index`'s state.
pub fn cpu(index: usize) -> &'static Cpu {
    &PER_CPU[index]
}

/// The running CPU's state.
pub fn this_cpu() -> &'static Cpu {
    cpu(arch::cpu_index())
}

/// How many CPUs run tasks, and how many of them have stopped: the last to stop reports.
static CPUS: AtomicUsize = AtomicUsize::new(1);
static STOPPED: AtomicUsize = AtomicUsize::new(0);
/// Tasks that have not exited, on any CPU: a CPU whose own tasks are done stays up (to
/// take over others' waiting tasks) until this is 0.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many CPUs run tasks.
pub fn cpus() -> usize {
    CPUS.load(Ordering::Relaxed)
}

/// Counts a task's exit; true for the last task of all.
pub(super) fn task_exited() -> bool {
    LIVE.fetch_sub(1, Ordering::AcqRel) == 1
}

/// Whether any task on any CPU has not exited.
pub(super) fn tasks_left() -> bool {
    LIVE.load(Ordering::Acquire) > 0
}

/// Publishes each CPU's kernel state (index = CPU); traps are handled from here on.
pub fn install(kernels: Vec<Kernel>) {
    assert!(
        (1..=MAX_CPUS).contains(&kernels.len()),
        "kernel::install for {} CPUs",
        kernels.len()
    );
    CPUS.store(kernels.len(), Ordering::Relaxed);
    LIVE.store(
        kernels.iter().map(|k| k.sched.tasks().count()).sum(),
        Ordering::Release,
    );
    for (cpu, kernel) in PER_CPU.iter().zip(kernels) {
        // SAFETY: the boot CPU runs this once, before it enables interrupts or starts a task
        // or another CPU, so no trap handler can be borrowing the state.
        let cell = unsafe { &mut *cpu.kernel.get() };
        assert!(cell.sched.is_empty(), "kernel::install twice");
        *cell = kernel;
    }
}

/// Lends `cpu`'s state to `f`; `cpu` is the running CPU's. Traps borrow it one at a time:
/// handlers run with interrupts masked, and the only traps a handler's own code can take
/// (a refused `write_safe` MSR write, a kernel fault) never reach this function, so
/// borrows never nest (a debug build checks).
#[inline]
pub(super) fn with<R>(cpu: &Cpu, f: impl FnOnce(&mut Kernel) -> R) -> R {
    #[cfg(debug_assertions)]
    {
        use core::sync::atomic::Ordering::Relaxed;
        assert!(
            core::ptr::eq(cpu, this_cpu()),
            "another CPU's kernel state borrowed"
        );
        assert!(!cpu.borrowed.load(Relaxed), "kernel state borrowed twice");
        cpu.borrowed.store(true, Relaxed);
    }
    // SAFETY: no other reference to this CPU's state exists while this one lives (see
    // above); other CPUs only touch theirs.
    let result = f(unsafe { &mut *cpu.kernel.get() });
    #[cfg(debug_assertions)]
    cpu.borrowed
        .store(false, core::sync::atomic::Ordering::Relaxed);
    result
}

/// Counts the running CPU, whose tasks have all exited, as stopped. Every CPU but the
/// last to stop halts here for good; the last gets each CPU's state, to report.
pub(super) fn last_to_stop() -> Vec<&'static Kernel> {
    let cpus = cpus();
    if STOPPED.fetch_add(1, Ordering::AcqRel) + 1 < cpus {
        // Another CPU still runs tasks; the last one reads this CPU's state.
        arch::halt_forever();
    }
    // SAFETY: every other CPU has stopped for good (the count above, whose acquire makes
    // their last writes visible), and this one borrows its own state no more.
    PER_CPU[..cpus]
        .iter()
        .map(|cpu| unsafe { &*cpu.kernel.get() })
        .collect()
}
