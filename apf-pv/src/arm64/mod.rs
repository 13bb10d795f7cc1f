//! The arm64 KVM async page fault protocol of Gavin Shan's never-merged v4 series
//! (`arm64-apf-sdei-abi.md` §2): "page not present" arrives as an SDEI event, "page
//! ready" as a PPI, both through one slot of a shared control block, and everything is
//! configured with one SMCCC vendor hypercall. Only an out-of-tree host (or our own)
//! implements it.
//!
//! Pure logic, like [`x86`](crate::x86): the kernel owns the conduit (`sdei`'s `Hvc`),
//! the SDEI registration and the GIC; these functions decide what to send and how to read
//! the block. The usual sequence, per CPU where it says so:
//! 1. [`detect`] the protocol (SMCCC ≥ 1.1, KVM UID, feature bit 2, VERSION ≥ 1);
//! 2. read [`Apf::slots`], [`Apf::sdei_event`] and [`Apf::irq`];
//! 3. register the SDEI event with the `sdei` client, then per CPU enable it and
//!    `PE_UNMASK`, and enable the PPI (level-sensitive);
//! 4. per CPU, [`Apf::enable`] with an [`EnableValue`] of that CPU's [`ControlBlock`]
//!    (an EL1-only kernel needs `send_always`); a broadcast page-ready follows;
//! 5. in the SDEI handler, [`take_not_present`], note the waiter, and complete (never
//!    block there: it may have interrupted IRQ-masked code);
//! 6. in the PPI handler, [`take_page_ready`], wake the waiter(s) (a broadcast wakes all
//!    of this CPU's), then [`Apf::irq_ack`] — always, so the level-triggered line drops.

mod abi;
mod area;
mod discovery;
mod enable;
mod events;
mod hypercall;
mod version;

pub use abi::*;
pub use area::{ControlBlock, Slot};
pub use discovery::{Unavailable, detect};
pub use enable::{EnableValue, Misaligned};
pub use events::{take_not_present, take_page_ready};
pub use hypercall::{Apf, Switch};
pub use version::ApfVersion;
