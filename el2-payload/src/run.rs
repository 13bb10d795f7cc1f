//! What the payload does, and how it reports: `guest: ` lines on the shared PL011, then PSCI
//! `SYSTEM_OFF` (the host prints its statistics and exits 0) or, on a failed check,
//! semihosting exit 1 directly.

use super::sysreg::sysreg;
use el2_host::hypercall::PSCI_SYSTEM_OFF;
use el2_host::memory_map::WORKLOAD_BASE;
use el2_host::semihosting;
use sdei::arch::aarch64::Hvc;
use sdei::smccc::SmcccVersion;
use sdei::{Conduit, Sdei};
use workloads::pages::{self, PAGE_SIZE, WORDS};

/// Exit status of a failed check.
const FAILED: u8 = 1;
/// Longest command line read.
const COMMAND_LINE_MAX: usize = 1024;

macro_rules! println_impl {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = el2_host::pl011::Console.write_str("guest: ");
        let _ = writeln!(el2_host::pl011::Console, $($arg)*);
    }};
}

pub(crate) use println_impl as println;

/// Discovers what the host offers, through the guest crates (`hvc` conduit): one line each
/// for SMCCC, async PF and SDEI.
fn discover() {
    println!("smccc {}", SmcccVersion::query(&Hvc));
    match apf_pv::arm64::detect(&Hvc) {
        Ok(version) => println!("async PF {version}"),
        Err(why) => println!("async PF unavailable: {why}"),
    }
    match Sdei::probe(Hvc) {
        Ok((_, version)) => println!("sdei {version}"),
        Err(why) => println!("sdei unavailable: {why}"),
    }
}

/// The virtual counter (`CNTVCT_EL0`) after an `isb`.
pub fn counter() -> u64 {
    let value: u64;
    // SAFETY: reads a counter; no memory effects.
    unsafe {
        core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack))
    };
    value
}

fn counter_frequency() -> u64 {
    sysreg!(read "cntfrq_el0")
}

/// The payload's arguments.
struct Args {
    seed: u64,
    pages: u64,
    /// Enable async PF before touching the pages (`apf=1`).
    apf: bool,
    /// Ask for not-present at EL1 too (`send_always=0` leaves it to EL0 faults, so this
    /// EL1 payload gets none).
    send_always: bool,
    /// Touch the pages at EL0 (`el0=1`), as the real guest's tasks do.
    el0: bool,
    /// Virtual timer interrupts to take first (`ticks=N`).
    ticks: u64,
}

fn args(line: &str) -> Args {
    let mut args = Args {
        seed: 1,
        pages: 64,
        apf: false,
        send_always: true,
        el0: false,
        ticks: 0,
    };
    let guest_words = line.split_once(" -- ").map_or("", |(_, guest)| guest);
    for word in guest_words.split_ascii_whitespace() {
        match word.split_once('=') {
            Some(("seed", value)) => args.seed = value.parse().unwrap_or(args.seed),
            Some(("pages", value)) => args.pages = value.parse().unwrap_or(args.pages),
            Some(("apf", value)) => args.apf = value == "1",
            Some(("send_always", value)) => args.send_always = value == "1",
            Some(("el0", value)) => args.el0 = value == "1",
            Some(("ticks", value)) => args.ticks = value.parse().unwrap_or(args.ticks),
            _ => println!("ignoring argument {word:?}"),
        }
    }
    args
}

pub fn fail() -> ! {
    println!("FAILED");
    semihosting::exit(FAILED)
}

/// Reads `count` lazy pages from the start of the lazy region and checks each one's
/// contents; returns how many matched.
fn touch_lazy_pages(seed: u64, count: u64) -> u64 {
    (0..count)
        .filter(|i| {
            let address = WORKLOAD_BASE + i * PAGE_SIZE as u64;
            // SAFETY: the lazy region is guest RAM the payload owns (nothing else of it lives
            // there); the first access faults to the host, which maps the page and fills it.
            let page = unsafe { &*(address as *const [u64; WORDS]) };
            pages::mismatches(seed, address / PAGE_SIZE as u64, page) == 0
        })
        .count() as u64
}

/// What the EL0 run is given and gives back.
struct El0Work {
    seed: u64,
    pages: u64,
    verified: u64,
}

/// The EL0 side: touches the pages, storing the count in the `El0Work` at `work`.
extern "C" fn touch_at_el0(work: u64) {
    // SAFETY: `work` is the address of the caller's live `El0Work` (see `el0::run`), which
    // nothing else touches while this runs.
    let work = unsafe { &mut *(work as *mut El0Work) };
    work.verified = touch_lazy_pages(work.seed, work.pages);
}

#[unsafe(no_mangle)]
extern "C" fn payload_main() -> ! {
    let mut buffer = [0; COMMAND_LINE_MAX];
    let args = args(semihosting::command_line(&mut buffer).unwrap_or(""));
    println!("running at EL1, seed={} pages={}", args.seed, args.pages);
    discover();
    if args.ticks > 0 {
        let start = counter();
        super::timer::run(args.ticks);
        let micros = (counter() - start) * 1_000_000 / counter_frequency();
        println!("timer: ticks={} in {micros} us", args.ticks);
    }
    if args.apf {
        super::apf::enable(args.send_always);
    }
    let start = counter();
    let verified = if args.el0 {
        let mut work = El0Work {
            seed: args.seed,
            pages: args.pages,
            verified: 0,
        };
        super::el0::run(touch_at_el0, &raw mut work as u64);
        work.verified
    } else {
        touch_lazy_pages(args.seed, args.pages)
    };
    let micros = (counter() - start) * 1_000_000 / counter_frequency();
    println!(
        "lazy pages: touched={} verified={verified} in {micros} us",
        args.pages
    );
    if verified != args.pages || (args.apf && !super::apf::report(counter_frequency())) {
        fail();
    }
    Hvc.call([PSCI_SYSTEM_OFF.into(), 0, 0, 0, 0, 0]);
    println!("SYSTEM_OFF returned");
    fail()
}

/// Any exception at EL1 is a failure: report it.
#[unsafe(no_mangle)]
extern "C" fn payload_exception(vector: u64, esr: u64, elr: u64, far: u64) -> ! {
    println!("exception: vector {vector} ESR {esr:#x} ELR {elr:#x} FAR {far:#x}");
    fail()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic: {info}");
    fail()
}
