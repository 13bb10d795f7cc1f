//! AArch64 EL1 client side: `hvc` and `smc` as the conduits and the entry trampoline
//! that turns an SDEI dispatch into a call of a Rust [`Handler`].

mod conduit;
mod entry;

pub use conduit::{Hvc, Smc};
pub use entry::{COMPLETE_FAILED_BRK, FRAME_SIZE, Handler, entry_point, register_handler};
