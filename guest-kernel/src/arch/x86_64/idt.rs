//! The IDT: every vector goes to its entry in [`super::entry`]; #DF gets its own stack, and
//! #BP is the system-call gate.

use super::entry::{entry_address, stubs_fit};
use super::gdt::DOUBLE_FAULT_IST;
use super::trap::SYSCALL_VECTOR;
use spin::Once;
use x86_64::PrivilegeLevel;
use x86_64::VirtAddr;
use x86_64::structures::idt::{EntryOptions, InterruptDescriptorTable};

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Builds and loads the IDT.
pub fn init() {
    assert!(stubs_fit(), "an interrupt stub is larger than its slot");
    IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        for vector in 0..=u8::MAX {
            let addr = VirtAddr::new(entry_address(vector));
            // SAFETY: each stub saves a full frame and returns with iretq.
            if let Some(options) = unsafe { set_handler(&mut idt, vector, addr) } {
                if vector == SYSCALL_VECTOR {
                    // The one gate ring 3 may use: system calls.
                    options.set_privilege_level(PrivilegeLevel::Ring3);
                }
                if vector == x86_64::structures::idt::ExceptionVector::Double as u8 {
                    // SAFETY: the IST slot holds a dedicated, otherwise unused stack.
                    unsafe { options.set_stack_index(DOUBLE_FAULT_IST) };
                }
            }
        }
        idt
    })
    .load();
}

/// Installs `addr` for `vector`; `None` for reserved vectors, which stay not-present.
///
/// # Safety
/// `addr` must be a valid interrupt handler.
unsafe fn set_handler(
    idt: &mut InterruptDescriptorTable,
    vector: u8,
    addr: VirtAddr,
) -> Option<&mut EntryOptions> {
    // SAFETY: forwarded from the caller.
    unsafe {
        Some(match vector {
            8 => idt.double_fault.set_handler_addr(addr),
            10 => idt.invalid_tss.set_handler_addr(addr),
            11 => idt.segment_not_present.set_handler_addr(addr),
            12 => idt.stack_segment_fault.set_handler_addr(addr),
            13 => idt.general_protection_fault.set_handler_addr(addr),
            14 => idt.page_fault.set_handler_addr(addr),
            17 => idt.alignment_check.set_handler_addr(addr),
            18 => idt.machine_check.set_handler_addr(addr),
            21 => idt.cp_protection_exception.set_handler_addr(addr),
            29 => idt.vmm_communication_exception.set_handler_addr(addr),
            30 => idt.security_exception.set_handler_addr(addr),
            15 | 22..=27 | 31 => return None,
            _ => idt[vector].set_handler_addr(addr),
        })
    }
}
