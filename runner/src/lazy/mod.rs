//! Lazy guest memory (`--latency`): pages of a range of guest RAM are fetched on first touch,
//! each fetch taking a time drawn from a latency model, as when a VM is restored from a
//! snapshot or migrated post-copy. The builtin VMM registers the range with a userfaultfd;
//! the server here answers its faults.

mod fetcher;
pub mod latency;
mod observer;
mod page_table;
mod reader;
pub mod region;
mod server;
pub mod source;
mod stats;
mod window;
mod work;

pub use latency::LatencyModel;
pub use observer::{FaultObserver, ObserverError};
pub use region::LazyRegion;
pub use server::{Error, OnFailure, Server, Settings, StartError};
pub use stats::LazyStats;
pub use window::Window;

/// Most concurrent fetches `--fetchers` allows.
pub const MAX_FETCHERS: u8 = 64;

/// What `--latency`, `--fetchers`, `--lazy` and `--seed` ask for.
#[derive(Clone, Debug, PartialEq)]
pub struct LazyConfig {
    pub latency: LatencyModel,
    /// Concurrent fetches, 1..=`MAX_FETCHERS`: 1 is a serial device.
    pub fetchers: u8,
    pub region: LazyRegion,
    /// Seeds the pages' contents and the latency stream.
    pub seed: u64,
    /// Pages fetched after each missing page, in address order (`--readahead`).
    pub readahead: u16,
    /// `--pin`: each vCPU thread on its own host CPU, the fault reader on vCPU 0's.
    pub pin: bool,
}
