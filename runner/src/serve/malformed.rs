//! The malformed datagrams `--malformed` mixes into the load: one of each way a request can
//! be wrong, so the run shows the service refusing them while it keeps answering.

use workloads::kv::MAX_REQUEST;

/// Ids of the malformed requests that carry one start here, far above the GETs' ids, so
/// that their `ERR` replies are never mistaken for a GET's.
pub const ID_BASE: u64 = 1 << 48;

/// The kinds, sent in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `GET` with no key or id.
    Truncated,
    /// `PUT 1 <id>`: a command the service does not have.
    UnknownCommand,
    /// `GET x <id>`: a key that is not a number.
    BadKey,
    /// Longer than the service reads: dropped without a reply (but counted).
    Oversized,
    /// A datagram with no bytes.
    Empty,
}

const KINDS: [Kind; 5] = [
    Kind::Truncated,
    Kind::UnknownCommand,
    Kind::BadKey,
    Kind::Oversized,
    Kind::Empty,
];

impl Kind {
    /// The `n`th malformed datagram's kind.
    pub fn nth(n: u64) -> Kind {
        KINDS[(n % KINDS.len() as u64) as usize]
    }

    /// Whether the service answers it with an `ERR` (all but the oversized ones).
    pub fn answered(self) -> bool {
        self != Kind::Oversized
    }

    /// The datagram, with `id` where the kind carries one.
    pub fn datagram(self, id: u64) -> Vec<u8> {
        match self {
            Kind::Truncated => b"GET".to_vec(),
            Kind::UnknownCommand => format!("PUT 1 {id}").into_bytes(),
            Kind::BadKey => format!("GET x {id}").into_bytes(),
            Kind::Oversized => {
                let mut datagram = format!("GET 1 {id} ").into_bytes();
                datagram.resize(MAX_REQUEST + 1, b'x');
                datagram
            }
            Kind::Empty => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workloads::kv::{RequestError, parse_request};

    #[test]
    fn every_kind_is_refused_and_only_the_oversized_silently() {
        for n in 0..KINDS.len() as u64 {
            let kind = Kind::nth(n);
            let id = ID_BASE + n;
            let error = parse_request(&kind.datagram(id)).expect_err("malformed");
            assert_eq!(error.reason().is_some(), kind.answered(), "{kind:?}");
            match kind {
                Kind::UnknownCommand | Kind::BadKey => assert_eq!(error.id(), Some(id)),
                _ => assert_eq!(error.id(), None, "{kind:?}"),
            }
        }
        assert_eq!(
            parse_request(&Kind::Oversized.datagram(1)),
            Err(RequestError::Oversized)
        );
        assert_eq!(Kind::nth(5), Kind::Truncated);
    }
}
