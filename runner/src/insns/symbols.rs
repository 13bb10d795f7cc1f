//! The guest ELF's code symbols, to name the function each emulated instruction belongs
//! to, and the entry stubs that tell which trap an instruction stream starts.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol, SymbolKind};
use thiserror::Error;

/// The guest's 256 entry stubs lie between these two symbols, one stub per vector in
/// equal slots (see the guest's `arch/x86_64/entry.rs`).
const STUBS_START: &str = "trap_stubs";
const STUBS_END: &str = "trap_stubs_end";
const VECTORS: u64 = 256;
/// Where a trap that leaves for the idle loop ends (it restores nothing, so no `iretq`).
const IDLE_ENTER: &str = "idle_enter";
/// A vector whose gate skips the stubs has its own entry, named this and the vector in
/// decimal (`trap_direct_14`).
const DIRECT_ENTRY: &str = "trap_direct_";

#[derive(Debug, Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ELF file we can read: {source}")]
    Elf {
        path: PathBuf,
        source: object::Error,
    },
    #[error("{path} has no symbol {name}: not our x86_64 guest kernel, or stripped")]
    Missing { path: PathBuf, name: &'static str },
    #[error("{path}: the entry stubs span {span} bytes, not 256 equal slots")]
    Stubs { path: PathBuf, span: u64 },
}

/// One code symbol: `[start, end)`, its demangled name (without the hash).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Symbol {
    start: u64,
    end: u64,
    name: String,
}

/// Code symbols sorted by address, and where the entry stubs are.
#[derive(Debug)]
pub struct Symbols {
    symbols: Vec<Symbol>,
    stubs: u64,
    stub_size: u64,
    idle_enter: Option<u64>,
    /// The direct entries: address and vector.
    direct: Vec<(u64, u8)>,
}

impl Symbols {
    /// The symbols of the ELF at `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let data = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = object::File::parse(&*data).map_err(|source| Error::Elf {
            path: path.to_owned(),
            source,
        })?;
        let raw = file
            .symbols()
            // Assembly labels such as the stubs' are untyped (STT_NOTYPE): `Unknown`.
            .filter(|s| matches!(s.kind(), SymbolKind::Text | SymbolKind::Unknown))
            .filter(|s| s.section_index().is_some())
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_owned())));
        Self::from_raw(raw).map_err(|e| match e {
            FromRawError::Missing(name) => Error::Missing {
                path: path.to_owned(),
                name,
            },
            FromRawError::Stubs(span) => Error::Stubs {
                path: path.to_owned(),
                span,
            },
        })
    }

    /// From `(address, size, mangled name)` triples; a symbol of size 0 (an assembly
    /// label) reaches up to the next symbol.
    fn from_raw(raw: impl Iterator<Item = (u64, u64, String)>) -> Result<Self, FromRawError> {
        let mut raw: Vec<(u64, u64, String)> = raw.filter(|(_, _, n)| !n.is_empty()).collect();
        let address_of = |name: &'static str| {
            raw.iter()
                .find(|(_, _, n)| n == name)
                .map(|&(a, _, _)| a)
                .ok_or(FromRawError::Missing(name))
        };
        let idle_enter = address_of(IDLE_ENTER).ok();
        let direct = raw
            .iter()
            .filter_map(|(address, _, name)| {
                Some((*address, name.strip_prefix(DIRECT_ENTRY)?.parse().ok()?))
            })
            .collect();
        let stubs = address_of(STUBS_START)?;
        let span = address_of(STUBS_END)?.saturating_sub(stubs);
        if span == 0 || !span.is_multiple_of(VECTORS) {
            return Err(FromRawError::Stubs(span));
        }
        // Of the symbols at one address, keep the one with a size, and never the stubs' end
        // marker when the code after the stubs has a name of its own.
        raw.sort_by_key(|(address, size, name)| {
            (*address, std::cmp::Reverse(*size), name == STUBS_END)
        });
        raw.dedup_by_key(|(address, _, _)| *address);
        let starts: Vec<u64> = raw.iter().map(|&(a, _, _)| a).collect();
        let symbols = raw
            .iter()
            .enumerate()
            .map(|(i, (start, size, name))| {
                let next = starts.get(i + 1).copied().unwrap_or(u64::MAX);
                Symbol {
                    start: *start,
                    end: if *size == 0 { next } else { start + size },
                    name: format!("{:#}", rustc_demangle::demangle(name)),
                }
            })
            .collect();
        Ok(Self {
            symbols,
            stubs,
            stub_size: span / VECTORS,
            idle_enter,
            direct,
        })
    }

    /// The name of the function holding `rip`, if any symbol covers it.
    pub fn name(&self, rip: u64) -> Option<&str> {
        self.locate(rip).map(|(name, _)| name)
    }

    /// The function holding `rip` and `rip`'s offset in it.
    pub fn locate(&self, rip: u64) -> Option<(&str, u64)> {
        let index = self
            .symbols
            .partition_point(|s| s.start <= rip)
            .checked_sub(1)?;
        let symbol = &self.symbols[index];
        (rip < symbol.end).then_some((symbol.name.as_str(), rip - symbol.start))
    }

    /// Whether `rip` is the idle loop's entry: every trap running on that vCPU has ended.
    pub fn is_idle_enter(&self, rip: u64) -> bool {
        self.idle_enter == Some(rip)
    }

    /// The vector whose entry stub or direct entry starts at `rip`: the first instruction
    /// of a trap.
    pub fn trap_entry(&self, rip: u64) -> Option<u8> {
        if let Some(&(_, vector)) = self.direct.iter().find(|&&(address, _)| address == rip) {
            return Some(vector);
        }
        let offset = rip.checked_sub(self.stubs)?;
        if !offset.is_multiple_of(self.stub_size) {
            return None;
        }
        u8::try_from(offset / self.stub_size).ok()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum FromRawError {
    Missing(&'static str),
    Stubs(u64),
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Stubs at 0x1000 (16-byte slots), a label after them, and two Rust functions.
    pub fn example() -> Symbols {
        let raw = [
            (0x1000, 0, "trap_stubs"),
            (0x2000, 0, "trap_stubs_end"),
            (0x2000, 0, "trap_common"),
            (
                0x3000,
                0x40,
                "_ZN12guest_kernel6kernel11apf_present17h0123456789abcdefE",
            ),
            (0x3100, 0x10, "dispatch"),
            (0x5000, 0, "idle_enter"),
            (0x5008, 8, "idle_loop"),
            (0x6000, 0x40, "trap_direct_14"),
            (0x6100, 0x40, "trap_direct_243"),
            (0x6200, 0x40, "trap_direct_x"),
        ];
        Symbols::from_raw(raw.into_iter().map(|(a, s, n)| (a, s, n.to_owned()))).unwrap()
    }

    #[test]
    fn names_the_covering_symbol_demangled() {
        let symbols = example();
        assert_eq!(
            symbols.name(0x3000),
            Some("guest_kernel::kernel::apf_present")
        );
        assert_eq!(
            symbols.name(0x303f),
            Some("guest_kernel::kernel::apf_present")
        );
        assert_eq!(symbols.name(0x3040), None, "past the function's size");
        assert_eq!(symbols.name(0x3105), Some("dispatch"));
        assert_eq!(symbols.name(0xfff), None, "below every symbol");
        // The code after the stubs is named for itself, not for the end marker, and its
        // label reaches the next symbol.
        assert_eq!(symbols.name(0x2abc), Some("trap_common"));
        assert_eq!(symbols.name(0x1010), Some("trap_stubs"));
    }

    #[test]
    fn finds_trap_entries_at_slot_starts_only() {
        let symbols = example();
        assert_eq!(symbols.trap_entry(0x1000), Some(0));
        assert_eq!(symbols.trap_entry(0x1000 + 14 * 16), Some(14));
        assert_eq!(symbols.trap_entry(0x1000 + 0xf3 * 16), Some(0xf3));
        assert_eq!(symbols.trap_entry(0x1000 + 14 * 16 + 2), None);
        assert_eq!(symbols.trap_entry(0x2000), None, "past the last stub");
        assert_eq!(symbols.trap_entry(0x800), None);
        assert_eq!(symbols.trap_entry(0x6000), Some(14), "a direct entry");
        assert_eq!(symbols.trap_entry(0x6100), Some(0xf3));
        assert_eq!(symbols.trap_entry(0x6004), None, "inside a direct entry");
        assert_eq!(symbols.trap_entry(0x6200), None, "no vector in the name");
        assert!(symbols.is_idle_enter(0x5000));
        assert!(!symbols.is_idle_enter(0x5008));
    }

    #[test]
    fn refuses_an_elf_without_our_stubs() {
        let raw = [(0x1000u64, 0u64, "trap_stubs".to_owned())];
        assert_eq!(
            Symbols::from_raw(raw.into_iter()).unwrap_err(),
            FromRawError::Missing("trap_stubs_end")
        );
        let uneven = [
            (0x1000, 0, "trap_stubs".to_owned()),
            (0x1001, 0, "trap_stubs_end".to_owned()),
        ];
        assert_eq!(
            Symbols::from_raw(uneven.into_iter()).unwrap_err(),
            FromRawError::Stubs(1)
        );
    }
}
