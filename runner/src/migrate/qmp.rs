//! A QMP connection to one QEMU, through the `qapi` crate's generated commands: the greeting
//! and capability negotiation, commands with their errors named, and the events QEMU sent
//! between answers (kept with their timestamps, which give the switch-over pause).

use std::io::{self, BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use qapi::qmp::{Event, QapiCapabilities, qmp_capabilities};
use qapi::{Command, ExecuteError, Qmp, Stream};

/// How long one command may take to answer. QEMU answers every command we send at once
/// (none of them block on the guest), so a silent monitor means a wedged QEMU.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often to retry connecting while QEMU starts.
const CONNECT_RETRY: Duration = Duration::from_millis(20);

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {side}'s QMP socket {path}")]
    Connect {
        side: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{side} QEMU sent no QMP greeting")]
    NoGreeting { side: &'static str },
    #[error("{side} QEMU's QMP greeting is unreadable")]
    Greeting {
        side: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{side} QEMU refused {command}: {desc}")]
    Refused {
        side: &'static str,
        command: &'static str,
        desc: String,
    },
    #[error("{side} QEMU's monitor failed during {command}")]
    Io {
        side: &'static str,
        command: &'static str,
        #[source]
        source: io::Error,
    },
}

/// What the migration sequence needs of a QEMU monitor; a fake one drives the sequence's
/// unit tests.
pub trait Monitor {
    /// Which QEMU this is ("source", "destination"), for messages.
    fn side(&self) -> &'static str;
    fn execute<C: Command>(&mut self, command: &C) -> Result<C::Ok, Error>;
    /// The events received so far, oldest first; each is returned once.
    fn take_events(&mut self) -> Vec<Event>;
}

type Connection = Qmp<Stream<BufReader<UnixStream>, UnixStream>>;

/// A negotiated QMP connection over a Unix socket.
pub struct QmpMonitor {
    side: &'static str,
    qmp: Connection,
}

impl QmpMonitor {
    /// Connects to `path` until `deadline`, retrying while QEMU has not created the socket
    /// yet, as long as `alive()` says QEMU is still running; then negotiates capabilities.
    pub fn connect(
        side: &'static str,
        path: &Path,
        deadline: Instant,
        mut alive: impl FnMut() -> bool,
    ) -> Result<Self, Error> {
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(source) if Instant::now() >= deadline || !alive() => {
                    return Err(Error::Connect {
                        side,
                        path: path.display().to_string(),
                        source,
                    });
                }
                Err(_) => std::thread::sleep(CONNECT_RETRY),
            }
        };
        let io_error = |source| Error::Io {
            side,
            command: "the greeting",
            source,
        };
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(io_error)?;
        let writer = stream.try_clone().map_err(io_error)?;
        let mut reader = BufReader::new(stream);
        // Read the greeting ourselves: `Qmp::handshake` panics on an early end of stream,
        // which is what a QEMU that dies while starting gives.
        let mut greeting = Vec::new();
        if reader.read_until(b'\n', &mut greeting).map_err(io_error)? == 0 {
            return Err(Error::NoGreeting { side });
        }
        serde_json::from_slice::<QapiCapabilities>(&greeting)
            .map_err(|source| Error::Greeting { side, source })?;
        let mut monitor = Self {
            side,
            qmp: Qmp::new(Stream::new(reader, writer)),
        };
        monitor.execute(&qmp_capabilities { enable: None })?;
        Ok(monitor)
    }
}

impl Monitor for QmpMonitor {
    fn side(&self) -> &'static str {
        self.side
    }

    fn execute<C: Command>(&mut self, command: &C) -> Result<C::Ok, Error> {
        self.qmp.execute(command).map_err(|error| match error {
            ExecuteError::Qapi(error) => Error::Refused {
                side: self.side,
                command: C::NAME,
                desc: error.desc,
            },
            ExecuteError::Io(source) => Error::Io {
                side: self.side,
                command: C::NAME,
                source,
            },
        })
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.qmp.events().collect()
    }
}

/// When `event` happened, in microseconds of QEMU's realtime clock, if it is `name`.
pub fn event_time_us(event: &Event, name: &str) -> Option<u64> {
    let (event_name, timestamp) = match event {
        Event::STOP { timestamp, .. } => ("STOP", timestamp),
        Event::RESUME { timestamp, .. } => ("RESUME", timestamp),
        _ => return None,
    };
    if event_name != name {
        return None;
    }
    // qapi keeps the fields private, but serialises them as QEMU sent them.
    let time = serde_json::to_value(timestamp).ok()?;
    Some(time["seconds"].as_u64()? * 1_000_000 + time["microseconds"].as_u64()?)
}
