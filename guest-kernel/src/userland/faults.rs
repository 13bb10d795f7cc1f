//! Tasks that fault on purpose, to show the kernel reports and contains them.

use super::exit;
use crate::arch::divide_by_zero as arch_divide_by_zero;
use crate::uprintln;
use workloads::cpu::{count_primes, expected_prime_count};

pub extern "C" fn divide_by_zero(_: u64) -> ! {
    uprintln!("div0: dividing by zero");
    let q = arch_divide_by_zero();
    uprintln!("div0: survived with {}", q);
    exit(0)
}

/// Reads the address passed as argument (unmapped, or supervisor-only).
pub extern "C" fn read_address(address: u64) -> ! {
    uprintln!("reader: reading {:#x}", address);
    // SAFETY: not safe at all: the fault is the point, and the kernel ends this task.
    let value = unsafe { core::ptr::read_volatile(address as *const u64) };
    uprintln!("reader: read {:#x}", value);
    exit(0)
}

/// Writes the address passed as argument (kernel memory).
pub extern "C" fn write_address(address: u64) -> ! {
    uprintln!("writer: writing {:#x}", address);
    // SAFETY: as in `read_address`.
    unsafe { core::ptr::write_volatile(address as *mut u64, 0xbad) };
    uprintln!("writer: wrote kernel memory");
    exit(0)
}

/// A healthy task running beside a faulting one: it must finish normally.
pub extern "C" fn bystander(_: u64) -> ! {
    const N: u64 = 10_000;
    let ok = expected_prime_count(N) == Some(count_primes(0, N));
    uprintln!(
        "bystander: finished ({})",
        if ok { "correct" } else { "WRONG" }
    );
    exit(if ok { 0 } else { 1 })
}
