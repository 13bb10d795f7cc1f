//! One QEMU of a migration as a child process that cannot outlive us: killed and reaped when
//! dropped (any error path), and killed by the kernel if the runner dies (Ctrl-C included,
//! through `PR_SET_PDEATHSIG`). Its console goes to the runner's stdout and, line by line,
//! to the sequence that waits for the guest's hold lines.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::Sender;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::sequence::Side;
use crate::console::ConsoleSink;
use crate::qemu::{self, join};

/// Bytes read from QEMU's stdout at a time.
const CHUNK: usize = 4096;
/// How often a QEMU that should be exiting is checked.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// What a console pump reports: a complete line, or the end of QEMU's stdout.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsoleEvent {
    Line(Side, String),
    Closed(Side),
}

pub struct QemuProcess {
    side: Side,
    child: Child,
    stdin: Option<ChildStdin>,
    pumps: Vec<JoinHandle<()>>,
    /// Set by the stderr pump: QEMU printed an error of its own.
    complained: Option<JoinHandle<bool>>,
}

impl QemuProcess {
    /// Starts `program args` with a piped stdin (the destination's guest reads it).
    pub fn spawn(
        side: Side,
        program: &'static str,
        args: &[OsString],
        console: &ConsoleSink,
        events: Sender<ConsoleEvent>,
    ) -> Result<Self, qemu::Error> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and only makes one
        // async-signal-safe system call.
        unsafe {
            command.pre_exec(|| {
                // A QEMU left behind by a killed runner would hold its RAM and its ports.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => qemu::Error::NotInstalled(program, error),
            _ => qemu::Error::Spawn(program, error),
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut process = Self {
            side,
            child,
            stdin,
            pumps: Vec::new(),
            complained: None,
        };
        let console = console.clone();
        let pump = thread::Builder::new()
            .name(format!("qemu-{}-console", side.name()))
            .spawn(move || pump_console(side, stdout, console, &events))
            .map_err(|error| qemu::Error::OutputThread(program, error))?;
        process.pumps.push(pump);
        process.complained = Some(
            qemu::forward_stderr(stderr, program)
                .map_err(|error| qemu::Error::OutputThread(program, error))?,
        );
        Ok(process)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Writes one byte to the guest's console input.
    pub fn send_byte(&mut self) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        stdin.write_all(b"g")?;
        stdin.flush()
    }

    /// Waits for QEMU to exit until `deadline`; None if it is still running then.
    pub fn wait_until(&mut self, deadline: Instant) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(EXIT_POLL);
        }
    }

    /// Waits for QEMU's output to end after it exited, and says whether it printed an
    /// error of its own.
    pub fn complained(&mut self) -> bool {
        self.pumps.drain(..).for_each(join);
        self.complained.take().is_some_and(join)
    }

    pub fn side(&self) -> Side {
        self.side
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        // Killing an exited child fails harmlessly; `wait` reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.pumps.drain(..).for_each(join);
        if let Some(stderr) = self.complained.take() {
            join(stderr);
        }
    }
}

/// Copies QEMU's stdout to the console and sends each complete line to `events`, then
/// [`ConsoleEvent::Closed`] when QEMU closes it.
fn pump_console(
    side: Side,
    mut from: impl Read,
    mut console: ConsoleSink,
    events: &Sender<ConsoleEvent>,
) {
    let mut buffer = [0u8; CHUNK];
    let mut lines = LineSplitter::default();
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        // Our stdout failing must not stop the sequence that waits for the lines.
        let _ = console
            .write_all(&buffer[..read])
            .and_then(|()| console.flush());
        for line in lines.push(&buffer[..read]) {
            // The receiver is gone only once the run is over.
            let _ = events.send(ConsoleEvent::Line(side, line));
        }
    }
    let _ = events.send(ConsoleEvent::Closed(side));
}

/// Cuts a byte stream into lines without their `\r\n`.
#[derive(Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &byte in bytes {
            match byte {
                b'\n' => {
                    let line = std::mem::take(&mut self.partial);
                    lines.push(String::from_utf8_lossy(&line).trim_end().to_owned());
                }
                // A line that never ends must not grow forever; nothing we wait for is long.
                _ if self.partial.len() < CHUNK => self.partial.push(byte),
                _ => {}
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_across_chunks_without_line_ends() {
        let mut lines = LineSplitter::default();
        assert!(lines.push(b"hold: re").is_empty());
        assert_eq!(lines.push(b"ady\r\nnext\n"), ["hold: ready", "next"]);
        assert_eq!(lines.push(b"\n"), [""]);
    }

    #[test]
    fn the_pump_sends_lines_then_the_end() {
        let (send, receive) = std::sync::mpsc::channel();
        pump_console(
            Side::Destination,
            &b"a\nhold: finished\r\ntail"[..],
            ConsoleSink::default(),
            &send,
        );
        let events: Vec<ConsoleEvent> = receive.try_iter().collect();
        assert_eq!(
            events,
            [
                ConsoleEvent::Line(Side::Destination, "a".to_owned()),
                ConsoleEvent::Line(Side::Destination, "hold: finished".to_owned()),
                ConsoleEvent::Closed(Side::Destination),
            ]
        );
    }
}
