//! `--vmm el2`: the aarch64 guest at EL1 under our arm64 EL2 host (`el2-host`), both in
//! `qemu-system-aarch64` TCG with `virtualization=on`, as `scripts/el2-run` starts them.
//!
//! QEMU starts the host at EL2 (`-kernel`) and stages the guest ELF raw at the address the
//! host loads it from. One command line, `HOST_WORDS -- GUEST_WORDS` (`-append`): the host
//! reads it through semihosting `SYS_GET_CMDLINE`, and before loading the guest turns its own
//! words in the device tree's `/chosen/bootargs` into spaces, so the guest reads only its
//! own. The guest exits through semihosting itself, with the status encoded as on bare QEMU;
//! the host ends QEMU only on its own errors, after a last `el2: exit N` console line.

use std::ffi::OsString;
use std::path::Path;

use crate::apf::ApfMode;
use crate::inject::{self, Injections};
use crate::lazy::LazyConfig;

pub use super::aarch64::QEMU;

/// GICv3 (the guest's and the host's CPU interfaces are system registers), EL2 for the host.
const MACHINE: &str = "virt,virtualization=on,gic-version=3";
/// RAM the host is built for (`el2-host/src/memory_map.rs`, `RAM_SIZE`).
pub const MEM_SIZE: u64 = 512 << 20;
/// The host's own region at the top of its RAM (`memory_map.rs`, `HOST_REGION`).
const HOST_REGION_SIZE: u64 = 16 << 20;
/// RAM the host leaves its guest, in MiB: everything below its own region (`GUEST_RAM`).
pub const GUEST_MIB: u64 = (MEM_SIZE - HOST_REGION_SIZE) >> 20;
const KIB: u64 = 1 << 10;
/// Where the host expects QEMU to stage the guest ELF (`memory_map.rs`,
/// `GUEST_ELF_STAGING`).
const STAGING: &str = "0x5f800000";
/// The console line the host prints last when it ends the run itself (`host/exit.rs`).
pub const HOST_EXIT_PREFIX: &str = "el2: exit ";

/// One boot of the guest under the EL2 host.
pub struct Invocation<'a> {
    pub host: &'a Path,
    pub guest: &'a Path,
    pub guest_cmdline: &'a str,
    pub lazy: Option<&'a LazyConfig>,
    pub apf: Option<ApfMode>,
    /// Host faults to inject (`--inject`; the host takes the same names).
    pub inject: &'a Injections,
}

/// The host's command-line words (`el2-host/src/params.rs`): `mode=apf` only for
/// `--apf el2`; without `--latency` nothing is lazy.
fn host_words(invocation: &Invocation<'_>) -> Vec<String> {
    let mode = match invocation.apf {
        Some(ApfMode::El2) => "apf",
        _ => "off",
    };
    let mut words = vec![format!("mode={mode}")];
    match invocation.lazy {
        Some(lazy) => {
            words.push(format!("latency={}", lazy.latency));
            words.push(format!("seed={}", lazy.seed));
        }
        None => words.push("lazy=none".to_owned()),
    }
    if !invocation.inject.is_empty() {
        words.push(format!("inject={}", inject::names(invocation.inject)));
    }
    words
}

/// The arguments after the program name. Only the consoles reach stdout (the host's lines
/// start `el2: `); no display, no monitor, no default devices.
pub fn args(invocation: &Invocation<'_>) -> Vec<OsString> {
    let cmdline = format!(
        "{} -- {}",
        host_words(invocation).join(" "),
        invocation.guest_cmdline
    );
    // QEMU option values double their commas (a path with a comma).
    let loader = format!(
        "loader,file={},addr={STAGING},force-raw=on",
        invocation.guest.display().to_string().replace(',', ",,")
    );
    let memory = format!("{}K", MEM_SIZE / KIB);
    super::argv::assemble(
        &super::aarch64::tcg_machine(MACHINE, &memory),
        &[
            "-semihosting-config",
            "enable=on,target=native",
            "-device",
            &loader,
        ],
        &cmdline,
        invocation.host,
    )
}

/// The host's own exit status if it ended the run (its last console line says so).
pub fn host_exit(last_line: Option<&str>) -> Option<u8> {
    last_line?
        .strip_prefix(HOST_EXIT_PREFIX)?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lazy::LazyRegion;
    use crate::lazy::latency::LatencyModel;
    use crate::qemu::argv::test_support::{strings, value_of};

    fn args_of(lazy: Option<&LazyConfig>, apf: Option<ApfMode>) -> Vec<String> {
        args_injecting(lazy, apf, &Injections::new())
    }

    fn args_injecting(
        lazy: Option<&LazyConfig>,
        apf: Option<ApfMode>,
        inject: &Injections,
    ) -> Vec<String> {
        strings(args(&Invocation {
            host: Path::new("/t/el2-host"),
            guest: Path::new("/t/guest-kernel"),
            guest_cmdline: "scenario=seed seed=4 apf=on",
            lazy,
            apf,
            inject,
        }))
    }

    #[test]
    fn host_and_guest_command_lines() {
        let lazy = LazyConfig {
            latency: "lognormal:1ms,5ms".parse::<LatencyModel>().unwrap(),
            fetchers: 1,
            region: LazyRegion::Workload,
            seed: 4,
            readahead: 0,
            pin: false,
        };
        let args = args_of(Some(&lazy), Some(ApfMode::El2));
        assert_eq!(
            value_of(&args, "-machine"),
            "virt,virtualization=on,gic-version=3"
        );
        assert_eq!(value_of(&args, "-m"), "524288K");
        assert_eq!(
            value_of(&args, "-append"),
            "mode=apf latency=lognormal:1ms,5ms seed=4 -- scenario=seed seed=4 apf=on"
        );
        assert_eq!(
            value_of(&args, "-device"),
            "loader,file=/t/guest-kernel,addr=0x5f800000,force-raw=on"
        );
        assert_eq!(value_of(&args, "-kernel"), "/t/el2-host");
    }

    #[test]
    fn without_latency_nothing_is_lazy_and_apf_is_off() {
        let args = args_of(None, Some(ApfMode::Off));
        assert!(value_of(&args, "-append").starts_with("mode=off lazy=none -- "));
    }

    #[test]
    fn injections_become_the_hosts_inject_word() {
        use crate::inject::Inject;
        let inject = Injections::from([Inject::DropReady, Inject::Spikes]);
        let args = args_injecting(None, Some(ApfMode::El2), &inject);
        assert!(
            value_of(&args, "-append")
                .starts_with("mode=apf lazy=none inject=drop-ready,spikes -- "),
            "{args:?}"
        );
    }

    #[test]
    fn the_host_exit_line() {
        assert_eq!(host_exit(Some("el2: exit 7")), Some(7));
        assert_eq!(host_exit(Some("RESULT {}")), None);
        assert_eq!(host_exit(None), None);
    }
}
