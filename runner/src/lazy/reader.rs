//! The fault reader: reads userfaultfd messages, one fetch per missing page, and queues it for
//! the fetchers. It never blocks on a fetch, so duplicates and new faults are seen at once.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use userfaultfd::{Event, EventBuffer};

use super::page_table::Fault as PageFault;
use super::server::{Error, Shared};
use super::work::Fault;

/// Messages taken per `read`: a burst of faults costs one system call.
const MESSAGES_PER_READ: usize = 64;
/// `poll` without a timeout: the stop event ends the wait.
const NO_TIMEOUT: libc::c_int = -1;

/// What ended a wait.
enum Wake {
    Messages,
    Stop,
}

/// Serves `shared`'s userfaultfd until its stop event is signalled.
pub fn run(shared: &Shared) -> Result<(), Error> {
    let mut messages = EventBuffer::new(MESSAGES_PER_READ);
    loop {
        match wait(shared.uffd.as_raw_fd(), shared.stop.as_raw_fd())? {
            Wake::Stop => return Ok(()),
            Wake::Messages => {}
        }
        // Non-blocking: a wake-up whose messages another read took yields none.
        for event in shared
            .uffd
            .read_events(&mut messages)
            .map_err(Error::Read)?
        {
            handle(shared, event.map_err(Error::Read)?)?;
        }
    }
}

/// Waits until the userfaultfd has messages or `stop` is signalled; `stop` wins.
fn wait(uffd: RawFd, stop: RawFd) -> Result<Wake, Error> {
    let readable = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [readable(stop), readable(uffd)];
    let count = libc::nfds_t::try_from(fds.len()).expect("two descriptors");
    loop {
        // SAFETY: `fds` is an array of `count` initialised `pollfd`s that lives across the
        // call; `poll` only writes their `revents`.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, NO_TIMEOUT) };
        if ready >= 0 {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(Error::Poll(error));
        }
    }
    Ok(if fds[0].revents != 0 {
        Wake::Stop
    } else {
        Wake::Messages
    })
}

fn handle(shared: &Shared, event: Event) -> Result<(), Error> {
    let Event::Pagefault {
        addr, thread_id, ..
    } = event
    else {
        // Only page faults were asked for (no fork, remap, remove or unmap events).
        return Err(Error::UnexpectedEvent(format!("{event:?}")));
    };
    let host = addr as usize;
    let gpa_page = shared
        .window
        .page_of(host)
        .ok_or(Error::OutsideWindow(host))?;
    let at = Instant::now();
    match shared.table().fault(shared.window.index(gpa_page)) {
        PageFault::Fetch => shared.queue.push(Fault {
            gpa_page,
            thread_id: thread_id.as_raw(),
            at,
        }),
        PageFault::Duplicate => shared.counters.duplicate(),
    }
    Ok(())
}
