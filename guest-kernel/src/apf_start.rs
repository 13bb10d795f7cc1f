//! Turning async PF on at boot (`apf=on`): the CPUID check, the optional `apf-test` probe,
//! then the enable. A host that refuses the enable (#GP) leaves the kernel running without
//! async PF, saying so, rather than stopping it.

use crate::arch;
use crate::exit_status::ExitStatus;
use crate::println;
use guest_kernel::apf::{Outcome, State};
use guest_kernel::cmdline::Config;

/// Enables async PF for `config` (which has `apf=on`); returns the state it ended in and
/// the probe's outcome, if one ran. Exits if the host does not offer async PF at all.
pub fn start(config: &Config) -> (State, Option<Outcome>) {
    let apf = match arch::detect_async_pf() {
        Ok(apf) => apf,
        Err(reason) => {
            println!("kernel: apf=on, but async page faults are unavailable: {reason}");
            arch::exit(ExitStatus::Unsupported);
        }
    };
    let test = config.apf_test.map(|test| apf.probe(test));
    (enable(0), test)
}

/// Enables async PF on the running CPU `cpu` (the boot CPU after the checks of [`start`],
/// each other CPU as it comes up); a refusal is reported and leaves this CPU without it.
pub fn enable(cpu: usize) -> State {
    match arch::enable_async_pf() {
        Ok(()) => State::On,
        Err(refused) => {
            println!(
                "kernel: CPU {cpu}: the host refused async PF: {refused}; this CPU runs with async PF off"
            );
            State::Refused
        }
    }
}
