//! Memory snapshots, the Firecracker way: `runner snapshot` saves guest RAM to a file, and
//! `runner run --restore` serves the lazy pages from it, so page `gpa` arrives from the file
//! only when the guest first touches it.
//!
//! Only guest RAM is saved, not vCPU or device state. Our guest runs to completion, so "after
//! boot" is when it exits through the exit port with status 0: the VM has stopped and its RAM
//! holds everything the guest did. A restore boots the kernel again; only the lazy range
//! (`--lazy`: with `workload`, the workload data at and above guest-physical 64 MiB) comes
//! from the snapshot. That is the experiment: page faults after a restore, against pages with
//! known contents.
//!
//! With `--latency` during `runner snapshot` the save happens after the lazy memory server
//! has stopped: lazy pages the guest never touched were never fetched, hold nothing yet, and
//! are saved as zeros.
//!
//! # File format
//!
//! A fixed little-endian header, then the RAM image:
//!
//! | offset | size | field                                                   |
//! |--------|------|---------------------------------------------------------|
//! | 0      | 8    | magic `b"APFSNAP1"`                                     |
//! | 8      | 4    | format version, `1`                                     |
//! | 12     | 4    | page size, `4096`                                       |
//! | 16     | 8    | RAM size in bytes (a non-zero multiple of the page size)|
//! | 24     | 8    | data offset (page-aligned, after the header; `4096`)    |
//!
//! The rest of the header's page is zero. From the data offset on, the file holds guest RAM
//! from guest-physical address 0, byte for byte: guest page `gpa` is at `data offset + gpa`.
//! All-zero pages are holes, so the file takes disk space only for pages with contents.

mod header;
mod image;
mod save;

pub use image::{Image, OpenError};
pub use save::{Error as SaveError, Saved, save};

#[cfg(test)]
pub mod test_files {
    use std::path::{Path, PathBuf};

    /// A directory for one test's files, removed with them when dropped.
    pub struct ScratchDir(PathBuf);

    impl ScratchDir {
        /// `name` must be unique among the tests, which run in parallel.
        pub fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("runner-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("test directory");
            ScratchDir(dir)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            // Best effort: a leftover directory in /tmp fails nothing.
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
