//! From the arch entry to the first task: read the boot information, bring up the CPU,
//! memory, timer and tasks, then hand over to the scheduler for good.

use crate::arch::Context;
use crate::arch::{self, Regions};
use crate::exit_status::ExitStatus;
use crate::kernel::{self, Kernel};
use crate::scenarios::{self, OutOfMemory};
use crate::{apf_start, console, heap, println};
use alloc::vec;
use alloc::vec::Vec;
use apf_pv::waiters::WaiterTable;
use guest_kernel::apf;
use guest_kernel::clock::TscClock;
use guest_kernel::cmdline::{self, Config};
use guest_kernel::hold::Hold;
use guest_kernel::sched::Scheduler;
use guest_kernel::user_arena::UserArena;
use guest_kernel::watchdog::{self, Watchdog};
use spin::Once;

/// Kernel heap: task kernel stacks and scheduler tables; tasks' memory is elsewhere.
const HEAP_SIZE: u64 = 8 << 20;
/// Where workload data starts (guest-physical, identity-mapped): a contract with the runner,
/// which serves memory from here on lazily (`runner run --lazy workload`).
const WORKLOAD_BASE: u64 = arch::RAM_START + WORKLOAD_OFFSET;
/// [`WORKLOAD_BASE`] from the start of RAM.
const WORKLOAD_OFFSET: u64 = 64 << 20;
/// The least user memory worth booting with.
const MIN_USER_MEMORY: u64 = 4 << 20;
const PAGE: u64 = 4096;
const HUGE_PAGE: u64 = 2 << 20;

/// What the boot information says.
struct Boot {
    ram_end: u64,
    config: Config,
}

/// Called by the arch entry stub with the physical address of the boot information
/// ([`arch::boot_info`] reads it).
pub extern "C" fn kernel_main(boot_info: u64) -> ! {
    let entry_tsc = arch::timestamp();
    if !console::init() {
        // Nothing to print the reason to; the status says it.
        arch::exit(ExitStatus::Unsupported);
    }
    println!("kernel: apf guest kernel {}", env!("CARGO_PKG_VERSION"));
    let boot = read_boot(boot_info);
    if let Some(feature) = arch::missing_feature() {
        println!("kernel: this CPU lacks {feature}");
        arch::exit(ExitStatus::Unsupported);
    }
    arch::init_cpu();
    if boot.config.cpus > 1 {
        // While the boot page tables still map the first MiB.
        arch::prepare_cpus();
    }

    let (text, rodata, kernel_data) = arch::image();
    // The heap ends on a 2 MiB boundary so the user region maps with huge pages only.
    let heap_start = kernel_data.end.next_multiple_of(PAGE);
    let heap = heap_start..(heap_start + HEAP_SIZE).next_multiple_of(HUGE_PAGE);
    let user = heap.end..boot.ram_end & !(PAGE - 1);
    if user.end < user.start + MIN_USER_MEMORY {
        println!(
            "kernel: {} MiB of RAM is too little (the kernel needs {} MiB)",
            (boot.ram_end - arch::RAM_START) >> 20,
            (user.start + MIN_USER_MEMORY - arch::RAM_START) >> 20
        );
        arch::exit(ExitStatus::Unsupported);
    }
    arch::init_paging(&Regions {
        text: text.clone(),
        rodata: rodata.clone(),
        kernel: kernel_data.start..heap.end,
        user: user.clone(),
        user_devices: boot.config.virtio_mmio.map(|card| card.pages()),
    });
    heap::init(heap);

    let Some(calibration) = arch::init_interrupts() else {
        println!("kernel: no PIT to calibrate the TSC and timer against (QEMU: use -M pc or q35)");
        arch::exit(ExitStatus::Unsupported);
    };
    let Some(clock) = TscClock::new(0, calibration.tsc_khz) else {
        println!(
            "kernel: TSC calibration failed ({} kHz)",
            calibration.tsc_khz
        );
        arch::exit(ExitStatus::Unsupported);
    };
    let (apf_state, apf_test) = if boot.config.apf {
        apf_start::start(&boot.config)
    } else {
        (apf::State::Off, None)
    };
    let cpus = boot.config.cpus;
    let mut scheds: Vec<Scheduler<Context>> = (0..cpus).map(|_| Scheduler::default()).collect();
    // Workload data lives at and above WORKLOAD_BASE, the region the runner may serve
    // lazily; task stacks and arguments stay below it.
    let workload_start = WORKLOAD_BASE.clamp(user.start, user.end);
    let mut arena = UserArena::new(user.start..workload_start);
    let mut workload = UserArena::new(workload_start..user.end);
    let task_count = match scenarios::spawn(
        &boot.config,
        calibration.tsc_khz,
        &mut scheds,
        &mut arena,
        &mut workload,
    ) {
        Ok(count) => count,
        Err(e) => {
            match e {
                OutOfMemory::User => println!(
                    "kernel: out of task memory setting up '{}'",
                    boot.config.scenario
                ),
                OutOfMemory::Workload { needed } => println!(
                    "kernel: '{}' needs {} MiB above {} MiB: give the guest at least {} MiB",
                    boot.config.scenario,
                    needed.div_ceil(1 << 20),
                    WORKLOAD_OFFSET >> 20,
                    (WORKLOAD_OFFSET + needed).div_ceil(1 << 20)
                ),
            }
            arch::exit(ExitStatus::Unsupported);
        }
    };
    println!(
        "kernel: {} MiB RAM, {calibration}, scenario {}, timer {} Hz, async PF {}, {cpus} CPU(s)",
        (boot.ram_end - arch::RAM_START) >> 20,
        boot.config.scenario,
        boot.config.hz,
        apf_state.as_str()
    );
    let kernels = scheds
        .into_iter()
        .enumerate()
        .map(|(cpu, sched)| Kernel {
            sched,
            clock,
            config: boot.config,
            user_ranges: vec![text.clone(), rodata.clone(), user.clone()],
            entry_ns: clock.ns(entry_tsc),
            reports: vec![None; task_count],
            // An application processor enables its own (see `ap_main`).
            apf_state: if cpu == 0 { apf_state } else { apf::State::Off },
            apf_test: if cpu == 0 { apf_test } else { None },
            apf_cycle_due: apf::CycleCountdown::new(boot.config.apf_cycle),
            apf: WaiterTable::new(),
            watchdog: Watchdog::new(
                task_count,
                watchdog::timeout_ticks(boot.config.apf_watchdog_ms, boot.config.hz),
            ),
            hold: Hold::new(boot.config.hold),
            // Counters at zero; `timer_start_ns` and `ready_ns` are set by `kernel::first`,
            // once this CPU's timer runs.
            ..Kernel::EMPTY
        })
        .collect();
    kernel::install(kernels);
    let ap = AP_START.call_once(|| ApStart {
        calibration,
        hz: boot.config.hz,
        apf: apf_state == apf::State::On,
    });
    for cpu in 1..cpus {
        let stack = vec![0u8; AP_BOOT_STACK_SIZE].leak();
        let top = (stack.as_ptr() as u64 + stack.len() as u64) & !0xf;
        if let Err(e) = arch::start_cpu(cpu, top, ap.calibration.tsc_khz, ap_main) {
            println!("kernel: cannot start CPU {cpu}: {e}");
            arch::exit(ExitStatus::Unsupported);
        }
    }
    arch::start_timer(&ap.calibration, ap.hz);
    arch::enter(kernel::first())
}

/// What an application processor needs from the boot CPU's start-up.
struct ApStart {
    calibration: arch::Calibration,
    hz: u32,
    /// Whether the boot CPU enabled async PF: each other CPU then enables its own.
    apf: bool,
}

static AP_START: Once<ApStart> = Once::new();

/// The stack an application processor starts on, and keeps for its boot path (its tasks'
/// traps run on their own kernel stacks, its idle loop on the arch's idle stack).
const AP_BOOT_STACK_SIZE: usize = 16 * 1024;

/// An application processor, set up by the arch (descriptor tables, interrupt controller):
/// enables its async PF, tells the boot CPU it is online, and runs its tasks.
fn ap_main(cpu: usize) -> ! {
    let ap = AP_START
        .get()
        .expect("the boot CPU starts the others after AP_START");
    let state = if ap.apf {
        apf_start::enable(cpu)
    } else {
        apf::State::Off
    };
    kernel::set_apf_state(state);
    arch::cpu_online();
    arch::start_timer(&ap.calibration, ap.hz);
    arch::enter(kernel::first())
}

/// Reads the RAM size and command line (outside the memory the final page tables map, so
/// this runs first); a bad one ends the boot with its reason.
fn read_boot(boot_info: u64) -> Boot {
    let (ram_end, line) = arch::boot_info(boot_info).unwrap_or_else(|e| {
        println!("kernel: unusable boot information: {e}");
        arch::exit(ExitStatus::Unsupported)
    });
    println!("kernel: command line '{line}'");
    match cmdline::parse(line) {
        Ok(config) => Boot { ram_end, config },
        Err(e) => {
            println!("kernel: bad command line: {e}");
            arch::exit(ExitStatus::BadCommandLine)
        }
    }
}
