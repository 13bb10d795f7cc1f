//! The arch-neutral kernel: state shared by every trap, the system calls, and the report
//! printed when the last task exits.
//!
//! Each CPU has its own [`Kernel`]: its tasks, their run queue, its async PF waiter table
//! and watchdog (the host's tokens and page-ready interrupts are per vCPU, so a page-ready
//! always finds its waiter in the table of the CPU that took the not-present). Tasks start
//! on CPU `id mod cpus`; only load balancing moves a ready one (`balance`). CPUs share only
//! what is read-only after boot (the command line, the GDT), the count of CPUs done
//! ([`finish`]), the console's and the heap's locks (the `write` system call and boot
//! only), the tasks' park/wake table and each CPU's inbox of wakes from the others
//! (`keyed`: the `park` and `wake` calls only), and what balancing exchanges (`balance`: on
//! ticks and wake interrupts only). The arch layer calls in with interrupts masked (the
//! kernel never enables them for itself), so a CPU's state needs no lock: each trap
//! borrows it once, handling its event and picking what runs next in the same borrow (see
//! [`handle`]). On our KVM every ring-0 instruction is emulated, and a spin lock's acquire
//! and release were a tenth of an async PF event's instructions.

mod balance;
mod keyed;
mod per_cpu;
mod syscall;

pub use keyed::remote_wakes;
#[cfg(target_arch = "x86_64")]
pub use per_cpu::cpu;
pub use per_cpu::{Cpu, install, this_cpu};
pub use syscall::syscall;

use crate::abi::{self, TaskReport};
use crate::arch::{self, Context};
use crate::exit_status::ExitStatus;
use crate::{console, println};
use alloc::vec::Vec;
use apf_pv::waiters::{BROADCAST, Token, Wait, WaiterTable, Wake};
use core::fmt;
use core::ops::Range;
use guest_kernel::apf::{self, Outcome};
use guest_kernel::clock::TscClock;
use guest_kernel::cmdline::Config;
use guest_kernel::hold::Hold;
use guest_kernel::sched::{Scheduler, State, TaskId};
use guest_kernel::watchdog::Watchdog;
use per_cpu::with;

/// A CPU exception, as the arch layer reports it.
pub struct Fault {
    pub vector: u64,
    pub name: &'static str,
    pub error_code: u64,
    /// Instruction pointer of the faulting instruction.
    pub ip: u64,
    /// Faulting data address, for page faults.
    pub address: Option<u64>,
}

/// Formats a page fault's address, or nothing for other exceptions.
struct FaultAddress(Option<u64>);

impl fmt::Display for FaultAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(address) => write!(f, ", address {address:#x}"),
            None => Ok(()),
        }
    }
}

/// What the CPU runs after a trap.
pub enum Next {
    Task(Context),
    Idle,
}

pub struct Kernel {
    pub sched: Scheduler<Context>,
    pub clock: TscClock,
    pub config: Config,
    /// Memory a task may pass to system calls.
    pub user_ranges: Vec<Range<u64>>,
    /// Timer interrupts since [`Kernel::timer_start_ns`].
    pub ticks: u64,
    pub timer_start_ns: u64,
    /// When `kernel_main` started, in the TSC clock.
    pub entry_ns: u64,
    /// When the boot path handed the CPU to the first task.
    pub ready_ns: Option<u64>,
    /// When this CPU's last task exited.
    pub end_ns: Option<u64>,
    pub unexpected_interrupts: u64,
    /// This CPU's tasks that another CPU woke (each through this CPU's inbox).
    pub remote_wakes: u64,
    /// Tasks this CPU gave to idle CPUs, and took in from busy ones (`balance`).
    pub given_away: u64,
    pub taken_in: u64,
    /// What each task reported (indexed by task id), for the result line.
    pub reports: Vec<Option<TaskReport>>,
    /// Whether async PF is on (`apf=on` and the host took it).
    pub apf_state: apf::State,
    /// What the host did with the `apf-test` probe, if one ran.
    pub apf_test: Option<Outcome>,
    /// `apf-cycle` disables and re-enables so far.
    pub apf_cycles: Cycles,
    /// Not-present events until the next `apf-cycle`.
    pub apf_cycle_due: apf::CycleCountdown,
    /// Tasks parked on async PF tokens.
    pub apf: WaiterTable<TaskId>,
    /// Retries tasks parked on async PF whose page-ready is late (deadlines in timer ticks).
    pub watchdog: Watchdog,
    /// The migration gate of `hold=console` (times in ns).
    pub hold: Hold,
}

impl Kernel {
    /// A CPU's state before [`install`]: no tasks (a trap would find nothing to run), every
    /// counter at zero.
    pub const EMPTY: Self = Self {
        sched: Scheduler::new(),
        clock: TscClock::UNCALIBRATED,
        config: Config::DEFAULT,
        user_ranges: Vec::new(),
        ticks: 0,
        timer_start_ns: 0,
        entry_ns: 0,
        ready_ns: None,
        end_ns: None,
        unexpected_interrupts: 0,
        remote_wakes: 0,
        given_away: 0,
        taken_in: 0,
        reports: Vec::new(),
        apf_state: apf::State::Off,
        apf_test: None,
        apf_cycles: Cycles {
            disables: 0,
            reenables: 0,
        },
        apf_cycle_due: apf::CycleCountdown::new(None),
        apf: WaiterTable::new(),
        watchdog: Watchdog::new(0, 1),
        hold: Hold::new(false),
    };
}

/// How often `apf-cycle` turned async PF off, and how often back on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cycles {
    pub disables: u64,
    pub reenables: u64,
}

/// Scheduler keys with this bit set are the kernel's: a task's `park` on one is refused.
const KERNEL_KEYS: u64 = 1 << 63;

/// The scheduler key every task held at the migration gate parks on: a kernel key, so only
/// the host's byte wakes them. (Tasks parked by async PF are blocked, not parked on a key:
/// the waiter table alone decides who waits for which token.)
const HOLD_KEY: u64 = KERNEL_KEYS | 1;

/// "Page not present" for `token`, taken by the running task `task`: block it (with a watchdog
/// deadline), unless its page is already ready (the page-ready came first) or the table is
/// full, in which case the task retries the access at once (and the host halts the vCPU
/// until the page arrives). With `apf-cycle=N`, every N-th one then turns async PF off and
/// on again.
#[inline]
pub fn apf_not_present(cpu: &Cpu, task: TaskId, token: Token) -> Next {
    let next = with(cpu, |k| {
        debug_assert_eq!(k.sched.current(), Some(task), "the fault's task runs");
        let parked = k.apf.wait(token, task) == Wait::Park;
        let mut next = None;
        if parked {
            k.watchdog.arm(task, k.ticks);
            next = Some(
                k.sched
                    .block_and_switch(task)
                    .map_or(Next::Idle, Next::Task),
            );
        }
        if k.apf_cycle_due.step() {
            k.cycle_async_pf();
            next = None;
        }
        // Not parked (the task goes on), or after a cycle released everyone: the general
        // pick. A parked task cannot have exited, so `block_and_switch`'s idle is idle.
        next.or_else(|| k.pick())
    });
    next.unwrap_or_else(|| finish())
}

/// The task running on `cpu` (the running CPU): for aarch64, whose trap does not say which
/// task it interrupted (x86_64's #PF entry finds it above the frame).
#[cfg(target_arch = "aarch64")]
pub fn current_task(cpu: &Cpu) -> TaskId {
    with(cpu, |k| k.sched.current()).expect("a trap from a task")
}

/// "Page ready" for `token` (or the broadcast): its waiter runs next.
#[inline]
pub fn apf_ready(cpu: &Cpu, token: Token) -> Next {
    let next = with(cpu, |k| {
        let Kernel {
            apf,
            sched,
            watchdog,
            ..
        } = k;
        if token == BROADCAST {
            apf.wake_all(|id| {
                watchdog.disarm(id);
                sched.unblock_first(id);
            });
        } else if let Wake::Woke(id) = apf.wake(token) {
            watchdog.disarm(id);
            if let Some(ctx) = sched.run_unblocked(id) {
                return Some(Next::Task(ctx));
            }
        }
        k.pick()
    });
    next.unwrap_or_else(|| finish())
}

/// Applies a trap's `event` on `cpu` (the running one) and picks what runs next in the
/// same borrow of the state: on our KVM every ring-0 instruction is emulated, and a second
/// borrow per trap (for [`next`]) cost its share of every async page fault.
#[inline]
fn handle(cpu: &Cpu, event: impl FnOnce(&mut Kernel)) -> Next {
    let next = with(cpu, |k| {
        event(k);
        k.pick()
    });
    next.unwrap_or_else(|| finish())
}

impl Kernel {
    /// What runs next; `None` once every task of this CPU has exited (or it has none).
    #[inline(always)]
    fn pick(&mut self) -> Option<Next> {
        match self.sched.schedule_context() {
            Some(ctx) => Some(Next::Task(ctx)),
            // Done here: stay up (idle) to take over other CPUs' waiting tasks while any
            // task is left.
            None if self.sched.all_exited() || self.sched.is_empty() => {
                per_cpu::tasks_left().then_some(Next::Idle)
            }
            None => Some(Next::Idle),
        }
    }

    /// Ends the running task with `status`; after the last task of all, tells the other
    /// CPUs, which may be idle only to balance.
    fn exit_current(&mut self, status: i64) {
        self.sched.exit_current(status);
        self.check_hold_ready();
        if per_cpu::task_exited() {
            balance::all_done(arch::cpu_index());
        }
    }

    /// Turns async PF off and on again, as a CPU going offline and coming back would. The
    /// host drops everything outstanding on the disable and never signals those tokens, so
    /// every parked task is released here (as Linux does): it retries its access, which
    /// faults afresh once async PF is back on. Re-enabling makes the host send a broadcast.
    fn cycle_async_pf(&mut self) {
        if self.apf_state != apf::State::On {
            return;
        }
        arch::disable_async_pf();
        self.apf_cycles.disables += 1;
        let Kernel {
            apf,
            sched,
            watchdog,
            ..
        } = self;
        apf.release_all(|id| {
            watchdog.disarm(id);
            sched.unblock(id);
        });
        match arch::enable_async_pf() {
            Ok(()) => self.apf_cycles.reenables += 1,
            Err(refused) => {
                println!(
                    "kernel: the host refused re-enabling async PF: {refused}; async PF stays off"
                );
                self.apf_state = apf::State::Refused;
            }
        }
    }

    /// Releases every task whose page-ready is later than the watchdog's timeout: it leaves
    /// the waiter table (a page-ready for its old token, should one come, is then early or
    /// unknown, which the table handles) and runs next, re-executing its faulting access. A
    /// present page lets it go on; a missing one faults again under a new token.
    fn retry_late_waiters(&mut self) {
        let Kernel {
            apf,
            sched,
            watchdog,
            ticks,
            ..
        } = self;
        watchdog.expire(*ticks, |id| {
            let parked = apf.cancel(id).is_some();
            if parked {
                sched.unblock_first(id);
            }
            parked
        });
    }

    /// Says `hold: ready` (once) when every task that has not exited waits at the gate:
    /// called when a task arrives there or exits, and counting tasks only while the gate
    /// is still gathering.
    fn check_hold_ready(&mut self) {
        if !self.hold.gathering() {
            return;
        }
        let live = self
            .sched
            .tasks()
            .filter(|t| !matches!(t.state, State::Exited(_)))
            .count();
        if self
            .hold
            .check_ready(live, self.clock.ns(arch::timestamp()))
        {
            println!("hold: ready");
        }
    }

    /// While the gate is ready: one look at the console's receive side; the host's byte
    /// (consumed) releases every held task.
    fn poll_hold(&mut self) {
        if !self.hold.polling() || console::try_receive().is_none() {
            return;
        }
        self.hold.release(self.clock.ns(arch::timestamp()));
        self.sched.wake(HOLD_KEY);
        println!("hold: released");
    }
}

/// Timer interrupt: preempts the running task, retries tasks parked on async PF for
/// longer than the watchdog's timeout, and polls for the release of a ready gate.
pub fn tick() -> Next {
    handle(this_cpu(), |k| {
        k.ticks += 1;
        k.sched.tick();
        k.retry_late_waiters();
        k.poll_hold();
        balance::on_tick(k);
    })
}

pub fn unexpected_interrupt(vector: u64) {
    with(this_cpu(), |k| k.unexpected_interrupts += 1);
    println!("kernel: unexpected interrupt on vector {vector:#x}");
}

/// A ring-3 task took an exception: report it and end the task; the others go on.
pub fn task_fault(fault: Fault) -> Next {
    handle(this_cpu(), |k| {
        let id = k
            .sched
            .current()
            .expect("task fault without a current task");
        let name = k.sched.task(id).name;
        println!(
            "kernel: task {id} '{name}' killed by {} (vector {}) at rip {:#x}, error code {:#x}{}",
            fault.name,
            fault.vector,
            fault.ip,
            fault.error_code,
            FaultAddress(fault.address)
        );
        k.exit_current(abi::fault_status(fault.vector));
    })
}

/// The kernel itself took an exception: nothing can be trusted, report and stop.
pub fn kernel_fault(fault: Fault, sp: u64) -> ! {
    console::force_unlock();
    println!(
        "kernel: FATAL {} (vector {}) in the kernel at rip {:#x}, error code {:#x}{}, rsp {sp:#x}",
        fault.name,
        fault.vector,
        fault.ip,
        fault.error_code,
        FaultAddress(fault.address)
    );
    arch::exit(ExitStatus::KernelPanic)
}

/// Picks what runs next; when every task has exited, prints the report and ends the VM.
pub fn next() -> Next {
    handle(this_cpu(), |_| ())
}

/// The first task to run on this CPU, from the boot path, right after its timer started:
/// the tasks are ready and ticks count from now on.
pub fn first() -> Next {
    handle(this_cpu(), |k| {
        let now = k.clock.ns(arch::timestamp());
        k.ready_ns = Some(now);
        k.timer_start_ns = now;
    })
}

/// Records how an application processor's async PF enable went (the boot CPU's state is
/// in its [`Kernel`] from the start).
pub fn set_apf_state(state: apf::State) {
    with(this_cpu(), |k| k.apf_state = state);
}

/// This CPU's tasks have all exited: it turns its async PF off and stops, and the last CPU
/// to stop prints each task's outcome and the machine-readable result line for all of
/// them, then exits; with `hold=console`, only after the host's next byte, so it can
/// finish the migration and read its statistics while the guest still runs.
fn finish() -> ! {
    with(this_cpu(), |k| {
        if k.apf_state == apf::State::On {
            // KVM sends this CPU nothing after this. Nobody can still wait: a parked task
            // cannot have exited.
            arch::disable_async_pf();
            debug_assert_eq!(k.apf.parked(), 0, "a task exited while parked on async PF");
        }
        k.end_ns = Some(k.clock.ns(arch::timestamp()));
    });
    let kernels = per_cpu::last_to_stop();
    let mut failed = false;
    for (id, task, _) in crate::report::tasks(&kernels) {
        let State::Exited(status) = task.state else {
            unreachable!("finish before every task exited")
        };
        failed |= status != 0;
        println!(
            "kernel: task {id} '{}' exited with status {status}",
            task.name
        );
    }
    crate::report::result_line(&kernels);
    let status = if failed {
        ExitStatus::TaskFailed
    } else {
        ExitStatus::Success
    };
    if kernels[0].config.hold {
        println!("hold: finished");
        // Interrupts stay masked in the kernel: poll.
        while console::try_receive().is_none() {
            core::hint::spin_loop();
        }
    }
    arch::exit(status)
}
