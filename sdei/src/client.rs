//! The typed SDEI client: one method per call, arguments in the registers DEN 0054 §5.1
//! assigns, results decoded and errors mapped.

use crate::completion::{CompleteStatus, Completion};
use crate::error::SdeiError;
use crate::event::{
    BindSlots, EventNumber, EventStatus, EventType, Feature, InfoQuery, Priority, Routing,
};
use crate::function;
use crate::smccc::Conduit;
use crate::version::SdeiVersion;
use core::fmt;

/// The highest register `EVENT_CONTEXT` can read: the dispatcher saves `x0..x17`.
pub const CONTEXT_LAST_REGISTER: u8 = 17;

/// Why SDEI cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// `SDEI_VERSION` failed: nothing implements SDEI behind the conduit.
    NoSdei(SdeiError),
    /// An SDEI major version this client does not speak.
    Version(SdeiVersion),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSdei(error) => write!(f, "SDEI_VERSION failed: {error}"),
            Self::Version(version) => write!(
                f,
                "SDEI version {version} unsupported (need major {})",
                SdeiVersion::SUPPORTED_MAJOR
            ),
        }
    }
}

/// An SDEI client calling through `C`.
///
/// Calls about one PE's state (private events, masking, `EVENT_CONTEXT`, completion) act
/// on the PE that makes them, so make them on the right CPU.
pub struct Sdei<C> {
    conduit: C,
}

impl<C: Conduit> Sdei<C> {
    /// A client that has not checked the version, e.g. inside a handler that runs only
    /// after [`probe`](Self::probe) succeeded.
    pub const fn new(conduit: C) -> Self {
        Self { conduit }
    }

    /// A client for an implementation this crate speaks, and its version.
    pub fn probe(conduit: C) -> Result<(Self, SdeiVersion), Unavailable> {
        let sdei = Self::new(conduit);
        let version = sdei.version().map_err(Unavailable::NoSdei)?;
        if !version.is_supported() {
            return Err(Unavailable::Version(version));
        }
        Ok((sdei, version))
    }

    /// `SDEI_VERSION`.
    pub fn version(&self) -> Result<SdeiVersion, SdeiError> {
        self.value(function::VERSION, [0; 5])
            .map(SdeiVersion::from_x0)
    }

    /// `EVENT_REGISTER`: `entry` is called with `arg` (in `x1`) when `event` is dispatched
    /// (see [`arch`](crate::arch) for an entry point that calls a Rust handler). The
    /// event stays disabled until [`enable`](Self::enable).
    pub fn register(
        &self,
        event: EventNumber,
        entry: u64,
        arg: u64,
        routing: Routing,
    ) -> Result<(), SdeiError> {
        self.status(
            function::EVENT_REGISTER,
            [event.into(), entry, arg, routing.mode(), routing.affinity()],
        )
    }

    /// `EVENT_ENABLE`.
    pub fn enable(&self, event: EventNumber) -> Result<(), SdeiError> {
        self.status(function::EVENT_ENABLE, [event.into(), 0, 0, 0, 0])
    }

    /// `EVENT_DISABLE`.
    pub fn disable(&self, event: EventNumber) -> Result<(), SdeiError> {
        self.status(function::EVENT_DISABLE, [event.into(), 0, 0, 0, 0])
    }

    /// `EVENT_UNREGISTER`; [`SdeiError::Pending`] means a handler is running and the
    /// registration goes when it completes.
    pub fn unregister(&self, event: EventNumber) -> Result<(), SdeiError> {
        self.status(function::EVENT_UNREGISTER, [event.into(), 0, 0, 0, 0])
    }

    /// `EVENT_STATUS`.
    pub fn event_status(&self, event: EventNumber) -> Result<EventStatus, SdeiError> {
        self.value(function::EVENT_STATUS, [event.into(), 0, 0, 0, 0])
            .map(EventStatus::from_bits)
    }

    /// `EVENT_GET_INFO`, raw result.
    pub fn info(&self, event: EventNumber, query: InfoQuery) -> Result<u64, SdeiError> {
        self.value(
            function::EVENT_GET_INFO,
            [event.into(), query as u64, 0, 0, 0],
        )
    }

    /// `EVENT_GET_INFO(TYPE)`.
    pub fn event_type(&self, event: EventNumber) -> Result<EventType, SdeiError> {
        let value = self.info(event, InfoQuery::Type)?;
        EventType::from_info(value).ok_or(SdeiError::Unexpected(value))
    }

    /// `EVENT_GET_INFO(PRIORITY)`.
    pub fn priority(&self, event: EventNumber) -> Result<Priority, SdeiError> {
        let value = self.info(event, InfoQuery::Priority)?;
        Priority::from_info(value).ok_or(SdeiError::Unexpected(value))
    }

    /// `EVENT_ROUTING_SET` (shared events, while registered but disabled).
    pub fn routing_set(&self, event: EventNumber, routing: Routing) -> Result<(), SdeiError> {
        self.status(
            function::EVENT_ROUTING_SET,
            [event.into(), routing.mode(), routing.affinity(), 0, 0],
        )
    }

    /// `PE_MASK`: `true` if this call masked the PE, `false` if it already was.
    pub fn pe_mask(&self) -> Result<bool, SdeiError> {
        match self.value(function::PE_MASK, [0; 5])? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(SdeiError::Unexpected(other)),
        }
    }

    /// `PE_UNMASK`. Call it once per PE before expecting events: the mask state after
    /// reset is unconfirmed.
    pub fn pe_unmask(&self) -> Result<(), SdeiError> {
        self.status(function::PE_UNMASK, [0; 5])
    }

    /// `INTERRUPT_BIND`: the new event number for interrupt `intid`.
    pub fn interrupt_bind(&self, intid: u32) -> Result<EventNumber, SdeiError> {
        let value = self.value(function::INTERRUPT_BIND, [intid.into(), 0, 0, 0, 0])?;
        EventNumber::try_from(value).map_err(|_| SdeiError::Unexpected(value))
    }

    /// `INTERRUPT_RELEASE`.
    pub fn interrupt_release(&self, event: EventNumber) -> Result<(), SdeiError> {
        self.status(function::INTERRUPT_RELEASE, [event.into(), 0, 0, 0, 0])
    }

    /// `EVENT_SIGNAL` (v1.1): raises `event` (must be 0) on the PE with affinity `target`.
    pub fn signal(&self, event: EventNumber, target: u64) -> Result<(), SdeiError> {
        self.status(function::EVENT_SIGNAL, [event.into(), target, 0, 0, 0])
    }

    /// `FEATURES` (v1.1), raw result.
    pub fn features(&self, feature: Feature) -> Result<u64, SdeiError> {
        self.value(function::FEATURES, [feature as u64, 0, 0, 0, 0])
    }

    /// `FEATURES(BIND_SLOTS)`.
    pub fn bind_slots(&self) -> Result<BindSlots, SdeiError> {
        self.features(Feature::BindSlots).map(BindSlots::from_x0)
    }

    /// `PRIVATE_RESET`.
    pub fn private_reset(&self) -> Result<(), SdeiError> {
        self.status(function::PRIVATE_RESET, [0; 5])
    }

    /// `SHARED_RESET`.
    pub fn shared_reset(&self) -> Result<(), SdeiError> {
        self.status(function::SHARED_RESET, [0; 5])
    }

    /// `EVENT_CONTEXT`: register `x<register>` of the interrupted context, inside a
    /// handler. Any 64-bit value is a valid register, so the result is returned raw (an
    /// `x0` that happens to equal an error code cannot be told apart): only an index above
    /// [`CONTEXT_LAST_REGISTER`] is refused, here, without a call.
    pub fn context(&self, register: u8) -> Result<u64, SdeiError> {
        if register > CONTEXT_LAST_REGISTER {
            return Err(SdeiError::InvalidParameters);
        }
        Ok(self.call(function::EVENT_CONTEXT, [register.into(), 0, 0, 0, 0])[0])
    }

    /// `EVENT_COMPLETE`. It does not return on success, so what it returns is the reason
    /// it failed (e.g. [`SdeiError::Denied`]: no handler running).
    pub fn complete(&self, status: CompleteStatus) -> SdeiError {
        self.finish(Completion::complete(status))
    }

    /// `EVENT_COMPLETE_AND_RESUME` at `address`; returns only on failure, like
    /// [`complete`](Self::complete).
    pub fn complete_and_resume(&self, address: u64) -> SdeiError {
        self.finish(Completion::resume_at(address))
    }

    /// Issues a handler's final call.
    pub fn finish(&self, completion: Completion) -> SdeiError {
        let [x0, ..] = self.call(
            completion.function as u32,
            [completion.argument, 0, 0, 0, 0],
        );
        SdeiError::from_code(x0).unwrap_or(SdeiError::Unexpected(x0))
    }

    fn call(&self, function: u32, args: [u64; 5]) -> [u64; 4] {
        let [x1, x2, x3, x4, x5] = args;
        self.conduit.call([function.into(), x1, x2, x3, x4, x5])
    }

    fn value(&self, function: u32, args: [u64; 5]) -> Result<u64, SdeiError> {
        SdeiError::value(self.call(function, args)[0])
    }

    fn status(&self, function: u32, args: [u64; 5]) -> Result<(), SdeiError> {
        SdeiError::status(self.call(function, args)[0])
    }
}

#[cfg(test)]
mod tests;
