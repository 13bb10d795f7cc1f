//! What the network card did in a run.

use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames from the TAP placed in a guest receive buffer.
    pub rx_frames: u64,
    /// Frames the guest sent that reached the TAP.
    pub tx_frames: u64,
    /// Frames from the TAP dropped: the driver was not ready, or its queue unusable.
    pub rx_dropped: u64,
    /// Times a frame had to wait for the guest to give a receive buffer (the TAP holds the
    /// frames behind it meanwhile, as a NIC's ring would).
    pub rx_waits: u64,
    /// Frames the guest sent that the TAP refused (full, or down).
    pub tx_dropped: u64,
    /// Descriptor chains completed unused: too short, wrong direction, outside guest memory.
    pub bad_chains: u64,
}

impl NetStats {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "rx_frames": self.rx_frames,
            "tx_frames": self.tx_frames,
            "rx_dropped": self.rx_dropped,
            "rx_waits": self.rx_waits,
            "tx_dropped": self.tx_dropped,
            "bad_chains": self.bad_chains,
        })
    }
}

impl fmt::Display for NetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames received ({} dropped before the driver was ready, {} waits for a \
             buffer), {} sent ({} refused by the TAP), {} bad descriptor chains",
            self.rx_frames,
            self.rx_dropped,
            self.rx_waits,
            self.tx_frames,
            self.tx_dropped,
            self.bad_chains
        )
    }
}
