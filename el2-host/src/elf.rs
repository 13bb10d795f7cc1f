//! The guest ELF: an ELF64 little-endian AArch64 executable whose `PT_LOAD` segments are
//! copied to their physical addresses (`p_paddr`) in guest RAM, entered at `e_entry`.
//! QEMU's generic loader puts the file raw in the staging area; parsing here is pure.

/// `e_ident`: magic, class ELFCLASS64 (2), data ELFDATA2LSB (1).
const IDENT: [u8; 6] = [0x7f, b'E', b'L', b'F', 2, 1];
/// `e_machine` EM_AARCH64.
const EM_AARCH64: u16 = 183;
/// `p_type` of a loadable segment.
const PT_LOAD: u32 = 1;
/// Offsets in the ELF64 header (System V gABI, "ELF Header").
const E_MACHINE: usize = 18;
const E_ENTRY: usize = 24;
const E_PHOFF: usize = 32;
const E_PHENTSIZE: usize = 54;
const E_PHNUM: usize = 56;
const HEADER_SIZE: usize = 64;
/// Offsets in an ELF64 program header.
const P_TYPE: usize = 0;
const P_OFFSET: usize = 8;
const P_PADDR: usize = 24;
const P_FILESZ: usize = 32;
const P_MEMSZ: usize = 40;
const PHDR_SIZE: usize = 56;

/// Why the staged file is not a guest we can load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No ELF64 little-endian header (nothing staged, or the wrong file).
    NotElf,
    /// Not an AArch64 executable.
    WrongMachine,
    /// A header or segment lies outside the file.
    Truncated,
}

/// One segment to load: `file` bytes of the file to `paddr`, then zeros up to `memsz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub paddr: u64,
    pub file: core::ops::Range<usize>,
    pub memsz: u64,
}

/// A parsed guest ELF.
pub struct Elf<'a> {
    data: &'a [u8],
    pub entry: u64,
    phoff: usize,
    phnum: usize,
}

fn u16_at(data: &[u8], at: usize) -> Result<u16, Error> {
    let bytes = data.get(at..at + 2).ok_or(Error::Truncated)?;
    Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, Error> {
    let bytes = data.get(at..at + 4).ok_or(Error::Truncated)?;
    Ok(u32::from_le_bytes(
        bytes.try_into().map_err(|_| Error::Truncated)?,
    ))
}

fn u64_at(data: &[u8], at: usize) -> Result<u64, Error> {
    let bytes = data.get(at..at + 8).ok_or(Error::Truncated)?;
    Ok(u64::from_le_bytes(
        bytes.try_into().map_err(|_| Error::Truncated)?,
    ))
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() < HEADER_SIZE || data[..IDENT.len()] != IDENT {
            return Err(Error::NotElf);
        }
        if u16_at(data, E_MACHINE)? != EM_AARCH64 {
            return Err(Error::WrongMachine);
        }
        if usize::from(u16_at(data, E_PHENTSIZE)?) != PHDR_SIZE {
            return Err(Error::NotElf);
        }
        Ok(Self {
            data,
            entry: u64_at(data, E_ENTRY)?,
            phoff: usize::try_from(u64_at(data, E_PHOFF)?).map_err(|_| Error::Truncated)?,
            phnum: usize::from(u16_at(data, E_PHNUM)?),
        })
    }

    /// The `PT_LOAD` segments, checked to lie inside the file.
    pub fn segments(&self) -> impl Iterator<Item = Result<Segment, Error>> + '_ {
        (0..self.phnum).filter_map(move |i| {
            let at = self.phoff + i * PHDR_SIZE;
            let segment = || -> Result<Option<Segment>, Error> {
                if u32_at(self.data, at + P_TYPE)? != PT_LOAD {
                    return Ok(None);
                }
                let offset = u64_at(self.data, at + P_OFFSET)? as usize;
                let filesz = u64_at(self.data, at + P_FILESZ)? as usize;
                let file = offset..offset.checked_add(filesz).ok_or(Error::Truncated)?;
                if file.end > self.data.len() {
                    return Err(Error::Truncated);
                }
                Ok(Some(Segment {
                    paddr: u64_at(self.data, at + P_PADDR)?,
                    file,
                    memsz: u64_at(self.data, at + P_MEMSZ)?,
                }))
            };
            segment().transpose()
        })
    }

    /// The bytes of a segment's file part.
    pub fn bytes(&self, segment: &Segment) -> &'a [u8] {
        &self.data[segment.file.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF: header, one PT_LOAD of 4 file bytes at 0x4008_0000 (memsz 16) and one
    /// PT_NOTE.
    fn sample() -> Vec<u8> {
        let mut f = vec![0u8; HEADER_SIZE + 2 * PHDR_SIZE + 4];
        f[..6].copy_from_slice(&IDENT);
        f[E_MACHINE..E_MACHINE + 2].copy_from_slice(&EM_AARCH64.to_le_bytes());
        f[E_ENTRY..E_ENTRY + 8].copy_from_slice(&0x4008_0000u64.to_le_bytes());
        f[E_PHOFF..E_PHOFF + 8].copy_from_slice(&(HEADER_SIZE as u64).to_le_bytes());
        f[E_PHENTSIZE..E_PHENTSIZE + 2].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        f[E_PHNUM..E_PHNUM + 2].copy_from_slice(&2u16.to_le_bytes());
        let ph = HEADER_SIZE;
        let data = (HEADER_SIZE + 2 * PHDR_SIZE) as u64;
        f[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        f[ph + P_OFFSET..ph + P_OFFSET + 8].copy_from_slice(&data.to_le_bytes());
        f[ph + P_PADDR..ph + P_PADDR + 8].copy_from_slice(&0x4008_0000u64.to_le_bytes());
        f[ph + P_FILESZ..ph + P_FILESZ + 8].copy_from_slice(&4u64.to_le_bytes());
        f[ph + P_MEMSZ..ph + P_MEMSZ + 8].copy_from_slice(&16u64.to_le_bytes());
        f[ph + PHDR_SIZE..ph + PHDR_SIZE + 4].copy_from_slice(&4u32.to_le_bytes());
        let end = f.len();
        f[end - 4..].copy_from_slice(b"code");
        f
    }

    #[test]
    fn loads_only_pt_load() {
        let file = sample();
        let elf = Elf::parse(&file).unwrap();
        assert_eq!(elf.entry, 0x4008_0000);
        let segments: Vec<_> = elf.segments().collect::<Result<_, _>>().unwrap();
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].paddr, 0x4008_0000);
        assert_eq!(segments[0].memsz, 16);
        assert_eq!(elf.bytes(&segments[0]), b"code");
    }

    #[test]
    fn refuses_what_is_not_a_guest() {
        assert_eq!(Elf::parse(&[0; 4096]).err(), Some(Error::NotElf));
        let mut file = sample();
        file[E_MACHINE] = 62; // x86_64
        assert_eq!(Elf::parse(&file).err(), Some(Error::WrongMachine));
        let mut file = sample();
        let size = file.len() as u64;
        let at = HEADER_SIZE + P_FILESZ;
        file[at..at + 8].copy_from_slice(&size.to_le_bytes());
        let elf = Elf::parse(&file).unwrap();
        assert_eq!(elf.segments().next(), Some(Err(Error::Truncated)));
    }
}
