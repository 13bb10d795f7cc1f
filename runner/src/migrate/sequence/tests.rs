//! Unit tests of `sequence`.

use super::*;
use qapi::qmp::Event;
use serde_json::{Value, json};

/// A scripted answer to a command (its name and arguments): the result or QEMU's error.
type Answer = Box<dyn FnMut(&str, &Value) -> Result<Value, String>>;

/// A monitor that answers from a script and records what it was asked.
struct FakeMonitor {
    side: &'static str,
    calls: Vec<(&'static str, Value)>,
    answer: Answer,
    events: Vec<Value>,
}

impl FakeMonitor {
    fn new(
        side: &'static str,
        answer: impl FnMut(&str, &Value) -> Result<Value, String> + 'static,
    ) -> Self {
        Self {
            side,
            calls: Vec::new(),
            answer: Box::new(answer),
            events: Vec::new(),
        }
    }

    fn names(&self) -> Vec<&'static str> {
        self.calls.iter().map(|(name, _)| *name).collect()
    }
}

impl Monitor for FakeMonitor {
    fn side(&self) -> &'static str {
        self.side
    }

    fn execute<C: qapi::Command>(&mut self, command: &C) -> Result<C::Ok, QmpError> {
        let arguments = serde_json::to_value(command).expect("commands serialise");
        self.calls.push((C::NAME, arguments.clone()));
        match (self.answer)(C::NAME, &arguments) {
            Ok(value) => Ok(serde_json::from_value(value).expect("a well-formed answer")),
            Err(desc) => Err(QmpError::Refused {
                side: self.side,
                command: C::NAME,
                desc,
            }),
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.events
            .drain(..)
            .map(|event| serde_json::from_value(event).expect("an event"))
            .collect()
    }
}

fn event(name: &str, seconds: u64, microseconds: u64) -> Value {
    json!({"event": name, "data": {"running": false}, "timestamp":
        {"seconds": seconds, "microseconds": microseconds}})
}

/// A source whose migration is active at the first poll, in post-copy at the second and
/// complete from the third on.
fn healthy_source() -> FakeMonitor {
    let mut polls = 0;
    let mut source = FakeMonitor::new("source", move |name, _| {
        Ok(match name {
            "query-migrate" => {
                polls += 1;
                let status = match polls {
                    1 => "active",
                    2 => "postcopy-active",
                    _ => "completed",
                };
                json!({"status": status, "total-time": 700, "downtime": 650})
            }
            _ => json!({}),
        })
    });
    source.events.push(event("STOP", 10, 500));
    source
}

fn healthy_destination() -> FakeMonitor {
    let mut destination = FakeMonitor::new("destination", |name, _| {
        Ok(match name {
            "query-migrate" => json!({"socket-address":
                [{"type": "inet", "host": "127.0.0.1", "port": "40123"}],
                "postcopy-blocktime": 12}),
            "query-status" => json!({"status": "running", "running": true}),
            _ => json!({}),
        })
    });
    destination.events.push(event("RESUME", 10, 20_700));
    destination
}

/// A guest that prints every hold line at once and counts its releases.
#[derive(Default)]
struct FakeGuest {
    waited: Vec<(Side, &'static str)>,
    releases: u32,
    ends_at: Option<&'static str>,
}

impl Guest for FakeGuest {
    fn wait_for(&mut self, side: Side, line: &'static str, _: Instant) -> Result<(), Stop> {
        self.waited.push((side, line));
        match self.ends_at {
            Some(end) if end == line => Err(Stop::Ended {
                side,
                waiting_for: line,
            }),
            _ => Ok(()),
        }
    }

    fn release(&mut self) -> Result<(), Stop> {
        self.releases += 1;
        Ok(())
    }
}

fn plan(bandwidth: Option<u64>) -> Plan {
    Plan {
        bandwidth,
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

const SHAPER: &str = "127.0.0.1:5555";

/// Runs the sequence, routed straight to the fake shaper, expecting it to stop.
fn fails<S: Monitor, D: Monitor>(
    source: &mut S,
    destination: &mut D,
    guest: &mut FakeGuest,
    plan: Plan,
) -> Stop {
    run(source, destination, guest, plan, |_| {
        Ok(SHAPER.parse().unwrap())
    })
    .unwrap_err()
}

#[test]
fn a_healthy_migration_runs_every_step_in_order() {
    let (mut source, mut destination) = (healthy_source(), healthy_destination());
    let mut guest = FakeGuest::default();
    let mut routed = None;
    let stats = run(
        &mut source,
        &mut destination,
        &mut guest,
        plan(Some(1 << 20)),
        |to| {
            routed = Some(to);
            Ok(SHAPER.parse().unwrap())
        },
    )
    .expect("migrated");
    assert_eq!(routed, Some("127.0.0.1:40123".parse().unwrap()));
    assert_eq!(
        source.names(),
        [
            "migrate-set-capabilities",
            "migrate-set-parameters",
            "migrate",
            "migrate-start-postcopy",
            "query-migrate",
            "query-migrate",
            "migrate-set-parameters",
            "query-migrate",
        ]
    );
    assert_eq!(
        source.calls[0].1["capabilities"],
        json!([
            {"capability": "postcopy-ram", "state": true},
            {"capability": "postcopy-preempt", "state": true}
        ])
    );
    assert_eq!(source.calls[1].1["max-postcopy-bandwidth"], 1 << 20);
    assert_eq!(source.calls[1].1["max-bandwidth"], PRECOPY_BANDWIDTH);
    assert_eq!(source.calls[2].1["uri"], format!("tcp:{SHAPER}"));
    assert_eq!(source.calls[6].1["max-postcopy-bandwidth"], 0, "lifted");
    assert_eq!(
        destination.names(),
        [
            "migrate-set-capabilities",
            "migrate-incoming",
            "query-migrate",
            // while the source was still active: did the destination fail?
            "query-migrate",
            "query-status",
            "query-migrate",
        ]
    );
    assert_eq!(destination.calls[1].1["uri"], "tcp:127.0.0.1:0");
    assert_eq!(
        guest.waited,
        [
            (Side::Source, HOLD_READY),
            (Side::Destination, HOLD_FINISHED)
        ]
    );
    assert_eq!(guest.releases, 2);
    assert_eq!(stats.total_time_ms, Some(700));
    assert_eq!(stats.switchover_us, Some(20_200));
    assert_eq!(stats.blocktime_ms, Some(12));
}

#[test]
fn without_a_bandwidth_only_pre_copy_is_capped_and_nothing_is_lifted() {
    let (mut source, mut destination) = (healthy_source(), healthy_destination());
    let mut guest = FakeGuest::default();
    run(
        &mut source,
        &mut destination,
        &mut guest,
        plan(None),
        |_| Ok(SHAPER.parse().unwrap()),
    )
    .expect("migrated");
    let set: Vec<_> = source
        .calls
        .iter()
        .filter(|(name, _)| *name == "migrate-set-parameters")
        .map(|(_, arguments)| arguments)
        .collect();
    assert_eq!(set, [&json!({"max-bandwidth": PRECOPY_BANDWIDTH})]);
}

#[test]
fn a_refused_command_names_the_side_and_qemus_reason() {
    let mut source = FakeMonitor::new("source", |name, _| match name {
        "migrate" => Err("Migration is disabled: blocked".to_owned()),
        _ => Ok(json!({})),
    });
    let mut guest = FakeGuest::default();
    let error = fails(
        &mut source,
        &mut healthy_destination(),
        &mut guest,
        plan(None),
    );
    assert_eq!(
        error.to_string(),
        "source QEMU refused migrate: Migration is disabled: blocked"
    );
    assert_eq!(guest.releases, 0, "the guest is never released");
}

#[test]
fn a_destination_without_a_tcp_address_is_an_error() {
    let mut destination = FakeMonitor::new("destination", |name, _| {
        Ok(match name {
            "query-migrate" => json!({"socket-address":
                [{"type": "unix", "path": "/tmp/x"}]}),
            _ => json!({}),
        })
    });
    let error = fails(
        &mut healthy_source(),
        &mut destination,
        &mut FakeGuest::default(),
        plan(None),
    );
    assert!(matches!(error, Stop::NoIncomingAddress(_)), "{error}");
}

#[test]
fn a_guest_that_ends_before_its_hold_stops_the_sequence_before_migrate() {
    let mut source = healthy_source();
    let mut guest = FakeGuest {
        ends_at: Some(HOLD_READY),
        ..FakeGuest::default()
    };
    let error = fails(
        &mut source,
        &mut healthy_destination(),
        &mut guest,
        plan(None),
    );
    assert!(matches!(error, Stop::Ended { .. }), "{error}");
    assert!(!source.names().contains(&"migrate"));
}

/// Runs the sequence against a source whose `query-migrate` always answers `status`,
/// until `deadline`; returns why it stopped and the guest.
fn stopped_by(status: Value, deadline: Duration) -> (Stop, FakeGuest) {
    let mut source = FakeMonitor::new("source", move |name, _| {
        Ok(match name {
            "query-migrate" => status.clone(),
            _ => json!({}),
        })
    });
    let mut guest = FakeGuest::default();
    let plan = Plan {
        bandwidth: None,
        deadline: Instant::now() + deadline,
    };
    let error = fails(&mut source, &mut healthy_destination(), &mut guest, plan);
    (error, guest)
}

#[test]
fn a_failed_migration_gives_qemus_error_description() {
    let (error, _) = stopped_by(
        json!({"status": "failed",
            "error-desc": "Unable to write to socket: Connection reset by peer"}),
        Duration::from_secs(30),
    );
    assert_eq!(
        error.to_string(),
        "the migration failed on the source: Unable to write to socket: Connection reset by peer"
    );
}

#[test]
fn a_paused_post_copy_is_a_failure_not_a_wait() {
    let (error, _) = stopped_by(
        json!({"status": "postcopy-paused"}),
        Duration::from_secs(30),
    );
    assert_eq!(
        error.to_string(),
        "the migration failed on the source: post-copy paused: the stream between the QEMUs \
         broke"
    );
}

#[test]
fn a_migration_that_completes_before_post_copy_is_an_error_not_a_wait() {
    let (error, guest) = stopped_by(json!({"status": "completed"}), Duration::from_secs(30));
    assert!(matches!(error, Stop::NoPostcopy), "{error}");
    assert_eq!(guest.releases, 0);
}

#[test]
fn a_destination_that_fails_its_incoming_migration_ends_the_switch_wait() {
    // The source stays in `device`; the destination rejected the stream.
    let mut source = FakeMonitor::new("source", |name, _| {
        Ok(match name {
            "query-migrate" => json!({"status": "device"}),
            _ => json!({}),
        })
    });
    let mut polls = 0;
    let mut destination = FakeMonitor::new("destination", move |name, _| {
        Ok(match name {
            "query-migrate" => {
                polls += 1;
                match polls {
                    // prepare's query for the listening address
                    1 => json!({"socket-address":
                        [{"type": "inet", "host": "127.0.0.1", "port": "40123"}]}),
                    2 => json!({"status": "active"}),
                    _ => json!({"status": "failed", "error-desc": "load of migration failed"}),
                }
            }
            _ => json!({}),
        })
    });
    let plan = Plan {
        bandwidth: None,
        deadline: Instant::now() + Duration::from_secs(30),
    };
    let error = fails(
        &mut source,
        &mut destination,
        &mut FakeGuest::default(),
        plan,
    );
    assert_eq!(
        error.to_string(),
        "the migration failed on the destination: load of migration failed"
    );
}

#[test]
fn a_migration_that_never_switches_times_out_naming_the_step() {
    let (error, _) = stopped_by(json!({"status": "active"}), Duration::from_millis(30));
    assert_eq!(
        error.to_string(),
        "timed out waiting for the source to switch to post-copy (status Some(active))"
    );
}
