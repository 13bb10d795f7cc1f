//! Saving guest RAM (`runner snapshot`): the header, then each page that is not all zeros at
//! its place in the image. Zero pages are skipped and the length set at the end, so they are
//! holes: the file takes disk space only for memory the guest (or the VMM) wrote. It is written
//! as `FILE.tmp` and renamed over FILE once complete, so a failed save leaves FILE as it was.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use vm_memory::{
    Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryError, GuestMemoryMmap,
    GuestMemoryRegion,
};
use workloads::pages::PAGE_SIZE;

use super::header::Header;

const PAGE: u64 = PAGE_SIZE as u64;
/// A page that need not be written.
const ZERO_PAGE: [u8; PAGE_SIZE] = [0; PAGE_SIZE];
/// Appended to the snapshot's file name while it is being written.
const TMP_SUFFIX: &str = ".tmp";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the snapshot {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read guest RAM at {gpa:#x} to save it")]
    ReadRam {
        gpa: u64,
        #[source]
        source: GuestMemoryError,
    },
    #[error("cannot rename the finished snapshot {} to {}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A snapshot written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub path: PathBuf,
    /// Bytes of guest RAM in the image.
    pub ram_size: u64,
    /// Pages that were not all zeros, the only ones written.
    pub pages_written: u64,
}

impl fmt::Display for Saved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "saved {} pages of guest RAM to {}: {} written, the rest zero (holes)",
            self.ram_size / PAGE,
            self.path.display(),
            self.pages_written
        )
    }
}

/// Saves `memory`, from guest-physical address 0 to its end, as the snapshot `path`.
pub fn save(path: &Path, memory: &GuestMemoryMmap) -> Result<Saved, Error> {
    let tmp = tmp_path(path);
    let result = write_image(&tmp, memory).and_then(|(ram_size, pages_written)| {
        fs::rename(&tmp, path).map_err(|source| Error::Rename {
            from: tmp.clone(),
            to: path.to_owned(),
            source,
        })?;
        Ok(Saved {
            path: path.to_owned(),
            ram_size,
            pages_written,
        })
    });
    if result.is_err() {
        // Best effort: the error that matters is being returned.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `FILE.tmp` for `FILE`, in the same directory so the rename cannot cross file systems.
fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = OsString::from(path);
    tmp.push(TMP_SUFFIX);
    PathBuf::from(tmp)
}

/// Writes the whole snapshot to `path`; returns the RAM size and the pages written.
fn write_image(path: &Path, memory: &GuestMemoryMmap) -> Result<(u64, u64), Error> {
    let io_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let file = File::create(path).map_err(io_error)?;
    let header = Header::new(memory.last_addr().raw_value() + 1);
    file.write_all_at(&header.encode(), 0).map_err(io_error)?;
    let mut page = [0u8; PAGE_SIZE];
    let mut pages_written = 0;
    for region in memory.iter() {
        let start = region.start_addr().raw_value();
        for gpa in (start..start + region.len()).step_by(PAGE_SIZE) {
            memory
                .read_slice(&mut page, GuestAddress(gpa))
                .map_err(|source| Error::ReadRam { gpa, source })?;
            if page != ZERO_PAGE {
                file.write_all_at(&page, header.data_offset + gpa)
                    .map_err(io_error)?;
                pages_written += 1;
            }
        }
    }
    // Extends the file over trailing zero pages; then the data reaches the disk before the
    // rename makes the file visible under its name.
    file.set_len(header.data_end()).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    Ok((header.ram_size, pages_written))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::header::DATA_OFFSET;
    use crate::snapshot::test_files::ScratchDir;
    use crate::vmm::memory;
    use std::os::unix::fs::MetadataExt;

    const MIB: u64 = 1 << 20;
    /// Guest pages given contents in the tests' RAM.
    const WRITTEN: [u64; 3] = [0, 0x1000, 0x3ff_f000];

    /// 64 MiB of RAM with a few non-zero pages, one at the very end.
    fn sparse_ram() -> GuestMemoryMmap {
        let ram = memory::create(GuestAddress(0), 64 * MIB).expect("memory");
        for gpa in WRITTEN {
            ram.write_slice(&[0xa5; 16], GuestAddress(gpa + 8))
                .expect("write");
        }
        ram
    }

    #[test]
    fn zero_pages_become_holes_and_the_rest_reads_back() {
        let dir = ScratchDir::new("save-sparse");
        let path = dir.path().join("ram.snap");
        let saved = save(&path, &sparse_ram()).expect("save");
        assert_eq!(
            saved,
            Saved {
                path: path.clone(),
                ram_size: 64 * MIB,
                pages_written: 3
            }
        );
        let data = fs::read(&path).expect("read back");
        assert_eq!(data.len() as u64, DATA_OFFSET + 64 * MIB);
        assert_eq!(Header::decode(&data), Ok(Header::new(64 * MIB)));
        let image = &data[DATA_OFFSET as usize..];
        for (index, page) in image.chunks(PAGE_SIZE).enumerate() {
            let gpa = index as u64 * PAGE;
            let mut expected = [0u8; PAGE_SIZE];
            if WRITTEN.contains(&gpa) {
                expected[8..24].fill(0xa5);
            }
            assert_eq!(page, expected, "page {gpa:#x}");
        }
        // Four pages of data (header and three of RAM) and file system metadata, far from the
        // 64 MiB length.
        let on_disk = fs::metadata(&path).expect("metadata").blocks() * 512;
        assert!(on_disk < MIB, "{on_disk} bytes on disk");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_failed_save_keeps_the_old_file_and_no_temporary() {
        let dir = ScratchDir::new("save-failed");
        // Renaming a file over a non-empty directory fails after the image is written.
        let path = dir.path().join("occupied");
        fs::create_dir_all(path.join("inside")).expect("directory");
        let error = save(&path, &sparse_ram()).expect_err("cannot replace a directory");
        assert!(matches!(error, Error::Rename { .. }), "{error:?}");
        assert!(path.join("inside").is_dir());
        assert!(!tmp_path(&path).exists());
        // And a directory that does not exist fails at once, naming the file.
        let missing = dir.path().join("no-such-dir").join("ram.snap");
        let error = save(&missing, &sparse_ram()).expect_err("no directory");
        assert!(
            error.to_string().contains("no-such-dir/ram.snap.tmp"),
            "{error}"
        );
    }

    #[test]
    fn the_summary_counts_pages() {
        let saved = Saved {
            path: PathBuf::from("/tmp/s.snap"),
            ram_size: 128 * MIB,
            pages_written: 300,
        };
        assert_eq!(
            saved.to_string(),
            "saved 32768 pages of guest RAM to /tmp/s.snap: 300 written, the rest zero (holes)"
        );
    }
}
