//! Starting the other CPUs: PSCI `CPU_ON` (through `hvc`, the conduit of a guest under a
//! hypervisor: QEMU's own PSCI and KVM's) at [`ap_entry`], which starts with the MMU and
//! caches off. It takes this CPU's translation registers and its stack from a hand-over
//! block, turns the MMU on and enters [`ap_start`]. One CPU starts at a time, so one block
//! does.
//!
//! CPU i is the one whose MPIDR affinity is i (Aff0 = i, as QEMU `virt` and KVM number
//! them up to 16 CPUs); its redistributor is the i-th (`gic`).

use super::{entry, gic, paging};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTVCT_EL0, MAIR_EL1, MPIDR_EL1, Readable, SCTLR_EL1, TCR_EL1, TPIDR_EL1, TPIDRRO_EL0,
    TTBR0_EL1, Writeable,
};
use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::fmt;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, Ordering};
use guest_kernel::psci;
use sdei::arch::aarch64::Hvc;
use spin::Once;

/// How long a CPU gets to come online after `CPU_ON` returns.
const ONLINE_TIMEOUT_MS: u64 = 1_000;
/// CPACR_EL1.FPEN = 0b11, as the boot CPU's entry sets it (see `boot`).
const CPACR_FPEN_NO_TRAP: u64 = 0b11 << 20;
/// MPIDR_EL1 bits the kernel numbers CPUs by: all four affinity fields.
const MPIDR_AFFINITY: u64 = 0xFF_00FF_FFFF;

/// What [`ap_entry`] reads with the MMU off: this CPU's values, so the new CPU maps memory
/// exactly as this one does, and where to go next.
#[repr(C, align(64))]
struct Handover {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    sctlr: u64,
    stack_top: u64,
    cpu: u64,
}

struct HandoverCell(UnsafeCell<Handover>);

// SAFETY: the boot CPU writes the block only while no CPU is starting (before `CPU_ON`,
// after the last one said it is online), and a starting CPU only reads it.
unsafe impl Sync for HandoverCell {}

static HANDOVER: HandoverCell = HandoverCell(UnsafeCell::new(Handover {
    mair: 0,
    tcr: 0,
    ttbr0: 0,
    sctlr: 0,
    stack_top: 0,
    cpu: 0,
}));

/// The arch-neutral code a started CPU runs (with its index) once it is set up.
static AP_MAIN: Once<fn(usize) -> !> = Once::new();
/// Set by the starting CPU once it no longer needs the hand-over block.
static ONLINE: AtomicBool = AtomicBool::new(false);

global_asm!(
    r#"
    .section .text
    .p2align 2
    .global ap_entry
ap_entry:
    /* x0 = the hand-over block, read with the MMU off (the boot CPU cleaned it to memory);
       nothing is written before the MMU is on. */
    mov x1, #{cpacr}
    msr cpacr_el1, x1
    ldp x1, x2, [x0, #{mair}]
    msr mair_el1, x1
    msr tcr_el1, x2
    ldp x1, x2, [x0, #{ttbr0}]
    msr ttbr0_el1, x1
    isb
    tlbi vmalle1
    ic iallu
    dsb nsh
    isb
    msr sctlr_el1, x2
    isb
    ldp x1, x2, [x0, #{stack_top}]
    mov sp, x1
    mov x0, x2
    bl {start}
1:  wfe
    b 1b
"#,
    cpacr = const CPACR_FPEN_NO_TRAP,
    mair = const offset_of!(Handover, mair),
    ttbr0 = const offset_of!(Handover, ttbr0),
    stack_top = const offset_of!(Handover, stack_top),
    start = sym ap_start,
);

const _: () = assert!(
    offset_of!(Handover, tcr) == offset_of!(Handover, mair) + 8
        && offset_of!(Handover, sctlr) == offset_of!(Handover, ttbr0) + 8
        && offset_of!(Handover, cpu) == offset_of!(Handover, stack_top) + 8,
    "ap_entry loads the hand-over block in pairs"
);

unsafe extern "C" {
    fn ap_entry();
}

/// Why another CPU did not start.
#[derive(Clone, Copy, Debug)]
pub enum StartError {
    /// The host refused `CPU_ON`.
    CpuOn(psci::Error),
    /// It accepted, but the CPU did not say it was online in time.
    NotOnline { after_ms: u64 },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CpuOn(e) => {
                write!(f, "PSCI CPU_ON: {e} (does the VM have that many vCPUs?)")
            }
            Self::NotOnline { after_ms } => {
                write!(
                    f,
                    "the CPU did not come online within {after_ms} ms of CPU_ON"
                )
            }
        }
    }
}

/// The running CPU's index, which each CPU keeps in TPIDR_EL1 (EL1's own: a task can
/// neither read nor change it) from its first Rust code on.
#[inline(always)]
pub fn cpu_index() -> usize {
    TPIDR_EL1.get() as usize
}

/// Records the running CPU's index for [`cpu_index`].
pub fn set_cpu_index(cpu: usize) {
    TPIDR_EL1.set(cpu as u64);
}

/// Starts CPU `cpu` (MPIDR affinity `cpu`) on `stack_top`, to run `main`, and waits until
/// it is online. `tsc_khz`, the counter's frequency, times the wait.
pub fn start(
    cpu: usize,
    stack_top: u64,
    tsc_khz: u64,
    main: fn(usize) -> !,
) -> Result<(), StartError> {
    AP_MAIN.call_once(|| main);
    ONLINE.store(false, Ordering::Relaxed);
    let block = HANDOVER.0.get();
    // SAFETY: no CPU is starting (see `HandoverCell`), so nothing reads the block now.
    unsafe {
        block.write(Handover {
            mair: MAIR_EL1.get(),
            tcr: TCR_EL1.get(),
            ttbr0: TTBR0_EL1.get(),
            sctlr: SCTLR_EL1.get(),
            stack_top,
            cpu: cpu as u64,
        })
    };
    clean_to_memory(block as u64, size_of::<Handover>() as u64);
    psci::cpu_on(&Hvc, cpu as u64, ap_entry as *const () as u64, block as u64)
        .map_err(StartError::CpuOn)?;
    let deadline = CNTVCT_EL0.get() + ONLINE_TIMEOUT_MS * tsc_khz;
    while !ONLINE.load(Ordering::Acquire) {
        if CNTVCT_EL0.get() > deadline {
            return Err(StartError::NotOnline {
                after_ms: ONLINE_TIMEOUT_MS,
            });
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Writes the cache lines over `start..start + len` back to memory, where a CPU with its
/// MMU (and so its caches) off reads.
fn clean_to_memory(start: u64, len: u64) {
    let ctr: u64;
    // SAFETY: reads CTR_EL0 (cache type), which EL1 may always read.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    // CTR_EL0.DminLine, bits [19:16]: log2 of the smallest data cache line, in words.
    let line = 4u64 << ((ctr >> 16) & 0xF);
    let mut addr = start & !(line - 1);
    while addr < start + len {
        // SAFETY: cleaning a line to the point of coherency only writes its data back;
        // `addr` is mapped (the hand-over block).
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    barrier::dsb(barrier::SY);
}

/// Where a started CPU enters Rust, with the MMU on and on the stack [`start`] gave it:
/// its own vectors, redistributor and CPU interface, then the arch-neutral rest.
extern "C" fn ap_start(cpu: usize) -> ! {
    set_cpu_index(cpu);
    TPIDRRO_EL0.set(0);
    paging::allow_kernel_user_access();
    entry::install_vectors();
    // `start` asked for the CPU with affinity `cpu`: anything else is a host numbering its
    // vCPUs otherwise, whose redistributor and per-CPU state would be another CPU's.
    let affinity = MPIDR_EL1.get() & MPIDR_AFFINITY;
    if affinity != cpu as u64 {
        crate::println!("kernel: CPU {cpu} came up with MPIDR affinity {affinity:#x}");
        super::exit(crate::exit_status::ExitStatus::Unsupported);
    }
    gic::init_cpu(cpu);
    gic::enable_private(super::trap::WAKE_SGI);
    let main = AP_MAIN.get().expect("set before CPU_ON");
    main(cpu)
}

/// Tells the boot CPU that this one is set up and no longer needs the hand-over block.
pub fn online() {
    ONLINE.store(true, Ordering::Release);
}
