//! Every client call against a recording fake firmware: function ID, argument registers,
//! result decoding and error mapping.

use super::{Sdei, Unavailable};
use crate::{
    BindSlots, CompleteStatus, EventStatus, EventType, Feature, InfoQuery, MockConduit, Priority,
    Routing, SdeiError, SdeiVersion,
};

/// KVM's async PF event in Gavin Shan's v4 series.
const EVENT: u32 = 0x4040_0001;

/// `x0` as the firmware returns a negative code.
fn code(value: i64) -> u64 {
    value as u64
}

/// Runs `f` against a firmware answering `x0` to every call; returns the result and the
/// one call it must have made.
fn one_call<T>(x0: u64, f: impl FnOnce(&Sdei<&dyn crate::Conduit>) -> T) -> (T, [u64; 6]) {
    let firmware = MockConduit::replying([x0, 0, 0, 0]);
    let result = f(&Sdei::new(&firmware as &dyn crate::Conduit));
    let calls = firmware.calls();
    assert_eq!(calls.len(), 1, "{calls:x?}");
    (result, calls[0])
}

#[test]
fn probe_accepts_major_1() {
    let firmware = MockConduit::replying([0x0001_0001_004b_564d, 0, 0, 0]);
    let (_, version) = Sdei::probe(&firmware).unwrap();
    assert_eq!(
        (version.major, version.minor, version.vendor),
        (1, 1, 0x4b564d)
    );
    assert_eq!(firmware.calls(), [[0xC400_0020, 0, 0, 0, 0, 0]]);
}

#[test]
fn probe_rejects_missing_sdei_and_other_majors() {
    let firmware = MockConduit::replying([code(-1), 0, 0, 0]);
    assert_eq!(
        Sdei::probe(&firmware).err(),
        Some(Unavailable::NoSdei(SdeiError::NotSupported))
    );
    let firmware = MockConduit::replying([0x0002_0000_0000_0000, 0, 0, 0]);
    let err = Sdei::probe(&firmware).err().unwrap();
    assert_eq!(
        err,
        Unavailable::Version(SdeiVersion::from_x0(0x0002_0000_0000_0000))
    );
    assert!(err.to_string().contains("need major 1"));
    assert!(
        Unavailable::NoSdei(SdeiError::NotSupported)
            .to_string()
            .contains("NOT_SUPPORTED")
    );
}

#[test]
fn register_passes_entry_arg_and_routing() {
    let (r, call) = one_call(0, |s| s.register(EVENT, 0x4008_0000, 0xabc, Routing::Any));
    assert_eq!(r, Ok(()));
    assert_eq!(call, [0xC400_0021, 0x4040_0001, 0x4008_0000, 0xabc, 0, 0]);
    let (_, call) = one_call(0, |s| s.register(7, 0x10, 0x20, Routing::Pe(0x0102)));
    assert_eq!(call, [0xC400_0021, 7, 0x10, 0x20, 1, 0x0102]);
}

#[test]
fn per_event_calls_pass_the_event_in_x1() {
    type Call = fn(&Sdei<&dyn crate::Conduit>, u32) -> Result<(), SdeiError>;
    let calls: [(Call, u64); 4] = [
        (|s, e| s.enable(e), 0xC400_0022),
        (|s, e| s.disable(e), 0xC400_0023),
        (|s, e| s.unregister(e), 0xC400_0027),
        (|s, e| s.interrupt_release(e), 0xC400_002E),
    ];
    for (f, id) in calls {
        let (r, call) = one_call(0, |s| f(s, EVENT));
        assert_eq!(r, Ok(()));
        assert_eq!(call, [id, 0x4040_0001, 0, 0, 0, 0]);
    }
}

#[test]
fn pe_calls_take_no_arguments() {
    type Call = fn(&Sdei<&dyn crate::Conduit>) -> Result<(), SdeiError>;
    let calls: [(Call, u64); 3] = [
        (|s| s.pe_unmask(), 0xC400_002C),
        (|s| s.private_reset(), 0xC400_0031),
        (|s| s.shared_reset(), 0xC400_0032),
    ];
    for (f, id) in calls {
        let (r, call) = one_call(0, f);
        assert_eq!(r, Ok(()));
        assert_eq!(call, [id, 0, 0, 0, 0, 0]);
    }
}

#[test]
fn errors_are_mapped() {
    let cases = [
        (-1, SdeiError::NotSupported),
        (-2, SdeiError::InvalidParameters),
        (-3, SdeiError::Denied),
        (-5, SdeiError::Pending),
        (-10, SdeiError::OutOfResource),
    ];
    for (value, error) in cases {
        assert_eq!(one_call(code(value), |s| s.enable(EVENT)).0, Err(error));
        assert_eq!(one_call(code(value), |s| s.version()).0, Err(error));
        assert_eq!(one_call(code(value), |s| s.pe_mask()).0, Err(error));
    }
    assert_eq!(
        one_call(code(-5), |s| s.unregister(EVENT)).0,
        Err(SdeiError::Pending)
    );
}

#[test]
fn nonzero_success_of_a_status_call_is_unexpected() {
    assert_eq!(
        one_call(2, |s| s.enable(EVENT)).0,
        Err(SdeiError::Unexpected(2))
    );
}

#[test]
fn event_status_and_info() {
    let (r, call) = one_call(0b111, |s| s.event_status(EVENT));
    assert_eq!(
        r,
        Ok(EventStatus {
            registered: true,
            enabled: true,
            running: true
        })
    );
    assert_eq!(call, [0xC400_0028, 0x4040_0001, 0, 0, 0, 0]);

    let (r, call) = one_call(0x0102, |s| s.info(EVENT, InfoQuery::RoutingAffinity));
    assert_eq!(r, Ok(0x0102));
    assert_eq!(call, [0xC400_0029, 0x4040_0001, 4, 0, 0, 0]);

    let (r, call) = one_call(0, |s| s.event_type(EVENT));
    assert_eq!(r, Ok(EventType::Private));
    assert_eq!(call[2], 0);
    let (r, call) = one_call(1, |s| s.priority(EVENT));
    assert_eq!(r, Ok(Priority::Critical));
    assert_eq!(call[2], 2);
    assert_eq!(
        one_call(5, |s| s.priority(EVENT)).0,
        Err(SdeiError::Unexpected(5))
    );
    assert_eq!(
        one_call(code(-2), |s| s.event_type(EVENT)).0,
        Err(SdeiError::InvalidParameters)
    );
}

#[test]
fn routing_set() {
    let (r, call) = one_call(0, |s| s.routing_set(3, Routing::Pe(0x8000_0001)));
    assert_eq!(r, Ok(()));
    assert_eq!(call, [0xC400_002A, 3, 1, 0x8000_0001, 0, 0]);
    let (_, call) = one_call(0, |s| s.routing_set(3, Routing::Any));
    assert_eq!(call, [0xC400_002A, 3, 0, 0, 0, 0]);
}

#[test]
fn pe_mask_reports_whether_it_masked() {
    let (r, call) = one_call(1, |s| s.pe_mask());
    assert_eq!(r, Ok(true));
    assert_eq!(call, [0xC400_002B, 0, 0, 0, 0, 0]);
    assert_eq!(one_call(0, |s| s.pe_mask()).0, Ok(false));
    assert_eq!(
        one_call(2, |s| s.pe_mask()).0,
        Err(SdeiError::Unexpected(2))
    );
}

#[test]
fn interrupt_bind_returns_the_new_event() {
    let (r, call) = one_call(0x1000, |s| s.interrupt_bind(27));
    assert_eq!(r, Ok(0x1000));
    assert_eq!(call, [0xC400_002D, 27, 0, 0, 0, 0]);
    assert_eq!(
        one_call(code(-10), |s| s.interrupt_bind(27)).0,
        Err(SdeiError::OutOfResource)
    );
    assert_eq!(
        one_call(1 << 40, |s| s.interrupt_bind(27)).0,
        Err(SdeiError::Unexpected(1 << 40))
    );
}

#[test]
fn signal_and_features() {
    let (r, call) = one_call(0, |s| s.signal(0, 0x0100));
    assert_eq!(r, Ok(()));
    assert_eq!(call, [0xC400_002F, 0, 0x0100, 0, 0, 0]);
    let (r, call) = one_call(0x0002_0004, |s| s.bind_slots());
    assert_eq!(
        r,
        Ok(BindSlots {
            private: 4,
            shared: 2
        })
    );
    assert_eq!(call, [0xC400_0030, 0, 0, 0, 0, 0]);
    let (_, call) = one_call(0, |s| s.features(Feature::RelativeMode));
    assert_eq!(call, [0xC400_0030, 1, 0, 0, 0, 0]);
}

#[test]
fn context_reads_raw_registers() {
    // A saved register equal to an error code is still just a value.
    let (r, call) = one_call(code(-1), |s| s.context(17));
    assert_eq!(r, Ok(u64::MAX));
    assert_eq!(call, [0xC400_0024, 17, 0, 0, 0, 0]);
}

#[test]
fn context_refuses_registers_the_dispatcher_does_not_save() {
    let firmware = MockConduit::replying([0; 4]);
    assert_eq!(
        Sdei::new(&firmware).context(18),
        Err(SdeiError::InvalidParameters)
    );
    assert!(firmware.calls().is_empty());
}

#[test]
fn completion_calls_return_only_failures() {
    let (r, call) = one_call(code(-3), |s| s.complete(CompleteStatus::Handled));
    assert_eq!(r, SdeiError::Denied);
    assert_eq!(call, [0xC400_0025, 0, 0, 0, 0, 0]);
    let (_, call) = one_call(code(-3), |s| s.complete(CompleteStatus::Failed));
    assert_eq!(call, [0xC400_0025, 1, 0, 0, 0, 0]);
    let (r, call) = one_call(code(-3), |s| s.complete_and_resume(0x4000_0280));
    assert_eq!(r, SdeiError::Denied);
    assert_eq!(call, [0xC400_0026, 0x4000_0280, 0, 0, 0, 0]);
    // A firmware that "succeeds" and returns has misbehaved.
    assert_eq!(
        one_call(0, |s| s.complete(CompleteStatus::Handled)).0,
        SdeiError::Unexpected(0)
    );
}
