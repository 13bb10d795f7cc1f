//! SDEI function IDs (DEN 0054 §5; the spec's table in `arm64-apf-sdei-abi.md` §3.1).
//!
//! All are SMC64 fast calls owned by the standard secure service, numbered from
//! [`FUNCTION_BASE`]; the same IDs are used over `hvc` when a hypervisor implements SDEI.

use crate::smccc::{Convention, Owner, fast_call_id};

/// Function number of `SDEI_VERSION`; the SDEI range is 0x20..=0x3F of the owner's space.
pub const FUNCTION_BASE: u16 = 0x20;

/// The ID of the SDEI call `offset` past [`FUNCTION_BASE`].
const fn sdei(offset: u16) -> u32 {
    fast_call_id(
        Convention::Smc64,
        Owner::StandardSecure,
        FUNCTION_BASE + offset,
    )
}

/// Implemented SDEI version and vendor.
pub const VERSION: u32 = sdei(0x00);
/// Registers an entry point and argument for an event (disabled until enabled).
pub const EVENT_REGISTER: u32 = sdei(0x01);
/// Allows a registered event to be dispatched.
pub const EVENT_ENABLE: u32 = sdei(0x02);
/// Stops dispatching an event; it stays registered.
pub const EVENT_DISABLE: u32 = sdei(0x03);
/// Reads register `x0..x17` of the interrupted context (only inside a handler).
pub const EVENT_CONTEXT: u32 = sdei(0x04);
/// Ends a handler and resumes the interrupted context; does not return on success.
pub const EVENT_COMPLETE: u32 = sdei(0x05);
/// Ends a handler and resumes at an address as if an exception had been taken there.
pub const EVENT_COMPLETE_AND_RESUME: u32 = sdei(0x06);
/// Removes a registration (`PENDING` while the handler runs; done at its completion).
pub const EVENT_UNREGISTER: u32 = sdei(0x07);
/// Registered / enabled / running bits of an event.
pub const EVENT_STATUS: u32 = sdei(0x08);
/// Static information about an event (type, priority, routing, ...).
pub const EVENT_GET_INFO: u32 = sdei(0x09);
/// Changes the routing of a shared event.
pub const EVENT_ROUTING_SET: u32 = sdei(0x0A);
/// Masks event dispatch to the calling PE.
pub const PE_MASK: u32 = sdei(0x0B);
/// Unmasks event dispatch to the calling PE.
pub const PE_UNMASK: u32 = sdei(0x0C);
/// Turns an interrupt into a (dynamic) event.
pub const INTERRUPT_BIND: u32 = sdei(0x0D);
/// Releases an event made by [`INTERRUPT_BIND`].
pub const INTERRUPT_RELEASE: u32 = sdei(0x0E);
/// Signals event 0 to a PE (SDEI v1.1).
pub const EVENT_SIGNAL: u32 = sdei(0x0F);
/// Optional features (SDEI v1.1).
pub const FEATURES: u32 = sdei(0x10);
/// Unregisters all private events of the calling PE.
pub const PRIVATE_RESET: u32 = sdei(0x11);
/// Unregisters all shared events and releases interrupt bindings.
pub const SHARED_RESET: u32 = sdei(0x12);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ID against the literal value of the SDEI specification's table.
    #[test]
    fn ids_match_the_specification() {
        let table = [
            (VERSION, 0xC400_0020),
            (EVENT_REGISTER, 0xC400_0021),
            (EVENT_ENABLE, 0xC400_0022),
            (EVENT_DISABLE, 0xC400_0023),
            (EVENT_CONTEXT, 0xC400_0024),
            (EVENT_COMPLETE, 0xC400_0025),
            (EVENT_COMPLETE_AND_RESUME, 0xC400_0026),
            (EVENT_UNREGISTER, 0xC400_0027),
            (EVENT_STATUS, 0xC400_0028),
            (EVENT_GET_INFO, 0xC400_0029),
            (EVENT_ROUTING_SET, 0xC400_002A),
            (PE_MASK, 0xC400_002B),
            (PE_UNMASK, 0xC400_002C),
            (INTERRUPT_BIND, 0xC400_002D),
            (INTERRUPT_RELEASE, 0xC400_002E),
            (EVENT_SIGNAL, 0xC400_002F),
            (FEATURES, 0xC400_0030),
            (PRIVATE_RESET, 0xC400_0031),
            (SHARED_RESET, 0xC400_0032),
        ];
        for (id, expected) in table {
            assert_eq!(id, expected, "{id:#x}");
        }
    }
}
