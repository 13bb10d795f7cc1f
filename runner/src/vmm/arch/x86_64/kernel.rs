//! Loading the guest kernel: an x86_64 ELF64 with a Xen PVH entry note, placed at the physical
//! addresses its program headers name.
//!
//! linux-loader does the loading; it does not look at the ELF class or machine, so those are
//! checked first to give a useful message for the wrong kind of file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::elf::{
    EI_CLASS, EI_DATA, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_386, EM_AARCH64, EM_X86_64,
    Elf64_Ehdr, Elf64_Phdr, PT_LOAD, SELFMAG,
};
use linux_loader::loader::KernelLoader;
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use vm_memory::{ByteValued, GuestAddress, GuestMemoryMmap};

use super::layout::HIGH_RAM_START;
use crate::vmm::memory;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open kernel {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read kernel {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("kernel {}: not an ELF file", .path.display())]
    NotElf { path: PathBuf },
    #[error("kernel {}: {class}, but the kernel must be a 64-bit (ELF64) x86_64 ELF", .path.display())]
    WrongClass { path: PathBuf, class: String },
    #[error("kernel {}: big-endian ELF, but x86_64 kernels are little-endian", .path.display())]
    BigEndian { path: PathBuf },
    #[error("kernel {}: ELF for {machine}, but the guest is x86_64", .path.display())]
    WrongMachine { path: PathBuf, machine: String },
    #[error("kernel {}: not a PVH kernel (no Xen PHYS32_ENTRY ELF note)", .path.display())]
    NotPvh { path: PathBuf },
    #[error("kernel {}: PVH entry {entry:#x} is outside guest RAM", .path.display())]
    EntryOutsideRam { path: PathBuf, entry: u64 },
    #[error("kernel {}: cannot load it into {mem_size} bytes of guest RAM", .path.display())]
    Load {
        path: PathBuf,
        mem_size: u64,
        #[source]
        source: linux_loader::loader::Error,
    },
    #[error("kernel {}: a loadable segment ends beyond the 64-bit address space", .path.display())]
    ImageEndOverflow { path: PathBuf },
    #[error("kernel {}: cannot set up scratch RAM to check it", .path.display())]
    ScratchMemory {
        path: PathBuf,
        #[source]
        source: memory::Error,
    },
}

/// A kernel in guest memory.
#[derive(Debug)]
pub struct Loaded {
    /// The PVH entry point.
    pub entry: GuestAddress,
    /// The end of the image in guest-physical memory: the highest `p_paddr + p_memsz` of its
    /// loadable segments, so its zero-filled (bss) part too.
    pub image_end: u64,
}

/// Loads the kernel at `path` into `memory` (`mem_size` bytes from address 0).
pub fn load(memory: &GuestMemoryMmap, mem_size: u64, path: &Path) -> Result<Loaded, Error> {
    let mut file = File::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    let header = check_header(&mut file, path)?;
    let loaded = Elf::load(memory, None, &mut file, Some(GuestAddress(HIGH_RAM_START))).map_err(
        |source| Error::Load {
            path: path.to_owned(),
            mem_size,
            source,
        },
    )?;
    let entry = match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(entry) if entry.0 < mem_size => entry,
        PvhBootCapability::PvhEntryPresent(entry) => {
            return Err(Error::EntryOutsideRam {
                path: path.to_owned(),
                entry: entry.0,
            });
        }
        PvhBootCapability::PvhEntryNotPresent | PvhBootCapability::PvhEntryIgnored => {
            return Err(Error::NotPvh {
                path: path.to_owned(),
            });
        }
    };
    // linux-loader's own `kernel_end` leaves out segments with nothing in the file (pure bss).
    let image_end =
        image_end(&read_program_headers(&mut file, &header, path)?).ok_or_else(|| {
            Error::ImageEndOverflow {
                path: path.to_owned(),
            }
        })?;
    Ok(Loaded { entry, image_end })
}

/// The program headers of the ELF file whose (checked, loaded) header is `header`.
fn read_program_headers(
    file: &mut File,
    header: &Elf64_Ehdr,
    path: &Path,
) -> Result<Vec<Elf64_Phdr>, Error> {
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    file.seek(SeekFrom::Start(header.e_phoff))
        .map_err(read_error)?;
    (0..header.e_phnum)
        .map(|_| {
            let mut phdr = Elf64_Phdr::default();
            file.read_exact(phdr.as_mut_slice()).map_err(read_error)?;
            Ok(phdr)
        })
        .collect()
}

/// The highest guest-physical end of a loadable segment (0 without any); `None` on overflow.
fn image_end(phdrs: &[Elf64_Phdr]) -> Option<u64> {
    phdrs
        .iter()
        .filter(|phdr| phdr.p_type == PT_LOAD)
        .try_fold(0, |end: u64, phdr| {
            Some(end.max(phdr.p_paddr.checked_add(phdr.p_memsz)?))
        })
}

/// Checks that `path` is a kernel `load` accepts for a guest of `mem_size` bytes, by loading it
/// into scratch memory that is never touched beyond the kernel's own pages. This lets QEMU runs
/// fail with the same messages as builtin ones instead of QEMU's.
pub fn validate(path: &Path, mem_size: u64) -> Result<(), Error> {
    let scratch =
        memory::create(GuestAddress(0), mem_size).map_err(|source| Error::ScratchMemory {
            path: path.to_owned(),
            source,
        })?;
    load(&scratch, mem_size, path).map(drop)
}

fn check_header(file: &mut File, path: &Path) -> Result<Elf64_Ehdr, Error> {
    let mut header = Elf64_Ehdr::default();
    match file.read_exact(header.as_mut_slice()) {
        Ok(()) => {}
        // Shorter than an ELF64 header: whatever it is, it is not a kernel.
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(Error::NotElf {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            });
        }
    }
    header_problem(&header).map_or(Ok(header), |problem| Err(problem.into_error(path)))
}

/// What is wrong with an ELF header for our loader, if anything.
#[derive(Debug, PartialEq, Eq)]
enum HeaderProblem {
    NotElf,
    WrongClass(String),
    BigEndian,
    WrongMachine(String),
}

impl HeaderProblem {
    fn into_error(self, path: &Path) -> Error {
        let path = path.to_owned();
        match self {
            HeaderProblem::NotElf => Error::NotElf { path },
            HeaderProblem::WrongClass(class) => Error::WrongClass { path, class },
            HeaderProblem::BigEndian => Error::BigEndian { path },
            HeaderProblem::WrongMachine(machine) => Error::WrongMachine { path, machine },
        }
    }
}

fn header_problem(header: &Elf64_Ehdr) -> Option<HeaderProblem> {
    if header.e_ident[..SELFMAG] != ELFMAG[..] {
        return Some(HeaderProblem::NotElf);
    }
    match header.e_ident[EI_CLASS] {
        ELFCLASS64 => {}
        ELFCLASS32 => return Some(HeaderProblem::WrongClass("32-bit ELF".to_owned())),
        other => return Some(HeaderProblem::WrongClass(format!("ELF class {other}"))),
    }
    if header.e_ident[EI_DATA] != ELFDATA2LSB {
        return Some(HeaderProblem::BigEndian);
    }
    match header.e_machine {
        EM_X86_64 => None,
        EM_AARCH64 => Some(HeaderProblem::WrongMachine("aarch64".to_owned())),
        EM_386 => Some(HeaderProblem::WrongMachine("i386".to_owned())),
        other => Some(HeaderProblem::WrongMachine(format!("machine {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_loader::elf::{ELFDATA2MSB, PT_NOTE};

    fn header(class: u8, data: u8, machine: u16) -> Elf64_Ehdr {
        let mut header = Elf64_Ehdr::default();
        header.e_ident[..SELFMAG].copy_from_slice(ELFMAG);
        header.e_ident[EI_CLASS] = class;
        header.e_ident[EI_DATA] = data;
        header.e_machine = machine;
        header
    }

    fn segment(p_type: u32, p_paddr: u64, p_memsz: u64) -> Elf64_Phdr {
        Elf64_Phdr {
            p_type,
            p_paddr,
            p_memsz,
            ..Default::default()
        }
    }

    #[test]
    fn image_end_counts_bss_only_segments_and_skips_notes() {
        let phdrs = [
            segment(PT_LOAD, 0x10_0000, 0xadae),
            segment(PT_LOAD, 0x10_e000, 0x2e000),
            segment(PT_NOTE, 0x10_d088, 0x1000_0000),
            segment(PT_LOAD, 0x13_c000, 0x4000),
        ];
        assert_eq!(image_end(&phdrs), Some(0x14_0000));
        assert_eq!(image_end(&phdrs[..2]), Some(0x13_c000));
        assert_eq!(image_end(&[]), Some(0));
        assert_eq!(image_end(&[segment(PT_LOAD, u64::MAX, 1)]), None);
    }

    #[test]
    fn x86_64_elf64_passes() {
        assert_eq!(
            header_problem(&header(ELFCLASS64, ELFDATA2LSB, EM_X86_64)),
            None
        );
    }

    #[test]
    fn bad_magic_is_not_elf() {
        let mut bad = header(ELFCLASS64, ELFDATA2LSB, EM_X86_64);
        bad.e_ident[1] = b'X';
        assert_eq!(header_problem(&bad), Some(HeaderProblem::NotElf));
    }

    #[test]
    fn wrong_class_endianness_or_machine_is_named() {
        assert_eq!(
            header_problem(&header(ELFCLASS32, ELFDATA2LSB, EM_386)),
            Some(HeaderProblem::WrongClass("32-bit ELF".to_owned()))
        );
        assert_eq!(
            header_problem(&header(ELFCLASS64, ELFDATA2MSB, EM_X86_64)),
            Some(HeaderProblem::BigEndian)
        );
        assert_eq!(
            header_problem(&header(ELFCLASS64, ELFDATA2LSB, EM_AARCH64)),
            Some(HeaderProblem::WrongMachine("aarch64".to_owned()))
        );
        assert_eq!(
            header_problem(&header(ELFCLASS64, ELFDATA2LSB, 243)),
            Some(HeaderProblem::WrongMachine("machine 243".to_owned()))
        );
    }
}
