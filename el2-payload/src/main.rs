//! A minimal EL1 guest for testing `el2-host` before the real guest kernel runs on arm64:
//! it discovers the host's hypercalls with the guest crates, touches lazy pages and checks
//! their contents, then powers off through PSCI. Its arguments are the command-line words
//! after ` -- ` (semihosting `SYS_GET_CMDLINE`): `seed=N` (must match the host's),
//! `pages=N`, `apf=1` (enable async PF first: run the host with `mode=apf`),
//! `send_always=0` (enable it without `SEND_ALWAYS`), `el0=1` (touch the pages at EL0).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod apf;
#[cfg(target_os = "none")]
mod el0;
#[cfg(target_os = "none")]
mod entry;
#[cfg(target_os = "none")]
mod run;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("el2-payload is a bare-metal EL1 guest for el2-host (README \"arm64 EL2 host\")");
    std::process::exit(2);
}
