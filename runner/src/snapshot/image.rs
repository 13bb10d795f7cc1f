//! A snapshot opened for a restore (`runner run --restore`): checked completely before any VM
//! exists, then mapped read-only and private as Firecracker's userfaultfd handler maps a memory
//! snapshot, so a page is read from the file (or the page cache) only when the guest faults on
//! it.
//!
//! The file must not shrink while it is mapped: reading a page past its new end would raise
//! SIGBUS, as it would in Firecracker.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use vm_memory::mmap::MmapRegionError;
use vm_memory::{FileOffset, MmapRegion, VolatileMemory};
use workloads::pages::PAGE_SIZE;

use super::header::{self, HEADER_LEN, Header};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Why a snapshot cannot be restored from; the outer `OpenError` names the file.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("cannot open it")]
    Open(#[source] io::Error),
    #[error("it is not a regular file")]
    NotAFile,
    #[error("cannot read its header")]
    ReadHeader(#[source] io::Error),
    #[error(transparent)]
    Header(#[from] header::Error),
    #[error("it is truncated: {len} bytes long, but its header describes {needed}")]
    Truncated { len: u64, needed: u64 },
    #[error(
        "it holds {} of guest RAM but the run has --mem {}: restore with --mem {}",
        mem_arg(*snapshot),
        mem_arg(*run),
        mem_arg(*snapshot)
    )]
    MemMismatch { snapshot: u64, run: u64 },
    #[error("its {0} bytes do not fit in this process's address space")]
    TooLarge(u64),
    #[error("cannot map it")]
    Map(#[source] MmapRegionError),
}

#[derive(Debug, thiserror::Error)]
#[error("cannot restore guest RAM from the snapshot {}", path.display())]
pub struct OpenError {
    path: PathBuf,
    #[source]
    source: Invalid,
}

/// A checked snapshot file, mapped.
#[derive(Debug)]
pub struct Image {
    header: Header,
    /// The file from its start to the end of the RAM image.
    mapping: MmapRegion,
}

impl Image {
    /// Opens the snapshot `path` for a VM of `mem_size` bytes of RAM, which must be the
    /// snapshot's: a restore neither drops saved RAM nor invents RAM it lacks.
    pub fn open(path: &Path, mem_size: u64) -> Result<Self, OpenError> {
        open(path, mem_size).map_err(|source| OpenError {
            path: path.to_owned(),
            source,
        })
    }

    /// Copies the saved page at guest-physical address `gpa_page` into `out`.
    ///
    /// # Panics
    /// If `gpa_page` is not a page-aligned address inside the saved RAM: `open` matched the
    /// RAM size to the VM's, so only a VMM bug can ask for one.
    pub fn read_page(&self, gpa_page: u64, out: &mut [u8; PAGE_SIZE]) {
        assert!(
            gpa_page.is_multiple_of(PAGE_SIZE as u64) && gpa_page < self.header.ram_size,
            "page {gpa_page:#x} is not a page of the snapshot's RAM"
        );
        let offset = usize::try_from(self.header.data_offset + gpa_page)
            .expect("inside the mapping, whose length fits");
        let page = self
            .mapping
            .get_slice(offset, PAGE_SIZE)
            .expect("inside the mapping");
        page.copy_to(&mut out[..]);
    }
}

fn open(path: &Path, mem_size: u64) -> Result<Image, Invalid> {
    // The type first: opening a FIFO would block, and a directory opens but cannot be read.
    if !fs::metadata(path).map_err(Invalid::Open)?.is_file() {
        return Err(Invalid::NotAFile);
    }
    let file = File::open(path).map_err(Invalid::Open)?;
    let len = file.metadata().map_err(Invalid::Open)?.len();
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    (&file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut bytes)
        .map_err(Invalid::ReadHeader)?;
    let header = Header::decode(&bytes)?;
    if len < header.data_end() {
        return Err(Invalid::Truncated {
            len,
            needed: header.data_end(),
        });
    }
    if header.ram_size != mem_size {
        return Err(Invalid::MemMismatch {
            snapshot: header.ram_size,
            run: mem_size,
        });
    }
    let size =
        usize::try_from(header.data_end()).map_err(|_| Invalid::TooLarge(header.data_end()))?;
    // Private and read-only: nothing can write through the mapping, and a later change to the
    // file cannot be mistaken for guest state we saved.
    let mapping = MmapRegion::build(
        Some(FileOffset::new(file, 0)),
        size,
        libc::PROT_READ,
        libc::MAP_PRIVATE,
    )
    .map_err(Invalid::Map)?;
    Ok(Image { header, mapping })
}

/// A RAM size as `--mem` takes it.
fn mem_arg(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{}M", bytes / MIB)
    } else {
        format!("{}K", bytes / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain;
    use crate::snapshot::header::{DATA_OFFSET, MAGIC};
    use crate::snapshot::save::save;
    use crate::snapshot::test_files::ScratchDir;
    use crate::vmm::memory;
    use vm_memory::{Bytes, GuestAddress};

    const RAM: u64 = 32 * MIB;

    /// A saved 32 MiB snapshot whose page at `gpa` starts with `gpa` (as a word).
    fn saved(dir: &ScratchDir, gpas: &[u64]) -> PathBuf {
        let ram = memory::create(GuestAddress(0), RAM).expect("memory");
        for &gpa in gpas {
            ram.write_obj(gpa, GuestAddress(gpa)).expect("write");
        }
        let path = dir.path().join("ram.snap");
        save(&path, &ram).expect("save");
        path
    }

    fn refused(path: &Path, mem_size: u64) -> String {
        let error = Image::open(path, mem_size).expect_err("refused");
        chain(&error)
    }

    #[test]
    fn pages_come_from_their_place_in_the_file() {
        let dir = ScratchDir::new("image-pages");
        let path = saved(&dir, &[0x1000, 0x7_3000, RAM - 0x1000]);
        let image = Image::open(&path, RAM).expect("open");
        let mut page = [0xffu8; PAGE_SIZE];
        for gpa in [0x1000, 0x7_3000, RAM - 0x1000] {
            image.read_page(gpa, &mut page);
            assert_eq!(page[..8], gpa.to_le_bytes(), "page {gpa:#x}");
            assert!(page[8..].iter().all(|&b| b == 0), "page {gpa:#x}");
        }
        image.read_page(0x2000, &mut page);
        assert_eq!(page, [0; PAGE_SIZE], "a hole reads as zeros");
    }

    #[test]
    #[should_panic(expected = "not a page of the snapshot's RAM")]
    fn pages_past_the_saved_ram_are_a_bug() {
        let dir = ScratchDir::new("image-past");
        let image = Image::open(&saved(&dir, &[]), RAM).expect("open");
        image.read_page(RAM, &mut [0; PAGE_SIZE]);
    }

    #[test]
    fn the_run_must_have_the_snapshot_s_ram_size() {
        let dir = ScratchDir::new("image-mem");
        let path = saved(&dir, &[]);
        assert_eq!(
            refused(&path, 64 * MIB),
            format!(
                "cannot restore guest RAM from the snapshot {}: it holds 32M of guest RAM but \
                 the run has --mem 64M: restore with --mem 32M",
                path.display()
            )
        );
        assert_eq!(mem_arg(RAM + 4 * KIB), "32772K");
    }

    #[test]
    fn files_that_are_not_complete_snapshots_are_refused() {
        let dir = ScratchDir::new("image-bad");
        let good = fs::read(saved(&dir, &[0x1000])).expect("read");
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            fs::write(&path, bytes).expect("write");
            path
        };
        let mut elf = good.clone();
        elf[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\0");
        let mut version = good.clone();
        version[8] = 9;
        let cases = [
            (
                write("empty", &[]),
                "0 bytes long, shorter than the 32-byte",
            ),
            (write("short", &good[..20]), "20 bytes long, shorter than"),
            (write("elf", &elf), "it is not a snapshot file"),
            (write("version", &version), "format version 9"),
            (
                write("truncated", &good[..good.len() - 1]),
                "it is truncated: 33558527 bytes long, but its header describes 33558528",
            ),
            (
                write("header-only", &good[..DATA_OFFSET as usize]),
                "it is truncated: 4096 bytes long",
            ),
            (dir.path().to_owned(), "it is not a regular file"),
            (dir.path().join("missing"), "cannot open it: "),
        ];
        for (path, problem) in cases {
            let message = refused(&path, RAM);
            let named = format!("the snapshot {}: ", path.display());
            assert!(message.contains(&named), "{message}");
            assert!(message.contains(problem), "{path:?}: {message}");
        }
        assert_eq!(&good[..8], MAGIC, "the good file was good");
    }
}
