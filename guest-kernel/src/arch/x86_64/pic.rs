//! The legacy 8259 PICs: the firmware leaves them delivering the PIT's IRQ 0 on vector 8,
//! which would look like a double fault. They are moved to unused vectors and masked; the
//! local APIC does all interrupt work.

use pic8259::ChainedPics;

/// Vectors 0xE0..0xEF: above the exceptions and the kernel's own vectors, so a spurious
/// PIC interrupt is reported as unexpected instead of mistaken for something else.
const PIC_VECTOR_BASE: u8 = 0xE0;

pub fn disable() {
    // SAFETY: the PICs are standard PC devices; remapping and masking them only stops
    // their interrupts.
    unsafe {
        let mut pics = ChainedPics::new_contiguous(PIC_VECTOR_BASE);
        pics.initialize();
        pics.disable();
    }
}
