//! Stage-2 translation tables: descriptor encoding and the identity mapper (Arm ARM,
//! "Translation table descriptor formats" and "Stage 2 memory type and Cacheability
//! attributes when FEAT_S2FWB is disabled").
//!
//! Geometry (must match `VTCR_EL2`, see the bin's `stage2` module): 4 KiB granule, 32-bit
//! IPA space (T0SZ = 32), walks start at level 1. Tables come from a fixed pool and are
//! named by physical address in descriptors; the pool is identity-mapped for the host
//! (MMU off), so a table's PA is its index times 4 KiB past the pool's base.

/// Entries per table with a 4 KiB granule.
pub const ENTRIES: usize = 512;
/// Bytes mapped by one level-3 page.
pub const PAGE_SIZE: u64 = 4096;
/// Bytes mapped by one level-2 block.
pub const BLOCK_SIZE: u64 = 2 << 20;
/// IPA bits the tables translate (`VTCR_EL2.T0SZ` = 64 - 32).
pub const IPA_BITS: u32 = 32;

/// Descriptor bits 1:0 at levels 1-2: a block.
const KIND_BLOCK: u64 = 0b01;
/// Descriptor bits 1:0: a table (levels 1-2) or a page (level 3).
const KIND_TABLE_OR_PAGE: u64 = 0b11;
/// Descriptor bit 0: valid.
const VALID: u64 = 1 << 0;
const KIND_MASK: u64 = 0b11;
/// Output address bits 47:12.
const ADDRESS_MASK: u64 = 0x0000_ffff_ffff_f000;
/// Stage-2 `MemAttr` (bits 5:2), Normal, Outer and Inner Write-Back Cacheable.
const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
/// Stage-2 `MemAttr`, Device-nGnRE.
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
/// `S2AP` (bits 7:6): read and write.
const S2AP_READ_WRITE: u64 = 0b11 << 6;
/// `SH` (bits 9:8): Inner Shareable.
const SH_INNER: u64 = 0b11 << 8;
/// Access flag (bit 10): set, so the first access does not fault.
const AF: u64 = 1 << 10;
/// `XN[1]` (bit 54): not executable at EL1 or EL0.
const XN: u64 = 1 << 54;

/// Levels of the walk and the IPA bit each one's index starts at.
const LEVEL1_SHIFT: u32 = 30;
const LEVEL2_SHIFT: u32 = 21;
const LEVEL3_SHIFT: u32 = 12;
const INDEX_MASK: u64 = ENTRIES as u64 - 1;

/// What kind of memory a mapping is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// RAM: cacheable, executable.
    Normal,
    /// MMIO: Device-nGnRE, never executable.
    Device,
}

impl Memory {
    /// Attribute bits of a block or page descriptor for this kind of memory.
    const fn attributes(self) -> u64 {
        match self {
            Memory::Normal => AF | SH_INNER | S2AP_READ_WRITE | MEMATTR_NORMAL_WB,
            Memory::Device => AF | S2AP_READ_WRITE | MEMATTR_DEVICE_NGNRE | XN,
        }
    }
}

/// A level-1/2 descriptor pointing to the next-level table at `pa`.
pub const fn table_descriptor(pa: u64) -> u64 {
    (pa & ADDRESS_MASK) | KIND_TABLE_OR_PAGE
}

/// A level-2 descriptor mapping the 2 MiB block at `pa`.
pub const fn block_descriptor(pa: u64, memory: Memory) -> u64 {
    (pa & ADDRESS_MASK) | memory.attributes() | KIND_BLOCK
}

/// A level-3 descriptor mapping the 4 KiB page at `pa`.
pub const fn page_descriptor(pa: u64, memory: Memory) -> u64 {
    (pa & ADDRESS_MASK) | memory.attributes() | KIND_TABLE_OR_PAGE
}

/// One translation table, aligned as the architecture requires.
#[derive(Clone)]
#[repr(C, align(4096))]
pub struct Table(pub [u64; ENTRIES]);

impl Table {
    pub const EMPTY: Table = Table([0; ENTRIES]);
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The table pool is used up.
    OutOfTables,
    /// The address is outside the IPA space or not aligned to the mapping size.
    BadAddress,
    /// A page was asked for inside a 2 MiB block that is already mapped whole.
    InsideBlock,
}

/// The stage-2 tables of the one guest, over a pool whose first table is the level-1 root.
pub struct Stage2<'a> {
    pool: &'a mut [Table],
    /// Physical address of `pool[0]`.
    base: u64,
    used: usize,
}

impl<'a> Stage2<'a> {
    /// Empty tables in `pool`, which starts at physical address `base`.
    pub fn new(pool: &'a mut [Table], base: u64) -> Self {
        pool[0] = Table::EMPTY;
        Self {
            pool,
            base,
            used: 1,
        }
    }

    /// The root table's physical address, for `VTTBR_EL2.BADDR`.
    pub fn root(&self) -> u64 {
        self.base
    }

    /// Tables in use, the root included.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    fn index(ipa: u64, shift: u32) -> usize {
        ((ipa >> shift) & INDEX_MASK) as usize
    }

    fn check(ipa: u64, size: u64) -> Result<(), Error> {
        if ipa >> IPA_BITS != 0 || !ipa.is_multiple_of(size) {
            return Err(Error::BadAddress);
        }
        Ok(())
    }

    /// The pool index of the table a table descriptor points to.
    fn table_at(&self, descriptor: u64) -> usize {
        ((descriptor & ADDRESS_MASK) - self.base) as usize / core::mem::size_of::<Table>()
    }

    /// The level-2 table covering `ipa`, made if needed.
    fn level2(&mut self, ipa: u64) -> Result<usize, Error> {
        self.next_table(0, Self::index(ipa, LEVEL1_SHIFT))
    }

    /// The table that entry `index` of table `table` points to, made (empty) if the entry is
    /// invalid.
    fn next_table(&mut self, table: usize, index: usize) -> Result<usize, Error> {
        let entry = self.pool[table].0[index];
        if entry & VALID != 0 {
            if entry & KIND_MASK != KIND_TABLE_OR_PAGE {
                return Err(Error::InsideBlock);
            }
            return Ok(self.table_at(entry));
        }
        if self.used == self.pool.len() {
            return Err(Error::OutOfTables);
        }
        let new = self.used;
        self.used += 1;
        self.pool[new] = Table::EMPTY;
        let pa = self.base + (new * core::mem::size_of::<Table>()) as u64;
        self.pool[table].0[index] = table_descriptor(pa);
        Ok(new)
    }

    /// Identity-maps the 2 MiB block at `ipa`.
    pub fn map_block(&mut self, ipa: u64, memory: Memory) -> Result<(), Error> {
        Self::check(ipa, BLOCK_SIZE)?;
        let level2 = self.level2(ipa)?;
        self.pool[level2].0[Self::index(ipa, LEVEL2_SHIFT)] = block_descriptor(ipa, memory);
        Ok(())
    }

    /// Identity-maps the 4 KiB page at `ipa`. Turning an invalid entry valid needs no TLB
    /// maintenance (no TLB may hold an invalid entry).
    pub fn map_page(&mut self, ipa: u64, memory: Memory) -> Result<(), Error> {
        Self::check(ipa, PAGE_SIZE)?;
        let level2 = self.level2(ipa)?;
        let level3 = self.next_table(level2, Self::index(ipa, LEVEL2_SHIFT))?;
        self.pool[level3].0[Self::index(ipa, LEVEL3_SHIFT)] = page_descriptor(ipa, memory);
        Ok(())
    }

    /// The level-3 descriptor of `ipa`, or 0 when no page table covers it.
    pub fn page_entry(&self, ipa: u64) -> u64 {
        let walk = |table: usize, shift: u32| {
            let entry = self.pool[table].0[Self::index(ipa, shift)];
            (entry & KIND_MASK == KIND_TABLE_OR_PAGE).then(|| self.table_at(entry))
        };
        walk(0, LEVEL1_SHIFT)
            .and_then(|level2| walk(level2, LEVEL2_SHIFT))
            .map_or(0, |level3| {
                self.pool[level3].0[Self::index(ipa, LEVEL3_SHIFT)]
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x5f10_0000;

    fn pool(n: usize) -> Vec<Table> {
        vec![Table::EMPTY; n]
    }

    #[test]
    fn descriptors_match_the_probe() {
        // The a64-el2-probe's working RAM page and device block descriptors.
        assert_eq!(
            page_descriptor(0x4400_0000, Memory::Normal),
            0x4400_0000 | 0x7ff
        );
        assert_eq!(block_descriptor(0, Memory::Device), 0x0040_0000_0000_04c5);
        assert_eq!(table_descriptor(0x4008_7000), 0x4008_7003);
    }

    #[test]
    fn pages_share_tables_and_walk_back() {
        let mut tables = pool(4);
        let mut s2 = Stage2::new(&mut tables, BASE);
        s2.map_page(0x4400_0000, Memory::Normal).unwrap();
        s2.map_page(0x4400_1000, Memory::Normal).unwrap();
        assert_eq!(s2.tables_used(), 3, "root, one level 2, one level 3");
        assert_eq!(
            s2.page_entry(0x4400_1000),
            page_descriptor(0x4400_1000, Memory::Normal)
        );
        assert_eq!(s2.page_entry(0x4400_2000), 0, "not mapped");
        assert_eq!(s2.page_entry(0x8000_0000), 0, "no table");
        // The level-1 entry points at the second table of the pool.
        assert_eq!(tables[0].0[1], table_descriptor(BASE + 4096));
    }

    #[test]
    fn blocks_and_their_limits() {
        let mut tables = pool(3);
        let mut s2 = Stage2::new(&mut tables, BASE);
        s2.map_block(0x4000_0000, Memory::Normal).unwrap();
        assert_eq!(
            s2.map_page(0x4000_1000, Memory::Normal),
            Err(Error::InsideBlock)
        );
        assert_eq!(
            s2.map_block(0x4000_1000, Memory::Normal),
            Err(Error::BadAddress)
        );
        assert_eq!(s2.map_page(1 << 32, Memory::Normal), Err(Error::BadAddress));
        s2.map_page(0x4020_0000, Memory::Normal).unwrap();
        assert_eq!(
            s2.map_page(0x0900_0000, Memory::Device),
            Err(Error::OutOfTables)
        );
    }
}
