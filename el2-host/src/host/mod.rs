//! The host proper: boot (command line, guest loading, stage 2) and the handling of every
//! guest exit.

mod async_pf;
mod control_block;
mod device_tree;
mod exit;
mod global;
mod guest_memory;
mod lazy;
mod loader;
mod stats;

use crate::arch::aarch64::console::println;
use crate::arch::aarch64::sysreg::{current_el, read_sysreg};
use crate::arch::aarch64::vectors::{self, Entry};
use crate::arch::aarch64::{boot, counter, gic, hyp_timer, vcpu};
use el2_host::apf::{self, AsyncPf};
use el2_host::dtb;
use el2_host::esr::{GuestExit, fault_ipa};
use el2_host::frame::Frame;
use el2_host::hypercall::Call;
use el2_host::params::{Mode, Params};
use el2_host::pl011;
use el2_host::sdei_dispatcher::{Dispatcher, Effect};
use el2_host::semihosting;
use el2_host::stage2::PAGE_SIZE;
use exit::{Status, exit};
use global::Global;
use guest_memory::GuestMemory;
use lazy::Lazy;
use stats::Stats;

/// The host's state while the guest runs.
struct Host {
    mode: Mode,
    memory: GuestMemory,
    lazy: Lazy,
    sdei: Dispatcher,
    apf: AsyncPf,
    stats: Stats,
}

static HOST: Global<Host> = Global::new();

/// Longest command line read (QEMU's `-append` plus the image path).
const COMMAND_LINE_MAX: usize = 1024;

#[unsafe(no_mangle)]
extern "C" fn host_main() -> ! {
    pl011::init();
    vectors::install();
    if current_el() != 2 {
        println!("not at EL2: start QEMU with -machine virt,virtualization=on");
        exit(Status::Unsupported, None);
    }
    let mut buffer = [0; COMMAND_LINE_MAX];
    let line = semihosting::command_line(&mut buffer).unwrap_or("");
    let host_words = line.split(dtb::SEPARATOR).next().unwrap_or("");
    let params = match Params::parse(host_words) {
        Ok(params) => params,
        Err(error) => {
            println!("bad command line {line:?}: {error}");
            exit(Status::BadCommandLine, None);
        }
    };
    println!(
        "mode={:?} latency={} seed={} lazy={:#x}..{:#x} inject={} counter={} Hz",
        params.mode,
        params.latency,
        params.seed,
        params.lazy.start,
        params.lazy.end,
        params.inject,
        counter::frequency()
    );
    device_tree::patch();
    let entry = match loader::load(&params.lazy) {
        Ok(entry) => entry,
        Err(error) => {
            println!("cannot load the guest: {error}");
            exit(Status::BadGuest, None);
        }
    };
    let memory = match GuestMemory::new(params.lazy.clone()) {
        Ok(memory) => memory,
        Err(error) => {
            println!("cannot build stage 2: {error:?}");
            exit(Status::HostPanic, None);
        }
    };
    gic::init(hyp_timer::INTID);
    vcpu::configure();
    HOST.set(Host {
        mode: params.mode,
        memory,
        lazy: Lazy::new(&params),
        sdei: Dispatcher::new(apf::SDEI_EVENT),
        apf: AsyncPf::new(params.inject),
        stats: Stats::default(),
    });
    println!("entering the guest at {entry:#x} (EL1h)");
    let frame = boot::guest_frame();
    // SAFETY: the frame slot at the top of the EL2 stack is reserved for the guest's
    // registers (boot.rs) and not otherwise used.
    unsafe { frame.write(Frame::start(entry, vcpu::PSTATE_EL1H_MASKED)) };
    vectors::enter_guest(frame)
}

/// Handles one exception; returning resumes the guest with `frame`.
pub fn exception(frame: &mut Frame, entry: Entry) {
    let Some(host) = HOST.get() else {
        println!(
            "exception {entry:?} before the guest started, ELR {:#x}",
            frame.elr
        );
        exit(Status::HostPanic, None);
    };
    match entry {
        Entry::GuestSync => host.guest_sync(frame),
        Entry::GuestIrq => host.physical_irq(),
        Entry::Unexpected(_) => {
            println!(
                "unexpected exception {entry:?}: ESR {:#x} ELR {:#x} FAR {:#x}",
                read_sysreg!("esr_el2"),
                frame.elr,
                read_sysreg!("far_el2")
            );
            exit(Status::HostPanic, Some(host));
        }
    }
    host.poll();
}

impl Host {
    fn guest_sync(&mut self, frame: &mut Frame) {
        let esr = read_sysreg!("esr_el2");
        match GuestExit::decode(esr) {
            GuestExit::Hvc { .. } => self.call(frame),
            GuestExit::Smc { .. } => {
                // A trapped SMC leaves ELR at the instruction, unlike HVC (host-facts.md).
                frame.elr += 4;
                self.call(frame);
            }
            GuestExit::Abort(abort) => {
                let ipa = fault_ipa(read_sysreg!("hpfar_el2"), read_sysreg!("far_el2"));
                if abort.translation && self.memory.is_lazy(ipa) {
                    self.lazy_fault(frame, ipa & !(PAGE_SIZE - 1));
                } else {
                    println!(
                        "guest access to {ipa:#x} outside its memory ({abort:?}) at {:#x}",
                        frame.elr
                    );
                    exit(Status::GuestError, Some(self));
                }
            }
            other => {
                println!(
                    "guest exception the host does not handle: {other:?} ESR {esr:#x} at {:#x}",
                    frame.elr
                );
                exit(Status::GuestError, Some(self));
            }
        }
    }

    /// A fault on a lazy page: asynchronous where the mode and the guest allow it,
    /// otherwise the vCPU waits for the fetch.
    fn lazy_fault(&mut self, frame: &mut Frame, page: u64) {
        // A fetch may have completed since the last exit: then the access just retries. The
        // timer waits for the poll that ends every exit, which knows this fault's deadline.
        self.complete_due();
        if !self.memory.is_lazy(page) {
            return;
        }
        if self.mode == Mode::Apf && self.try_not_present(frame, page) {
            return;
        }
        self.lazy
            .serve_sync(&mut self.memory, &mut self.stats, page, self.apf.faulty());
    }

    /// A hypercall: answered in `frame`'s `x0..x3`, or (SDEI completion) `frame` becomes
    /// the context to resume.
    fn call(&mut self, frame: &mut Frame) {
        self.stats.hypercalls += 1;
        let apf_offered = self.mode == Mode::Apf;
        match Call::classify(frame.x[0]) {
            Call::SystemOff => {
                println!("guest powered off");
                exit(Status::GuestOff, Some(self));
            }
            Call::Sdei => {
                if let Effect::ExceptionReturnState { elr, spsr } = self.sdei.call(frame) {
                    vcpu::set_exception_return(elr, spsr);
                }
            }
            Call::AsyncPf if apf_offered => {
                let [_, sub, x2, x3, ..] = frame.call_args();
                let memory = &self.memory;
                let was_on = self.apf.control().is_some();
                let (status, value) = self.apf.call(sub, x2, x3, |gpa| memory.is_plain_ram(gpa));
                frame.x[0] = status as u64;
                frame.x[1] = value;
                if was_on && self.apf.control().is_none() {
                    // The guest kernel turns async PF off last thing before it exits through
                    // semihosting, which ends QEMU without the host: report the counts (and
                    // each injected fault's) now, as `exit` would.
                    println!("{}{}", self.stats, self.apf.injected());
                }
            }
            call => frame.set_results(call.answer(apf_offered)),
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic: {info}");
    exit(Status::HostPanic, HOST.get().map(|host| &*host))
}
