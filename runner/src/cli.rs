//! The command line (`runner run ...`, `runner build-guest ...`); the names are a contract with
//! the README and the integration tests.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::guest_arch::GuestArch;
use crate::inject;
use crate::lazy::{LatencyModel, LazyRegion, MAX_FETCHERS};
use crate::units;

/// Boots the guest kernel in our KVM VMM or in QEMU and exits with the guest's status.
#[derive(Debug, Parser)]
#[command(name = "runner", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a guest kernel and exit with its status (124: timed out, 125: runner error).
    Run(RunArgs),
    /// Build the guest kernel and print the path of its ELF.
    BuildGuest(BuildGuestArgs),
    /// Run a scenario with async PF off and on under lazy memory, repeated, and report
    /// makespans and speedups (table, --json, --svg).
    Compare(crate::compare::CompareArgs),
    /// Boot the x86_64 guest in QEMU/KVM, migrate it with post-copy to a second QEMU while its
    /// workload waits, and exit with its status on the destination (124: timed out, 125:
    /// runner or migration error).
    Migrate(crate::migrate::MigrateArgs),
    /// Boot a guest kernel as `run` does and, if it exits with status 0, save its RAM to a
    /// snapshot file that `run --restore` serves lazy pages from.
    Snapshot(SnapshotArgs),
    /// Boot the guest's `kv` UDP service once per mode (memory present; lazy with async PF
    /// off and on) in a network namespace of its own, load it open loop from the host, and
    /// report request latency per mode for hot and cold keys (table, --json, --svg).
    ServeBench(crate::serve::ServeArgs),
    /// Count the guest's ring-0 instructions per trap kind, by function, from a `perf
    /// script` of KVM's kvm:kvm_emulate_insn tracepoint (bench/insns records one).
    Insns(crate::insns::InsnsArgs),
}

/// Which VMM boots the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VmmKind {
    /// Our own KVM VMM.
    Builtin,
    /// qemu-system-x86_64 with KVM (TCG if /dev/kvm is unusable); qemu-system-aarch64 with
    /// TCG for aarch64 guests.
    Qemu,
    /// Our arm64 EL2 host (`el2-host`) in qemu-system-aarch64 TCG: aarch64 guests, lazy
    /// memory with --latency, async PF with --apf el2.
    El2,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest architecture.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: GuestArch,
    /// VMM to boot the guest in.
    #[arg(long, value_enum, default_value = "builtin")]
    pub vmm: VmmKind,
    /// Guest kernel ELF to boot (PVH for x86_64) [default: build guest-kernel and boot it].
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Guest RAM: bytes, or a number with K, M or G (32M..=3G).
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = units::parse_mem_size)]
    pub mem: u64,
    /// Wall-clock limit for the guest run: seconds, or a number with ms, s or m.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = units::parse_timeout)]
    pub timeout: Duration,
    /// Make guest RAM lazy: each page is fetched on first touch, taking a time drawn from
    /// MODEL: `fixed:D`, `uniform:LOW..HIGH`, `lognormal:MEDIAN,P99`, or a bare duration D
    /// (fixed); durations in ns, us, ms or s. Builtin VMM, or the EL2 host (--vmm el2).
    #[arg(long, value_name = "MODEL")]
    pub latency: Option<LatencyModel>,
    /// Concurrent page fetches with --latency (1: a serial device).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_FETCHERS)),
        requires = "latency"
    )]
    pub fetchers: u8,
    /// Which guest RAM is lazy with --latency.
    #[arg(
        long,
        value_name = "REGION",
        value_enum,
        default_value = "workload",
        requires = "latency"
    )]
    pub lazy: LazyRegion,
    /// Seed of the lazy pages' contents with --latency (give the guest the same seed on its
    /// command line to check them) and of the fetch latencies.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "latency")]
    pub seed: u64,
    /// Serve the lazy pages (--latency) from FILE, a snapshot written by `runner snapshot`, not
    /// from the seed; its RAM size must be --mem's. Only RAM is restored: the kernel boots
    /// afresh. Builtin VMM only.
    #[arg(
        long,
        value_name = "FILE",
        requires = "latency",
        conflicts_with = "seed"
    )]
    pub restore: Option<PathBuf>,
    /// Fetch N more pages after each missing page, in address order, with --latency (a
    /// prefetcher; readahead pages count as served but were asked for by nobody).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "latency")]
    pub readahead: u16,
    /// Pin each vCPU thread to its own host CPU (vCPU i on the i-th allowed CPU, round-robin) and
    /// the lazy memory's fault reader to vCPU 0's, with --latency: a fault then hands the CPU
    /// from the vCPU thread to the reader and back without waking an idle CPU (see the README).
    #[arg(long, requires = "latency")]
    pub pin: bool,
    /// Async page faults: `off` hides KVM's async PF CPUID bits and tells the guest `apf=off`;
    /// `kvm` advertises them and tells the guest `apf=on` (KVM delivers them); `vmm` and
    /// `adaptive` (builtin VMM with --latency) have this VMM deliver them instead, `adaptive`
    /// only for faults expected to take --async-threshold or longer; `el2` has the arm64 EL2
    /// host deliver them (--vmm el2) [default: leave the CPUID and the guest command line as
    /// they are].
    #[arg(long, value_enum, value_name = "MODE")]
    pub apf: Option<crate::apf::ApfMode>,
    /// With --apf adaptive: a fault whose page is expected sooner than this stays synchronous
    /// [default: 200us].
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub async_threshold: Option<Duration>,
    /// Misbehave on purpose as a faulty host would, to test the guest: duplicate-ready,
    /// unknown-token, reorder, drop-ready, wake-all, disable-reenable, overflow (--apf vmm,
    /// adaptive or el2), spikes (any mode with --latency); comma-separated. See the README for
    /// each one's rate.
    #[arg(long, value_name = "FAULT", value_delimiter = ',', value_parser = inject::value_parser())]
    pub inject: Vec<inject::Inject>,
    /// vCPUs (x86_64, builtin VMM or QEMU): the guest kernel starts them all and spreads
    /// the workload's tasks over them, each CPU with its own async PF area and waiter table.
    /// From 1 to the host's CPUs (and at most 8).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: u8,
    /// Report VMM diagnostics (unhandled I/O, the QEMU command, lazy memory counts) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Also write how the run went (guest status, lazy memory counts) as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Guest command line, joined with single spaces.
    #[arg(last = true, value_name = "GUEST_CMDLINE")]
    pub cmdline: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BuildGuestArgs {
    /// Guest architecture.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: GuestArch,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Snapshot file to write (as FILE.tmp, renamed when complete). Not with --restore: lazy
    /// pages the guest never touched would be saved as zeros, not as the snapshot's pages.
    #[arg(long, value_name = "FILE", conflicts_with = "restore")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommand used when none is given: `runner` alone boots the default demo.
const DEFAULT_COMMAND: &str = "run";

/// Parses the process's arguments, exiting with clap's usage status (2) on errors.
pub fn parse() -> Cli {
    Cli::parse_from(with_default_command(std::env::args_os().collect()))
}

/// `runner` with no arguments at all means `runner run`; anything else is parsed as given, so
/// `runner --kernel x` stays a usage error rather than a guess.
fn with_default_command(mut args: Vec<OsString>) -> Vec<OsString> {
    if args.len() == 1 {
        args.push(DEFAULT_COMMAND.into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse_run(args: &[&str]) -> RunArgs {
        let args = with_default_command(args.iter().map(OsString::from).collect());
        match Cli::try_parse_from(args)
            .expect("valid command line")
            .command
        {
            Command::Run(run) => run,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn migrate_takes_only_the_modes_a_qemu_destination_has() {
        for (word, mode) in [
            ("off", crate::apf::ApfMode::Off),
            ("kvm", crate::apf::ApfMode::Kvm),
        ] {
            match Cli::try_parse_from(["runner", "migrate", "--apf", word])
                .expect("valid")
                .command
            {
                Command::Migrate(migrate) => assert_eq!(migrate.apf, Some(mode)),
                other => panic!("parsed as {other:?}"),
            }
        }
        for word in ["vmm", "adaptive", "el2"] {
            let error = Cli::try_parse_from(["runner", "migrate", "--apf", word])
                .expect_err("should be refused");
            assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue, "{word}");
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_mean_run_with_defaults() {
        let run = parse_run(&["runner"]);
        assert_eq!(run.arch, GuestArch::X86_64);
        assert_eq!(run.vmm, VmmKind::Builtin);
        assert_eq!(run.kernel, None);
        assert_eq!(run.mem, 512 << 20);
        assert_eq!(run.timeout, Duration::from_secs(60));
        assert!(!run.verbose);
        assert!(run.cmdline.is_empty());
        assert_eq!(run.latency, None);
        assert_eq!(
            (run.fetchers, run.lazy, run.seed),
            (1, LazyRegion::Workload, 1)
        );
    }

    #[test]
    fn full_run_command_line() {
        let run = parse_run(&[
            "runner",
            "run",
            "--arch",
            "x86_64",
            "--vmm",
            "qemu",
            "--kernel",
            "/tmp/k",
            "--mem",
            "1G",
            "--timeout",
            "500ms",
            "--",
            "scenario=demo",
            "hz=100",
        ]);
        assert_eq!(run.vmm, VmmKind::Qemu);
        assert_eq!(run.kernel, Some(PathBuf::from("/tmp/k")));
        assert_eq!(run.mem, 1 << 30);
        assert_eq!(run.timeout, Duration::from_millis(500));
        assert_eq!(run.cmdline, ["scenario=demo", "hz=100"]);
    }

    #[test]
    fn guest_words_may_look_like_runner_options() {
        let run = parse_run(&["runner", "run", "--", "--mem", "-v"]);
        assert_eq!(run.mem, 512 << 20);
        assert!(!run.verbose);
        assert_eq!(run.cmdline, ["--mem", "-v"]);
    }

    #[test]
    fn aarch64_parses() {
        assert_eq!(
            parse_run(&["runner", "run", "--arch", "aarch64"]).arch,
            GuestArch::Aarch64
        );
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["runner", "run", "--mem", "16M"][..],
            &["runner", "run", "--timeout", "1h"],
            &["runner", "run", "--vmm", "firecracker"],
            &["runner", "run", "--arch", "riscv64"],
            &["runner", "--kernel", "x"],
        ] {
            let error = Cli::try_parse_from(args).expect_err("should be refused");
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn lazy_memory_options() {
        let run = parse_run(&[
            "runner",
            "run",
            "--latency",
            "lognormal:1ms,10ms",
            "--fetchers",
            "64",
            "--lazy",
            "all",
            "--seed",
            "18446744073709551615",
        ]);
        assert_eq!(
            run.latency,
            Some("lognormal:1ms,10ms".parse().expect("valid model"))
        );
        assert_eq!(
            (run.fetchers, run.lazy, run.seed),
            (64, LazyRegion::All, u64::MAX)
        );
        let run = parse_run(&["runner", "run", "--latency", "30us"]);
        assert_eq!(
            run.latency,
            Some("fixed:30us".parse::<LatencyModel>().unwrap())
        );
    }

    #[test]
    fn bad_lazy_memory_options_are_usage_errors() {
        for args in [
            &["runner", "run", "--latency", "uniform:5ms..1ms"][..],
            &["runner", "run", "--latency", "10"],
            &["runner", "run", "--latency", "normal:1ms"],
            &["runner", "run", "--latency", "1ms", "--fetchers", "0"],
            &["runner", "run", "--latency", "1ms", "--fetchers", "65"],
            &["runner", "run", "--latency", "1ms", "--lazy", "kernel"],
            &["runner", "run", "--latency", "1ms", "--seed", "-1"],
        ] {
            let error = Cli::try_parse_from(args).expect_err("should be refused");
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn lazy_memory_settings_need_latency() {
        for option in [["--fetchers", "4"], ["--lazy", "all"], ["--seed", "5"]] {
            let args = ["runner", "run", option[0], option[1]];
            let error = Cli::try_parse_from(args).expect_err("should be refused");
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{args:?}"
            );
        }
    }

    #[test]
    fn async_pf_modes_and_their_options() {
        let run = parse_run(&[
            "runner",
            "run",
            "--latency",
            "1ms",
            "--apf",
            "adaptive",
            "--async-threshold",
            "150us",
            "--readahead",
            "8",
        ]);
        assert_eq!(run.apf, Some(crate::apf::ApfMode::Adaptive));
        assert_eq!(run.async_threshold, Some(Duration::from_micros(150)));
        assert_eq!(run.readahead, 8);
        assert_eq!(
            parse_run(&["runner", "run", "--apf", "vmm"]).apf,
            Some(crate::apf::ApfMode::Vmm)
        );
        for args in [
            &["runner", "run", "--apf", "user"][..],
            &["runner", "run", "--async-threshold", "fast"],
            &["runner", "run", "--latency", "1ms", "--readahead", "-1"],
            &["runner", "run", "--latency", "1ms", "--readahead", "65536"],
        ] {
            let error = Cli::try_parse_from(args).expect_err("should be refused");
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        for lone in ["--readahead=4", "--pin"] {
            let error = Cli::try_parse_from(["runner", "run", lone]).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{lone}"
            );
        }
    }

    #[test]
    fn inject_takes_fault_names_comma_separated_and_lists_them() {
        use crate::inject::Inject;
        let all = Inject::ALL.map(Inject::name).join(",");
        assert_eq!(
            parse_run(&["runner", "run", "--inject", &all]).inject,
            Inject::ALL
        );
        let error = Cli::try_parse_from(["runner", "run", "--inject", "reorder,bogus"])
            .expect_err("should be refused");
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
        assert_eq!(error.exit_code(), 2);
        assert!(
            error.to_string().contains(&format!(
                "[possible values: {}]",
                Inject::ALL.map(Inject::name).join(", ")
            )),
            "{error}"
        );
        // `--help` lists them, each with what it does.
        let command = Cli::command();
        let values = command
            .find_subcommand("run")
            .and_then(|run| run.get_arguments().find(|arg| arg.get_id() == "inject"))
            .expect("run --inject")
            .get_possible_values();
        let names: Vec<_> = values.iter().map(|value| value.get_name()).collect();
        assert_eq!(names, Inject::ALL.map(Inject::name));
        assert_eq!(
            values[3].get_help().map(ToString::to_string).as_deref(),
            Some("Every 8th page-ready is never sent: its task waits until its watchdog retries")
        );
    }

    #[test]
    fn serve_bench_is_a_subcommand() {
        let cli = Cli::try_parse_from(["runner", "serve-bench", "--modes", "present,adaptive"])
            .expect("valid command line");
        let Command::ServeBench(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(
            args.modes,
            [
                crate::serve::ServeMode::Present,
                crate::serve::ServeMode::Adaptive
            ]
        );
    }

    #[test]
    fn build_guest_takes_an_arch() {
        let cli = Cli::try_parse_from(["runner", "build-guest", "--arch", "x86_64"])
            .expect("valid command line");
        assert!(matches!(
            cli.command,
            Command::BuildGuest(BuildGuestArgs {
                arch: GuestArch::X86_64
            })
        ));
    }

    #[test]
    fn restore_serves_lazy_memory_from_a_file_instead_of_the_seed() {
        let run = parse_run(&["runner", "run", "--latency", "1ms", "--restore", "/tmp/s"]);
        assert_eq!(run.restore, Some(PathBuf::from("/tmp/s")));
        assert_eq!(parse_run(&["runner", "run"]).restore, None);
        for (args, kind) in [
            (
                &["runner", "run", "--restore", "/tmp/s"][..],
                clap::error::ErrorKind::MissingRequiredArgument,
            ),
            (
                &[
                    "runner",
                    "run",
                    "--latency",
                    "1ms",
                    "--restore",
                    "/tmp/s",
                    "--seed",
                    "5",
                ],
                clap::error::ErrorKind::ArgumentConflict,
            ),
        ] {
            let error = Cli::try_parse_from(args).expect_err("should be refused");
            assert_eq!(error.kind(), kind, "{args:?}");
        }
    }

    #[test]
    fn snapshot_takes_an_output_file_and_the_run_options() {
        let cli = Cli::try_parse_from([
            "runner",
            "snapshot",
            "--out",
            "/tmp/s.snap",
            "--mem",
            "128M",
            "--latency",
            "1ms",
            "--seed",
            "7",
            "-v",
            "--",
            "scenario=mem",
        ])
        .expect("valid command line");
        let Command::Snapshot(snapshot) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(snapshot.out, PathBuf::from("/tmp/s.snap"));
        assert_eq!(
            (snapshot.run.mem, snapshot.run.seed, snapshot.run.verbose),
            (128 << 20, 7, true)
        );
        assert_eq!(snapshot.run.cmdline, ["scenario=mem"]);
    }

    #[test]
    fn snapshot_needs_an_output_file_and_no_restore() {
        for (args, kind) in [
            (
                &["runner", "snapshot"][..],
                clap::error::ErrorKind::MissingRequiredArgument,
            ),
            (
                &[
                    "runner",
                    "snapshot",
                    "--out",
                    "/tmp/b",
                    "--latency",
                    "1ms",
                    "--restore",
                    "/tmp/a",
                ],
                clap::error::ErrorKind::ArgumentConflict,
            ),
        ] {
            let error = Cli::try_parse_from(args).expect_err("should be refused");
            assert_eq!(error.kind(), kind, "{args:?}");
        }
    }
}
