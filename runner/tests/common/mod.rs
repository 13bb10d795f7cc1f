//! Helpers shared by the integration tests, one file per concern beside this one:
//!
//! - `build`: the runner binary, and guest ELFs built with `runner build-guest`;
//! - `x86_guest` and `aarch64_guest`: each architecture's guest ELF, built once per binary;
//! - `run`: a `runner run` of a guest;
//! - `boot`: what a `runner run` printed, and the checks the x86_64 and aarch64 guests share;
//! - `el2`: a boot under the arm64 EL2 host and what it printed;
//! - `crowd`: the run with more waiting tasks than the guest's waiter table holds.
//!
//! A test binary declares the files it uses in an inline `mod common { pub mod build; .. }`
//! (`crowd`, which needs `support/guest_run.rs`, with `#[path]`), so that none compiles a
//! helper it leaves unused: dead code fails `clippy -D warnings`. This file is the bundle
//! for the binaries that only boot the x86_64 guest through the runner: `mod common;`.

mod build;
mod x86_guest;

pub use build::runner;
pub use x86_guest::guest_elf;
