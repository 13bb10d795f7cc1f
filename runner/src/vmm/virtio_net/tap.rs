//! The TAP backend: a persistent TAP device inside a network namespace, opened from a thread
//! that enters the namespace (the fd keeps working from any namespace, so the VMM's own
//! threads stay where they are).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// From <linux/if_tun.h>.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags in the union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the TAP name {0:?} is longer than 15 bytes or has a NUL")]
    Name(String),
    #[error("cannot open the network namespace {}", .netns.display())]
    OpenNamespace {
        netns: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter the network namespace {}", .netns.display())]
    Enter {
        netns: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot attach to TAP {tap} in {}", .netns.display())]
    Attach {
        tap: String,
        netns: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the thread that opens TAP {tap}")]
    Thread {
        tap: String,
        #[source]
        source: io::Error,
    },
}

/// Where frames from the guest go; the TAP in the VMM, a `Vec` in tests.
pub trait FrameSink {
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
}

/// An open, non-blocking TAP queue.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
}

impl Tap {
    /// Attaches to the existing (persistent) TAP `tap` inside the namespace `netns`.
    pub fn open(netns: &Path, tap: &str) -> Result<Self, Error> {
        let name = CString::new(tap)
            .ok()
            .filter(|name| name.as_bytes().len() < libc::IFNAMSIZ)
            .ok_or_else(|| Error::Name(tap.to_owned()))?;
        let netns_owned = netns.to_owned();
        let tap_owned = tap.to_owned();
        let thread = thread::Builder::new()
            .name("tap-open".to_owned())
            .spawn(move || open_in(&netns_owned, &tap_owned, &name))
            .map_err(|source| Error::Thread {
                tap: tap.to_owned(),
                source,
            })?;
        // The thread cannot panic (panic = "abort" aborts the process instead).
        thread.join().unwrap_or_else(|_| unreachable!())
    }

    /// Waits up to `timeout` for a frame; `Ok(None)` when none came (or a signal came).
    pub fn recv(&self, buffer: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pollfd` is one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if ready < 0 {
            return retry_or(io::Error::last_os_error());
        }
        if ready == 0 {
            return Ok(None);
        }
        // SAFETY: `buffer` is writable for `buffer.len()` bytes; the fd is ours and open.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        match usize::try_from(n) {
            Ok(n) => Ok(Some(n)),
            Err(_) => retry_or(io::Error::last_os_error()),
        }
    }
}

/// EAGAIN and EINTR mean "nothing yet"; anything else is the TAP failing.
fn retry_or(error: io::Error) -> io::Result<Option<usize>> {
    match error.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR) => Ok(None),
        _ => Err(error),
    }
}

impl FrameSink for Arc<Tap> {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.write(frame)
    }
}

impl Tap {
    /// Sends one frame; a full TAP queue refuses it (EAGAIN) rather than block the vCPU.
    fn write(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is readable for its length; the fd is ours and open.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Runs on a thread of its own, which it moves into `netns` for good (it then ends).
fn open_in(netns: &Path, tap: &str, name: &CString) -> Result<Tap, Error> {
    let namespace = File::open(netns).map_err(|source| Error::OpenNamespace {
        netns: netns.to_owned(),
        source,
    })?;
    // SAFETY: setns on an fd we own; it changes only this thread's network namespace.
    if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error::Enter {
            netns: netns.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    let attach = |source| Error::Attach {
        tap: tap.to_owned(),
        netns: netns.to_owned(),
        source,
    };
    // SAFETY: a NUL-terminated path literal; the returned fd is checked and then owned.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(attach(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut request = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    request.name[..name.as_bytes().len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `request` is laid out as.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut request) } != 0 {
        return Err(attach(io::Error::last_os_error()));
    }
    Ok(Tap { fd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_named() {
        let error = Tap::open(Path::new("/run/netns/apf-no-such-ns"), "tap0").expect_err("no ns");
        assert_eq!(
            error.to_string(),
            "cannot open the network namespace /run/netns/apf-no-such-ns"
        );
        assert!(matches!(
            Tap::open(Path::new("/"), "a-name-far-too-long"),
            Err(Error::Name(_))
        ));
    }
}
