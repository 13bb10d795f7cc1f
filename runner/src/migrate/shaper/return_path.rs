//! QEMU's post-copy return path as the shaper reads it: messages of `be16 type, be16 len,
//! len bytes` (`migrate_send_rp_message` in QEMU's migration/migration.c), cut out of the
//! stream whatever the reads' sizes, and the page requests among them.

/// A return-path message's header: `be16 type, be16 len`.
pub const HEADER_LEN: usize = 4;
/// QEMU's target page on the guests we migrate (x86-64, arm64 with 4K pages): a request's
/// length in bytes is a multiple of it.
pub const TARGET_PAGE_SIZE: u64 = 4096;

/// A return-path message type (QEMU's `enum mig_rp_message_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Invalid,
    Shut,
    Pong,
    /// `be64 start, be32 len`, then the RAMBlock's name: `u8` length and bytes.
    ReqPagesId,
    /// `be64 start, be32 len`, in the block of the previous `ReqPagesId`.
    ReqPages,
    RecvBitmap,
    ResumeAck,
    SwitchoverAck,
    /// A type this QEMU version does not have: passed on as it is.
    Other(u16),
}

impl From<u16> for MessageKind {
    fn from(value: u16) -> Self {
        match value {
            0 => MessageKind::Invalid,
            1 => MessageKind::Shut,
            2 => MessageKind::Pong,
            3 => MessageKind::ReqPagesId,
            4 => MessageKind::ReqPages,
            5 => MessageKind::RecvBitmap,
            6 => MessageKind::ResumeAck,
            7 => MessageKind::SwitchoverAck,
            other => MessageKind::Other(other),
        }
    }
}

impl MessageKind {
    pub fn is_page_request(self) -> bool {
        matches!(self, MessageKind::ReqPagesId | MessageKind::ReqPages)
    }
}

/// One whole return-path message, header included, as it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageKind,
    pub bytes: Vec<u8>,
}

impl Message {
    pub fn data(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }
}

/// Cuts the return path, read in chunks of any size, into whole messages.
#[derive(Debug, Default)]
pub struct Framer {
    pub buffered: Vec<u8>,
    /// Bytes at the front of `buffered` already returned as messages; dropped on the next
    /// `push`, so a chunk of many messages is not shifted once per message.
    pub consumed: usize,
}

impl Framer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffered.drain(..self.consumed);
        self.consumed = 0;
        self.buffered.extend_from_slice(chunk);
    }

    /// The next whole message, if all its bytes have been pushed.
    pub fn next_message(&mut self) -> Option<Message> {
        let pending = &self.buffered[self.consumed..];
        let header = pending.get(..HEADER_LEN)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let bytes = pending.get(..HEADER_LEN + len)?.to_vec();
        self.consumed += bytes.len();
        Some(Message {
            kind: kind.into(),
            bytes,
        })
    }

    /// The bytes of an incomplete message left at the end of the stream (empty if none).
    pub fn into_tail(mut self) -> Vec<u8> {
        self.buffered.drain(..self.consumed);
        self.buffered
    }
}

/// What a page request asks for: `len` bytes from `start` in its RAMBlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub start: u64,
    pub len: u32,
}

impl PageRequest {
    /// A request for less than a page (never sent by QEMU) still fetches one.
    pub fn pages(self) -> u64 {
        (u64::from(self.len) / TARGET_PAGE_SIZE).max(1)
    }
}

/// The request in `message`; `None` if it is not a page request or is too short for one.
pub fn decode_page_request(message: &Message) -> Option<PageRequest> {
    if !message.kind.is_page_request() {
        return None;
    }
    let data = message.data();
    let start = u64::from_be_bytes(data.get(0..8)?.try_into().ok()?);
    let len = u32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    Some(PageRequest { start, len })
}
