//! Event numbers and the encodings of the per-event calls' arguments and results
//! (DEN 0054 §5.1; Linux `include/uapi/linux/arm_sdei.h`).

/// An SDEI event number. Event 0 is the standard software-signalled event; numbers such
/// as KVM's 0x40400001 are implementation defined (their class bits are unconfirmed, so
/// this crate gives them no structure).
pub type EventNumber = u32;

/// `EVENT_REGISTER` flags bit 0 / `EVENT_ROUTING_SET` mode: route to any PE.
pub const RM_ANY: u64 = 0;
/// `EVENT_REGISTER` flags bit 0 / `EVENT_ROUTING_SET` mode: route to the PE in the
/// affinity argument.
pub const RM_PE: u64 = 1;

/// Where a shared event is dispatched. Private events ignore it (pass [`Routing::Any`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Any PE that can take it.
    Any,
    /// The PE with this `MPIDR_EL1` affinity (Aff3..Aff0 fields).
    Pe(u64),
}

impl Routing {
    /// The routing mode: flags for `EVENT_REGISTER`, mode for `EVENT_ROUTING_SET`.
    /// The v1.1 "entry point relative to VBAR" flag (bit 1) is left clear: its encoding is
    /// unconfirmed.
    pub const fn mode(self) -> u64 {
        match self {
            Self::Any => RM_ANY,
            Self::Pe(_) => RM_PE,
        }
    }

    /// The affinity argument (ignored by the dispatcher for [`Routing::Any`]).
    pub const fn affinity(self) -> u64 {
        match self {
            Self::Any => 0,
            Self::Pe(mpidr) => mpidr,
        }
    }
}

/// `EVENT_STATUS` result bit: the event is registered.
const STATUS_REGISTERED: u64 = 1 << 0;
/// `EVENT_STATUS` result bit: the event is enabled.
const STATUS_ENABLED: u64 = 1 << 1;
/// `EVENT_STATUS` result bit: a handler for the event is running.
const STATUS_RUNNING: u64 = 1 << 2;

/// The state of an event as `EVENT_STATUS` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventStatus {
    pub registered: bool,
    pub enabled: bool,
    pub running: bool,
}

impl EventStatus {
    /// Decodes the status bits.
    pub const fn from_bits(bits: u64) -> Self {
        Self {
            registered: bits & STATUS_REGISTERED != 0,
            enabled: bits & STATUS_ENABLED != 0,
            running: bits & STATUS_RUNNING != 0,
        }
    }
}

/// What `EVENT_GET_INFO` is asked for (its `info` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum InfoQuery {
    /// Private or shared: see [`EventType`].
    Type = 0,
    /// 1 if the event can be raised with `EVENT_SIGNAL`.
    Signaled = 1,
    /// Normal or critical: see [`Priority`].
    Priority = 2,
    /// The routing mode of a shared event ([`RM_ANY`] / [`RM_PE`]).
    RoutingMode = 3,
    /// The routing affinity of a shared event.
    RoutingAffinity = 4,
}

/// Whether each PE has its own instance of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// One instance per PE, registered and enabled per PE (KVM's async PF event).
    Private,
    /// One instance, routed to a PE.
    Shared,
}

impl EventType {
    /// Decodes the [`InfoQuery::Type`] result; `None` for an undefined value.
    pub const fn from_info(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::Private),
            1 => Some(Self::Shared),
            _ => None,
        }
    }
}

/// How an event competes with running handlers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Never preempts a running handler.
    Normal,
    /// Preempts a running normal handler; nothing preempts it.
    Critical,
}

impl Priority {
    /// Decodes the [`InfoQuery::Priority`] result; `None` for an undefined value.
    pub const fn from_info(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::Normal),
            1 => Some(Self::Critical),
            _ => None,
        }
    }
}

/// What `FEATURES` (SDEI v1.1) is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Feature {
    /// How many interrupts can be bound: see [`BindSlots`].
    BindSlots = 0,
    /// Support of VBAR-relative entry points (result format unconfirmed: kept raw).
    RelativeMode = 1,
}

/// `FEATURES(BIND_SLOTS)` result: each slot count is a 16-bit field, private in bits 15:0.
const BIND_SLOTS_COUNT_MASK: u64 = 0xffff;
/// `FEATURES(BIND_SLOTS)` result bits 31:16: shared binding slots.
const BIND_SLOTS_SHARED_SHIFT: u32 = 16;

/// How many interrupts `INTERRUPT_BIND` can still turn into events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindSlots {
    pub private: u16,
    pub shared: u16,
}

impl BindSlots {
    /// Decodes the [`Feature::BindSlots`] result.
    pub const fn from_x0(x0: u64) -> Self {
        Self {
            private: (x0 & BIND_SLOTS_COUNT_MASK) as u16,
            shared: ((x0 >> BIND_SLOTS_SHARED_SHIFT) & BIND_SLOTS_COUNT_MASK) as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_encoding() {
        assert_eq!((Routing::Any.mode(), Routing::Any.affinity()), (0, 0));
        let pe = Routing::Pe(0x0100_0203);
        assert_eq!((pe.mode(), pe.affinity()), (1, 0x0100_0203));
    }

    #[test]
    fn status_bits() {
        assert_eq!(EventStatus::from_bits(0), EventStatus::default());
        let s = EventStatus::from_bits(0b011);
        assert!(s.registered && s.enabled && !s.running);
        let s = EventStatus::from_bits(0b101);
        assert!(s.registered && !s.enabled && s.running);
    }

    #[test]
    fn info_queries_and_results() {
        let queries = [
            InfoQuery::Type,
            InfoQuery::Signaled,
            InfoQuery::Priority,
            InfoQuery::RoutingMode,
            InfoQuery::RoutingAffinity,
        ];
        assert_eq!(queries.map(|q| q as u64), [0, 1, 2, 3, 4]);
        assert_eq!(EventType::from_info(0), Some(EventType::Private));
        assert_eq!(EventType::from_info(1), Some(EventType::Shared));
        assert_eq!(EventType::from_info(2), None);
        assert_eq!(Priority::from_info(0), Some(Priority::Normal));
        assert_eq!(Priority::from_info(1), Some(Priority::Critical));
        assert_eq!(Priority::from_info(2), None);
    }

    #[test]
    fn bind_slots() {
        assert_eq!(Feature::BindSlots as u64, 0);
        assert_eq!(Feature::RelativeMode as u64, 1);
        assert_eq!(
            BindSlots::from_x0(0xdead_0003_0010),
            BindSlots {
                private: 0x10,
                shared: 3
            }
        );
    }
}
