//! Starting the application processors: INIT and startup IPIs to each, which begins in
//! real mode in the trampoline page (`boot.rs`), reaches long mode on the boot page tables
//! and enters [`ap_entry`] on the stack and page tables the boot CPU left in [`AP_STACK`]
//! and [`AP_CR3`]. One processor starts at a time, so one set of hand-over slots does.

use super::{apic, cpu, gdt, idt, trap};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use spin::Once;
use x86_64::registers::control::Cr3;

/// Guest-physical address of the trampoline: page-aligned, below 1 MiB (a startup IPI
/// names a page there), and free in both VMMs (ours keeps its boot data at 0x500, 0x6000,
/// 0x7000 and 0x20000; QEMU's PVH loader at 0x20000 and in its option ROM).
pub const TRAMPOLINE: u64 = 0x8000;
const TRAMPOLINE_PAGE: u8 = (TRAMPOLINE >> 12) as u8;
const _: () = assert!(TRAMPOLINE.is_multiple_of(4096) && TRAMPOLINE < 1 << 20);

/// How long a processor gets to come online after its first startup IPI, and after how
/// long it gets the second the MP protocol allows (a real CPU may miss the first).
const ONLINE_TIMEOUT_MS: u64 = 1_000;
const SECOND_STARTUP_MS: u64 = 10;

/// Hand-over slots the starting processor reads in [`super::boot`]'s `ap_long` and
/// [`ap_entry`].
pub static AP_CR3: AtomicU64 = AtomicU64::new(0);
pub static AP_STACK: AtomicU64 = AtomicU64::new(0);
static AP_CPU: AtomicUsize = AtomicUsize::new(0);
/// The arch-neutral code a started processor runs (with its index) once it is set up.
static AP_MAIN: Once<fn(usize) -> !> = Once::new();
/// Set by the starting processor once it has read the slots and set itself up.
static ONLINE: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
}

/// Copies the trampoline to [`TRAMPOLINE`]; runs on the boot page tables, which map it
/// (the final ones leave the first MiB unmapped).
pub fn install_trampoline() {
    let start = &raw const ap_trampoline_start;
    // SAFETY: both symbols delimit the trampoline's bytes in the kernel's read-only data;
    // the destination is RAM that nothing else uses (see `TRAMPOLINE`), identity-mapped by
    // the boot tables, and the ranges are disjoint.
    unsafe {
        let len = (&raw const ap_trampoline_end).offset_from(start) as usize;
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
    }
}

/// The processor did not come online in time.
#[derive(Clone, Copy, Debug)]
pub struct NotStarted {
    pub apic_id: u32,
    pub after_ms: u64,
}

impl core::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "the CPU with APIC ID {} did not come online within {} ms of its startup IPI \
             (does the VM have that many vCPUs?)",
            self.apic_id, self.after_ms
        )
    }
}

/// Starts CPU `cpu` (APIC ID `cpu`, as both VMMs number them) on `stack_top`, to run
/// `main`, and waits until it is online. `tsc_khz` times the wait.
pub fn start(
    cpu: usize,
    stack_top: u64,
    tsc_khz: u64,
    main: fn(usize) -> !,
) -> Result<(), NotStarted> {
    AP_MAIN.call_once(|| main);
    let (frame, flags) = Cr3::read_raw();
    AP_CR3.store(
        frame.start_address().as_u64() | u64::from(flags),
        Ordering::Relaxed,
    );
    AP_STACK.store(stack_top, Ordering::Relaxed);
    ONLINE.store(false, Ordering::Relaxed);
    // Last, with release: `ap_entry`'s acquire of it makes the other slots visible.
    AP_CPU.store(cpu, Ordering::Release);
    // A write to the x2APIC ICR is not serializing: the slots must be globally visible
    // before the IPI can start the CPU that reads them (Linux's `weak_wrmsr_fence`).
    core::sync::atomic::fence(Ordering::SeqCst);
    let apic_id = cpu as u32;
    apic::send_init(apic_id);
    apic::send_startup(apic_id, TRAMPOLINE_PAGE);
    let start = cpu::timestamp();
    let elapsed_ms = || (cpu::timestamp() - start) / tsc_khz.max(1);
    let mut second_sent = false;
    while !ONLINE.load(Ordering::Acquire) {
        let ms = elapsed_ms();
        if ms >= ONLINE_TIMEOUT_MS {
            return Err(NotStarted {
                apic_id,
                after_ms: ms,
            });
        }
        if !second_sent && ms >= SECOND_STARTUP_MS {
            apic::send_startup(apic_id, TRAMPOLINE_PAGE);
            second_sent = true;
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Where a started processor enters Rust, on the stack [`start`] gave it: its descriptor
/// tables and local APIC, then the arch-neutral rest.
pub extern "C" fn ap_entry() -> ! {
    let cpu = AP_CPU.load(Ordering::Acquire);
    gdt::init(cpu);
    idt::init();
    apic::init(trap::SPURIOUS_VECTOR);
    // `start` sent the startup IPI to APIC ID `cpu`: anything else is a VMM numbering its
    // vCPUs otherwise, whose page-ready interrupts would go to the wrong CPU's table.
    let apic_id = apic::id();
    if apic_id as usize != cpu {
        crate::println!("kernel: CPU {cpu} came up with APIC ID {apic_id}");
        super::exit(crate::exit_status::ExitStatus::Unsupported);
    }
    let main = AP_MAIN.get().expect("set before the startup IPI");
    main(cpu)
}

/// Tells the boot CPU that this one is set up and no longer needs the hand-over slots.
pub fn online() {
    ONLINE.store(true, Ordering::Release);
}
