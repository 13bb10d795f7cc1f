//! Sets up the tasks of each scenario in user memory.

use crate::arch::{self, Context};
use crate::userland::{demo, faults, kv, workload};
use guest_kernel::cmdline::{Config, MLP_MAX, PageSource, Scenario};
use guest_kernel::sched::{Scheduler, TaskId};
use guest_kernel::user_arena::UserArena;

const USER_STACK_SIZE: u64 = 64 * 1024;
/// The `kv` network task keeps its card's rings and buffers and its socket buffers on its
/// stack, where they stay put for the guest's life.
const NET_STACK_SIZE: u64 = 512 * 1024;
const PAGE: u64 = 4096;
/// An address in the unmapped first megabyte, for the `unmapped` scenario.
const UNMAPPED_ADDRESS: u64 = 0x8_0000;

/// The scenario does not fit in the guest's memory.
#[derive(Debug)]
pub enum OutOfMemory {
    /// Task stacks and arguments (below the workload region).
    User,
    /// Workload pages: this many bytes are needed above the workload base.
    Workload { needed: u64 },
}

/// Builds one task in ring 3, on one of the CPUs' schedulers.
struct Spawner<'a> {
    /// One scheduler per CPU.
    scheds: &'a mut [Scheduler<Context>],
    /// The next task's id (ids are global; each CPU's scheduler holds its own tasks).
    next: TaskId,
    arena: &'a mut UserArena,
    /// Workload data, in the region the host may serve lazily.
    workload: &'a mut UserArena,
}

impl Spawner<'_> {
    fn task(
        &mut self,
        name: &'static str,
        entry: extern "C" fn(u64) -> !,
        arg: u64,
    ) -> Result<(), OutOfMemory> {
        self.task_with_stack(name, entry, arg, USER_STACK_SIZE)
    }

    fn task_with_stack(
        &mut self,
        name: &'static str,
        entry: extern "C" fn(u64) -> !,
        arg: u64,
        stack_size: u64,
    ) -> Result<(), OutOfMemory> {
        let stack = self
            .arena
            .alloc(stack_size, PAGE)
            .ok_or(OutOfMemory::User)?;
        let id = self.next;
        // Round robin: task `i` runs on CPU `i mod CPUs`.
        let cpu = id % self.scheds.len();
        self.scheds[cpu].spawn_as(id, name, Context::new_user(entry, arg, stack.end, cpu, id));
        self.next += 1;
        Ok(())
    }

    /// Moves `value` into user memory, where tasks can reach it.
    fn place<T>(&mut self, value: T) -> Result<u64, OutOfMemory> {
        let at = self
            .arena
            .alloc(size_of::<T>() as u64, align_of::<T>() as u64)
            .ok_or(OutOfMemory::User)?;
        // SAFETY: freshly allocated, suitably aligned, mapped user memory owned by no one.
        unsafe { (at.start as *mut T).write(value) };
        Ok(at.start)
    }

    fn cpu_task(&mut self, config: &Config) -> Result<(), OutOfMemory> {
        let args = self.place(workload::CpuArgs {
            seed: config.seed,
            rounds: config.cpu,
        })?;
        self.task("cpu", workload::cpu, args)
    }

    /// The `kv` service: its network task and workers, hot values below the workload
    /// region and cold ones in it, key `k` at `k` pages above its start.
    fn kv(&mut self, config: &Config, tsc_khz: u64) -> Result<(), OutOfMemory> {
        let (Some(card), Some(ip)) = (config.virtio_mmio, config.ip) else {
            unreachable!("the command line parser requires both for kv")
        };
        let hot = self
            .arena
            .alloc(config.kv_hot * PAGE, PAGE)
            .ok_or(OutOfMemory::User)?;
        let keys = config.kv_hot + config.kv_cold;
        let values = self
            .workload
            .alloc(keys * PAGE, PAGE)
            .ok_or(OutOfMemory::Workload {
                needed: keys * PAGE,
            })?;
        let args = self.place(kv::KvArgs {
            mmio_base: card.base,
            address: ip.address,
            prefix: ip.prefix,
            seed: config.seed,
            workload_base: values.start,
            hot_base: hot.start,
            hot: config.kv_hot,
            cold: config.kv_cold,
            workers: config.kv_workers,
            fill_cold: config.source == PageSource::Guest,
            tsc_khz,
            shared: kv::Shared::new(),
        })?;
        self.task_with_stack("kv-net", kv::server, args, NET_STACK_SIZE)?;
        for _ in 0..config.kv_workers {
            self.task("kv-worker", kv::worker, args)?;
        }
        Ok(())
    }

    /// `count` memory tasks over disjoint pages of the workload region.
    fn mem_tasks(&mut self, config: &Config, count: u32) -> Result<(), OutOfMemory> {
        let bytes = config.pages * PAGE;
        for i in 0..count {
            let region = self
                .workload
                .alloc(bytes, PAGE)
                .ok_or(OutOfMemory::Workload {
                    needed: bytes * u64::from(count),
                })?;
            let name = if count == 1 { "mem" } else { mem_name(i) };
            let args = self.place(workload::MemArgs {
                name,
                region: region.start,
                pages: config.pages,
                pattern: config.pattern,
                seed: config.seed,
                fill_first: config.source == PageSource::Guest,
            })?;
            self.task(name, workload::mem, args)?;
        }
        Ok(())
    }
}

/// "mem-0" to "mem-95", built at compile time so task names stay `&'static str`.
static MEM_NAMES: [[u8; 6]; MLP_MAX as usize] = mem_names();

const fn mem_names() -> [[u8; 6]; MLP_MAX as usize] {
    let mut names = [[0; 6]; MLP_MAX as usize];
    let mut i = 0;
    while i < names.len() {
        let (tens, ones) = ((i / 10) as u8, (i % 10) as u8);
        names[i] = if tens == 0 {
            [b'm', b'e', b'm', b'-', b'0' + ones, 0]
        } else {
            [b'm', b'e', b'm', b'-', b'0' + tens, b'0' + ones]
        };
        i += 1;
    }
    names
}

fn mem_name(i: u32) -> &'static str {
    let name = &MEM_NAMES[i as usize];
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    core::str::from_utf8(&name[..len]).expect("task names are ASCII")
}

/// Spawns the tasks of `config.scenario` on the CPUs of `scheds` (see [`Spawner`]);
/// returns how many there are.
pub fn spawn(
    config: &Config,
    tsc_khz: u64,
    scheds: &mut [Scheduler<Context>],
    arena: &mut UserArena,
    workload: &mut UserArena,
) -> Result<usize, OutOfMemory> {
    let mut s = Spawner {
        scheds,
        next: 0,
        arena,
        workload,
    };
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
        Scenario::Cpu => s.cpu_task(config)?,
        Scenario::Mem => s.mem_tasks(config, 1)?,
        Scenario::Seed => {
            s.cpu_task(config)?;
            s.mem_tasks(config, 1)?;
        }
        Scenario::Mlp(k) => s.mem_tasks(config, k)?,
        Scenario::Kv => s.kv(config, tsc_khz)?,
        Scenario::KernelWrite => {
            let kernel_data = arch::image().2.start;
            s.task("writer", faults::write_address, kernel_data)?;
            s.task("bystander", faults::bystander, 0)?;
        }
    }
    Ok(s.next)
}
