//! The hardware boundary: the real conduit and the handler entry point. Only built for
//! the architecture they are written for; everything else in the crate is pure logic.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
