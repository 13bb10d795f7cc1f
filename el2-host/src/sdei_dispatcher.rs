//! The host's SDEI implementation (DEN 0054; `arm64-apf-sdei-abi.md` §3-4) for the one
//! private event the async PF protocol uses, in the shape of KVM's never-merged SDEI
//! virtualization: per-vCPU state, the guest's calls, delivery into a [`Frame`] and
//! completion back out of it.

use crate::frame::Frame;
use sdei::CONTEXT_LAST_REGISTER;
use sdei::error::{DENIED, INVALID_PARAMETERS, NOT_SUPPORTED, PENDING, SUCCESS};
use sdei::event::{EventNumber, Feature, InfoQuery};
use sdei::function;

/// `SDEI_VERSION`: 1.1 (bits 62:48 major, 47:32 minor) with KVM's vendor word "KVM".
pub const VERSION: u64 = (1 << 48) | (1 << 32) | 0x4b_564d;
/// Interrupted registers `EVENT_CONTEXT` may read: `x0..x17`.
const CONTEXT_REGISTERS: u64 = CONTEXT_LAST_REGISTER as u64 + 1;
/// `EVENT_STATUS` bits.
const STATUS_REGISTERED: u64 = 1 << 0;
const STATUS_ENABLED: u64 = 1 << 1;
const STATUS_RUNNING: u64 = 1 << 2;
/// `EVENT_GET_INFO` queries and answers: private, not signalable, critical priority (as v4
/// exposed the async PF event).
const INFO_TYPE: u64 = InfoQuery::Type as u64;
const INFO_SIGNALED: u64 = InfoQuery::Signaled as u64;
const INFO_PRIORITY: u64 = InfoQuery::Priority as u64;
const TYPE_PRIVATE: u64 = 0;
const NOT_SIGNALABLE: u64 = 0;
const PRIORITY_CRITICAL: u64 = 1;
/// `FEATURES(BIND_SLOTS)`: no interrupt binding slots; other features unsupported.
const FEATURE_BIND_SLOTS: u64 = Feature::BindSlots as u64;

/// PSTATE `M[4:0]` (AArch32 flag and mode) and the mode of EL1 on `SP_EL1`.
const PSTATE_MODE_MASK: u64 = 0x1f;
const PSTATE_EL1H: u64 = 0b0101;
/// PSTATE D, A, I and F (bits 9:6).
const PSTATE_DAIF: u64 = 0xf << 6;

/// The handler's PSTATE, from the interrupted one: EL1h with D, A, I and F masked (also
/// the state `COMPLETE_AND_RESUME` enters the resume address in, as an exception would).
fn handler_pstate(interrupted: u64) -> u64 {
    (interrupted & !PSTATE_MODE_MASK) | PSTATE_DAIF | PSTATE_EL1H
}

/// What the arch side must do after a call besides resuming the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing: the frame holds the results or the restored context.
    None,
    /// `EVENT_COMPLETE_AND_RESUME`: set `ELR_EL1`/`SPSR_EL1` to these (the interrupted PC
    /// and PSTATE), as if an exception had been taken to the resume address.
    ExceptionReturnState { elr: u64, spsr: u64 },
}

/// The event's registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Registration {
    entry: u64,
    argument: u64,
    enabled: bool,
    /// `EVENT_UNREGISTER` while the handler ran: finish at completion.
    unregister_pending: bool,
}

/// SDEI state of the one vCPU.
pub struct Dispatcher {
    event: EventNumber,
    registration: Option<Registration>,
    /// The PE is masked until `PE_UNMASK` (the default after reset is unconfirmed; Linux
    /// unmasks explicitly).
    masked: bool,
    /// The interrupted context while the handler runs.
    running: Option<Frame>,
}

impl Dispatcher {
    /// SDEI with `event` as its only (private) event.
    pub const fn new(event: EventNumber) -> Self {
        Self {
            event,
            registration: None,
            masked: true,
            running: None,
        }
    }

    /// Whether an SDEI call: function IDs `VERSION..=SHARED_RESET`.
    pub fn owns(function: u64) -> bool {
        (u64::from(function::VERSION)..=u64::from(function::SHARED_RESET)).contains(&function)
    }

    /// Whether the event can be delivered now: registered, enabled, PE unmasked, no handler
    /// running.
    pub fn deliverable(&self) -> bool {
        !self.masked
            && self.running.is_none()
            && self
                .registration
                .is_some_and(|r| r.enabled && !r.unregister_pending)
    }

    /// Enters the handler: saves `frame` and makes it the handler's entry (x0 = event,
    /// x1 = argument, x2 = interrupted PC, x3 = interrupted PSTATE; EL1h, DAIF masked).
    /// `false` if the event is not [`deliverable`](Self::deliverable).
    pub fn deliver(&mut self, frame: &mut Frame) -> bool {
        let Some(registration) = self.registration.filter(|_| self.deliverable()) else {
            return false;
        };
        self.running = Some(*frame);
        let (pc, pstate) = (frame.elr, frame.spsr);
        frame.x[0] = u64::from(self.event);
        frame.x[1] = registration.argument;
        frame.x[2] = pc;
        frame.x[3] = pstate;
        frame.elr = registration.entry;
        frame.spsr = handler_pstate(pstate);
        true
    }

    /// Handles the SDEI call in `frame` (x0 = function ID, x1.. = arguments): the result
    /// goes to `x0`, or the frame becomes the restored context on completion.
    pub fn call(&mut self, frame: &mut Frame) -> Effect {
        let [function, a1, a2, a3, ..] = frame.call_args();
        let result = match function as u32 {
            function::VERSION => VERSION,
            function::EVENT_REGISTER => self.register(a1, a2, a3),
            function::EVENT_ENABLE => self.set_enabled(a1, true),
            function::EVENT_DISABLE => self.set_enabled(a1, false),
            function::EVENT_CONTEXT => match &self.running {
                Some(saved) if a1 < CONTEXT_REGISTERS => saved.x[a1 as usize],
                Some(_) => INVALID_PARAMETERS as u64,
                None => DENIED as u64,
            },
            function::EVENT_COMPLETE => return self.complete(frame, None),
            function::EVENT_COMPLETE_AND_RESUME => return self.complete(frame, Some(a1)),
            function::EVENT_UNREGISTER => self.unregister(a1),
            function::EVENT_STATUS => self.status(a1),
            function::EVENT_GET_INFO => self.info(a1, a2),
            function::PE_MASK => {
                let was_unmasked = !self.masked;
                self.masked = true;
                u64::from(was_unmasked)
            }
            function::PE_UNMASK => {
                self.masked = false;
                SUCCESS as u64
            }
            function::FEATURES if a1 == FEATURE_BIND_SLOTS => 0,
            function::FEATURES => INVALID_PARAMETERS as u64,
            function::PRIVATE_RESET | function::SHARED_RESET => self.reset(),
            _ => NOT_SUPPORTED as u64,
        };
        frame.x[0] = result;
        Effect::None
    }

    fn known(&self, event: u64) -> bool {
        event == u64::from(self.event)
    }

    fn register(&mut self, event: u64, entry: u64, argument: u64) -> u64 {
        if !self.known(event) {
            return INVALID_PARAMETERS as u64;
        }
        if self.registration.is_some() {
            return DENIED as u64;
        }
        self.registration = Some(Registration {
            entry,
            argument,
            enabled: false,
            unregister_pending: false,
        });
        SUCCESS as u64
    }

    fn set_enabled(&mut self, event: u64, enabled: bool) -> u64 {
        if !self.known(event) {
            return INVALID_PARAMETERS as u64;
        }
        match self.registration.as_mut() {
            Some(registration) => {
                registration.enabled = enabled;
                SUCCESS as u64
            }
            None => DENIED as u64,
        }
    }

    fn unregister(&mut self, event: u64) -> u64 {
        if !self.known(event) {
            return INVALID_PARAMETERS as u64;
        }
        match (self.registration.as_mut(), self.running.is_some()) {
            (None, _) => DENIED as u64,
            (Some(registration), true) => {
                registration.unregister_pending = true;
                PENDING as u64
            }
            (Some(_), false) => {
                self.registration = None;
                SUCCESS as u64
            }
        }
    }

    fn status(&self, event: u64) -> u64 {
        if !self.known(event) {
            return INVALID_PARAMETERS as u64;
        }
        self.registration.map_or(0, |r| {
            STATUS_REGISTERED
                | if r.enabled { STATUS_ENABLED } else { 0 }
                | if self.running.is_some() {
                    STATUS_RUNNING
                } else {
                    0
                }
        })
    }

    fn info(&self, event: u64, query: u64) -> u64 {
        if !self.known(event) {
            return INVALID_PARAMETERS as u64;
        }
        match query {
            INFO_TYPE => TYPE_PRIVATE,
            INFO_SIGNALED => NOT_SIGNALABLE,
            INFO_PRIORITY => PRIORITY_CRITICAL,
            // Routing queries are for shared events only.
            _ => INVALID_PARAMETERS as u64,
        }
    }

    fn reset(&mut self) -> u64 {
        if self.running.is_some() {
            return DENIED as u64;
        }
        self.registration = None;
        SUCCESS as u64
    }

    /// Ends the running handler: restores the interrupted context into `frame`, and for
    /// `resume_at` continues there as if an exception had been taken from it.
    fn complete(&mut self, frame: &mut Frame, resume_at: Option<u64>) -> Effect {
        let Some(saved) = self.running.take() else {
            frame.x[0] = DENIED as u64;
            return Effect::None;
        };
        *frame = saved;
        if self.registration.is_some_and(|r| r.unregister_pending) {
            self.registration = None;
        }
        match resume_at {
            None => Effect::None,
            Some(address) => {
                let effect = Effect::ExceptionReturnState {
                    elr: saved.elr,
                    spsr: saved.spsr,
                };
                frame.elr = address;
                frame.spsr = handler_pstate(saved.spsr);
                effect
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: EventNumber = 0x4040_0001;
    const ENTRY: u64 = 0x4009_0000;
    /// EL0t with nothing masked.
    const EL0_PSTATE: u64 = 0;

    fn call(sdei: &mut Dispatcher, function: u32, args: [u64; 3]) -> (u64, Effect) {
        let mut frame = Frame::start(0, 0);
        frame.x[0] = u64::from(function);
        frame.x[1..4].copy_from_slice(&args);
        let effect = sdei.call(&mut frame);
        (frame.x[0], effect)
    }

    fn ready() -> Dispatcher {
        let mut sdei = Dispatcher::new(EVENT);
        let e = u64::from(EVENT);
        assert_eq!(
            call(&mut sdei, function::EVENT_REGISTER, [e, ENTRY, 0xa5]).0,
            0
        );
        assert_eq!(call(&mut sdei, function::EVENT_ENABLE, [e, 0, 0]).0, 0);
        assert!(!sdei.deliverable(), "masked until PE_UNMASK");
        assert_eq!(call(&mut sdei, function::PE_UNMASK, [0; 3]).0, 0);
        assert!(sdei.deliverable());
        sdei
    }

    fn interrupted() -> Frame {
        let mut frame = Frame::start(0x40_1000, EL0_PSTATE);
        for (i, x) in frame.x.iter_mut().enumerate() {
            *x = 100 + i as u64;
        }
        frame
    }

    #[test]
    fn owns_exactly_the_sdei_range() {
        assert!(Dispatcher::owns(0xC400_0020) && Dispatcher::owns(0xC400_0032));
        assert!(!Dispatcher::owns(0xC400_0033) && !Dispatcher::owns(0x8400_0008));
    }

    #[test]
    fn delivery_sets_the_entry_registers_and_complete_restores() {
        let mut sdei = ready();
        let mut frame = interrupted();
        let before = frame;
        assert!(sdei.deliver(&mut frame));
        assert_eq!(
            frame.x[..4],
            [u64::from(EVENT), 0xa5, 0x40_1000, EL0_PSTATE]
        );
        assert_eq!((frame.elr, frame.spsr), (ENTRY, 0x3c5));
        assert!(!sdei.deliver(&mut frame.clone()), "no nesting");
        // The handler reads x5 of the interrupted context, then completes.
        frame.x[0] = u64::from(function::EVENT_CONTEXT);
        frame.x[1] = 5;
        sdei.call(&mut frame);
        assert_eq!(frame.x[0], 105);
        frame.x[0] = u64::from(function::EVENT_COMPLETE);
        assert_eq!(sdei.call(&mut frame), Effect::None);
        assert_eq!(frame, before);
        assert!(sdei.deliverable());
    }

    #[test]
    fn complete_and_resume_enters_the_vector_as_an_exception() {
        let mut sdei = ready();
        let mut frame = interrupted();
        sdei.deliver(&mut frame);
        frame.x[0] = u64::from(function::EVENT_COMPLETE_AND_RESUME);
        frame.x[1] = 0x4008_0480;
        let effect = sdei.call(&mut frame);
        assert_eq!(
            effect,
            Effect::ExceptionReturnState {
                elr: 0x40_1000,
                spsr: EL0_PSTATE
            }
        );
        assert_eq!((frame.elr, frame.spsr), (0x4008_0480, 0x3c5));
        assert_eq!(frame.x[7], 107, "registers are the interrupted ones");
    }

    #[test]
    fn refusals() {
        let mut sdei = Dispatcher::new(EVENT);
        let e = u64::from(EVENT);
        assert_eq!(
            call(&mut sdei, function::EVENT_COMPLETE, [0; 3]).0,
            DENIED as u64
        );
        assert_eq!(
            call(&mut sdei, function::EVENT_CONTEXT, [0; 3]).0,
            DENIED as u64
        );
        assert_eq!(
            call(&mut sdei, function::EVENT_ENABLE, [e, 0, 0]).0,
            DENIED as u64
        );
        assert_eq!(
            call(&mut sdei, function::EVENT_REGISTER, [0, ENTRY, 0]).0,
            INVALID_PARAMETERS as u64
        );
        assert_eq!(
            call(&mut sdei, function::INTERRUPT_BIND, [30, 0, 0]).0,
            NOT_SUPPORTED as u64
        );
        let mut sdei = ready();
        assert_eq!(
            call(&mut sdei, function::EVENT_REGISTER, [e, ENTRY, 0]).0,
            DENIED as u64
        );
        assert_eq!(call(&mut sdei, function::PE_MASK, [0; 3]).0, 1);
        assert_eq!(call(&mut sdei, function::PE_MASK, [0; 3]).0, 0);
        assert!(!sdei.deliver(&mut interrupted()));
    }

    #[test]
    fn status_info_and_unregister_while_running() {
        let mut sdei = ready();
        let e = u64::from(EVENT);
        assert_eq!(call(&mut sdei, function::EVENT_STATUS, [e, 0, 0]).0, 0b011);
        assert_eq!(
            call(&mut sdei, function::EVENT_GET_INFO, [e, INFO_PRIORITY, 0]).0,
            1
        );
        assert_eq!(
            call(&mut sdei, function::VERSION, [0; 3]).0,
            0x0001_0001_004b_564d
        );
        let mut frame = interrupted();
        sdei.deliver(&mut frame);
        assert_eq!(call(&mut sdei, function::EVENT_STATUS, [e, 0, 0]).0, 0b111);
        assert_eq!(
            call(&mut sdei, function::EVENT_UNREGISTER, [e, 0, 0]).0,
            PENDING as u64
        );
        frame.x[0] = u64::from(function::EVENT_COMPLETE);
        sdei.call(&mut frame);
        assert_eq!(call(&mut sdei, function::EVENT_STATUS, [e, 0, 0]).0, 0);
    }
}
