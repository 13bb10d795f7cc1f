//! The demo scenario's tasks: proof of preemption, yield, park/wake and syscall cost.

use super::{exit, park, time_ns, wake, yield_now};
use crate::uprintln;
use core::sync::atomic::{AtomicU64, Ordering};
use workloads::cpu::{count_primes, expected_prime_count};

/// Numbers tested between two looks at [`Shared::last`].
const CHUNK: u64 = 1000;
const NOBODY: u64 = u64::MAX;

/// User memory shared by the two spinning tasks.
#[repr(C)]
pub struct Shared {
    /// Which spinner finished the last chunk.
    pub last: AtomicU64,
}

impl Shared {
    pub const fn new() -> Self {
        Self {
            last: AtomicU64::new(NOBODY),
        }
    }
}

/// Argument of [`spin`].
#[repr(C)]
pub struct SpinArgs {
    pub shared: *const Shared,
    pub me: u64,
    pub name: &'static str,
    pub primes: u64,
}

/// Counts primes in chunks without ever yielding. Between chunks it marks itself as the
/// last runner; finding the other spinner's mark means the other ran in the middle of this
/// task's loop, which only timer preemption can cause.
pub extern "C" fn spin(arg: u64) -> ! {
    // SAFETY: the kernel passes a pointer to a `SpinArgs` in user memory that outlives us.
    let a = unsafe { &*(arg as *const SpinArgs) };
    // SAFETY: as above, for the shared block.
    let shared = unsafe { &*a.shared };
    let (mut count, mut saw_other) = (0, 0);
    let mut lo = 0;
    while lo < a.primes {
        let hi = (lo + CHUNK).min(a.primes);
        count += count_primes(lo, hi);
        lo = hi;
        let previous = shared.last.swap(a.me, Ordering::Relaxed);
        if previous != a.me && previous != NOBODY {
            saw_other += 1;
        }
    }
    let correct = expected_prime_count(a.primes) == Some(count);
    uprintln!(
        "{}: primes below {} = {} ({}), interleaved {} times",
        a.name,
        a.primes,
        count,
        if correct { "correct" } else { "WRONG" },
        saw_other
    );
    exit(if correct { 0 } else { 1 })
}

/// Number of `yield` calls the yielder makes.
pub const YIELDS: u64 = 50;

pub extern "C" fn yielder(_: u64) -> ! {
    for _ in 0..YIELDS {
        yield_now();
    }
    uprintln!("yielder: yielded {} times", YIELDS);
    exit(0)
}

/// Park/wake round trips between `ping` and `pong`.
pub const ROUNDS: u64 = 100;
const PING_KEY: u64 = 1;
const PONG_KEY: u64 = 2;

/// Wakes `pong`, then parks until `pong` answers. The first wake usually arrives before
/// `pong` has parked, which exercises wake-before-park.
pub extern "C" fn ping(_: u64) -> ! {
    let start = time_ns();
    for _ in 0..ROUNDS {
        wake(PONG_KEY);
        park(PING_KEY);
    }
    let per_round = (time_ns() - start) / ROUNDS;
    uprintln!(
        "ping: {} park/wake rounds, {} ns per round",
        ROUNDS,
        per_round
    );
    exit(0)
}

pub extern "C" fn pong(_: u64) -> ! {
    for _ in 0..ROUNDS {
        park(PONG_KEY);
        wake(PING_KEY);
    }
    uprintln!("pong: {} rounds", ROUNDS);
    exit(0)
}

/// `time` calls the syscall benchmark makes.
pub const SYSCALLS: u64 = 1000;

/// Measures the system-call round trip. The minimum gap between consecutive `time` calls
/// is one round trip undisturbed by preemption; the mean includes whatever ran in between.
pub extern "C" fn syscall_bench(_: u64) -> ! {
    let first = time_ns();
    let mut previous = first;
    let mut min = u64::MAX;
    for _ in 0..SYSCALLS {
        let now = time_ns();
        min = min.min(now - previous);
        previous = now;
    }
    uprintln!(
        "syscall-bench: round trip min {} ns, mean {} ns over {} calls",
        min,
        (previous - first) / SYSCALLS,
        SYSCALLS
    );
    exit(0)
}
