//! QEMU's command line for booting the guest the way our VMM does: PVH via `-kernel` (QEMU's
//! PVH option ROM builds the start info with memory map and command line), COM1 on stdout,
//! and the exit port; with a network card, on the microvm machine (see [`MICROVM`]).

use std::ffi::OsString;
use std::path::Path;

use crate::apf::ApfMode;
use crate::vmm::arch::exit_port;

const KIB: u64 = 1 << 10;

/// How QEMU runs guest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// KVM with the host CPU model. `arch-capabilities` is masked: on our hosts' KVM, QEMU
    /// aborts setting MSR 0x10a otherwise.
    Kvm,
    /// Emulation, where /dev/kvm is unusable.
    Tcg,
}

impl Accel {
    fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The CPU model. `tsc_khz` pins the TSC frequency: QEMU refuses to migrate a guest
    /// with `+invtsc` unless it is set, since the destination must give the same rate.
    fn cpu_model(self, tsc_khz: Option<u32>) -> String {
        match (self, tsc_khz) {
            // +invtsc lets QEMU fill the timing leaf (vmware-cpuid-freq), so the guest need
            // not measure its TSC against the PIT.
            (Accel::Kvm, None) => "host,-arch-capabilities,+invtsc,vmware-cpuid-freq=on".to_owned(),
            (Accel::Kvm, Some(khz)) => format!(
                "host,-arch-capabilities,+invtsc,tsc-frequency={},vmware-cpuid-freq=on",
                u64::from(khz) * 1000
            ),
            (Accel::Tcg, _) => "max".to_owned(),
        }
    }
}

/// One guest boot.
pub struct Invocation<'a> {
    pub accel: Accel,
    pub mem_size: u64,
    pub vcpus: u8,
    pub kernel: &'a Path,
    pub cmdline: &'a str,
    /// Async PF CPUID properties (KVM only: TCG's CPU has no KVM paravirtual features).
    pub apf: Option<ApfMode>,
    /// The host's TSC frequency, for a guest that will migrate (see [`Accel::cpu_model`]).
    pub tsc_khz: Option<u32>,
    /// A network card; `None`: the `pc` machine, as without one.
    pub net: Option<Net<'a>>,
}

/// A virtio-net card on virtio-mmio, backed by a TAP device QEMU opens by name (in the
/// network namespace QEMU runs in).
#[derive(Clone, Copy, Debug)]
pub struct Net<'a> {
    pub tap: &'a str,
    pub mac: [u8; 6],
}

/// The machine for a guest with a network card: `pc` has no virtio-mmio, and our guest has no
/// PCI driver. With ACPI on (microvm's default), QEMU describes its virtio-mmio transports
/// only in ACPI tables, which our guest does not read; with `acpi=off` it appends one Linux
/// `virtio_mmio.device=512@0xfeb00e00:12` word per transport with a device to the command
/// line, after ours (`auto-kernel-cmdline`). The legacy devices the guest uses (PIT, 8259
/// PIC, COM1) are asked for by name rather than left to microvm's `auto` defaults.
const MICROVM: &str = "microvm,acpi=off,pit=on,pic=on,isa-serial=on,auto-kernel-cmdline=on";

const MODERN_VIRTIO_MMIO: &str = "virtio-mmio.force-legacy=false";

impl Net<'_> {
    /// QEMU's `-netdev` and `-device` values: the TAP as it is (no scripts: the namespace's
    /// owner has set it up), the card on microvm's virtio-mmio with our MAC.
    fn options(self) -> [String; 2] {
        [
            format!("tap,id=net0,ifname={},script=no,downscript=no", self.tap),
            format!("virtio-net-device,netdev=net0,mac={}", mac_text(self.mac)),
        ]
    }
}

/// `mac` as QEMU reads it: six lowercase hex pairs joined by colons.
fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}

/// The arguments after the program name. Only the guest console reaches stdout: no display,
/// no monitor, no default devices; stdin is not read.
pub fn args(invocation: &Invocation<'_>) -> Vec<OsString> {
    let exit_device = format!(
        "isa-debug-exit,iobase={:#x},iosize={:#04x}",
        exit_port::PORT,
        exit_port::WIDTH
    );
    let memory = format!("{}K", invocation.mem_size / KIB);
    let vcpus = invocation.vcpus.to_string();
    let apf_properties = invocation.apf.and_then(|mode| mode.qemu_cpu_properties());
    let model = invocation.accel.cpu_model(invocation.tsc_khz);
    let cpu = match (invocation.accel, apf_properties) {
        (Accel::Kvm, Some(properties)) => format!("{model},{properties}"),
        _ => model,
    };
    let machine = if invocation.net.is_some() {
        MICROVM
    } else {
        "pc"
    };
    let net = invocation.net.map(Net::options);
    let mut devices = vec!["-device", exit_device.as_str()];
    if let Some([netdev, device]) = &net {
        // QEMU's virtio-mmio speaks the legacy (version 1) interface unless told otherwise;
        // our driver is virtio 1.x.
        devices.extend(["-global", MODERN_VIRTIO_MMIO]);
        devices.extend(["-netdev", netdev, "-device", device]);
    }
    assemble(
        &[
            "-accel",
            invocation.accel.name(),
            "-cpu",
            &cpu,
            "-machine",
            machine,
            "-m",
            // Sizes are whole pages, so whole KiB; QEMU reads a `K` suffix.
            &memory,
            "-smp",
            &vcpus,
        ],
        &devices,
        invocation.cmdline,
        invocation.kernel,
    )
}

/// What every boot passes between its machine's options and its devices, whatever the
/// architecture: only the guest console reaches stdout (no display, no monitor, no default
/// devices).
const CONSOLE_ONLY: [&str; 9] = [
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-monitor",
    "none",
    "-serial",
    "stdio",
    // A reset (on x86_64 also a triple fault) ends QEMU with exit code 0, never a guest
    // status, instead of rebooting the guest.
    "-no-reboot",
];

/// The arguments of one of our QEMU boots (x86_64 here, aarch64 and under the EL2 host
/// alike), in the order they all use: `machine` (accelerator, CPU, machine, memory, vCPUs),
/// [`CONSOLE_ONLY`], `devices`, then `-append cmdline` and `-kernel kernel`. One place, so
/// that a boot cannot forget an option that keeps QEMU's own output off the console.
pub fn assemble(machine: &[&str], devices: &[&str], cmdline: &str, kernel: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = machine
        .iter()
        .chain(&CONSOLE_ONLY)
        .chain(devices)
        .chain(&["-append", cmdline, "-kernel"])
        .map(OsString::from)
        .collect();
    args.push(kernel.into());
    args
}

/// Helpers for the argv tests of every architecture.
#[cfg(test)]
pub mod test_support {
    use std::ffi::OsString;

    /// `args` as strings, to compare with literals.
    pub fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|arg| arg.into_string().expect("UTF-8"))
            .collect()
    }

    /// The argument after `option`.
    pub fn value_of<'a>(args: &'a [String], option: &str) -> &'a str {
        let at = args
            .iter()
            .position(|arg| arg == option)
            .unwrap_or_else(|| panic!("{option} missing"));
        &args[at + 1]
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{strings, value_of};
    use super::*;

    fn args_of(accel: Accel, cmdline: &str) -> Vec<String> {
        args_with_apf(accel, cmdline, None)
    }

    fn args_with_apf(accel: Accel, cmdline: &str, apf: Option<ApfMode>) -> Vec<String> {
        strings(args(&Invocation {
            accel,
            mem_size: 512 << 20,
            vcpus: 1,
            kernel: Path::new("/k/guest kernel"),
            cmdline,
            apf,
            tsc_khz: None,
            net: None,
        }))
    }

    #[test]
    fn kvm_boot() {
        let args = args_of(Accel::Kvm, "scenario=demo hz=100");
        assert_eq!(value_of(&args, "-accel"), "kvm");
        assert_eq!(
            value_of(&args, "-cpu"),
            "host,-arch-capabilities,+invtsc,vmware-cpuid-freq=on"
        );
        assert_eq!(value_of(&args, "-machine"), "pc");
        assert_eq!(value_of(&args, "-m"), "524288K");
        assert_eq!(value_of(&args, "-smp"), "1");
        assert_eq!(value_of(&args, "-serial"), "stdio");
        assert_eq!(value_of(&args, "-display"), "none");
        assert_eq!(value_of(&args, "-monitor"), "none");
        assert_eq!(
            value_of(&args, "-device"),
            "isa-debug-exit,iobase=0xf4,iosize=0x04"
        );
        assert_eq!(value_of(&args, "-kernel"), "/k/guest kernel");
        assert_eq!(value_of(&args, "-append"), "scenario=demo hz=100");
        assert!(args.contains(&"-nodefaults".to_owned()));
        assert!(args.contains(&"-no-reboot".to_owned()));
    }

    #[test]
    fn tcg_fallback_uses_the_max_cpu() {
        let args = args_of(Accel::Tcg, "");
        assert_eq!(value_of(&args, "-accel"), "tcg");
        assert_eq!(value_of(&args, "-cpu"), "max");
    }

    #[test]
    fn apf_modes_set_kvm_cpu_properties_only_under_kvm() {
        let on = args_with_apf(Accel::Kvm, "", Some(ApfMode::Kvm));
        assert_eq!(
            value_of(&on, "-cpu"),
            "host,-arch-capabilities,+invtsc,vmware-cpuid-freq=on,kvm-asyncpf=on,kvm-asyncpf-int=on"
        );
        let off = args_with_apf(Accel::Kvm, "", Some(ApfMode::Off));
        assert!(value_of(&off, "-cpu").ends_with("kvm-asyncpf=off,kvm-asyncpf-int=off"));
        let tcg = args_with_apf(Accel::Tcg, "", Some(ApfMode::Kvm));
        assert_eq!(value_of(&tcg, "-cpu"), "max");
    }

    #[test]
    fn a_migrating_guest_gets_a_pinned_tsc_frequency() {
        let args = strings(args(&Invocation {
            accel: Accel::Kvm,
            mem_size: 128 << 20,
            vcpus: 1,
            kernel: Path::new("/k"),
            cmdline: "",
            apf: Some(ApfMode::Kvm),
            tsc_khz: Some(2_599_998),
            net: None,
        }));
        assert_eq!(
            value_of(&args, "-cpu"),
            "host,-arch-capabilities,+invtsc,tsc-frequency=2599998000,vmware-cpuid-freq=on,\
             kvm-asyncpf=on,kvm-asyncpf-int=on"
        );
    }

    #[test]
    fn empty_cmdline_is_still_passed() {
        let args = args_of(Accel::Kvm, "");
        assert_eq!(value_of(&args, "-append"), "");
    }

    #[test]
    fn a_network_card_boots_microvm_with_the_tap_and_mac() {
        let args = strings(args(&Invocation {
            accel: Accel::Kvm,
            mem_size: 128 << 20,
            vcpus: 1,
            kernel: Path::new("/k"),
            cmdline: "scenario=demo",
            apf: None,
            tsc_khz: None,
            net: Some(Net {
                tap: "tap-kv",
                mac: [0x52, 0x54, 0x00, 0x0a, 0xbc, 0xef],
            }),
        }));
        assert_eq!(
            value_of(&args, "-machine"),
            "microvm,acpi=off,pit=on,pic=on,isa-serial=on,auto-kernel-cmdline=on"
        );
        assert_eq!(
            value_of(&args, "-netdev"),
            "tap,id=net0,ifname=tap-kv,script=no,downscript=no"
        );
        let devices: Vec<&str> = args
            .windows(2)
            .filter(|pair| pair[0] == "-device")
            .map(|pair| pair[1].as_str())
            .collect();
        assert_eq!(
            devices,
            [
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "virtio-net-device,netdev=net0,mac=52:54:00:0a:bc:ef",
            ]
        );
        assert_eq!(value_of(&args, "-global"), "virtio-mmio.force-legacy=false");
        // The console and the rest are as without a card.
        assert_eq!(value_of(&args, "-serial"), "stdio");
        assert_eq!(value_of(&args, "-append"), "scenario=demo");
        assert_eq!(value_of(&args, "-kernel"), "/k");
    }

    #[test]
    fn without_a_network_card_there_is_no_netdev() {
        let args = args_of(Accel::Kvm, "");
        assert!(!args.iter().any(|arg| arg == "-netdev"));
        assert!(!args.iter().any(|arg| arg.starts_with("virtio-net")));
    }

    #[test]
    fn macs_are_lowercase_hex_pairs() {
        assert_eq!(
            mac_text([0xff, 0, 0x01, 0xab, 0x10, 0x9]),
            "ff:00:01:ab:10:09"
        );
    }
}
