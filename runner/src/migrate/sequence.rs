//! The QMP sequence of one post-copy migration, from both monitors' point of view, with the
//! guest's two holds in it:
//!
//! 1. both sides: `postcopy-ram` and `postcopy-preempt` (the destination also
//!    `postcopy-blocktime`, which counts how long its vCPUs waited for pages). Preempt sends
//!    requested pages on a channel of their own; without it they queue behind the
//!    rate-limited background stream, which QEMU releases in 100 ms windows: measured here,
//!    a 566-page workload made only 27 requests that waited 10-30 ms each, and makespans
//!    fell on 100 ms steps, whatever `--latency` said; the source's pre-copy bandwidth (capped, see
//!    [`PRECOPY_BANDWIDTH`]) and post-copy background bandwidth; the destination listens (`migrate-incoming` on port 0; its port is read back);
//! 2. the shaper is put between them; the guest writes its pages and says `hold: ready`;
//! 3. `migrate`, then at once `migrate-start-postcopy`, so nearly every workload page is still
//!    on the source when the destination resumes; wait for `postcopy-active` and a running
//!    destination, then release the guest (its timed phase runs on the destination);
//! 4. once the guest says `hold: finished`, lift the bandwidth cap so the rest of RAM moves
//!    at once, wait for `completed`, read both sides' statistics and let the guest exit.
//!
//! Each wait has the run's deadline and says what it waited for.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use qapi::qmp::{
    self, MigrationCapability, MigrationCapabilityStatus, MigrationInfo, MigrationStatus, RunState,
    SocketAddress,
};

use super::qmp::{Error as QmpError, Monitor, event_time_us};
use super::stats::MigrationStats;

/// How often the monitors are polled while a migration changes state.
const POLL: Duration = Duration::from_millis(5);
/// The source's `max-bandwidth`, bytes per second. Pre-copy only lasts from `migrate` to
/// `migrate-start-postcopy`, but uncapped it moves an idle guest's RAM over loopback in
/// milliseconds and may complete the migration before post-copy is asked for (seen with a
/// 128 MiB guest: `completed` without ever being `postcopy-active`). At this rate the first
/// pass over even 32 MiB of written pages takes seconds and never converges first.
const PRECOPY_BANDWIDTH: u64 = 1 << 20;
/// The destination listens on the loopback, on a port the kernel picks.
const INCOMING_URI: &str = "tcp:127.0.0.1:0";

/// The console lines of the guest's holds (guest-kernel's `hold=console`).
pub const HOLD_READY: &str = "hold: ready";
pub const HOLD_FINISHED: &str = "hold: finished";

/// What the sequence needs of the guest: its console lines, and a way to release a hold.
pub trait Guest {
    /// Waits until the guest prints `line` on `side`'s console.
    fn wait_for(&mut self, side: Side, line: &'static str, deadline: Instant) -> Result<(), Stop>;
    /// Releases the guest's current hold (a byte on the destination's console).
    fn release(&mut self) -> Result<(), Stop>;
}

/// Which QEMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

/// Why the sequence stopped before the migration completed.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error("the migration failed on the {side}: {desc}")]
    Failed { side: &'static str, desc: String },
    #[error("the destination listens on no TCP address (query-migrate: {0:?})")]
    NoIncomingAddress(Option<Vec<SocketAddress>>),
    #[error("cannot put the shaper between the QEMUs")]
    Shaper(#[source] std::io::Error),
    #[error("timed out waiting for {0}")]
    TimedOut(String),
    #[error(
        "the migration completed in pre-copy, before post-copy started: no page was left for \
         the destination to fault on"
    )]
    NoPostcopy,
    /// The guest's QEMU on `side` ended (its console closed) before the sequence was done:
    /// the caller reads that QEMU's exit status.
    #[error("the {} QEMU ended while the runner waited for {waiting_for}", side.name())]
    Ended {
        side: Side,
        waiting_for: &'static str,
    },
    #[error("cannot release the guest's hold")]
    Release(#[source] std::io::Error),
}

/// The settings of one migration.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// `max-postcopy-bandwidth`, bytes per second (None: QEMU's default, unlimited).
    pub bandwidth: Option<u64>,
    pub deadline: Instant,
}

/// Runs the whole sequence. `route` is given the destination's address and returns the
/// address the source should send to (the shaper's).
pub fn run<S: Monitor, D: Monitor, G: Guest>(
    source: &mut S,
    destination: &mut D,
    guest: &mut G,
    plan: Plan,
    route: impl FnOnce(SocketAddr) -> std::io::Result<SocketAddr>,
) -> Result<MigrationStats, Stop> {
    let incoming = prepare(source, destination, plan.bandwidth)?;
    let via = route(incoming).map_err(Stop::Shaper)?;
    guest.wait_for(Side::Source, HOLD_READY, plan.deadline)?;

    source.execute(&qmp::migrate {
        uri: Some(format!("tcp:{via}")),
        channels: None,
        detach: None,
        resume: None,
    })?;
    source.execute(&qmp::migrate_start_postcopy {})?;
    poll(
        source,
        plan.deadline,
        "the source to switch to post-copy",
        |info| match info.status {
            Some(MigrationStatus::postcopy_active) => Ok(true),
            Some(MigrationStatus::completed) => Err(Stop::NoPostcopy),
            _ => Ok(false),
        },
    )?;
    wait_running(destination, plan.deadline)?;
    let switchover_us = switchover_us(source, destination);
    guest.release()?;

    guest.wait_for(Side::Destination, HOLD_FINISHED, plan.deadline)?;
    if plan.bandwidth.is_some() {
        set_bandwidth(source, 0)?;
    }
    let info = poll(source, plan.deadline, "the migration to complete", |info| {
        Ok(matches!(info.status, Some(MigrationStatus::completed)))
    })?;
    let destination_info = destination.execute(&qmp::query_migrate {})?;
    guest.release()?;
    Ok(MigrationStats::new(&info, &destination_info, switchover_us))
}

/// Step 1: capabilities, bandwidths, and the destination's listening address.
fn prepare<S: Monitor, D: Monitor>(
    source: &mut S,
    destination: &mut D,
    bandwidth: Option<u64>,
) -> Result<SocketAddr, Stop> {
    let postcopy = [
        MigrationCapability::postcopy_ram,
        MigrationCapability::postcopy_preempt,
    ];
    source.execute(&capabilities(&postcopy))?;
    destination.execute(&capabilities(&[
        MigrationCapability::postcopy_ram,
        MigrationCapability::postcopy_preempt,
        MigrationCapability::postcopy_blocktime,
    ]))?;
    source.execute(&qmp::migrate_set_parameters(qmp::MigrateSetParameters {
        max_bandwidth: Some(PRECOPY_BANDWIDTH),
        max_postcopy_bandwidth: bandwidth,
        ..Default::default()
    }))?;
    destination.execute(&qmp::migrate_incoming {
        uri: Some(INCOMING_URI.to_owned()),
        channels: None,
        exit_on_error: None,
    })?;
    let info = destination.execute(&qmp::query_migrate {})?;
    inet_address(info.socket_address.as_deref()).ok_or(Stop::NoIncomingAddress(info.socket_address))
}

fn capabilities(names: &[MigrationCapability]) -> qmp::migrate_set_capabilities {
    qmp::migrate_set_capabilities {
        capabilities: names
            .iter()
            .map(|&capability| MigrationCapabilityStatus {
                capability,
                state: true,
            })
            .collect(),
    }
}

fn set_bandwidth<M: Monitor>(monitor: &mut M, bytes_per_second: u64) -> Result<(), Stop> {
    monitor.execute(&qmp::migrate_set_parameters(qmp::MigrateSetParameters {
        max_postcopy_bandwidth: Some(bytes_per_second),
        ..Default::default()
    }))?;
    Ok(())
}

/// The first IPv4/IPv6 address of a listening destination.
fn inet_address(addresses: Option<&[SocketAddress]>) -> Option<SocketAddr> {
    addresses?.iter().find_map(|address| match address {
        SocketAddress::inet(inet) => {
            let ip: std::net::IpAddr = inet.base.host.parse().ok()?;
            let port: u16 = inet.base.port.parse().ok()?;
            Some(SocketAddr::new(ip, port))
        }
        _ => None,
    })
}

/// Polls `query-migrate` until `done` says so; a failed or cancelled migration is an error
/// that names QEMU's reason.
fn poll<M: Monitor>(
    monitor: &mut M,
    deadline: Instant,
    what: &str,
    mut done: impl FnMut(&MigrationInfo) -> Result<bool, Stop>,
) -> Result<MigrationInfo, Stop> {
    loop {
        let info = monitor.execute(&qmp::query_migrate {})?;
        match info.status {
            Some(
                MigrationStatus::failed | MigrationStatus::cancelled | MigrationStatus::cancelling,
            ) => {
                return Err(Stop::Failed {
                    side: monitor.side(),
                    desc: info
                        .error_desc
                        .unwrap_or_else(|| format!("status {:?}", info.status)),
                });
            }
            // The stream broke after the switch began: QEMU waits for a `migrate-recover`
            // that this run never sends, so the guest is stuck.
            Some(MigrationStatus::postcopy_paused) => {
                return Err(Stop::Failed {
                    side: monitor.side(),
                    desc: "post-copy paused: the stream between the QEMUs broke".to_owned(),
                });
            }
            _ if done(&info)? => return Ok(info),
            status if Instant::now() >= deadline => {
                return Err(Stop::TimedOut(format!("{what} (status {status:?})")));
            }
            _ => thread::sleep(POLL),
        }
    }
}

/// Waits for the destination to run the guest (it resumes as post-copy starts).
fn wait_running<M: Monitor>(monitor: &mut M, deadline: Instant) -> Result<(), Stop> {
    loop {
        let status = monitor.execute(&qmp::query_status {})?.status;
        match status {
            RunState::running => return Ok(()),
            RunState::inmigrate | RunState::paused | RunState::prelaunch
                if Instant::now() < deadline =>
            {
                thread::sleep(POLL)
            }
            RunState::inmigrate | RunState::paused | RunState::prelaunch => {
                return Err(Stop::TimedOut(format!(
                    "the destination to run the guest (status {status:?})"
                )));
            }
            other => {
                return Err(Stop::Failed {
                    side: monitor.side(),
                    desc: format!("the destination's guest is {other:?}, not running"),
                });
            }
        }
    }
}

/// The guest's pause at the switch: from the source's STOP to the destination's RESUME, by
/// the events' timestamps (both QEMUs read the same host clock). None if either is missing.
fn switchover_us<S: Monitor, D: Monitor>(source: &mut S, destination: &mut D) -> Option<u64> {
    let stopped = source
        .take_events()
        .iter()
        .find_map(|event| event_time_us(event, "STOP"))?;
    let resumed = destination
        .take_events()
        .iter()
        .find_map(|event| event_time_us(event, "RESUME"))?;
    resumed.checked_sub(stopped)
}

#[cfg(test)]
mod tests {
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
    fn a_migration_that_never_switches_times_out_naming_the_step() {
        let (error, _) = stopped_by(json!({"status": "active"}), Duration::from_millis(30));
        assert_eq!(
            error.to_string(),
            "timed out waiting for the source to switch to post-copy (status Some(active))"
        );
    }
}
