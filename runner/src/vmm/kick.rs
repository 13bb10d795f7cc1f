//! Kicking a vCPU thread out of `KVM_RUN`.
//!
//! A signal makes `KVM_RUN` return `EINTR`, but one that arrives just before the thread enters
//! `KVM_RUN` would be lost and the thread would run on. So the handler also sets the vCPU's
//! `kvm_run.immediate_exit`, which makes the next `KVM_RUN` return `EINTR` at once. The handler
//! runs on the kicked thread, which finds its vCPU through a thread-local pointer.

use std::cell::Cell;
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::thread::JoinHandle;

use libc::{c_int, c_void, siginfo_t};
use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

/// The kick signal's offset from `SIGRTMIN`. Nothing else in the runner uses real-time
/// signals; the async PF kick shares this one (the vCPU loop asks both owners what to do).
const KICK_SIGNAL_OFFSET: c_int = 0;

thread_local! {
    /// `kvm_run.immediate_exit` of the vCPU that runs on this thread, while it runs.
    static IMMEDIATE_EXIT: Cell<Option<NonNull<u8>>> = const { Cell::new(None) };
}

#[derive(Debug, thiserror::Error)]
#[error("cannot install the vCPU kick signal handler")]
pub struct InstallError(#[source] vmm_sys_util::errno::Error);

fn kick_signal() -> c_int {
    SIGRTMIN() + KICK_SIGNAL_OFFSET
}

/// Installs the kick handler for the process. `register_signal_handler` leaves out
/// `SA_RESTART`, so the signal interrupts `KVM_RUN` instead of restarting it.
pub fn install_handler() -> Result<(), InstallError> {
    register_signal_handler(kick_signal(), on_kick).map_err(InstallError)
}

extern "C" fn on_kick(_signal: c_int, _info: *mut siginfo_t, _context: *mut c_void) {
    IMMEDIATE_EXIT.with(|slot| {
        if let Some(immediate_exit) = slot.get() {
            // SAFETY: `arm`'s contract keeps the pointer valid until its guard clears the slot,
            // and the guard cannot leave this thread, on which this handler runs. It is a single
            // byte in the `kvm_run` page that KVM reads on entry; a volatile store is what
            // `VcpuFd::set_kvm_immediate_exit` does too.
            unsafe { immediate_exit.as_ptr().write_volatile(1) };
        }
    });
}

/// While alive, kicks that reach this thread set the armed vCPU's `immediate_exit`.
pub struct Armed {
    /// Clearing the thread-local must happen on the thread that set it.
    _not_send: PhantomData<*const ()>,
}

/// Arms the kick for the vCPU whose `kvm_run.immediate_exit` byte is `immediate_exit`.
///
/// # Safety
///
/// `immediate_exit` must stay valid for writes (its vCPU must not be dropped) until the
/// returned guard is dropped.
pub unsafe fn arm(immediate_exit: NonNull<u8>) -> Armed {
    IMMEDIATE_EXIT.with(|slot| slot.set(Some(immediate_exit)));
    Armed {
        _not_send: PhantomData,
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        IMMEDIATE_EXIT.with(|slot| slot.set(None));
    }
}

/// Kicks `thread` out of `KVM_RUN` so it looks at its stop flag. A thread that already ended
/// needs no kick, so delivery errors do not matter.
pub fn kick<T>(thread: &JoinHandle<T>) {
    let _ = thread.kill(kick_signal());
}

/// Kicks the thread with kernel thread id `thread_id` (of this process) out of `KVM_RUN`: how
/// the async PF host takes a vCPU away from a fault it waits for (the fault is abandoned and
/// the vCPU's RIP stays on the faulting instruction).
pub fn kick_thread(thread_id: i32) -> io::Result<()> {
    // SAFETY: tgkill has no memory arguments; it signals one thread of this process, whose
    // handler (installed by `install_handler`) only sets an armed flag.
    let status =
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), thread_id, kick_signal()) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
