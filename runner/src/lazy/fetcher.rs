//! A fetcher: takes missing pages from the queue, waits out the fetch's latency, then installs
//! the page's contents with `UFFDIO_COPY`, which wakes the threads that faulted on it, and
//! tells the fault observer. N fetchers are N concurrent fetches; one is a serial device.

use std::thread;

use libc::c_void;
use workloads::pages::PAGE_SIZE;

use super::server::{Error, Shared};
use super::source::Page;

/// `UFFDIO_COPY` fails with `EAGAIN` while the address space is changing; it settles quickly,
/// and a copy that keeps failing is a bug worth reporting rather than a hang.
const COPY_ATTEMPTS: u32 = 1000;

/// Fetches queued pages until the queue stops.
pub fn run(shared: &Shared) -> Result<(), Error> {
    precise_timers();
    let mut page: Page = [0; PAGE_SIZE];
    while let Some(fault) = shared.queue.next() {
        let delay = shared.queue.delay(fault.latency);
        shared.source.fill(fault.gpa_page, &mut page);
        let installed = install(shared, fault.gpa_page, &page)?;
        shared.table().served(shared.window.index(fault.gpa_page));
        shared
            .counters
            .fetched(installed, delay, fault.at.elapsed(), fault.thread_id);
        if let Some(observer) = &shared.observer {
            observer.served(fault.gpa_page).map_err(Error::Observer)?;
        }
    }
    Ok(())
}

/// Timed waits on this thread end within a microsecond or so of their deadline instead of
/// Linux's default 50 us of timer slack, which would add up to 50 us to every drawn latency
/// (half of a 100 us fetch).
fn precise_timers() {
    /// The smallest slack `PR_SET_TIMERSLACK` takes (0 means "the default" there).
    const SLACK_NS: libc::c_ulong = 1;
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and only changes this thread's timer
    // slack. It cannot fail for a positive value, and failing would only cost precision.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, SLACK_NS) };
}

/// Copies `page` into the guest page at `gpa_page` and wakes its waiters. `false` if the page
/// was already there (`EEXIST`: normal, something else filled it first).
fn install(shared: &Shared, gpa_page: u64, page: &Page) -> Result<bool, Error> {
    let dst = shared.window.host(gpa_page) as *mut c_void;
    for _ in 0..COPY_ATTEMPTS {
        // SAFETY: the source is our whole page buffer. The destination is one page of the
        // window, which is registered with this userfaultfd; the kernel refuses a copy into
        // anything else (the mapping gone or replaced), and only fills a page that is still
        // missing, so nothing the VMM wrote is overwritten and no Rust reference sees the write:
        // guest RAM is only accessed through raw (volatile) pointers.
        match unsafe { shared.uffd.copy(page.as_ptr().cast(), dst, PAGE_SIZE, true) } {
            Ok(_) => return Ok(true),
            Err(userfaultfd::Error::CopyFailed(errno)) if errno as i32 == libc::EEXIST => {
                return Ok(false);
            }
            Err(userfaultfd::Error::PartiallyCopied(_)) => thread::yield_now(),
            Err(source) => {
                return Err(Error::Copy {
                    gpa: gpa_page,
                    source,
                });
            }
        }
    }
    Err(Error::CopyRetries { gpa: gpa_page })
}
