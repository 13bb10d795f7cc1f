//! Client of the Arm Software Delegated Exception Interface (SDEI, Arm DEN 0054) and the
//! SMC Calling Convention basics it runs on (SMCCC, Arm DEN 0028).
//!
//! SDEI lets firmware or a hypervisor deliver NMI-like *events* to a registered handler;
//! the arm64 async page fault protocol uses one for "page not present". Everything except
//! [`arch`] is pure logic over a [`Conduit`], so it runs in host unit tests against a
//! fake firmware; [`arch`] holds the real `hvc` conduit and the handler entry trampoline.
//! Nothing allocates: the calls are made from event handlers.
#![cfg_attr(not(test), no_std)]

pub mod arch;
mod client;
pub mod completion;
pub mod error;
pub mod event;
pub mod function;
#[cfg(any(test, feature = "mock"))]
mod mock;
pub mod smccc;
mod version;

pub use client::{CONTEXT_LAST_REGISTER, Sdei, Unavailable};
pub use completion::{CompleteStatus, Completion};
pub use error::SdeiError;
pub use event::{
    BindSlots, EventNumber, EventStatus, EventType, Feature, InfoQuery, Priority, Routing,
};
#[cfg(any(test, feature = "mock"))]
pub use mock::MockConduit;
pub use smccc::Conduit;
pub use version::SdeiVersion;
