//! Turning async PF on at boot (`apf=on`): the CPUID check, the optional `apf-test` probe,
//! then the enable. A host that refuses the enable (#GP) leaves the kernel running without
//! async PF, saying so, rather than stopping it.

use crate::arch;
use crate::exit_status::ExitStatus;
use crate::println;
use guest_kernel::apf::{DISABLE, Outcome, Probe, State};
use guest_kernel::cmdline::{ApfTest, Config};

/// Enables async PF for `config` (which has `apf=on`); returns the state it ended in and
/// the probe's outcome, if one ran. Exits if the host does not offer async PF at all.
pub fn start(config: &Config) -> (State, Option<Outcome>) {
    if let Err(reason) = arch::detect_async_pf() {
        println!("kernel: apf=on, but async page faults are unavailable: {reason}");
        arch::exit(ExitStatus::Unsupported);
    }
    let test = config.apf_test.map(probe);
    let state = match arch::enable_async_pf() {
        Ok(()) => State::On,
        Err(refused) => {
            println!("kernel: the host refused async PF: {refused}; running with async PF off");
            State::Refused
        }
    };
    (state, test)
}

/// Makes `test`'s deliberately wrong write and reports what the host did with it. If the
/// host took it, the probe goes on as the plan says and ends disabled, so the real enable
/// starts from a clean state either way.
fn probe(test: ApfTest) -> Outcome {
    let probe = Probe::new(test, arch::async_pf_probe_area());
    let result = arch::write_async_pf_msr(probe.tested);
    match result {
        Ok(()) => println!("apf-test: {}: accepted", probe.tested),
        Err(refused) => println!("apf-test: {refused}"),
    }
    if result.is_ok() {
        for w in probe.enable.into_iter().chain([DISABLE]) {
            if let Err(refused) = arch::write_async_pf_msr(w) {
                println!("apf-test: then {refused}");
            }
        }
    }
    Outcome::from(&result)
}
