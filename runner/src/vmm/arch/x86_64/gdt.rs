//! The boot GDT: flat 4 GiB 32-bit code and data segments and a TSS, as the PVH entry state
//! needs. The table written to guest memory and the segment registers loaded into the vCPU come
//! from the same descriptors, so a guest that reloads a selector before switching to its own GDT
//! gets the same segment back.

use kvm_bindings::kvm_segment;
use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};

use super::layout::BOOT_GDT_ADDR;

/// Descriptor flags as Firecracker's `gdt_entry` takes them: the access byte in bits 0..8, the
/// granularity, size, long-mode and available bits in bits 12..16.
const ACCESSED_TYPE_CODE_EXEC_READ: u16 = 0xb;
const ACCESSED_TYPE_DATA_READ_WRITE: u16 = 0x3;
const TYPE_TSS_BUSY: u16 = 0xb;
const CODE_OR_DATA: u16 = 1 << 4;
const PRESENT: u16 = 1 << 7;
const DEFAULT_SIZE_32: u16 = 1 << 14;
const GRANULARITY_4K: u16 = 1 << 15;

const FLAT_LIMIT: u32 = 0xf_ffff;
/// A 32-bit TSS without an I/O bitmap is 104 bytes.
const TSS_LIMIT: u32 = 0x67;

const CODE_FLAGS: u16 =
    GRANULARITY_4K | DEFAULT_SIZE_32 | PRESENT | CODE_OR_DATA | ACCESSED_TYPE_CODE_EXEC_READ;
const DATA_FLAGS: u16 =
    GRANULARITY_4K | DEFAULT_SIZE_32 | PRESENT | CODE_OR_DATA | ACCESSED_TYPE_DATA_READ_WRITE;
const TSS_FLAGS: u16 = PRESENT | TYPE_TSS_BUSY;

pub const CODE_INDEX: u16 = 1;
pub const DATA_INDEX: u16 = 2;
pub const TSS_INDEX: u16 = 3;

/// The table: null, code, data, TSS (KVM requires a usable TR, the PVH spec an active one).
const BOOT_GDT: [u64; 4] = [
    0,
    descriptor(CODE_FLAGS, 0, FLAT_LIMIT),
    descriptor(DATA_FLAGS, 0, FLAT_LIMIT),
    descriptor(TSS_FLAGS, 0, TSS_LIMIT),
];

const DESCRIPTOR_SIZE: u16 = size_of::<u64>() as u16;
/// The GDTR limit: the offset of the table's last byte.
pub const BOOT_GDT_LIMIT: u16 = BOOT_GDT.len() as u16 * DESCRIPTOR_SIZE - 1;

/// Field positions inside a segment descriptor (Intel SDM vol. 3, 3.4.5).
const LIMIT_LOW_BITS: u32 = 16;
const BASE_LOW_SHIFT: u32 = 16;
const BASE_LOW_BITS: u32 = 24;
/// The flags' low byte (the access byte) lands here, their high nibble at `AVL_SHIFT`.
const ACCESS_SHIFT: u32 = 40;
const TYPE_BITS: u32 = 4;
const S_SHIFT: u32 = 44;
const DPL_SHIFT: u32 = 45;
const DPL_BITS: u32 = 2;
const P_SHIFT: u32 = 47;
const LIMIT_HIGH_SHIFT: u32 = 48;
const LIMIT_HIGH_BITS: u32 = 4;
const AVL_SHIFT: u32 = 52;
const L_SHIFT: u32 = 53;
const DB_SHIFT: u32 = 54;
const G_SHIFT: u32 = 55;
const BASE_HIGH_SHIFT: u32 = 56;
const BASE_HIGH_BITS: u32 = 8;
/// Flag bits 8..12 would overlap the limit's high nibble; they are not flags.
const FLAGS_MASK: u64 = 0xf0ff;
/// With 4 KiB granularity the limit counts pages; the byte limit's low 12 bits are ones.
const PAGE_SHIFT: u32 = 12;
const PAGE_OFFSET_MASK: u32 = (1 << PAGE_SHIFT) - 1;

const fn mask(bits: u32) -> u64 {
    (1 << bits) - 1
}

/// Builds a descriptor from flags (see above), a base and a 20-bit limit.
const fn descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (flags as u64, base as u64, limit as u64);
    (limit & mask(LIMIT_LOW_BITS))
        | (base & mask(BASE_LOW_BITS)) << BASE_LOW_SHIFT
        | (flags & FLAGS_MASK) << ACCESS_SHIFT
        | ((limit >> LIMIT_LOW_BITS) & mask(LIMIT_HIGH_BITS)) << LIMIT_HIGH_SHIFT
        | (base >> BASE_LOW_BITS) << BASE_HIGH_SHIFT
}

fn field(descriptor: u64, shift: u32, bits: u32) -> u64 {
    (descriptor >> shift) & mask(bits)
}

fn flag(descriptor: u64, shift: u32) -> u8 {
    u8::from(field(descriptor, shift, 1) == 1)
}

/// The segment register contents for selector `index` of the boot GDT.
pub fn segment(index: u16) -> kvm_segment {
    decode(BOOT_GDT[usize::from(index)], index)
}

/// What the CPU loads into a segment register from `descriptor` at table index `index`.
fn decode(descriptor: u64, index: u16) -> kvm_segment {
    let base = field(descriptor, BASE_LOW_SHIFT, BASE_LOW_BITS)
        | field(descriptor, BASE_HIGH_SHIFT, BASE_HIGH_BITS) << BASE_LOW_BITS;
    let raw_limit = field(descriptor, 0, LIMIT_LOW_BITS)
        | field(descriptor, LIMIT_HIGH_SHIFT, LIMIT_HIGH_BITS) << LIMIT_LOW_BITS;
    let raw_limit = u32::try_from(raw_limit).expect("a 20-bit limit fits in u32");
    let granular = flag(descriptor, G_SHIFT);
    let present = flag(descriptor, P_SHIFT);
    kvm_segment {
        base,
        limit: if granular == 1 {
            (raw_limit << PAGE_SHIFT) | PAGE_OFFSET_MASK
        } else {
            raw_limit
        },
        selector: index * DESCRIPTOR_SIZE,
        type_: u8::try_from(field(descriptor, ACCESS_SHIFT, TYPE_BITS)).expect("4 bits"),
        present,
        dpl: u8::try_from(field(descriptor, DPL_SHIFT, DPL_BITS)).expect("2 bits"),
        db: flag(descriptor, DB_SHIFT),
        s: flag(descriptor, S_SHIFT),
        l: flag(descriptor, L_SHIFT),
        g: granular,
        avl: flag(descriptor, AVL_SHIFT),
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

/// Writes the boot GDT to guest memory at `BOOT_GDT_ADDR`.
pub fn write(memory: &GuestMemoryMmap) -> Result<(), GuestMemoryError> {
    let bytes: Vec<u8> = BOOT_GDT.iter().flat_map(|d| d.to_le_bytes()).collect();
    memory.write_slice(&bytes, GuestAddress(BOOT_GDT_ADDR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryBackend;

    #[test]
    fn descriptors_match_the_usual_encodings() {
        assert_eq!(BOOT_GDT[usize::from(CODE_INDEX)], 0x00cf_9b00_0000_ffff);
        assert_eq!(BOOT_GDT[usize::from(DATA_INDEX)], 0x00cf_9300_0000_ffff);
        assert_eq!(BOOT_GDT[usize::from(TSS_INDEX)], 0x0000_8b00_0000_0067);
        assert_eq!(BOOT_GDT_LIMIT, 31);
    }

    #[test]
    fn code_segment_is_flat_32_bit_exec_read() {
        let cs = segment(CODE_INDEX);
        assert_eq!((cs.base, cs.limit, cs.selector), (0, 0xffff_ffff, 0x8));
        assert_eq!((cs.type_, cs.s, cs.present, cs.dpl), (0xb, 1, 1, 0));
        assert_eq!((cs.db, cs.l, cs.g, cs.unusable), (1, 0, 1, 0));
    }

    #[test]
    fn data_segment_is_flat_read_write() {
        let ds = segment(DATA_INDEX);
        assert_eq!((ds.base, ds.limit, ds.selector), (0, 0xffff_ffff, 0x10));
        assert_eq!((ds.type_, ds.s, ds.present, ds.db, ds.g), (0x3, 1, 1, 1, 1));
    }

    #[test]
    fn tss_is_busy_and_byte_granular() {
        let tr = segment(TSS_INDEX);
        assert_eq!((tr.base, tr.limit, tr.selector), (0, 0x67, 0x18));
        assert_eq!((tr.type_, tr.s, tr.present, tr.g), (0xb, 0, 1, 0));
    }

    #[test]
    fn base_and_limit_are_split_and_rejoined() {
        let d = descriptor(DATA_FLAGS & !GRANULARITY_4K, 0x1234_5678, 0xa_bcde);
        assert_eq!(d, 0x124a_9334_5678_bcde);
        let ds = decode(d, 5);
        assert_eq!(
            (ds.base, ds.limit, ds.selector),
            (0x1234_5678, 0xa_bcde, 0x28)
        );
    }

    #[test]
    fn null_descriptor_is_unusable() {
        assert_eq!(segment(0).unusable, 1);
    }

    #[test]
    fn table_is_written_at_its_address() {
        let memory =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1000)]).expect("memory");
        write(&memory).expect("write");
        let code: u64 = memory
            .read_obj(GuestAddress(BOOT_GDT_ADDR + u64::from(CODE_INDEX) * 8))
            .expect("read");
        assert_eq!(code, BOOT_GDT[usize::from(CODE_INDEX)]);
        assert!(memory.last_addr().0 > BOOT_GDT_ADDR + u64::from(BOOT_GDT_LIMIT));
    }
}
