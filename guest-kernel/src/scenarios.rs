//! Sets up the tasks of each scenario in user memory.

use crate::arch::{self, Context};
use crate::userland::{demo, faults};
use guest_kernel::cmdline::{Config, Scenario};
use guest_kernel::sched::Scheduler;
use guest_kernel::user_arena::UserArena;

const USER_STACK_SIZE: u64 = 64 * 1024;
const PAGE: u64 = 4096;
/// An address in the unmapped first megabyte, for the `unmapped` scenario.
const UNMAPPED_ADDRESS: u64 = 0x8_0000;

/// The user region ran out while setting up tasks.
#[derive(Debug)]
pub struct OutOfUserMemory;

/// Builds one task in ring 3.
struct Spawner<'a> {
    sched: &'a mut Scheduler<Context>,
    arena: &'a mut UserArena,
}

impl Spawner<'_> {
    fn task(
        &mut self,
        name: &'static str,
        entry: extern "C" fn(u64) -> !,
        arg: u64,
    ) -> Result<(), OutOfUserMemory> {
        let stack = self
            .arena
            .alloc(USER_STACK_SIZE, PAGE)
            .ok_or(OutOfUserMemory)?;
        self.sched
            .spawn(name, Context::new_user(entry, arg, stack.end));
        Ok(())
    }

    /// Moves `value` into user memory, where tasks can reach it.
    fn place<T>(&mut self, value: T) -> Result<u64, OutOfUserMemory> {
        let at = self
            .arena
            .alloc(size_of::<T>() as u64, align_of::<T>() as u64)
            .ok_or(OutOfUserMemory)?;
        // SAFETY: freshly allocated, suitably aligned, mapped user memory owned by no one.
        unsafe { (at.start as *mut T).write(value) };
        Ok(at.start)
    }
}

/// Spawns the tasks of `config.scenario`.
pub fn spawn(
    config: &Config,
    sched: &mut Scheduler<Context>,
    arena: &mut UserArena,
) -> Result<(), OutOfUserMemory> {
    let mut s = Spawner { sched, arena };
    match config.scenario {
        Scenario::Demo => {
            let shared = s.place(demo::Shared::new())? as *const demo::Shared;
            for (me, name) in [(0, "spin-a"), (1, "spin-b")] {
                let args = s.place(demo::SpinArgs {
                    shared,
                    me,
                    name,
                    primes: config.primes,
                })?;
                s.task(name, demo::spin, args)?;
            }
            s.task("yielder", demo::yielder, 0)?;
            s.task("ping", demo::ping, 0)?;
            s.task("pong", demo::pong, 0)?;
            s.task("syscall-bench", demo::syscall_bench, 0)?;
        }
        Scenario::DivideByZero => {
            s.task("div0", faults::divide_by_zero, 0)?;
            s.task("bystander", faults::bystander, 0)?;
        }
        Scenario::Unmapped => {
            s.task("reader", faults::read_address, UNMAPPED_ADDRESS)?;
            s.task("bystander", faults::bystander, 0)?;
        }
        Scenario::KernelWrite => {
            let kernel_data = arch::image().2.start;
            s.task("writer", faults::write_address, kernel_data)?;
            s.task("bystander", faults::bystander, 0)?;
        }
    }
    Ok(())
}
