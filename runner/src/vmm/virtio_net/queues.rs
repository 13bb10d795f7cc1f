//! Moving frames between descriptor chains and flat buffers. Each function takes one chain
//! and either completes it or says why the chain is malformed; the caller counts it.

use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestMemoryError, GuestMemoryMmap};

/// The virtio 1.x `virtio_net_hdr` (with `num_buffers`), which precedes every frame.
pub const HEADER_LEN: usize = 12;
/// The largest frame a TAP carries (64 KiB; no offloads, so in practice an MTU's worth).
pub const MAX_FRAME: usize = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("the chain is shorter than the header and frame")]
    TooShort,
    #[error("the chain is longer than a header and the largest frame")]
    TooLong,
    #[error("a descriptor has the wrong direction")]
    WrongDirection,
    #[error("a descriptor is outside guest memory")]
    Memory(#[source] GuestMemoryError),
}

/// The frame a transmit chain carries, its header skipped (it may span descriptors).
pub fn read_frame(
    memory: &GuestMemoryMmap,
    chain: impl Iterator<Item = Descriptor>,
) -> Result<Vec<u8>, ChainError> {
    let mut bytes = Vec::new();
    for desc in chain {
        if desc.is_write_only() {
            return Err(ChainError::WrongDirection);
        }
        let len = usize::try_from(desc.len()).unwrap_or(usize::MAX);
        let start = bytes.len();
        if len > HEADER_LEN + MAX_FRAME - start {
            return Err(ChainError::TooLong);
        }
        bytes.resize(start + len, 0);
        memory
            .read_slice(&mut bytes[start..], desc.addr())
            .map_err(ChainError::Memory)?;
    }
    if bytes.len() < HEADER_LEN {
        return Err(ChainError::TooShort);
    }
    bytes.drain(..HEADER_LEN);
    Ok(bytes)
}

/// Writes a zeroed header with `num_buffers` = 1, then `frame`, into a receive chain's
/// writable descriptors; gives the bytes written (the used length).
pub fn write_frame(
    memory: &GuestMemoryMmap,
    chain: impl Iterator<Item = Descriptor>,
    frame: &[u8],
) -> Result<u32, ChainError> {
    let mut bytes = vec![0u8; HEADER_LEN];
    bytes[10..12].copy_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(frame);
    let mut written = 0;
    for desc in chain {
        if written == bytes.len() {
            break;
        }
        if !desc.is_write_only() {
            return Err(ChainError::WrongDirection);
        }
        let len = usize::try_from(desc.len()).unwrap_or(usize::MAX);
        let end = bytes.len().min(written + len);
        memory
            .write_slice(&bytes[written..end], desc.addr())
            .map_err(ChainError::Memory)?;
        written = end;
    }
    if written < bytes.len() {
        return Err(ChainError::TooShort);
    }
    u32::try_from(written).map_err(|_| ChainError::TooLong)
}
