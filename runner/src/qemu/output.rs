//! Passing QEMU's output through while it runs: stdout (the guest console) to the console
//! sink, stderr line by line to our stderr, noting whether QEMU reported an error of its own.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{ChildStderr, ChildStdout};
use std::sync::mpsc::Sender;
use std::thread::{self, JoinHandle};

use crate::console::ConsoleSink;

/// Bytes read from QEMU's stdout at a time.
const CHUNK: usize = 4096;

/// Copies `from` to `console` until QEMU closes its stdout (it exits) or the copy fails, and
/// sends how it ended to `ended`. Each chunk is flushed so partial lines show up at once.
pub fn forward_console(
    from: ChildStdout,
    console: ConsoleSink,
    ended: Sender<io::Result<()>>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("qemu-console".to_owned())
        .spawn(move || {
            // The receiver is gone only if the supervisor already gave up waiting.
            let _ = ended.send(copy_flushing(from, console));
        })
}

fn copy_flushing(mut from: impl Read, mut to: impl Write) -> io::Result<()> {
    let mut buffer = [0u8; CHUNK];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        to.write_all(&buffer[..read])?;
        to.flush()?;
    }
}

/// Copies QEMU's stderr to ours; the thread's result says whether QEMU reported an error.
pub fn forward_stderr(from: ChildStderr, program: &'static str) -> io::Result<JoinHandle<bool>> {
    thread::Builder::new()
        .name("qemu-stderr".to_owned())
        .spawn(move || {
            let mut complained = false;
            let mut from = BufReader::new(from);
            let mut line = Vec::new();
            // A read error ends the copy: QEMU's exit code still tells the outcome.
            while from.read_until(b'\n', &mut line).is_ok_and(|read| read > 0) {
                complained |= is_error_line(&line, program);
                // Our stderr failing leaves nothing better to report to.
                let _ = io::stderr().write_all(&line);
                line.clear();
            }
            complained
        })
}

/// QEMU reports its own errors as `<program>: <message>`, warnings as
/// `<program>: warning: <message>`.
fn is_error_line(line: &[u8], program: &str) -> bool {
    let Some(message) = line
        .strip_prefix(program.as_bytes())
        .and_then(|rest| rest.strip_prefix(b": "))
    else {
        return false;
    };
    !message.starts_with(b"warning:")
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU: &str = "qemu-system-x86_64";

    #[test]
    fn qemu_errors_are_recognised() {
        assert!(is_error_line(
            b"qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory\n",
            QEMU
        ));
        assert!(is_error_line(
            b"qemu-system-x86_64: could not load kernel '/x'\n",
            QEMU
        ));
    }

    #[test]
    fn warnings_and_other_lines_are_not_errors() {
        assert!(!is_error_line(
            b"qemu-system-x86_64: warning: host doesn't support requested feature\n",
            QEMU
        ));
        assert!(!is_error_line(
            b"Use -machine help to list supported machines\n",
            QEMU
        ));
        assert!(!is_error_line(b"qemu-system-x86_64 is fine\n", QEMU));
    }

    #[test]
    fn copy_passes_every_byte() {
        let input: Vec<u8> = (0..=255).cycle().take(CHUNK * 3 + 7).collect();
        let mut output = Vec::new();
        copy_flushing(input.as_slice(), &mut output).expect("copied");
        assert_eq!(output, input);
    }
}
