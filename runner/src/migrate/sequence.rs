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
    // The destination too: one that refuses the stream (less RAM, say) fails its incoming
    // migration and exits, while the source may stay in `device` until the deadline.
    poll(
        source,
        plan.deadline,
        "the source to switch to post-copy",
        |info| match info.status {
            Some(MigrationStatus::postcopy_active) => Ok(true),
            Some(MigrationStatus::completed) => Err(Stop::NoPostcopy),
            _ => {
                let incoming = destination.execute(&qmp::query_migrate {})?;
                failure(destination.side(), &incoming).map_or(Ok(false), Err)
            }
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
        if let Some(stop) = failure(monitor.side(), &info) {
            return Err(stop);
        }
        if done(&info)? {
            return Ok(info);
        }
        if Instant::now() >= deadline {
            let status = info.status;
            return Err(Stop::TimedOut(format!("{what} (status {status:?})")));
        }
        thread::sleep(POLL);
    }
}

/// The error a migration on `side` reports with `info`, if it failed.
fn failure(side: &'static str, info: &MigrationInfo) -> Option<Stop> {
    let desc = match info.status {
        Some(
            MigrationStatus::failed | MigrationStatus::cancelled | MigrationStatus::cancelling,
        ) => info
            .error_desc
            .clone()
            .unwrap_or_else(|| format!("status {:?}", info.status)),
        // The stream broke after the switch began: QEMU waits for a `migrate-recover` that
        // this run never sends, so the guest is stuck.
        Some(MigrationStatus::postcopy_paused) => {
            "post-copy paused: the stream between the QEMUs broke".to_owned()
        }
        _ => return None,
    };
    Some(Stop::Failed { side, desc })
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
mod tests;
