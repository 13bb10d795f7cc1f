//! Exception classes (ESR_ELx.EC, Arm ARM D23.2.41 "ESR_EL1") the kernel names in reports.

/// SVC from AArch64: a system call.
pub const SVC64: u64 = 0x15;
/// SError interrupt.
pub const SERROR: u64 = 0x2F;
const UNKNOWN: u64 = 0x00;
const TRAPPED_WF: u64 = 0x01;
const TRAPPED_FP: u64 = 0x07;
const ILLEGAL_STATE: u64 = 0x0E;
const TRAPPED_SYSREG: u64 = 0x18;
const INSTRUCTION_ABORT_LOWER: u64 = 0x20;
const INSTRUCTION_ABORT_SAME: u64 = 0x21;
const PC_ALIGNMENT: u64 = 0x22;
const DATA_ABORT_LOWER: u64 = 0x24;
const DATA_ABORT_SAME: u64 = 0x25;
const SP_ALIGNMENT: u64 = 0x26;
const FP_EXCEPTION: u64 = 0x2C;
const BRK: u64 = 0x3C;

/// Name of exception class `class`, for reports.
pub fn name(class: u64) -> &'static str {
    match class {
        UNKNOWN => "undefined instruction",
        TRAPPED_WF => "trapped WFI/WFE",
        TRAPPED_FP => "trapped FP/SIMD access",
        ILLEGAL_STATE => "illegal execution state",
        SVC64 => "SVC from EL1",
        TRAPPED_SYSREG => "trapped system register access",
        INSTRUCTION_ABORT_LOWER | INSTRUCTION_ABORT_SAME => "instruction abort",
        PC_ALIGNMENT => "PC alignment fault",
        DATA_ABORT_LOWER | DATA_ABORT_SAME => "data abort",
        SP_ALIGNMENT => "SP alignment fault",
        FP_EXCEPTION => "FP exception",
        SERROR => "SError",
        BRK => "BRK (breakpoint)",
        _ => "unexpected exception class",
    }
}

/// Whether FAR_EL1 holds the faulting address for exceptions of class `class`.
pub fn has_address(class: u64) -> bool {
    matches!(
        class,
        INSTRUCTION_ABORT_LOWER
            | INSTRUCTION_ABORT_SAME
            | PC_ALIGNMENT
            | DATA_ABORT_LOWER
            | DATA_ABORT_SAME
    )
}
