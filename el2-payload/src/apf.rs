//! The payload's async PF client, built from the guest crates (`sdei`, `apf_pv::arm64`): an
//! EL1-only guest, so it enables with `SEND_ALWAYS` (tests also run it without). "Page not present" (SDEI) records the
//! token and resumes through the IRQ vector; the IRQ handler then waits (`wfi`) until the
//! page-ready for that token arrives, handling every page-ready (with its ACK) meanwhile,
//! and returns to the faulting access, whose page is mapped by then. A broadcast also ends
//! the wait (the access then re-faults until its page is in); page-readies for a token
//! nobody waits for (repeated, unknown, or late after a broadcast) are ignored, as §2.6 asks
//! of a guest, and counted as `stray`.
//!
//! Everything here runs on one CPU with the handlers masking each other (DAIF), so the
//! shared state is a plain cell.

use super::run::{fail, println};
use super::sysreg::sysreg;
use super::timer;
use apf_pv::arm64::{Apf, ControlBlock, EnableValue, take_not_present, take_page_ready};
use apf_pv::waiters::BROADCAST;
use core::cell::UnsafeCell;
use sdei::arch::aarch64::{Hvc, register_handler};
use sdei::{Completion, Routing, Sdei};

/// `ICC_IAR1_EL1` values from 1020 are special ("nothing pending").
const FIRST_SPECIAL_INTID: u64 = 1020;

/// What the handlers share with the main flow.
struct State {
    block: ControlBlock,
    page_ready_intid: u64,
    /// The token the interrupted access waits for.
    waiting: Option<u32>,
    not_present: u64,
    page_ready: u64,
    broadcasts: u64,
    /// Page-readies for a token not waited for.
    stray: u64,
    /// Waits ended, by their page-ready or a broadcast.
    answered: u64,
    /// XOR of the tokens not-present sent and of those whose wait ended: equal when every
    /// not-present was answered.
    not_present_tokens: u32,
    answered_tokens: u32,
    /// Counter ticks spent waiting in `wfi` for page-ready.
    waited_ticks: u64,
}

struct Shared(UnsafeCell<State>);

// SAFETY: one CPU; the main flow only reads the state with IRQs masked or after the last
// handler ran, and the SDEI and IRQ handlers run with DAIF masked, so never at once.
unsafe impl Sync for Shared {}

static STATE: Shared = Shared(UnsafeCell::new(State {
    block: ControlBlock::new(),
    page_ready_intid: 0,
    waiting: None,
    not_present: 0,
    page_ready: 0,
    broadcasts: 0,
    stray: 0,
    answered: 0,
    not_present_tokens: 0,
    answered_tokens: 0,
    waited_ticks: 0,
}));

#[allow(clippy::mut_from_ref)]
fn state() -> &'static mut State {
    // SAFETY: see `Shared`: each user is alone while it holds the reference.
    unsafe { &mut *STATE.0.get() }
}

/// Registers the handlers, enables the event, the PPI and async PF (with `SEND_ALWAYS` if
/// `send_always`), and unmasks IRQs.
pub fn enable(send_always: bool) {
    let (sdei, _) = Sdei::probe(Hvc).unwrap_or_else(|_| fail());
    let apf = Apf::new(Hvc);
    let (Ok(event), Ok(irq)) = (apf.sdei_event(), apf.irq()) else {
        fail()
    };
    state().page_ready_intid = u64::from(irq);
    let registered = register_handler(&sdei, event, not_present, Routing::Any)
        .and_then(|()| sdei.enable(event))
        .and_then(|()| sdei.pe_unmask());
    if let Err(error) = registered {
        println!("SDEI setup failed: {error}");
        fail();
    }
    super::gic::cpu_interface_on();
    let block = &raw const state().block as u64;
    let value = EnableValue::new(block, send_always).unwrap_or_else(|_| fail());
    if let Err(error) = apf.enable(value) {
        println!("ENABLE failed: {error}");
        fail();
    }
    println!("async PF enabled: SDEI event {event:#x}, PPI {irq}, block {block:#x}");
    // SAFETY: unmasks IRQs; the vector table handles them from here on.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack)) };
}

/// Prints what the handlers saw and checks it; `true` if every not-present was answered.
pub fn report(frequency: u64) -> bool {
    // SAFETY: masks IRQs: the handlers are done.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack)) };
    let s = state();
    println!(
        "async PF: not_present={} page_ready={} broadcasts={} stray={} waited_us={}",
        s.not_present,
        s.page_ready,
        s.broadcasts,
        s.stray,
        s.waited_ticks * 1_000_000 / frequency
    );
    s.not_present == s.answered && s.not_present_tokens == s.answered_tokens
}

impl State {
    /// The wait for `token` is over.
    fn answer(&mut self, token: u32) {
        self.waiting = None;
        self.answered += 1;
        self.answered_tokens ^= token;
    }
}

/// The SDEI handler (through `sdei`'s trampoline): note the token, resume through the IRQ
/// vector, where the wait happens with the interrupted context saved as an exception.
extern "C" fn not_present(_event: u32, _pc: u64, pstate: u64) -> Completion {
    let s = state();
    match take_not_present(&mut s.block) {
        Some(token) => {
            s.waiting = Some(token);
            s.not_present += 1;
            s.not_present_tokens ^= token;
            Completion::after_handling(pstate, sysreg!(read "vbar_el1"))
        }
        None => Completion::failed(),
    }
}

/// The IRQ handler, called from the vector with the interrupted registers saved: the
/// virtual timer's ticks (see `timer`) and page-ready.
#[unsafe(no_mangle)]
extern "C" fn payload_irq() {
    let s = state();
    loop {
        let intid = sysreg!(read "icc_iar1_el1");
        if intid >= FIRST_SPECIAL_INTID {
            if s.waiting.is_none() {
                return;
            }
            let start = super::run::counter();
            // SAFETY: waits for an interrupt; a pending virtual IRQ wakes it though masked.
            unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
            s.waited_ticks += super::run::counter() - start;
            continue;
        }
        if intid == u64::from(timer::INTID) {
            timer::tick();
            sysreg!(write "icc_eoir1_el1", intid);
            continue;
        }
        if intid != s.page_ready_intid {
            println!("unexpected IRQ {intid}");
            fail();
        }
        if let Some(token) = take_page_ready(&mut s.block) {
            if token == BROADCAST {
                s.broadcasts += 1;
                if let Some(waited) = s.waiting {
                    s.answer(waited);
                }
            } else {
                s.page_ready += 1;
                if s.waiting == Some(token) {
                    s.answer(token);
                } else {
                    s.stray += 1;
                }
            }
        }
        if Apf::new(Hvc).irq_ack().is_err() {
            fail();
        }
        sysreg!(write "icc_eoir1_el1", intid);
    }
}
