//! The workload tasks of the `cpu`, `mem`, `seed` and `mlp:k` scenarios. Each reports its
//! start and end times and results to the kernel for the result line.

use super::{exit, hold, report, time_ns};
use crate::abi::TaskReport;
use crate::uprintln;
use workloads::mem::{Outcome, Pattern, touch};
use workloads::pages::{self, WORDS};

/// Argument of [`cpu`].
#[repr(C)]
pub struct CpuArgs {
    pub seed: u64,
    pub rounds: u64,
}

/// Runs the hash chain (after the migration gate); the host checks the reported value.
pub extern "C" fn cpu(arg: u64) -> ! {
    // SAFETY: the kernel passes a pointer to a `CpuArgs` in user memory that outlives us.
    let a = unsafe { &*(arg as *const CpuArgs) };
    hold();
    let start_ns = time_ns();
    let result = workloads::cpu::chain(a.seed, a.rounds);
    let end_ns = time_ns();
    report(&TaskReport {
        start_ns,
        end_ns,
        result,
        ..TaskReport::default()
    });
    exit(0)
}

/// Argument of [`mem`].
#[repr(C)]
pub struct MemArgs {
    pub name: &'static str,
    /// First byte of the task's pages (identity-mapped, so also the guest-physical address).
    pub region: u64,
    pub pages: u64,
    pub pattern: Pattern,
    pub seed: u64,
    /// The pages start zeroed and the task writes the generator's contents itself (no host
    /// page source, e.g. under QEMU); otherwise the host serves them already filled.
    pub fill_first: bool,
}

/// Touches its pages in `pattern` order and checks every page's contents. The timed phase
/// starts after the migration gate, so with `hold=console` the pages it fills first are
/// written on the source and touched on the destination.
pub extern "C" fn mem(arg: u64) -> ! {
    // SAFETY: the kernel passes a pointer to a `MemArgs` in user memory that outlives us.
    let a = unsafe { &*(arg as *const MemArgs) };
    let region = a.region as *mut [u64; WORDS];
    let first_page = a.region / pages::PAGE_SIZE as u64;
    if a.fill_first {
        for i in 0..a.pages {
            // SAFETY: the kernel gave this task `pages` pages at `region`, used by no one else.
            pages::fill(a.seed, first_page + i, unsafe {
                &mut *region.add(i as usize)
            });
        }
    }
    hold();
    let start_ns = time_ns();
    // SAFETY: as above.
    let Outcome {
        touched,
        verified,
        mismatched,
    } = unsafe { touch(region, first_page, a.pages, a.pattern, a.seed) };
    let end_ns = time_ns();
    report(&TaskReport {
        start_ns,
        end_ns,
        result: 0,
        pages_touched: touched,
        pages_verified: verified,
    });
    if mismatched > 0 {
        uprintln!(
            "{}: {} of {} pages had wrong contents",
            a.name,
            mismatched,
            touched
        );
        exit(1)
    }
    exit(0)
}
