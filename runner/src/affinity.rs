//! Pinning threads to host CPUs (`runner run --pin`).
//!
//! Why: with our VMM delivering async PF, a fault costs two thread wake-ups on the critical
//! path (the vCPU thread blocked in userfaultfd wakes the fault reader, which kicks the vCPU
//! thread back). On a host whose idle CPUs halt, each wake-up of an idle CPU costs tens of
//! microseconds (26 us traced here). With the fault reader on its vCPU's CPU, the blocking vCPU
//! thread hands its CPU straight to the reader and back: no CPU goes idle in between.

use std::io;
use std::os::unix::thread::JoinHandleExt;
use std::thread::JoinHandle;

/// The host CPU of vCPU `index`, given the CPUs this process may run on (`allowed`, never
/// empty): one each, round-robin over them.
pub fn cpu_of_vcpu(index: usize, allowed: &[usize]) -> usize {
    allowed[index % allowed.len()]
}

/// The CPUs this process may run on (its affinity mask, which `taskset` may have narrowed:
/// CPU numbers need not start at 0), lowest first.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let mut set = empty_set();
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed; pid 0 is this thread.
    let status =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    let cpus = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: every `cpu` is below CPU_SETSIZE, so the bit is inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    Ok(cpus)
}

fn empty_set() -> libc::cpu_set_t {
    // SAFETY: an all-zero `cpu_set_t` is the empty set.
    unsafe { std::mem::zeroed() }
}

/// Pins `thread` to host CPU `cpu`.
pub fn pin<T>(thread: &JoinHandle<T>, cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut set = empty_set();
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the pthread handle is alive (the `JoinHandle` has not been joined) and `set` is a
    // valid `cpu_set_t` of the size passed.
    let status = unsafe {
        libc::pthread_setaffinity_np(
            thread.as_pthread_t(),
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        )
    };
    match status {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpus_go_round_robin_over_the_host_cpus() {
        assert_eq!(
            (0..5).map(|i| cpu_of_vcpu(i, &[0, 1])).collect::<Vec<_>>(),
            [0, 1, 0, 1, 0]
        );
        assert_eq!(cpu_of_vcpu(3, &[2, 5]), 5, "the allowed CPUs, not 0..n");
    }

    #[test]
    fn a_pinned_thread_runs_only_on_its_cpu() {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            wait.recv().unwrap();
            // SAFETY: sched_getcpu has no arguments.
            unsafe { libc::sched_getcpu() }
        });
        let cpu = *allowed_cpus()
            .unwrap()
            .last()
            .expect("this thread runs somewhere");
        pin(&thread, cpu).unwrap();
        go.send(()).unwrap();
        assert_eq!(thread.join().unwrap(), i32::try_from(cpu).unwrap());
    }

    #[test]
    fn a_cpu_outside_the_set_is_refused() {
        let thread = std::thread::spawn(|| ());
        let error = pin(&thread, libc::CPU_SETSIZE as usize).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EINVAL));
        thread.join().unwrap();
    }
}
