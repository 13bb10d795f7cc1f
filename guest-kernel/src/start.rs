//! From the arch entry to the first task: read the boot information, bring up the CPU,
//! memory, timer and tasks, then hand over to the scheduler for good.

use crate::arch::{self, Regions};
use crate::exit_status::ExitStatus;
use crate::kernel::{self, Kernel};
use crate::scenarios::{self, OutOfMemory};
use crate::{apf_start, console, heap, println};
use alloc::vec;
use apf_pv::waiters::WaiterTable;
use guest_kernel::apf;
use guest_kernel::clock::TscClock;
use guest_kernel::cmdline::{self, Config};
use guest_kernel::hold::Hold;
use guest_kernel::sched::Scheduler;
use guest_kernel::user_arena::UserArena;
use guest_kernel::watchdog::{self, Watchdog};

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
    let mut sched = Scheduler::default();
    // Workload data lives at and above WORKLOAD_BASE, the region the runner may serve
    // lazily; task stacks and arguments stay below it.
    let workload_start = WORKLOAD_BASE.clamp(user.start, user.end);
    let mut arena = UserArena::new(user.start..workload_start);
    let mut workload = UserArena::new(workload_start..user.end);
    if let Err(e) = scenarios::spawn(&boot.config, &mut sched, &mut arena, &mut workload) {
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
    println!(
        "kernel: {} MiB RAM, {calibration}, scenario {}, timer {} Hz, async PF {}",
        (boot.ram_end - arch::RAM_START) >> 20,
        boot.config.scenario,
        boot.config.hz,
        apf_state.as_str()
    );
    let sched_len = sched.tasks().count();
    kernel::install(Kernel {
        sched,
        clock,
        config: boot.config,
        user_ranges: vec![text, rodata, user],
        ticks: 0,
        timer_start_ns: clock.ns(arch::timestamp()),
        entry_ns: clock.ns(entry_tsc),
        ready_ns: None,
        unexpected_interrupts: 0,
        reports: vec![None; sched_len],
        apf_state,
        apf_test,
        apf_cycles: Default::default(),
        apf: WaiterTable::new(),
        watchdog: Watchdog::new(
            sched_len,
            watchdog::timeout_ticks(boot.config.apf_watchdog_ms, boot.config.hz),
        ),
        hold: Hold::new(boot.config.hold),
    });
    arch::start_timer(&calibration, boot.config.hz);
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
