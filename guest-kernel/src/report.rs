//! The machine-readable result line: `RESULT {json}`, one line, printed last.

use crate::kernel::Kernel;
use crate::print;
use core::fmt;
use guest_kernel::apf::{Outcome, State};
use guest_kernel::sched;

/// A JSON string, or `null` for `None`.
struct JsonStr(Option<&'static str>);

impl fmt::Display for JsonStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "\"{s}\""),
            None => f.write_str("null"),
        }
    }
}

/// Prints the result line for a finished run.
pub fn result_line(k: &Kernel, end_ns: u64) {
    let s = k.sched.stats();
    // The TSC does not start at zero in every VMM, so only differences are reported.
    let ready_ns = k.ready_ns.unwrap_or(end_ns);
    let timer_ns = end_ns.saturating_sub(k.timer_start_ns).max(1);
    // Millihertz, printed with three decimals without floating point (soft-float formatting
    // costs thousands of emulated instructions).
    let tick_mhz = u128::from(k.ticks) * 1_000_000_000_000 / u128::from(timer_ns);
    print!(
        "RESULT {{\"scenario\":\"{}\",\"hz\":{},\"tick_hz\":{}.{:03},\"ticks\":{},\"tsc_khz\":{},\
         \"init_ns\":{},\"run_ns\":{},\"unexpected_interrupts\":{},\
         \"sched\":{{\"switches\":{},\"preemptions\":{},\"parks\":{},\"wakes\":{},\"early_wakes\":{}}},\
         \"tasks\":[",
        k.config.scenario,
        k.config.hz,
        tick_mhz / 1000,
        tick_mhz % 1000,
        k.ticks,
        k.clock.khz(),
        ready_ns - k.entry_ns,
        end_ns - ready_ns,
        k.unexpected_interrupts,
        s.switches,
        s.preemptions,
        s.parks,
        s.wakes,
        s.early_wakes,
    );
    for (id, task) in k.sched.tasks().enumerate() {
        let status = match task.state {
            sched::State::Exited(status) => status,
            _ => unreachable!("result line before every task exited"),
        };
        let sep = if id == 0 { "" } else { "," };
        print!(
            "{sep}{{\"name\":\"{}\",\"status\":{status},\"dispatches\":{}",
            task.name, task.dispatches
        );
        if let Some(r) = k.reports[id] {
            print!(
                ",\"start_ns\":{},\"end_ns\":{},\"result\":{},\"pages_touched\":{},\"pages_verified\":{}",
                r.start_ns, r.end_ns, r.result, r.pages_touched, r.pages_verified
            );
        }
        print!("}}");
    }
    let reports = || k.reports.iter().flatten();
    let apf = k.apf.counters();
    print!(
        "],\"pages_touched\":{},\"pages_verified\":{},\
         \"apf\":{{\"enabled\":{},\"state\":\"{}\",\"test\":{},\"not_present\":{},\"ready\":{},\
         \"wake_before_wait\":{},\"broadcasts\":{},\"unknown_tokens\":{},\"unclaimed\":{},\"full\":{},\
         \"max_parked\":{},\"disables\":{},\"reenables\":{},\"watchdog_ms\":{},\
         \"watchdog_retries\":{}}},\"hold\":{},\"held_ns\":{}}}\n",
        reports().map(|r| r.pages_touched).sum::<u64>(),
        reports().map(|r| r.pages_verified).sum::<u64>(),
        k.apf_state == State::On,
        k.apf_state.as_str(),
        JsonStr(k.apf_test.map(Outcome::as_str)),
        apf.not_present,
        apf.ready,
        apf.wake_before_wait,
        apf.broadcasts,
        apf.unknown_tokens,
        k.apf.unclaimed(),
        apf.full,
        apf.max_parked,
        k.apf_cycles.disables,
        k.apf_cycles.reenables,
        k.config.apf_watchdog_ms,
        k.watchdog.retries(),
        JsonStr(k.config.hold.then_some("console")),
        k.hold.held_ns(),
    );
}
