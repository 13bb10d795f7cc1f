//! The guest's command line: the words after `--`, checked against what the guest can read.

/// Longest command line the guest accepts (`guest-kernel/src/pvh.rs` reads at most this many
/// bytes before the terminating NUL).
pub const MAX_LEN: usize = 2048;

/// Why a command line cannot be passed to the guest.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the guest command line is {len} bytes long; the guest reads at most {MAX_LEN}")]
    TooLong { len: usize },
    #[error(
        "the guest command line contains {what} at byte {offset}; it must be a single line \
         without NUL bytes"
    )]
    ForbiddenByte { what: &'static str, offset: usize },
}

/// Joins `words` with single spaces; no words give the empty line (the guest's default).
///
/// The guest reads a NUL-terminated string and parses it as one line, so NUL bytes and line
/// breaks could only cut it short or confuse its parser: refuse them here with a clear message.
pub fn from_words<S: AsRef<str>>(words: &[S]) -> Result<String, Error> {
    let line = words
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some((offset, byte)) = line
        .bytes()
        .enumerate()
        .find(|(_, byte)| matches!(byte, b'\0' | b'\n' | b'\r'))
    {
        let what = match byte {
            b'\0' => "a NUL byte",
            _ => "a line break",
        };
        return Err(Error::ForbiddenByte { what, offset });
    }
    if line.len() > MAX_LEN {
        return Err(Error::TooLong { len: line.len() });
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_joined_with_single_spaces() {
        assert_eq!(
            from_words(&["scenario=demo", "hz=100"]),
            Ok("scenario=demo hz=100".to_owned())
        );
        assert_eq!(from_words(&["a b", "c"]), Ok("a b c".to_owned()));
    }

    #[test]
    fn no_words_give_the_empty_line() {
        assert_eq!(from_words::<&str>(&[]), Ok(String::new()));
    }

    #[test]
    fn length_limit_counts_bytes() {
        let longest = "x".repeat(MAX_LEN);
        assert_eq!(from_words(&[longest.as_str()]), Ok(longest.clone()));
        let too_long = format!("{longest}y");
        assert_eq!(
            from_words(&[too_long.as_str()]),
            Err(Error::TooLong { len: MAX_LEN + 1 })
        );
        // Two-byte characters: 1025 of them are 2050 bytes.
        let wide = "é".repeat(MAX_LEN / 2 + 1);
        assert_eq!(
            from_words(&[wide.as_str()]),
            Err(Error::TooLong { len: MAX_LEN + 2 })
        );
        // The joining spaces count too.
        let half = "x".repeat(MAX_LEN / 2);
        assert_eq!(
            from_words(&[half.as_str(), half.as_str()]),
            Err(Error::TooLong { len: MAX_LEN + 1 })
        );
    }

    #[test]
    fn nul_and_line_breaks_are_refused() {
        assert_eq!(
            from_words(&["a", "b\0c"]),
            Err(Error::ForbiddenByte {
                what: "a NUL byte",
                offset: 3
            })
        );
        assert_eq!(
            from_words(&["a\nb"]),
            Err(Error::ForbiddenByte {
                what: "a line break",
                offset: 1
            })
        );
        assert_eq!(
            from_words(&["\r"]),
            Err(Error::ForbiddenByte {
                what: "a line break",
                offset: 0
            })
        );
    }
}
