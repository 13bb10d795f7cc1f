//! AArch64 EL1 client side: `hvc` as the conduit (KVM guests) and the entry trampoline
//! that turns an SDEI dispatch into a call of a Rust [`Handler`].

mod entry;
mod hvc;

pub use entry::{COMPLETE_FAILED_BRK, FRAME_SIZE, Handler, entry_point, register_handler};
pub use hvc::Hvc;
