//! Entry from QEMU: the boot CPU arrives at `_start` at EL2 with the MMU off and no stack.
//! Puts EL2 in a known state, sets up the stack, clears `.bss` and calls `host_main`.
//!
//! The top [`frame::SIZE`] bytes of the stack are kept for the guest's saved registers: while
//! the guest runs, the EL2 stack is empty, so an exit's vector saves the guest's registers
//! exactly there (see `vectors`).

use core::arch::global_asm;
use el2_host::frame;

/// `HCR_EL2` while the host boots: `RW` (bit 31), EL1 is AArch64; no traps, no stage 2 yet.
const HCR_EL2_BOOT: u64 = 1 << 31;
/// `CPTR_EL2` (E2H = 0 layout): the RES1 bits 13, 9 and 7:0, with `TFP` (bit 10), `TZ`
/// and `TSM` clear so neither the host's nor the guest's SIMD/FP use traps (Rust uses NEON).
const CPTR_EL2_NO_TRAPS: u64 = 0x22ff;
/// `SCTLR_EL2`: its RES1 bits (29:28, 23:22, 18, 16, 11, 5:4), MMU, caches and alignment
/// checking off: the host runs on physical addresses.
const SCTLR_EL2_MMU_OFF: u64 = 0x30c5_0830;
/// `MPIDR_EL1.Aff0` (bits 7:0): only CPU 0 runs the host, others park.
const MPIDR_AFF0_MASK: u64 = 0xff;

global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    mrs x0, mpidr_el1
    and x0, x0, #{aff0_mask}
    cbnz x0, 2f
    ldr x0, ={hcr}
    msr hcr_el2, x0
    ldr x0, ={cptr}
    msr cptr_el2, x0
    ldr x0, ={sctlr}
    msr sctlr_el2, x0
    isb
    adrp x0, __el2_stack_top
    add x0, x0, :lo12:__el2_stack_top
    sub sp, x0, #{frame_size}
    adrp x0, __bss_start
    add x0, x0, :lo12:__bss_start
    adrp x1, __bss_end
    add x1, x1, :lo12:__bss_end
1:  cmp x0, x1
    b.hs 3f
    str xzr, [x0], #8
    b 1b
3:  bl host_main
2:  wfe
    b 2b
"#,
    aff0_mask = const MPIDR_AFF0_MASK,
    hcr = const HCR_EL2_BOOT,
    cptr = const CPTR_EL2_NO_TRAPS,
    sctlr = const SCTLR_EL2_MMU_OFF,
    frame_size = const frame::SIZE,
);

unsafe extern "C" {
    /// The top of the EL2 stack (link.ld).
    static __el2_stack_top: u8;
}

/// Where the vectors save the guest's registers: the top [`frame::SIZE`] bytes of the stack.
pub fn guest_frame() -> *mut frame::Frame {
    (&raw const __el2_stack_top as usize - frame::SIZE) as *mut frame::Frame
}
