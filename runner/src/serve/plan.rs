//! What `serve-bench`'s options ask for, checked before anything boots: the load, the
//! guest's keys and RAM, and each mode's guest command line.

use std::time::Duration;

use super::ServeArgs;
use super::load::GUEST;
use super::mode::ServeMode;
use super::schedule::{self, Load, Send};
use crate::cli::VmmKind;
use crate::netns;
use crate::vmm::{NET_IRQ, NET_MMIO_BASE, NET_MMIO_SIZE};

/// Guest RAM below the workload region (where cold keys live), slack above it, and our
/// VMM's largest guest; as `compare` sizes them.
const WORKLOAD_BASE_MIB: u64 = 64;
const SLACK_MIB: u64 = 16;
const MAX_MEM_MIB: u64 = 3 << 10;
const PAGES_PER_MIB: u64 = 256;
/// How long after the last send the answers may take: the slowest mode's queue must drain.
pub const DRAIN: Duration = Duration::from_secs(5);
/// The boot itself, before the load starts, within each mode's `--timeout`.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(10);

/// A checked `serve-bench` request.
#[derive(Debug)]
pub struct Plan {
    pub vmm: VmmKind,
    pub modes: Vec<ServeMode>,
    pub load: Load,
    pub duration: Duration,
    pub workers: u8,
    pub mem_mib: u64,
    /// The same sends for every mode, so modes differ only in how memory reaches the guest.
    pub sends: Vec<Send>,
}

impl Plan {
    pub fn new(args: &ServeArgs) -> Result<Plan, String> {
        let modes = modes(args)?;
        if args.duration.is_zero() {
            return Err("--duration 0: the load needs time to send requests".to_owned());
        }
        if args.timeout < args.duration + DRAIN + BOOT_ALLOWANCE {
            return Err(format!(
                "--timeout {} is too short for --duration {}: each mode needs the duration, {} \
                 of drain and time to boot",
                crate::units::format_duration(args.timeout),
                crate::units::format_duration(args.duration),
                crate::units::format_duration(DRAIN),
            ));
        }
        let requests = (f64::from(args.rate) * args.duration.as_secs_f64()).ceil() as u64;
        let cold_keys = cold_keys(requests, args.hot_fraction);
        let pages = args.hot_keys + cold_keys;
        let mem_mib =
            (WORKLOAD_BASE_MIB + pages.div_ceil(PAGES_PER_MIB) + SLACK_MIB).next_multiple_of(64);
        if mem_mib > MAX_MEM_MIB {
            let room = (MAX_MEM_MIB - WORKLOAD_BASE_MIB - SLACK_MIB) * PAGES_PER_MIB;
            return Err(format!(
                "not enough cold keys: {requests} requests with --hot-fraction {} need {cold_keys} \
                 cold keys (each asked once) besides the {} hot ones, one page each; guest RAM \
                 ({MAX_MEM_MIB} MiB at most) holds {room} keys; lower --rate or --duration, or \
                 raise --hot-fraction",
                args.hot_fraction, args.hot_keys
            ));
        }
        let load = Load {
            requests,
            rate: args.rate,
            hot_fraction: args.hot_fraction,
            hot_keys: args.hot_keys,
            cold_keys,
            malformed: args.malformed,
            seed: args.seed,
        };
        let sends = schedule::schedule(&load).map_err(|e| e.to_string())?;
        Ok(Plan {
            vmm: args.vmm,
            modes,
            load,
            duration: args.duration,
            workers: args.workers,
            mem_mib,
            sends,
        })
    }

    /// The guest's command line in `mode`.
    pub fn guest_words(&self, mode: ServeMode) -> Vec<String> {
        let source = if mode.lazy(self.vmm) {
            "source=host"
        } else {
            "source=guest"
        };
        let mut words = vec![
            "scenario=kv".to_owned(),
            format!("ip={GUEST}/{}", netns::PREFIX),
            format!("kv-hot={}", self.load.hot_keys),
            format!("kv-cold={}", self.load.cold_keys),
            format!("kv-workers={}", self.workers),
            format!("seed={}", self.load.seed),
            source.to_owned(),
            mode.apf().guest_word().to_owned(),
        ];
        // QEMU's microvm names its own virtio-mmio devices.
        if self.vmm == VmmKind::Builtin {
            words.push(format!(
                "virtio_mmio.device={}K@{NET_MMIO_BASE:#x}:{NET_IRQ}",
                NET_MMIO_SIZE >> 10
            ));
        }
        words
    }
}

/// The cold keys `requests` draw at `hot_fraction`: the expected count plus six standard
/// deviations of the binomial draw (and a few), so that a seed running out is unheard of.
fn cold_keys(requests: u64, hot_fraction: f64) -> u64 {
    let n = requests as f64;
    let expected = n * (1.0 - hot_fraction);
    let spread = 6.0 * (n * hot_fraction * (1.0 - hot_fraction)).sqrt();
    expected.ceil() as u64 + spread.ceil() as u64 + 8
}

/// `--modes`, or the default for `--vmm`; QEMU has only what needs no lazy memory.
fn modes(args: &ServeArgs) -> Result<Vec<ServeMode>, String> {
    let mut modes = match args.vmm {
        VmmKind::Builtin if args.modes.is_empty() => vec![
            ServeMode::Present,
            ServeMode::Off,
            ServeMode::Kvm,
            ServeMode::Vmm,
        ],
        VmmKind::Qemu if args.modes.is_empty() => ServeMode::QEMU.to_vec(),
        VmmKind::Builtin | VmmKind::Qemu => args.modes.clone(),
        VmmKind::El2 => {
            return Err(
                "--vmm el2 has no network card: serve-bench needs --vmm builtin or qemu".to_owned(),
            );
        }
    };
    let mut seen = Vec::new();
    modes.retain(|m| {
        let new = !seen.contains(m);
        seen.push(*m);
        new
    });
    if args.vmm == VmmKind::Qemu
        && let Some(mode) = modes.iter().find(|m| !ServeMode::QEMU.contains(m))
    {
        return Err(format!(
            "mode {mode} needs lazy memory, which QEMU has none of here: with --vmm qemu, \
             --modes takes only present and kvm"
        ));
    }
    Ok(modes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::tests::parse;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        Plan::new(&parse(args).expect("parses"))
    }

    #[test]
    fn defaults_size_the_load_and_the_guest() {
        let plan = plan(&[]).unwrap();
        assert_eq!(plan.load.requests, 1000);
        // 100 expected, 6 sigma of 9.5, and 8.
        assert_eq!(plan.load.cold_keys, 100 + 57 + 8);
        assert_eq!(plan.mem_mib, 128);
        assert_eq!(plan.sends.len(), 1000);
        assert_eq!(
            plan.modes,
            [
                ServeMode::Present,
                ServeMode::Off,
                ServeMode::Kvm,
                ServeMode::Vmm
            ]
        );
    }

    #[test]
    fn guest_words_per_mode_and_vmm() {
        let builtin = plan(&["--seed", "7", "--workers", "2"]).unwrap();
        assert_eq!(
            builtin.guest_words(ServeMode::Vmm).join(" "),
            "scenario=kv ip=10.0.0.2/24 kv-hot=64 kv-cold=165 kv-workers=2 seed=7 source=host \
             apf=on virtio_mmio.device=4K@0xd0000000:5"
        );
        let present = builtin.guest_words(ServeMode::Present).join(" ");
        assert!(
            present.contains("source=guest apf=off virtio_mmio"),
            "{present}"
        );
        let qemu = plan(&["--vmm", "qemu"]).unwrap();
        assert_eq!(
            qemu.guest_words(ServeMode::Kvm)[6..],
            ["source=guest", "apf=on"]
        );
        assert_eq!(qemu.modes, ServeMode::QEMU);
    }

    #[test]
    fn bad_combinations_are_refused_before_booting() {
        for (args, says) in [
            (&["--duration", "0s"][..], "--duration 0"),
            (&["--vmm", "el2"], "--vmm el2"),
            (&["--vmm", "qemu", "--modes", "present,off"], "QEMU"),
            (&["--duration", "120s"], "--timeout"),
            (
                &[
                    "--rate",
                    "100000",
                    "--duration",
                    "100s",
                    "--hot-fraction",
                    "0",
                    "--timeout",
                    "10m",
                ],
                "not enough cold keys",
            ),
        ] {
            let Err(error) = plan(args) else {
                panic!("{args:?} accepted");
            };
            assert!(error.contains(says), "{args:?}: {error}");
        }
        let modes = plan(&["--modes", "kvm,off,kvm"]).unwrap().modes;
        assert_eq!(modes, [ServeMode::Kvm, ServeMode::Off]);
    }

    #[test]
    fn the_margin_covers_every_seed_tried() {
        for seed in 0..200 {
            let seed = seed.to_string();
            plan(&["--seed", &seed, "--hot-fraction", "0.5"]).unwrap();
        }
        assert_eq!(cold_keys(1000, 1.0), 8);
        assert_eq!(cold_keys(1000, 0.0), 1008);
    }
}
