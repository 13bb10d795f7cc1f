//! One mode's run: a fresh namespace, the VM booting in a thread with its card's TAP
//! there, and the load generator in the namespace waiting for the guest, loading it and
//! ending it.

use std::net::SocketAddrV4;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::icmp::Pinger;
use super::load::{self, Client, GUEST};
use super::metrics::Sample;
use super::mode::ServeMode;
use super::plan::{DRAIN, Plan};
use crate::cli::VmmKind;
use crate::console::ConsoleSink;
use crate::guest_arch::GuestArch;
use crate::lazy::{LatencyModel, LazyConfig, LazyRegion, MAX_FETCHERS};
use crate::netns::{self, Netns, TAP};
use crate::outcome::GuestOutcome;
use crate::vmm::{NetConfig, VmConfig};
use crate::{guest_cmdline, qemu, run, vmm};

/// How long the guest may take to answer ICMP echo, and then its service a probe.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const SERVICE_TIMEOUT: Duration = Duration::from_secs(30);
/// The guest card's MAC (a locally administered address; the namespace has only this card).
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Netns(#[from] netns::Error),
    #[error(transparent)]
    Cmdline(#[from] guest_cmdline::Error),
    #[error("cannot open a raw ICMP socket (serve-bench runs as root)")]
    Icmp(#[source] std::io::Error),
    #[error(
        "the guest at {GUEST} did not answer ICMP echo within {}; its last console line: {}",
        crate::units::format_duration(BOOT_TIMEOUT),
        quoted(last_line)
    )]
    NoEcho { last_line: Option<String> },
    #[error(
        "the guest answered ICMP echo but its service at {GUEST}:{} did not answer `GET 0` \
         within {}; its last console line: {}",
        workloads::kv::PORT,
        crate::units::format_duration(SERVICE_TIMEOUT),
        quoted(last_line)
    )]
    NoService { last_line: Option<String> },
    #[error(transparent)]
    Generator(#[from] load::Error),
    #[error("the VM ended before the load did: the guest {0}")]
    VmEnded(String),
    #[error("{load} (the guest then {vm})")]
    Load { load: String, vm: String },
    #[error("the load went well but the guest {0}")]
    Guest(String),
}

fn quoted(line: &Option<String>) -> String {
    match line {
        Some(line) => format!("{line:?}"),
        None => "none (no console output)".to_owned(),
    }
}

/// What a mode's run measured.
#[derive(Debug)]
pub struct ModeResult {
    pub mode: ServeMode,
    pub icmp_rtt: Duration,
    pub samples: Vec<Sample>,
    /// The VMM's lazy memory counts (`run --report`'s `lazy`), if it served lazy memory.
    pub lazy: Option<Value>,
}

/// What every mode's run shares.
pub struct Setup<'a> {
    pub plan: &'a Plan,
    pub kernel: &'a Path,
    pub latency: LatencyModel,
    pub timeout: Duration,
    pub verbose: bool,
}

/// How the VM thread ended.
type VmResult = Result<(GuestOutcome, Option<Value>), run::Error>;

/// How the load ended before the VM's part is known.
enum LoadEnd {
    Served {
        icmp_rtt: Duration,
        samples: Vec<Sample>,
    },
    VmEnded,
    Failed(Error),
}

impl Setup<'_> {
    pub fn run(&self, mode: ServeMode) -> Result<ModeResult, Error> {
        let plan = self.plan;
        let netns = Netns::create()?;
        let cmdline = guest_cmdline::from_words(&plan.guest_words(mode))?;
        let config = VmConfig {
            kernel: self.kernel,
            mem_size: plan.mem_mib << 20,
            cmdline: &cmdline,
            vcpus: 1,
            lazy: mode.lazy(plan.vmm).then_some(LazyConfig {
                latency: self.latency,
                // As many fetches as workers can wait for: the device never limits them.
                fetchers: plan.workers.min(MAX_FETCHERS),
                region: LazyRegion::Workload,
                seed: plan.load.seed,
                readahead: 0,
                pin: false,
            }),
            lazy_source: None,
            apf: Some(mode.apf()),
            async_threshold: run::DEFAULT_ASYNC_THRESHOLD,
            inject: Default::default(),
            net: Some(NetConfig {
                netns: netns.path(),
                tap: TAP.to_owned(),
                mac: MAC,
            }),
        };
        let console = ConsoleSink::default();
        let vm_done = AtomicBool::new(false);
        let (load, vm) = std::thread::scope(|scope| {
            let vm = scope.spawn(|| {
                let result = self.boot(&config, &console);
                vm_done.store(true, Ordering::Relaxed);
                result
            });
            let load = netns
                .run_inside(|| self.load(&console, &vm_done))
                .unwrap_or_else(|error| LoadEnd::Failed(error.into()));
            let vm = vm
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (load, vm)
        });
        let _ = console.finish();
        match (load, vm) {
            (LoadEnd::Served { icmp_rtt, samples }, Ok((GuestOutcome::Exited(0), lazy))) => {
                Ok(ModeResult {
                    mode,
                    icmp_rtt,
                    samples,
                    lazy,
                })
            }
            (LoadEnd::Served { .. }, vm) => Err(Error::Guest(describe(&vm))),
            (LoadEnd::VmEnded, vm) => Err(Error::VmEnded(describe(&vm))),
            (LoadEnd::Failed(error), vm) => Err(Error::Load {
                load: crate::chain(&error),
                vm: describe(&vm),
            }),
        }
    }

    fn boot(&self, config: &VmConfig<'_>, console: &ConsoleSink) -> VmResult {
        match self.plan.vmm {
            VmmKind::Builtin => {
                let report = vmm::run(config, console, self.timeout, self.verbose, None)?;
                let lazy = report.lazy.as_ref().map(crate::lazy::LazyStats::to_json);
                Ok((report.outcome, lazy))
            }
            VmmKind::Qemu => {
                let outcome = qemu::run(
                    GuestArch::X86_64,
                    config,
                    console,
                    self.timeout,
                    self.verbose,
                )?;
                Ok((outcome, None))
            }
            VmmKind::El2 => unreachable!("Plan::new refuses --vmm el2"),
        }
    }

    /// The load generator's side, in the namespace: wait for the guest, load it, end it.
    fn load(&self, console: &ConsoleSink, vm_done: &AtomicBool) -> LoadEnd {
        let ended = || vm_done.load(Ordering::Relaxed);
        let mut pinger = match Pinger::open() {
            Ok(pinger) => pinger,
            Err(error) => return LoadEnd::Failed(Error::Icmp(error)),
        };
        // The first answer says the guest is up; its round trip includes the guest's ARP
        // lookup of us, so the round trip reported is the next echo's.
        let answered = pinger
            .until_answered(GUEST, BOOT_TIMEOUT, ended)
            .and_then(|first| match first {
                Some(_) => pinger.until_answered(GUEST, BOOT_TIMEOUT, ended),
                None => Ok(None),
            });
        let icmp_rtt = match answered {
            Ok(Some(rtt)) => rtt,
            Ok(None) if ended() => return LoadEnd::VmEnded,
            Ok(None) => {
                return LoadEnd::Failed(Error::NoEcho {
                    last_line: console.last_line(),
                });
            }
            Err(error) => return LoadEnd::Failed(Error::Icmp(error)),
        };
        let served = Client::connect(
            SocketAddrV4::new(GUEST, workloads::kv::PORT),
            self.plan.load.seed,
        )
        .and_then(|mut client| {
            let result = self.serve(&mut client, &ended);
            if result.is_err() {
                // So that the guest exits now rather than at its timeout.
                let _ = client.quit();
            }
            result
        });
        match served {
            Ok(Some(samples)) => LoadEnd::Served { icmp_rtt, samples },
            Ok(None) if ended() => LoadEnd::VmEnded,
            Ok(None) => LoadEnd::Failed(Error::NoService {
                last_line: console.last_line(),
            }),
            Err(error) => LoadEnd::Failed(error.into()),
        }
    }

    /// Probes the service, then loads it; `None` if it never answered the probe.
    fn serve(
        &self,
        client: &mut Client,
        ended: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<Sample>>, load::Error> {
        if !client.probe(SERVICE_TIMEOUT, ended)? {
            return Ok(None);
        }
        Ok(Some(client.drive(&self.plan.sends, DRAIN)?))
    }
}

/// The VM thread's end, as a phrase after "the guest".
fn describe(vm: &VmResult) -> String {
    match vm {
        Ok((GuestOutcome::Exited(status), _)) => format!("exited with status {status}"),
        Ok((GuestOutcome::TimedOut { after, last_line }, _)) => format!(
            "timed out after {} (last console line: {})",
            crate::units::format_duration(*after),
            quoted(last_line)
        ),
        Err(error) => format!("could not run: {}", crate::chain(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vm_end_is_described() {
        assert_eq!(
            describe(&Ok((GuestOutcome::Exited(3), None))),
            "exited with status 3"
        );
        let timed_out = GuestOutcome::TimedOut {
            after: Duration::from_secs(2),
            last_line: Some("kv: listening".to_owned()),
        };
        assert_eq!(
            describe(&Ok((timed_out, None))),
            r#"timed out after 2s (last console line: "kv: listening")"#
        );
    }
}
