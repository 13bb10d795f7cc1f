//! The guest console as the runner shows it: passed through to our stdout as it arrives, with
//! the last line remembered for the timeout message, and the last line that starts with a
//! watched prefix (a host's summary among the guest's output) remembered for the report.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// Longest line kept for messages; a guest that never prints a newline must not make us grow
/// a buffer forever.
const MAX_REMEMBERED_LINE: usize = 512;

/// Remembers the last non-empty line of a byte stream, and the last one starting with
/// `watch` (if set).
#[derive(Debug, Default)]
struct LastLine {
    /// The line being received, not yet terminated.
    current: Vec<u8>,
    /// The most recent non-empty terminated line.
    previous: Vec<u8>,
    watch: Option<&'static str>,
    /// The most recent terminated line that starts with `watch` (and was not cut short).
    watched: Option<Vec<u8>>,
}

impl LastLine {
    fn record(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match byte {
                b'\n' if !self.current.is_empty() => {
                    self.previous = std::mem::take(&mut self.current);
                    // A line cut at the limit might still parse, as a wrong number.
                    let whole = self.previous.len() < MAX_REMEMBERED_LINE;
                    if whole
                        && self
                            .watch
                            .is_some_and(|prefix| self.previous.starts_with(prefix.as_bytes()))
                    {
                        self.watched = Some(self.previous.clone());
                    }
                }
                // Blank lines say nothing; serial consoles end lines with "\r\n".
                b'\n' | b'\r' => {}
                _ if self.current.len() < MAX_REMEMBERED_LINE => self.current.push(byte),
                _ => {}
            }
        }
    }

    /// The unterminated line if the guest was in the middle of one, else the last full line.
    fn get(&self) -> Option<String> {
        [&self.current, &self.previous]
            .into_iter()
            .find(|line| !line.is_empty())
            .map(|line| String::from_utf8_lossy(line).into_owned())
    }

    fn watched(&self) -> Option<String> {
        let line = self.watched.as_deref()?;
        Some(String::from_utf8_lossy(line).into_owned())
    }
}

/// Where the guest's console output goes: the runner's stdout. Cloning shares the remembered
/// last line, so a device model or a pump thread can write while the supervisor reads it.
#[derive(Clone, Debug, Default)]
pub struct ConsoleSink {
    last_line: Arc<Mutex<LastLine>>,
}

impl ConsoleSink {
    /// A sink that also remembers the last complete line starting with `prefix`.
    pub fn watching(prefix: &'static str) -> Self {
        let sink = Self::default();
        sink.lines().watch = Some(prefix);
        sink
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, LastLine> {
        self.last_line
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The last console line, if the guest printed anything.
    pub fn last_line(&self) -> Option<String> {
        self.lines().get()
    }

    /// The last complete line that started with the prefix given to [`Self::watching`].
    pub fn watched_line(&self) -> Option<String> {
        self.lines().watched()
    }

    /// Pushes out a last line the guest left unterminated, once the guest has stopped.
    pub fn finish(&self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

impl Write for ConsoleSink {
    /// Rust's stdout is line-buffered: complete lines reach the reader as the guest prints them.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write_all(bytes)?;
        self.lines().record(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_line_of(chunks: &[&[u8]]) -> Option<String> {
        let mut tracker = LastLine::default();
        for chunk in chunks {
            tracker.record(chunk);
        }
        tracker.get()
    }

    #[test]
    fn nothing_printed_has_no_last_line() {
        assert_eq!(last_line_of(&[]), None);
        assert_eq!(last_line_of(&[b"\r\n\n"]), None);
    }

    #[test]
    fn last_complete_line_wins_over_blank_lines() {
        assert_eq!(
            last_line_of(&[b"one\r\ntwo\r\n\r\n"]),
            Some("two".to_owned())
        );
    }

    #[test]
    fn unterminated_line_is_the_last_line() {
        assert_eq!(
            last_line_of(&[b"done\nwork", b"ing"]),
            Some("working".to_owned())
        );
    }

    #[test]
    fn lines_split_across_writes_are_joined() {
        let bytes = b"first\nsecond line\n";
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(last_line_of(&chunks), Some("second line".to_owned()));
    }

    #[test]
    fn long_lines_are_truncated() {
        let long = vec![b'x'; MAX_REMEMBERED_LINE * 2];
        let line = last_line_of(&[&long]).expect("a line");
        assert_eq!(line.len(), MAX_REMEMBERED_LINE);
    }

    #[test]
    fn the_last_watched_line_is_kept_apart_from_the_last_line() {
        let mut tracker = LastLine {
            watch: Some("host: "),
            ..LastLine::default()
        };
        assert_eq!(tracker.watched(), None);
        tracker.record(b"host: one\r\nguest\nhost: tw");
        assert_eq!(tracker.watched(), Some("host: one".to_owned()));
        tracker.record(b"o\nguest: host: three\nlast");
        assert_eq!(tracker.watched(), Some("host: two".to_owned()));
        assert_eq!(tracker.get(), Some("last".to_owned()));
    }

    #[test]
    fn a_watched_line_cut_short_is_not_kept() {
        let mut tracker = LastLine {
            watch: Some("host: "),
            ..LastLine::default()
        };
        let mut long = b"host: ".to_vec();
        long.resize(MAX_REMEMBERED_LINE + 10, b'1');
        long.push(b'\n');
        tracker.record(&long);
        assert_eq!(tracker.watched(), None);
    }

    #[test]
    fn without_a_prefix_nothing_is_watched() {
        let mut tracker = LastLine::default();
        tracker.record(b"host: one\n");
        assert_eq!(tracker.watched(), None);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(
            last_line_of(&[b"bad \xff byte\n"]),
            Some("bad \u{fffd} byte".to_owned())
        );
    }
}
