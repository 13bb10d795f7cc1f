//! The async PF options `compare` passes through to its `runner run` children: which mode
//! (`--apf`), our VMM's tuning (`--async-threshold`, `--readahead`) and the host faults to
//! inject (`--inject`). Left out, a child uses `runner run`'s defaults, so the comparison
//! reports only what was asked for.

use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::mode::Mode;
use crate::inject::{self, Inject, InjectExt};
use crate::units::{self, format_fine_duration};

/// Most pages `--readahead` may fetch beyond a faulting page (4 MiB).
const MAX_READAHEAD: i64 = 1024;

/// `compare`'s pass-through options (flattened into `CompareArgs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Args)]
pub struct Tuning {
    /// Adaptive runs only: passed as `runner run --async-threshold`, the fetch time above
    /// which our VMM makes a fault async rather than synchronous (ns, us, ms or s)
    /// [default: runner run's, 200us].
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub async_threshold: Option<Duration>,
    /// Pages our VMM fetches ahead of each faulting page, passed as `runner run --readahead`
    /// to every run so all modes see the same memory (0..=1024) [default: runner run's, 0].
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(0..=MAX_READAHEAD)
    )]
    pub readahead: Option<u32>,
    /// Host faults to inject, passed as `runner run --inject`: spikes to every run, the
    /// others to the vmm, adaptive and el2 runs (only our own hosts can misbehave).
    #[arg(long, value_name = "FAULT", value_delimiter = ',', value_parser = inject::value_parser())]
    pub inject: Vec<Inject>,
    /// Passed as `runner run --pin` to every run, so all modes run pinned: each vCPU thread on
    /// its own host CPU and the fault reader on vCPU 0's (x86 VMM only).
    #[arg(long)]
    pub pin: bool,
}

impl Tuning {
    /// Refuses an option no requested mode would use, rather than silently ignoring it.
    pub fn check(&self, modes: &[Mode]) -> Result<(), String> {
        if self.async_threshold.is_some() && !modes.contains(&Mode::Adaptive) {
            let modes: Vec<String> = modes.iter().map(Mode::to_string).collect();
            return Err(format!(
                "--async-threshold applies to adaptive runs only, and the modes are {}",
                modes.join(",")
            ));
        }
        let userspace = modes.iter().any(|m| m.is_our_host());
        if let Some(inject) = self.inject.iter().find(|i| i.needs_userspace_apf())
            && !userspace
        {
            return Err(format!(
                "--inject {} needs a vmm, adaptive or el2 run among the modes",
                inject.name()
            ));
        }
        Ok(())
    }

    /// The `--inject` list for a run in `mode`.
    fn injections(&self, mode: Mode) -> Vec<&Inject> {
        self.inject
            .iter()
            .filter(|i| mode.is_our_host() || !i.needs_userspace_apf())
            .collect()
    }

    /// The `runner run` arguments for one run in `mode`.
    pub fn run_args(&self, mode: Mode) -> Vec<String> {
        // Each mode is named as `runner run --apf` names it (which sets the guest's CPUID and
        // `apf=` word together).
        let mut args = vec!["--apf".to_owned(), mode.to_string()];
        if let Some(threshold) = self.async_threshold.filter(|_| mode == Mode::Adaptive) {
            args.push("--async-threshold".to_owned());
            args.push(format_fine_duration(threshold));
        }
        if let Some(pages) = self.readahead {
            args.push("--readahead".to_owned());
            args.push(pages.to_string());
        }
        if self.pin {
            args.push("--pin".to_owned());
        }
        let inject = self.injections(mode);
        if !inject.is_empty() {
            args.push("--inject".to_owned());
            args.push(inject::names(inject));
        }
        args
    }

    /// The options as given (null: `runner run`'s default), for `compare --json`.
    pub fn to_json(&self) -> Value {
        json!({
            "async_threshold": self.async_threshold.map(format_fine_duration),
            "readahead": self.readahead,
            "inject": self.inject.iter().map(|i| i.name()).collect::<Vec<_>>(),
            "pin": self.pin,
        })
    }

    /// The options as given, for a table's title ("" when none).
    pub fn describe(&self) -> String {
        let threshold = self
            .async_threshold
            .map(|t| format!(", async threshold {}", format_fine_duration(t)));
        let readahead = self.readahead.map(|n| format!(", readahead {n} page(s)"));
        let inject = (!self.inject.is_empty())
            .then(|| format!(", injecting {}", inject::names(&self.inject)));
        let pin = if self.pin { ", pinned" } else { "" };
        threshold.unwrap_or_default()
            + &readahead.unwrap_or_default()
            + &inject.unwrap_or_default()
            + pin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuning() -> Tuning {
        Tuning {
            async_threshold: Some(Duration::from_micros(150)),
            readahead: Some(4),
            inject: Vec::new(),
            pin: false,
        }
    }

    #[test]
    fn each_mode_maps_to_its_apf_flag() {
        let none = Tuning::default();
        for (mode, flag) in [
            (Mode::Off, "off"),
            (Mode::Kvm, "kvm"),
            (Mode::Vmm, "vmm"),
            (Mode::Adaptive, "adaptive"),
            (Mode::El2, "el2"),
        ] {
            assert_eq!(none.run_args(mode), ["--apf", flag]);
        }
    }

    #[test]
    fn the_threshold_goes_to_adaptive_runs_and_readahead_to_all() {
        let t = tuning();
        assert_eq!(
            t.run_args(Mode::Adaptive),
            [
                "--apf",
                "adaptive",
                "--async-threshold",
                "150us",
                "--readahead",
                "4"
            ]
        );
        assert_eq!(t.run_args(Mode::Off), ["--apf", "off", "--readahead", "4"]);
        assert_eq!(t.run_args(Mode::Vmm), ["--apf", "vmm", "--readahead", "4"]);
    }

    #[test]
    fn a_threshold_without_adaptive_runs_is_refused() {
        let t = tuning();
        let err = t.check(&[Mode::Off, Mode::Kvm]).unwrap_err();
        assert!(
            err.contains("adaptive runs only") && err.contains("off,kvm"),
            "{err}"
        );
        assert_eq!(t.check(&[Mode::Off, Mode::Adaptive]), Ok(()));
        assert_eq!(Tuning::default().check(&[Mode::Off]), Ok(()));
    }

    #[test]
    fn json_and_title_show_what_was_given() {
        assert_eq!(
            tuning().to_json(),
            json!({"async_threshold": "150us", "readahead": 4, "inject": [], "pin": false})
        );
        assert_eq!(
            Tuning::default().to_json(),
            json!({"async_threshold": null, "readahead": null, "inject": [], "pin": false})
        );
        assert_eq!(
            tuning().describe(),
            ", async threshold 150us, readahead 4 page(s)"
        );
        assert_eq!(Tuning::default().describe(), "");
    }

    #[test]
    fn pinning_goes_to_every_run() {
        let t = Tuning {
            pin: true,
            ..Tuning::default()
        };
        for mode in [Mode::Off, Mode::Kvm, Mode::Vmm, Mode::Adaptive] {
            assert_eq!(t.run_args(mode)[2..], ["--pin"], "{mode}");
        }
        assert_eq!(t.to_json()["pin"], true);
        assert_eq!(t.describe(), ", pinned");
    }

    #[test]
    fn spikes_go_to_every_run_other_faults_to_our_vmms_runs() {
        let t = Tuning {
            inject: vec![Inject::Spikes, Inject::DropReady],
            ..Tuning::default()
        };
        assert_eq!(
            t.run_args(Mode::Vmm),
            ["--apf", "vmm", "--inject", "spikes,drop-ready"]
        );
        assert_eq!(
            t.run_args(Mode::Kvm),
            ["--apf", "kvm", "--inject", "spikes"]
        );
        assert_eq!(t.check(&[Mode::Off, Mode::Adaptive]), Ok(()));
        let err = t.check(&[Mode::Off, Mode::Kvm]).unwrap_err();
        assert!(err.contains("--inject drop-ready"), "{err}");
        assert_eq!(t.describe(), ", injecting spikes,drop-ready");
    }
}
