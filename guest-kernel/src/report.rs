//! The machine-readable result line: `RESULT {json}`, one line, printed last.

use crate::kernel::Kernel;
use crate::{print, println};
use alloc::vec::Vec;
use apf_pv::waiters::Counters;
use core::fmt;
use guest_kernel::apf::{Outcome, State};
use guest_kernel::sched::{self, TaskId, TaskInfo};

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

/// Every CPU's tasks merged in id order, each with its CPU's index and its report.
pub fn tasks(kernels: &[&Kernel]) -> impl Iterator<Item = (TaskId, TaskInfo, usize)> {
    let mut all: Vec<_> = kernels
        .iter()
        .enumerate()
        .flat_map(|(cpu, k)| k.sched.entries().map(move |(id, t)| (id, t, cpu)))
        .collect();
    all.sort_unstable_by_key(|&(id, ..)| id);
    all.into_iter()
}

/// Prints the result line for a finished run: the totals over every CPU, each task, and
/// each CPU's own counters under `cpus`.
pub fn result_line(kernels: &[&Kernel]) {
    let boot = kernels[0];
    let end_ns = kernels.iter().filter_map(|k| k.end_ns).max().unwrap_or(0);
    let sum = |f: &dyn Fn(&Kernel) -> u64| kernels.iter().map(|k| f(k)).sum::<u64>();
    let stats: Vec<sched::Stats> = kernels.iter().map(|k| k.sched.stats()).collect();
    let total = |f: fn(&sched::Stats) -> u64| stats.iter().map(f).sum::<u64>();
    // The TSC does not start at zero in every VMM, so only differences are reported. The
    // run starts when the first CPU ran its first task.
    let ready_ns = kernels
        .iter()
        .filter_map(|k| k.ready_ns)
        .min()
        .unwrap_or(end_ns);
    let boot_end_ns = boot.end_ns.unwrap_or(end_ns);
    let timer_ns = boot_end_ns.saturating_sub(boot.timer_start_ns).max(1);
    // The boot CPU's timer rate, in millihertz, printed with three decimals without
    // floating point (soft-float formatting costs thousands of emulated instructions).
    let tick_mhz = u128::from(boot.ticks) * 1_000_000_000_000 / u128::from(timer_ns);
    print!(
        "RESULT {{\"scenario\":\"{}\",\"hz\":{},\"tick_hz\":{}.{:03},\"ticks\":{},\"tsc_khz\":{},\
         \"init_ns\":{},\"run_ns\":{},\"unexpected_interrupts\":{},\
         \"sched\":{{\"switches\":{},\"preemptions\":{},\"parks\":{},\"wakes\":{},\"early_wakes\":{}}},\
         \"tasks\":[",
        boot.config.scenario,
        boot.config.hz,
        tick_mhz / 1000,
        tick_mhz % 1000,
        boot.ticks,
        boot.clock.khz(),
        ready_ns - boot.entry_ns,
        end_ns - ready_ns,
        sum(&|k| k.unexpected_interrupts),
        total(|s| s.switches),
        total(|s| s.preemptions),
        total(|s| s.parks),
        total(|s| s.wakes),
        total(|s| s.early_wakes),
    );
    let mut pages = (0, 0);
    for (i, (id, task, cpu)) in tasks(kernels).enumerate() {
        let status = match task.state {
            sched::State::Exited(status) => status,
            _ => unreachable!("result line before every task exited"),
        };
        let sep = if i == 0 { "" } else { "," };
        print!(
            "{sep}{{\"name\":\"{}\",\"status\":{status},\"cpu\":{cpu},\"dispatches\":{}",
            task.name, task.dispatches
        );
        // Kept by the CPU the task ran on when it reported, which balancing may have
        // changed since.
        if let Some(r) = kernels.iter().find_map(|k| k.reports[id]) {
            pages.0 += r.pages_touched;
            pages.1 += r.pages_verified;
            print!(
                ",\"start_ns\":{},\"end_ns\":{},\"result\":{},\"pages_touched\":{},\"pages_verified\":{}",
                r.start_ns, r.end_ns, r.result, r.pages_touched, r.pages_verified
            );
        }
        print!("}}");
    }
    let apf: Vec<Counters> = kernels.iter().map(|k| k.apf.counters()).collect();
    let apf_total = |f: fn(&Counters) -> u64| apf.iter().map(f).sum::<u64>();
    print!(
        "],\"pages_touched\":{},\"pages_verified\":{},\
         \"apf\":{{\"enabled\":{},\"state\":\"{}\",\"test\":{},\"not_present\":{},\"ready\":{},\
         \"wake_before_wait\":{},\"broadcasts\":{},\"unknown_tokens\":{},\"unclaimed\":{},\"full\":{},\
         \"max_parked\":{},\"disables\":{},\"reenables\":{},\"watchdog_ms\":{},\
         \"watchdog_retries\":{}}},\"hold\":{},\"held_ns\":{},\"cpus\":[",
        pages.0,
        pages.1,
        kernels.iter().all(|k| k.apf_state == State::On),
        boot.apf_state.as_str(),
        JsonStr(boot.apf_test.map(Outcome::as_str)),
        apf_total(|c| c.not_present),
        apf_total(|c| c.ready),
        apf_total(|c| c.wake_before_wait),
        apf_total(|c| c.broadcasts),
        apf_total(|c| c.unknown_tokens),
        sum(&|k| k.apf.unclaimed() as u64),
        apf_total(|c| c.full),
        apf.iter().map(|c| c.max_parked).max().unwrap_or(0),
        sum(&|k| k.apf_cycles.disables),
        sum(&|k| k.apf_cycles.reenables),
        boot.config.apf_watchdog_ms,
        sum(&|k| k.watchdog.retries()),
        JsonStr(boot.config.hold.then_some("console")),
        boot.hold.held_ns(),
    );
    for (cpu, ((k, s), a)) in kernels.iter().zip(&stats).zip(&apf).enumerate() {
        let sep = if cpu == 0 { "" } else { "," };
        print!(
            "{sep}{{\"tasks\":{},\"switches\":{},\"ticks\":{},\"remote_wakes\":{},\
             \"given_away\":{},\"taken_in\":{},\
             \"apf\":\"{}\",\"not_present\":{},\"ready\":{},\"broadcasts\":{},\
             \"max_parked\":{},\"watchdog_retries\":{}}}",
            k.sched.tasks().count(),
            s.switches,
            k.ticks,
            k.remote_wakes,
            k.given_away,
            k.taken_in,
            k.apf_state.as_str(),
            a.not_present,
            a.ready,
            a.broadcasts,
            a.max_parked,
            k.watchdog.retries(),
        );
    }
    println!("]}}");
}
