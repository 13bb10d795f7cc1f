//! arm64 async page faults: the v4 protocol (`arm64-apf-sdei-abi.md` §2) over the `hvc`
//! conduit, as our EL2 host (or an out-of-tree KVM) offers it.
//!
//! "Page not present" arrives as an SDEI event: `sdei`'s trampoline calls [`not_present`],
//! which takes the token from the control block and completes through the IRQ vector
//! ([`Completion::after_handling`]), as if an interrupt had been taken from the faulting
//! task. The vector saves the task's frame as any interrupt does and hands the token to the
//! kernel there ([`take_not_present`]): the kernel's hook parks the running task and picks
//! another, which needs that frame saved, so it cannot run inside the SDEI handler itself.
//! "Page ready" arrives as a level-sensitive PPI: the handler takes the token, always
//! acknowledges with `IRQ_ACK` (which lowers the line), and wakes the waiter.
//!
//! The protocol logic is `apf_pv::arm64`; this module only makes the calls.

use super::entry::is_el0;
use super::gic;
use aarch64_cpu::registers::{Readable, VBAR_EL1};
use apf_pv::arm64::{self, Apf, ControlBlock, EnableValue};
use apf_pv::waiters::Token;
use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use sdei::arch::aarch64::{Hvc, register_handler};
use sdei::smccc::SmcccError;
use sdei::{Completion, EventNumber, Routing, Sdei, SdeiError};

/// The control block the host writes `reason` and `token` into. One vCPU, so one block.
struct Block(UnsafeCell<ControlBlock>);

// SAFETY: only the one CPU touches it, in handlers that run with DAIF masked (SDEI entry,
// IRQ vector), so accesses never overlap; the host's own writes happen while the guest is
// stopped, and the accessors are volatile.
unsafe impl Sync for Block {}

static BLOCK: Block = Block(UnsafeCell::new(ControlBlock::new()));

fn block() -> &'static mut ControlBlock {
    // SAFETY: see `Block`: each user is alone while it holds the reference.
    unsafe { &mut *BLOCK.0.get() }
}

/// A guest-physical address that is not RAM on `virt` (flash), for `apf-test=bad-area`.
const OUTSIDE_RAM: u64 = 0;

/// No not-present token waits for the IRQ vector (tokens are 32-bit).
const NO_TOKEN: u64 = u64::MAX;

/// The token [`not_present`] took, until the IRQ vector it resumes through hands it on.
static PENDING_NOT_PRESENT: AtomicU64 = AtomicU64::new(NO_TOKEN);

/// No page-ready PPI (before [`prepare`]): no INTID is this large.
const NO_INTID: u32 = u32::MAX;

/// The page-ready PPI the host named (sub-function 3).
static PAGE_READY_INTID: AtomicU32 = AtomicU32::new(NO_INTID);

/// Why async PF cannot be used.
#[derive(Debug)]
pub enum Unavailable {
    /// Discovery failed (SMCCC, the KVM UID, feature bit 2, the VERSION call).
    Protocol(arm64::Unavailable),
    /// No SDEI to deliver "page not present" with.
    Sdei(sdei::Unavailable),
    /// Asking for the SDEI event or the PPI failed.
    Query(SmcccError),
    /// The host named an INTID that is not a PPI.
    NotAPpi(u32),
    /// Registering, enabling or unmasking the SDEI event failed.
    Setup(SdeiError),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(why) => write!(f, "{why}"),
            Self::Sdei(why) => write!(f, "{why}"),
            Self::Query(error) => write!(f, "asking for the SDEI event or PPI failed: {error}"),
            Self::NotAPpi(intid) => write!(f, "the page-ready interrupt {intid} is not a PPI"),
            Self::Setup(error) => write!(f, "setting up the SDEI event failed: {error}"),
        }
    }
}

/// The host refused `ASYNC_PF_ENABLE`.
#[derive(Clone, Copy, Debug)]
pub enum Refused {
    /// The host answered `ASYNC_PF_ENABLE` with an error.
    Host(SmcccError),
    /// Not asked: only the boot CPU has a control block (see `arch::aarch64`).
    NotBootCpu,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host(e) => write!(f, "ASYNC_PF_ENABLE: {e}"),
            Self::NotBootCpu => f.write_str(
                "not asked: this kernel keeps one arm64 control block and SDEI state, the boot CPU's",
            ),
        }
    }
}

/// Checks that the host speaks the protocol, then sets up both notifications once: the SDEI
/// event the host names (registered with [`not_present`], enabled, the PE unmasked) and
/// its PPI in the GIC. Only the enable is left, which `apf-cycle` repeats.
pub fn prepare() -> Result<(), Unavailable> {
    arm64::detect(&Hvc).map_err(Unavailable::Protocol)?;
    let (sdei, _) = Sdei::probe(Hvc).map_err(Unavailable::Sdei)?;
    let apf = Apf::new(Hvc);
    let event = apf.sdei_event().map_err(Unavailable::Query)?;
    let intid = apf.irq().map_err(Unavailable::Query)?;
    if !gic::PPIS.contains(&intid) {
        return Err(Unavailable::NotAPpi(intid));
    }
    PAGE_READY_INTID.store(intid, Ordering::Relaxed);
    gic::enable_private(intid);
    register_handler(&sdei, event, not_present, Routing::Any)
        .and_then(|()| sdei.enable(event))
        .and_then(|()| sdei.pe_unmask())
        .map_err(Unavailable::Setup)
}

/// Turns async PF on with the control block (after [`prepare`]), without `SEND_ALWAYS`.
/// Enabling when already enabled is "not required", which is fine.
pub fn enable() -> Result<(), Refused> {
    let gpa = BLOCK.0.get() as u64;
    let value = EnableValue::new(gpa, false).expect("the block is 64-byte aligned");
    Apf::new(Hvc).enable(value).map(drop).map_err(Refused::Host)
}

/// The `apf-test=bad-area` enable: a control block at guest-physical 0, below RAM
/// (`platform::RAM_START`), which a host that checks the address refuses.
pub fn enable_outside_ram() -> Result<(), Refused> {
    let value = EnableValue::new(OUTSIDE_RAM, false).expect("0 is 64-byte aligned");
    Apf::new(Hvc).enable(value).map(drop).map_err(Refused::Host)
}

/// Turns async PF off; the host drops what it had queued and sends nothing more.
pub fn disable() {
    // Only a host that never took the enable refuses: nothing is on to turn off then.
    let _ = Apf::new(Hvc).disable();
}

/// The SDEI handler of "page not present" (through `sdei`'s trampoline, DAIF masked).
/// A task's fault (only those become async: no `SEND_ALWAYS`, and only a task can be
/// parked): its token waits for the IRQ vector, where the completion resumes.
/// Anything else (the slot is not a not-present, or EL1 was interrupted): the slot is
/// freed and the event fails; the access re-executes, and its page-ready finds no waiter.
extern "C" fn not_present(_event: EventNumber, _pc: u64, pstate: u64) -> Completion {
    match arm64::take_not_present(block()) {
        Some(token) if is_el0(pstate) => {
            PENDING_NOT_PRESENT.store(u64::from(token), Ordering::Relaxed);
            Completion::after_handling(pstate, VBAR_EL1.get())
        }
        _ => Completion::failed(),
    }
}

/// The not-present token the SDEI handler left for this IRQ vector entry, if any.
pub fn take_not_present() -> Option<Token> {
    let token = PENDING_NOT_PRESENT.swap(NO_TOKEN, Ordering::Relaxed);
    Token::try_from(token).ok()
}

/// Whether `intid` is the page-ready PPI.
pub fn is_page_ready(intid: u32) -> bool {
    intid == PAGE_READY_INTID.load(Ordering::Relaxed)
}

/// The token of a page-ready interrupt (`None` if the slot held no page-ready), after
/// `IRQ_ACK`, which the host needs even then: until it comes the line stays high and no
/// other page-ready is sent.
pub fn take_page_ready() -> Option<Token> {
    let token = arm64::take_page_ready(block());
    // The host answers SUCCESS even with nothing pending; no other answer is defined.
    let _ = Apf::new(Hvc).irq_ack();
    token
}
