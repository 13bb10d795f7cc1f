//! The `kv` service's store and wire protocol, shared by the guest (which serves it) and
//! the runner (which drives it and checks every answer).
//!
//! Key `k`'s value is one page: the generated contents ([`crate::pages`]) of guest page
//! [`value_page`]`(k)`. Cold keys are stored in place there, in the workload region the host
//! may serve lazily, so the first request for a cold key touches a page the host has not
//! populated; hot keys are copies in memory the host populated. An answer carries the
//! value's [`checksum`], which the runner recomputes from the generator: a value read from
//! the wrong page, or a page served wrongly, is a wrong answer.
//!
//! The protocol is one UDP datagram per request and per reply, in ASCII so that a human
//! with `nc -u` can talk to it:
//!
//! | request | reply |
//! |---|---|
//! | `GET <key> <id>` | `VAL <id> <key> <checksum, 16 hex digits>` or `ERR <id> no-such-key` |
//! | `QUIT <id>` | `BYE <id> <answered> <malformed>`, and the service ends |
//! | anything else | `ERR <id or -> <reason>`; longer than [`MAX_REQUEST`]: dropped |
//!
//! Ids are the client's (the runner's request numbers); the service echoes them so that
//! answers may come back in any order.

use crate::pages::{self, WORDS};
use core::fmt::{self, Write};

/// UDP port the service listens on.
pub const PORT: u16 = 7777;
/// Longest request the service reads; a longer one is dropped and counted.
pub const MAX_REQUEST: usize = 64;
/// Longest reply the service sends.
pub const MAX_REPLY: usize = 80;

/// The page whose generated contents are key `key`'s value, counted from the page at
/// `workload_base` (the guest-physical start of the workload region).
pub fn value_page(workload_base: u64, key: u64) -> u64 {
    (workload_base >> 12) + key
}

/// Folds a value's words into the checksum an answer carries.
pub fn checksum(words: &[u64; WORDS]) -> u64 {
    words.iter().fold(0x6b76_5f73_756d_0001, |acc, &w| {
        (acc ^ w)
            .rotate_left(23)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
    })
}

/// The checksum of key `key`'s value for `seed`, from the generator (the runner's side).
pub fn expected_checksum(seed: u64, workload_base: u64, key: u64) -> u64 {
    let mut words = [0; WORDS];
    pages::fill(seed, value_page(workload_base, key), &mut words);
    checksum(&words)
}

/// A request the service understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Get { key: u64, id: u64 },
    Quit { id: u64 },
}

/// Why a request was refused. `id` is the request's id when it got that far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Longer than [`MAX_REQUEST`]: dropped without a reply.
    Oversized,
    /// Not ASCII text, or an empty datagram.
    NotText,
    UnknownCommand {
        id: Option<u64>,
    },
    /// A field missing.
    Truncated {
        id: Option<u64>,
    },
    /// A field that is not a decimal number, or a field too many.
    BadField {
        id: Option<u64>,
    },
}

impl RequestError {
    /// The `ERR` reply's reason, or `None` when the request is dropped silently.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            RequestError::Oversized => None,
            RequestError::NotText => Some("not-text"),
            RequestError::UnknownCommand { .. } => Some("unknown-command"),
            RequestError::Truncated { .. } => Some("truncated"),
            RequestError::BadField { .. } => Some("bad-field"),
        }
    }

    pub fn id(&self) -> Option<u64> {
        match *self {
            RequestError::Oversized | RequestError::NotText => None,
            RequestError::UnknownCommand { id }
            | RequestError::Truncated { id }
            | RequestError::BadField { id } => id,
        }
    }
}

fn number(field: Option<&str>) -> Result<u64, Option<()>> {
    let field = field.ok_or(None)?;
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Some(()));
    }
    field.parse().map_err(|_| Some(()))
}

/// Parses one request datagram.
pub fn parse_request(datagram: &[u8]) -> Result<Request, RequestError> {
    if datagram.len() > MAX_REQUEST {
        return Err(RequestError::Oversized);
    }
    let text = core::str::from_utf8(datagram)
        .ok()
        .filter(|t| t.is_ascii() && !t.trim().is_empty())
        .ok_or(RequestError::NotText)?;
    let mut fields = text.split_ascii_whitespace();
    let command = fields.next().ok_or(RequestError::NotText)?;
    let rest: [Option<&str>; 3] = [fields.next(), fields.next(), fields.next()];
    let id_at = |i: usize| rest[i].and_then(|f| number(Some(f)).ok());
    let field_error = |missing: Option<()>, id| match missing {
        None => RequestError::Truncated { id },
        Some(()) => RequestError::BadField { id },
    };
    match command {
        "GET" => {
            let id = id_at(1);
            let key = number(rest[0]).map_err(|m| field_error(m, id))?;
            let id = number(rest[1]).map_err(|m| field_error(m, None))?;
            if rest[2].is_some() {
                return Err(RequestError::BadField { id: Some(id) });
            }
            Ok(Request::Get { key, id })
        }
        "QUIT" => {
            let id = number(rest[0]).map_err(|m| field_error(m, None))?;
            if rest[1].is_some() {
                return Err(RequestError::BadField { id: Some(id) });
            }
            Ok(Request::Quit { id })
        }
        _ => Err(RequestError::UnknownCommand { id: id_at(1) }),
    }
}

/// A reply, as sent by the service and parsed by the runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    Value {
        id: u64,
        key: u64,
        checksum: u64,
    },
    Error {
        id: Option<u64>,
        reason: &'a str,
    },
    Bye {
        id: u64,
        answered: u64,
        malformed: u64,
    },
}

impl fmt::Display for Reply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reply::Value { id, key, checksum } => write!(f, "VAL {id} {key} {checksum:016x}"),
            Reply::Error {
                id: Some(id),
                reason,
            } => write!(f, "ERR {id} {reason}"),
            Reply::Error { id: None, reason } => write!(f, "ERR - {reason}"),
            Reply::Bye {
                id,
                answered,
                malformed,
            } => write!(f, "BYE {id} {answered} {malformed}"),
        }
    }
}

/// Formats into a fixed buffer, without allocating (the guest's ring-3 code has no heap).
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Reply<'_> {
    /// Writes the reply's datagram into `buf`; returns its length, or `None` if it does not
    /// fit.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        let mut cursor = Cursor { buf, len: 0 };
        write!(cursor, "{self}").ok()?;
        Some(cursor.len)
    }
}

/// Why a reply did not parse (the runner counts these as wrong answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadReply;

/// Parses one reply datagram.
pub fn parse_reply(datagram: &[u8]) -> Result<Reply<'_>, BadReply> {
    let text = core::str::from_utf8(datagram).map_err(|_| BadReply)?;
    let mut fields = text.split_ascii_whitespace();
    let mut next = || fields.next().ok_or(BadReply);
    let dec = |f: &str| number(Some(f)).map_err(|_| BadReply);
    let reply = match next()? {
        "VAL" => {
            let id = dec(next()?)?;
            let key = dec(next()?)?;
            let sum = next()?;
            if sum.len() != 16 {
                return Err(BadReply);
            }
            let checksum = u64::from_str_radix(sum, 16).map_err(|_| BadReply)?;
            Reply::Value { id, key, checksum }
        }
        "ERR" => {
            let id = match next()? {
                "-" => None,
                id => Some(dec(id)?),
            };
            Reply::Error {
                id,
                reason: next()?,
            }
        }
        "BYE" => Reply::Bye {
            id: dec(next()?)?,
            answered: dec(next()?)?,
            malformed: dec(next()?)?,
        },
        _ => return Err(BadReply),
    };
    if fields.next().is_some() {
        return Err(BadReply);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(
            parse_request(b"GET 12 7"),
            Ok(Request::Get { key: 12, id: 7 })
        );
        assert_eq!(
            parse_request(b"GET 12 7\n"),
            Ok(Request::Get { key: 12, id: 7 })
        );
        assert_eq!(parse_request(b"QUIT 3"), Ok(Request::Quit { id: 3 }));
    }

    #[test]
    fn refuses_bad_requests_with_what_it_could_read() {
        use RequestError::*;
        assert_eq!(parse_request(b""), Err(NotText));
        assert_eq!(parse_request(b"  \n"), Err(NotText));
        assert_eq!(parse_request(b"GET \xff 1"), Err(NotText));
        assert_eq!(parse_request(b"GET"), Err(Truncated { id: None }));
        assert_eq!(parse_request(b"GET 5"), Err(Truncated { id: None }));
        assert_eq!(parse_request(b"GET x 5"), Err(BadField { id: Some(5) }));
        assert_eq!(parse_request(b"GET 5 -1"), Err(BadField { id: None }));
        assert_eq!(parse_request(b"GET 5 1 2"), Err(BadField { id: Some(1) }));
        assert_eq!(
            parse_request(b"GET 99999999999999999999 1"),
            Err(BadField { id: Some(1) })
        );
        assert_eq!(parse_request(b"QUIT"), Err(Truncated { id: None }));
        assert_eq!(parse_request(b"QUIT 1 2"), Err(BadField { id: Some(1) }));
        assert_eq!(
            parse_request(b"PUT 1 9"),
            Err(UnknownCommand { id: Some(9) })
        );
        assert_eq!(
            parse_request(b"get 1 9"),
            Err(UnknownCommand { id: Some(9) })
        );
        assert_eq!(parse_request(&[b'A'; MAX_REQUEST + 1]), Err(Oversized));
        assert_eq!(Oversized.reason(), None);
        assert_eq!(Truncated { id: None }.reason(), Some("truncated"));
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Value {
                id: u64::MAX,
                key: u64::MAX,
                checksum: 0xdead_beef,
            },
            Reply::Error {
                id: Some(4),
                reason: "no-such-key",
            },
            Reply::Error {
                id: None,
                reason: "truncated",
            },
            Reply::Bye {
                id: 1,
                answered: 100,
                malformed: 3,
            },
        ];
        for reply in replies {
            let mut buf = [0; MAX_REPLY];
            let len = reply.encode(&mut buf).expect("fits");
            assert_eq!(parse_reply(&buf[..len]), Ok(reply));
        }
        assert!(
            Reply::Bye {
                id: 1,
                answered: 2,
                malformed: 3
            }
            .encode(&mut [0; 4])
            .is_none()
        );
    }

    #[test]
    fn refuses_bad_replies() {
        for bad in [
            &b"VAL 1 2 3"[..],
            b"VAL 1 2 000000000000000g",
            b"VAL 1 2",
            b"OK 1",
            b"BYE 1 2",
            b"ERR 1 x y",
            b"\xff",
        ] {
            assert_eq!(parse_reply(bad), Err(BadReply), "{bad:?}");
        }
    }

    #[test]
    fn checksum_sees_every_word_and_its_place() {
        let base = 0x400_0000;
        let a = expected_checksum(1, base, 0);
        assert_ne!(a, expected_checksum(1, base, 1));
        assert_ne!(a, expected_checksum(2, base, 0));
        let mut words = [0; WORDS];
        pages::fill(1, value_page(base, 0), &mut words);
        assert_eq!(checksum(&words), a);
        words.swap(0, 1);
        assert_ne!(checksum(&words), a);
        words.swap(0, 1);
        words[WORDS - 1] ^= 1;
        assert_ne!(checksum(&words), a);
    }
}
