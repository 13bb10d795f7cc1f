//! The GICv3 list register encoding (`ICH_LR<n>_EL2`, GIC architecture spec IHI 0069) and
//! the choice of which register to write when the host raises a virtual interrupt.
//!
//! Two kinds of virtual interrupts: the page-ready PPI, purely virtual (`HW` = 0, the
//! guest's EOI ends it), and physical interrupts forwarded to the guest (its timers),
//! hardware-linked (`HW` = 1, `pINTID` = the physical INTID): the host only drops their
//! priority, and the guest's EOI of the virtual interrupt deactivates the physical one, so
//! a level-sensitive timer cannot fire again before the guest has handled it.

/// `State`, bits 63:62.
const STATE_SHIFT: u32 = 62;
const STATE_MASK: u64 = 0b11;
const STATE_INVALID: u64 = 0b00;
const STATE_PENDING: u64 = 0b01;
const STATE_ACTIVE: u64 = 0b10;
const STATE_PENDING_ACTIVE: u64 = 0b11;
/// `HW`, bit 61: the virtual interrupt is linked to physical `pINTID`.
const HW: u64 = 1 << 61;
/// `Group`, bit 60: Group 1 (the guest takes it as an IRQ).
const GROUP1: u64 = 1 << 60;
/// `Priority`, bits 55:48: one value for all; the guest's `ICC_PMR_EL1` lets it through.
const PRIORITY: u64 = 0xa0 << 48;
/// `pINTID`, bits 44:32, when `HW` is set.
const PINTID_SHIFT: u32 = 32;
/// `vINTID`, bits 31:0.
const VINTID_MASK: u64 = 0xffff_ffff;

/// How the interrupt to raise relates to the hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Purely virtual: the guest's EOI ends it.
    Virtual,
    /// Forwarded physical interrupt with the same INTID.
    Forwarded,
}

/// What raising an interrupt takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Write `value` to list register `index`.
    Write { index: usize, value: u64 },
    /// It is already pending: nothing to do.
    AlreadyPending,
    /// Every list register is busy with other interrupts.
    NoneFree,
}

fn state(lr: u64) -> u64 {
    (lr >> STATE_SHIFT) & STATE_MASK
}

fn vintid(lr: u64) -> u32 {
    (lr & VINTID_MASK) as u32
}

/// Whether a list register in `lrs` holds `intid` (pending, active or both).
pub fn holds(lrs: &[u64], intid: u32) -> bool {
    lrs.iter()
        .any(|&lr| state(lr) != STATE_INVALID && vintid(lr) == intid)
}

/// Where to make `intid` pending: the register already holding it (a virtual interrupt the
/// guest is still handling becomes pending and active, so it is taken again after the
/// EOI: a level line still high), else a free one.
pub fn plan(lrs: &[u64], intid: u32, kind: Kind) -> Plan {
    let mut base = GROUP1 | PRIORITY | u64::from(intid);
    if kind == Kind::Forwarded {
        base |= HW | (u64::from(intid) << PINTID_SHIFT);
    }
    let held = lrs
        .iter()
        .position(|&lr| state(lr) != STATE_INVALID && vintid(lr) == intid);
    match held {
        Some(index) => match state(lrs[index]) {
            // A forwarded interrupt cannot recur while its physical one is still active.
            STATE_ACTIVE if kind == Kind::Virtual => Plan::Write {
                index,
                value: (STATE_PENDING_ACTIVE << STATE_SHIFT) | base,
            },
            _ => Plan::AlreadyPending,
        },
        None => match lrs.iter().position(|&lr| state(lr) == STATE_INVALID) {
            Some(index) => Plan::Write {
                index,
                value: (STATE_PENDING << STATE_SHIFT) | base,
            },
            None => Plan::NoneFree,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE_READY: u32 = 22;
    const TIMER: u32 = 27;

    #[test]
    fn virtual_pending_matches_the_probe() {
        // The a64-el2-probe injected vINTID 27 with ICH_LR0_EL2 = 0x50a000000000001b.
        assert_eq!(
            plan(&[0; 4], TIMER, Kind::Virtual),
            Plan::Write {
                index: 0,
                value: 0x50a0_0000_0000_001b
            }
        );
    }

    #[test]
    fn forwarded_interrupts_link_the_physical_intid() {
        let Plan::Write { index, value } =
            plan(&[u64::MAX >> 2 | 1 << 62, 0, 0, 0], TIMER, Kind::Forwarded)
        else {
            panic!("no write")
        };
        assert_eq!(index, 1);
        assert_eq!(value, 0x70a0_001b_0000_001b);
        assert!(holds(&[value, 0], TIMER));
    }

    #[test]
    fn a_virtual_interrupt_in_service_is_raised_again() {
        let active = (STATE_ACTIVE << STATE_SHIFT) | GROUP1 | PRIORITY | u64::from(PAGE_READY);
        assert_eq!(
            plan(&[0, active], PAGE_READY, Kind::Virtual),
            Plan::Write {
                index: 1,
                value: active | (STATE_PENDING << STATE_SHIFT)
            }
        );
        let pending = (STATE_PENDING << STATE_SHIFT) | u64::from(PAGE_READY);
        assert_eq!(
            plan(&[pending], PAGE_READY, Kind::Virtual),
            Plan::AlreadyPending
        );
        let forwarded_active = (STATE_ACTIVE << STATE_SHIFT) | HW | u64::from(TIMER);
        assert_eq!(
            plan(&[forwarded_active], TIMER, Kind::Forwarded),
            Plan::AlreadyPending
        );
    }

    #[test]
    fn busy_registers() {
        let busy = (STATE_PENDING << STATE_SHIFT) | u64::from(TIMER);
        assert_eq!(plan(&[busy; 4], PAGE_READY, Kind::Virtual), Plan::NoneFree);
        assert!(!holds(&[busy; 4], PAGE_READY));
        assert!(
            !holds(&[u64::from(PAGE_READY)], PAGE_READY),
            "invalid state holds nothing"
        );
    }
}
