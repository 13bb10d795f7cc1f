//! ICMP echo, to know when the guest's network is up (before its service is) and what a
//! round trip costs with no service work in it.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
/// Between echoes while waiting for a guest to boot.
const INTERVAL: Duration = Duration::from_millis(100);

/// A raw ICMP socket (we are root; ping sockets are off in a fresh namespace). It is held
/// as a `UdpSocket` only for std's `send_to`, `recv` and read timeout, which are the same
/// calls for any datagram socket.
pub struct Pinger {
    socket: UdpSocket,
    ident: u16,
    /// When each echo was sent, by sequence number.
    sent: Vec<Instant>,
}

impl Pinger {
    pub fn open() -> io::Result<Self> {
        // SAFETY: socket takes no pointers; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a socket just opened here and owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Pinger {
            socket: UdpSocket::from(fd),
            ident: std::process::id() as u16,
            sent: Vec::new(),
        })
    }

    /// Sends echoes to `dest` every [`INTERVAL`] until one is answered (its round trip), or
    /// `give_up` says to stop, or `timeout` passes (`None`).
    pub fn until_answered(
        &mut self,
        dest: Ipv4Addr,
        timeout: Duration,
        give_up: impl Fn() -> bool,
    ) -> io::Result<Option<Duration>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !give_up() {
            self.send(dest)?;
            let wait = INTERVAL.min(deadline.saturating_duration_since(Instant::now()));
            if let Some(rtt) = self.reply(wait)? {
                return Ok(Some(rtt));
            }
        }
        Ok(None)
    }

    fn send(&mut self, dest: Ipv4Addr) -> io::Result<()> {
        let seq = self.sent.len() as u16;
        self.sent.push(Instant::now());
        let packet = echo_request(self.ident, seq);
        self.socket.send_to(&packet, SocketAddrV4::new(dest, 0))?;
        Ok(())
    }

    /// The round trip of the reply to our newest echo, if it comes within `wait`.
    fn reply(&mut self, wait: Duration) -> io::Result<Option<Duration>> {
        let deadline = Instant::now() + wait;
        let mut buf = [0; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(left))?;
            let len = match self.socket.recv(&mut buf) {
                Ok(len) => len,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            // Only the newest echo's answer counts: older ones may have waited in the host's
            // queue for its ARP lookup of the guest, and their round trips would say so.
            let newest = self.sent.len().checked_sub(1);
            if let Some(seq) = reply_seq(&buf[..len], self.ident)
                && Some(usize::from(seq)) == newest
            {
                return Ok(Some(now - self.sent[usize::from(seq)]));
            }
        }
    }
}

/// An echo request with an 8-byte payload.
fn echo_request(ident: u16, seq: u16) -> [u8; 16] {
    let mut packet = [0; 16];
    packet[0] = ECHO_REQUEST;
    packet[4..6].copy_from_slice(&ident.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..].copy_from_slice(b"apf-ping");
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// The sequence number of an echo reply to `ident`, given the IPv4 packet a raw socket
/// reads (our own requests show up there too on loopback, and other hosts' replies).
fn reply_seq(packet: &[u8], ident: u16) -> Option<u16> {
    let header = usize::from(packet.first()? & 0x0f) * 4;
    let icmp = packet.get(header..)?;
    if icmp.len() < 8 || icmp[0] != ECHO_REPLY || checksum(icmp) != 0 {
        return None;
    }
    (u16::from_be_bytes([icmp[4], icmp[5]]) == ident)
        .then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// The Internet checksum (RFC 1071); 0 over a packet that includes a correct one.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply a host makes of `request`, behind a 20-byte IPv4 header.
    fn reply_to(request: &[u8]) -> Vec<u8> {
        let mut icmp = request.to_vec();
        icmp[0] = ECHO_REPLY;
        icmp[2..4].fill(0);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut packet = vec![0x45];
        packet.resize(20, 0);
        packet.extend(icmp);
        packet
    }

    #[test]
    fn requests_carry_a_valid_checksum() {
        let request = echo_request(0x1234, 7);
        assert_eq!(checksum(&request), 0);
        assert_eq!(&request[4..8], &[0x12, 0x34, 0, 7]);
        // RFC 1071's example.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn only_replies_to_our_ident_count() {
        let reply = reply_to(&echo_request(0x1234, 7));
        assert_eq!(reply_seq(&reply, 0x1234), Some(7));
        assert_eq!(reply_seq(&reply, 0x1235), None);
        let mut request = vec![0x45];
        request.resize(20, 0);
        request.extend(echo_request(0x1234, 7));
        assert_eq!(reply_seq(&request, 0x1234), None, "our own request");
        let mut corrupt = reply.clone();
        corrupt[30] ^= 1;
        assert_eq!(reply_seq(&corrupt, 0x1234), None);
        assert_eq!(reply_seq(&reply[..24], 0x1234), None);
        assert_eq!(reply_seq(&[], 0x1234), None);
    }
}
