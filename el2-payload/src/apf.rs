//! The payload's async PF client, built from the guest crates (`sdei`, `apf_pv::arm64`): an
//! EL1-only guest, so it enables with `SEND_ALWAYS` (tests also run it without). "Page not present" (SDEI) records the
//! token and resumes through the IRQ vector; the IRQ handler then waits (`wfi`) until the
//! page-ready for that token arrives, handling every page-ready (with its ACK) meanwhile,
//! and returns to the faulting access, whose page is mapped by then.
//!
//! Everything here runs on one CPU with the handlers masking each other (DAIF), so the
//! shared state is a plain cell.

use super::run::{fail, println};
use apf_pv::arm64::{Apf, ControlBlock, EnableValue, take_not_present, take_page_ready};
use apf_pv::waiters::BROADCAST;
use core::cell::UnsafeCell;
use sdei::arch::aarch64::{Hvc, register_handler};
use sdei::{Completion, Routing, Sdei};

/// `ICC_SRE_EL1`: system register interface on, FIQ/IRQ bypass disabled.
const ICC_SRE_EL1: u64 = 0b111;
/// `ICC_PMR_EL1`: let every priority through.
const PMR_ALL: u64 = 0xff;
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
    /// XOR of the tokens of each kind: equal when every not-present got its page-ready.
    not_present_tokens: u32,
    page_ready_tokens: u32,
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
    not_present_tokens: 0,
    page_ready_tokens: 0,
    waited_ticks: 0,
}));

#[allow(clippy::mut_from_ref)]
fn state() -> &'static mut State {
    // SAFETY: see `Shared`: each user is alone while it holds the reference.
    unsafe { &mut *STATE.0.get() }
}

macro_rules! sysreg {
    (read $name:literal) => {{
        let value: u64;
        // SAFETY: reads a GIC CPU interface or exception register; no memory effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack)) };
        value
    }};
    (write $name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: programs the payload's own GIC CPU interface; `isb` makes it effective.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) value, options(nostack)) };
    }};
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
    sysreg!(write "icc_sre_el1", ICC_SRE_EL1);
    sysreg!(write "icc_pmr_el1", PMR_ALL);
    sysreg!(write "icc_igrpen1_el1", 1);
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
        "async PF: not_present={} page_ready={} broadcasts={} waited_us={}",
        s.not_present,
        s.page_ready,
        s.broadcasts,
        s.waited_ticks * 1_000_000 / frequency
    );
    s.not_present == s.page_ready && s.not_present_tokens == s.page_ready_tokens
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

/// The IRQ handler, called from the vector with the interrupted registers saved.
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
        if intid != s.page_ready_intid {
            println!("unexpected IRQ {intid}");
            fail();
        }
        if let Some(token) = take_page_ready(&mut s.block) {
            if token == BROADCAST {
                s.broadcasts += 1;
                s.waiting = None;
            } else {
                s.page_ready += 1;
                s.page_ready_tokens ^= token;
                if s.waiting == Some(token) {
                    s.waiting = None;
                }
            }
        }
        if Apf::new(Hvc).irq_ack().is_err() {
            fail();
        }
        sysreg!(write "icc_eoir1_el1", intid);
    }
}
