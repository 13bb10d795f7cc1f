//! Adjusts the device tree QEMU leaves at the start of RAM for a bare-metal image (the real
//! guest kernel reads its RAM size and command line there) so that it describes the guest's
//! view rather than the machine's: `/memory` ends where guest RAM ends (the host's region
//! above stays unknown to the guest), and in `/chosen/bootargs` the host's words, up to the
//! ` -- ` separator, become spaces (QEMU's `-append` carries both, as in [`crate::params`]).
//!
//! Both edits keep every property's length, so the tree is patched in place. Format:
//! Devicetree Specification v0.4, chapter 5 "Flattened Devicetree (DTB) Format"; QEMU's
//! `virt` root node uses two address and two size cells.

/// Header fields (big-endian u32s).
const MAGIC: u32 = 0xd00d_feed;
const HEADER_MAGIC: usize = 0;
const HEADER_TOTALSIZE: usize = 4;
const HEADER_OFF_DT_STRUCT: usize = 8;
const HEADER_OFF_DT_STRINGS: usize = 12;
const HEADER_SIZE: usize = 40;
/// Structure block tokens.
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Tokens and their payloads are 4-byte aligned.
const ALIGN: usize = 4;
/// `reg` of `/memory` with two address and two size cells: one (base, size) pair.
const MEMORY_REG_LEN: usize = 16;
/// What separates the host's words from the guest's in the command line.
pub const SEPARATOR: &str = " -- ";
/// The separator at the very start (no host words).
const LEADING_SEPARATOR: &str = "-- ";

/// Why the tree was not patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No device tree header (QEMU always writes one for `virt`).
    NotATree,
    /// A token or property runs past the end.
    Truncated,
    /// `/memory`'s `reg` is not one pair of 64-bit cells.
    UnexpectedMemoryReg,
}

fn be32(tree: &[u8], at: usize) -> Result<u32, Error> {
    let bytes = tree.get(at..at + 4).ok_or(Error::Truncated)?;
    Ok(u32::from_be_bytes(
        bytes.try_into().map_err(|_| Error::Truncated)?,
    ))
}

fn be64(tree: &[u8], at: usize) -> Result<u64, Error> {
    Ok(u64::from(be32(tree, at)?) << 32 | u64::from(be32(tree, at + 4)?))
}

/// The NUL-terminated string at `at`.
fn c_str(tree: &[u8], at: usize) -> Result<&[u8], Error> {
    let rest = tree.get(at..).ok_or(Error::Truncated)?;
    let len = rest.iter().position(|&b| b == 0).ok_or(Error::Truncated)?;
    Ok(&rest[..len])
}

/// The tree's size from its header, checked against `memory`.
pub fn total_size(memory: &[u8]) -> Result<usize, Error> {
    if memory.len() < HEADER_SIZE || be32(memory, HEADER_MAGIC)? != MAGIC {
        return Err(Error::NotATree);
    }
    let size = be32(memory, HEADER_TOTALSIZE)? as usize;
    if size > memory.len() {
        return Err(Error::Truncated);
    }
    Ok(size)
}

/// What [`patch`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Patched {
    /// `/memory`'s size was cut to end at the guest's RAM end.
    pub memory: bool,
    /// `/chosen/bootargs` had host words.
    pub bootargs: bool,
}

/// Patches `tree` (exactly the tree's bytes) for a guest whose RAM ends at `ram_end`.
pub fn patch(tree: &mut [u8], ram_end: u64) -> Result<Patched, Error> {
    let structure = be32(tree, HEADER_OFF_DT_STRUCT)? as usize;
    let strings = be32(tree, HEADER_OFF_DT_STRINGS)? as usize;
    let mut patched = Patched::default();
    let mut at = structure;
    let mut depth = 0usize;
    // Which top-level node (depth 2: the root is depth 1) is being walked.
    let mut in_memory = false;
    let mut in_chosen = false;
    loop {
        let token = be32(tree, at)?;
        at += ALIGN;
        match token {
            FDT_BEGIN_NODE => {
                let name = c_str(tree, at)?;
                depth += 1;
                if depth == 2 {
                    in_memory = name.starts_with(b"memory");
                    in_chosen = name == b"chosen";
                }
                at += (name.len() + 1).next_multiple_of(ALIGN);
            }
            FDT_END_NODE => {
                depth = depth.checked_sub(1).ok_or(Error::Truncated)?;
                if depth < 2 {
                    in_memory = false;
                    in_chosen = false;
                }
            }
            FDT_PROP => {
                let len = be32(tree, at)? as usize;
                let name = c_str(tree, strings + be32(tree, at + 4)? as usize)?;
                let value = at + 8;
                if value + len > tree.len() {
                    return Err(Error::Truncated);
                }
                if depth == 2 && in_memory && name == b"reg" {
                    patched.memory = cut_memory(&mut tree[value..value + len], ram_end)?;
                } else if depth == 2 && in_chosen && name == b"bootargs" {
                    patched.bootargs = blank_host_words(&mut tree[value..value + len]);
                }
                at = value + len.next_multiple_of(ALIGN);
            }
            FDT_NOP => {}
            FDT_END => return Ok(patched),
            _ => return Err(Error::Truncated),
        }
    }
}

/// Makes the (base, size) pair end at `ram_end` if it reaches beyond.
fn cut_memory(reg: &mut [u8], ram_end: u64) -> Result<bool, Error> {
    if reg.len() != MEMORY_REG_LEN {
        return Err(Error::UnexpectedMemoryReg);
    }
    let base = be64(reg, 0)?;
    let size = be64(reg, 8)?;
    if base.saturating_add(size) <= ram_end {
        return Ok(false);
    }
    let new_size = ram_end.saturating_sub(base);
    reg[8..].copy_from_slice(&new_size.to_be_bytes());
    Ok(true)
}

/// Turns the host's words (everything up to and including the separator, or the whole line
/// without one) into spaces; `false` if there were none.
fn blank_host_words(value: &mut [u8]) -> bool {
    let text_len = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    let text = &value[..text_len];
    let host_end = if text.starts_with(LEADING_SEPARATOR.as_bytes()) {
        LEADING_SEPARATOR.len()
    } else {
        text.windows(SEPARATOR.len())
            .position(|w| w == SEPARATOR.as_bytes())
            .map_or(text_len, |at| at + SEPARATOR.len())
    };
    value[..host_end].fill(b' ');
    host_end > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree like QEMU's: `/` { `memory@40000000` { reg }, `chosen` { bootargs } }.
    fn tree(ram: (u64, u64), bootargs: &str) -> Vec<u8> {
        let mut strings = Vec::new();
        let reg_name = strings.len() as u32;
        strings.extend_from_slice(b"reg\0");
        let bootargs_name = strings.len() as u32;
        strings.extend_from_slice(b"bootargs\0");
        let mut s = Vec::new();
        let token = |s: &mut Vec<u8>, t: u32| s.extend_from_slice(&t.to_be_bytes());
        let name = |s: &mut Vec<u8>, n: &str| {
            s.extend_from_slice(n.as_bytes());
            s.push(0);
            s.resize(s.len().next_multiple_of(4), 0);
        };
        let prop = |s: &mut Vec<u8>, nameoff: u32, value: &[u8]| {
            s.extend_from_slice(&FDT_PROP.to_be_bytes());
            s.extend_from_slice(&(value.len() as u32).to_be_bytes());
            s.extend_from_slice(&nameoff.to_be_bytes());
            s.extend_from_slice(value);
            s.resize(s.len().next_multiple_of(4), 0);
        };
        token(&mut s, FDT_BEGIN_NODE);
        name(&mut s, "");
        token(&mut s, FDT_BEGIN_NODE);
        name(&mut s, "memory@40000000");
        let mut reg = ram.0.to_be_bytes().to_vec();
        reg.extend_from_slice(&ram.1.to_be_bytes());
        prop(&mut s, reg_name, &reg);
        token(&mut s, FDT_END_NODE);
        token(&mut s, FDT_BEGIN_NODE);
        name(&mut s, "chosen");
        let mut args = bootargs.as_bytes().to_vec();
        args.push(0);
        prop(&mut s, bootargs_name, &args);
        token(&mut s, FDT_END_NODE);
        token(&mut s, FDT_END_NODE);
        token(&mut s, FDT_END);
        let structure = HEADER_SIZE;
        let strings_at = structure + s.len();
        let total = strings_at + strings.len();
        let mut t = vec![0u8; HEADER_SIZE];
        t[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        t[4..8].copy_from_slice(&(total as u32).to_be_bytes());
        t[8..12].copy_from_slice(&(structure as u32).to_be_bytes());
        t[12..16].copy_from_slice(&(strings_at as u32).to_be_bytes());
        t.extend_from_slice(&s);
        t.extend_from_slice(&strings);
        t
    }

    fn find(tree: &[u8], needle: &[u8]) -> usize {
        tree.windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    }

    #[test]
    fn memory_ends_at_guest_ram_and_host_words_go() {
        let mut t = tree(
            (0x4000_0000, 0x2000_0000),
            "mode=apf seed=3 -- scenario=mem seed=3",
        );
        assert_eq!(total_size(&t), Ok(t.len()));
        let patched = patch(&mut t, 0x5f00_0000).unwrap();
        assert_eq!(
            patched,
            Patched {
                memory: true,
                bootargs: true
            }
        );
        let reg = find(&t, &0x4000_0000u64.to_be_bytes());
        assert_eq!(be64(&t, reg + 8), Ok(0x1f00_0000));
        let args = find(&t, b"scenario");
        let line = c_str(&t, args - 19).unwrap();
        assert_eq!(line, b"                   scenario=mem seed=3");
    }

    #[test]
    fn nothing_to_do() {
        let mut t = tree((0x4000_0000, 0x1000_0000), "-- scenario=demo");
        assert_eq!(
            patch(&mut t, 0x5f00_0000),
            Ok(Patched {
                memory: false,
                bootargs: true
            })
        );
        let mut t = tree((0x4000_0000, 0x1000_0000), "");
        assert_eq!(patch(&mut t, 0x5f00_0000), Ok(Patched::default()));
    }

    #[test]
    fn host_words_without_separator_all_go() {
        let mut t = tree((0x4000_0000, 0x1000_0000), "mode=off");
        patch(&mut t, 0x5f00_0000).unwrap();
        assert!(find(&t, b"        \0") > 0);
    }

    #[test]
    fn not_a_tree() {
        assert_eq!(total_size(&[0; 64]), Err(Error::NotATree));
        let mut t = tree((0, 0), "");
        t[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(total_size(&t), Err(Error::Truncated));
    }
}
