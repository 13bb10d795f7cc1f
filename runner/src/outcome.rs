//! How a guest run ended, and the runner's exit status for it.

use std::process::ExitCode;
use std::time::Duration;

use crate::lazy::LazyStats;
use crate::qemu::El2HostStats;
use crate::snapshot::Saved;
use crate::units::format_duration;
use crate::vmm::arch::UserApfStats;
use crate::vmm::virtio_net::NetStats;

/// Exit status when the guest did not exit before `--timeout` (as `timeout(1)` does).
pub const EXIT_TIMED_OUT: u8 = 124;
/// Exit status when the runner or a VMM failed, so no guest status exists.
pub const EXIT_RUNNER_ERROR: u8 = 125;

/// The end of a guest run that produced an answer (failures are errors instead).
#[derive(Debug, PartialEq, Eq)]
pub enum GuestOutcome {
    /// The guest wrote its exit status to the exit port.
    Exited(u8),
    /// The deadline passed first; the VM was stopped.
    TimedOut {
        after: Duration,
        last_line: Option<String>,
    },
}

/// Everything a run produced: how the guest ended, with lazy memory what serving it did, and
/// the snapshot saved (`runner snapshot`, when the guest exited with status 0).
#[derive(Debug)]
pub struct RunReport {
    pub outcome: GuestOutcome,
    pub lazy: Option<LazyStats>,
    /// What the VMM's async PF host did (`--apf vmm|adaptive`).
    pub user_apf: Option<UserApfStats>,
    /// What the arm64 EL2 host did (`--vmm el2`, once the guest enabled async PF).
    pub el2_host: Option<El2HostStats>,
    /// What the network card did (builtin VMM with `VmConfig.net`).
    pub net: Option<NetStats>,
    pub snapshot: Option<Saved>,
}

impl RunReport {
    /// The `run --report` file: the guest's status (null if it timed out), the lazy memory
    /// counts (null without lazy memory), the VMM's async PF counts (null unless it
    /// delivered async PF), the EL2 host's (null unless it reported them) and the network
    /// card's (null without one).
    pub fn to_json(&self) -> serde_json::Value {
        let (status, timed_out) = match &self.outcome {
            GuestOutcome::Exited(status) => (Some(*status), false),
            GuestOutcome::TimedOut { .. } => (None, true),
        };
        serde_json::json!({
            "status": status,
            "timed_out": timed_out,
            "lazy": self.lazy.as_ref().map(LazyStats::to_json),
            "user_apf": self.user_apf.as_ref().map(UserApfStats::to_json),
            "el2_host": self.el2_host.as_ref().map(El2HostStats::to_json),
            "net": self.net.map(NetStats::to_json),
        })
    }
}

impl GuestOutcome {
    /// Reports the outcome on stderr where needed and gives the runner's exit status.
    pub fn into_exit_code(self) -> ExitCode {
        match self {
            GuestOutcome::Exited(status) => ExitCode::from(status),
            GuestOutcome::TimedOut { after, last_line } => {
                eprintln!("runner: {}", timeout_message(after, last_line.as_deref()));
                ExitCode::from(EXIT_TIMED_OUT)
            }
        }
    }
}

/// The timeout message names the last console line: it usually shows where the guest hung.
fn timeout_message(after: Duration, last_line: Option<&str>) -> String {
    let context = match last_line {
        Some(line) => format!("last console line: {line:?}"),
        None => "no console output".to_owned(),
    };
    format!(
        "guest timed out after {} without exiting ({context})",
        format_duration(after)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_message_quotes_the_last_line() {
        assert_eq!(
            timeout_message(Duration::from_secs(60), Some("task 2: \"spinning\"")),
            r#"guest timed out after 60s without exiting (last console line: "task 2: \"spinning\"")"#
        );
    }

    #[test]
    fn timeout_message_without_output() {
        assert_eq!(
            timeout_message(Duration::from_millis(500), None),
            "guest timed out after 500ms without exiting (no console output)"
        );
    }
}
