//! `qemu-system-aarch64` for the aarch64 guest: the `virt` machine with a GICv3 and the
//! `max` CPU under TCG (this host has no arm64 KVM), the ELF via `-kernel` (QEMU starts a
//! bare-metal ELF at EL1 at its entry point and puts the device tree, with `-append` as
//! `/chosen/bootargs`, at the start of RAM), the PL011 on stdout, and semihosting on so the
//! guest can exit with its status (SYS_EXIT_EXTENDED, encoded as `isa-debug-exit` does).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use linux_loader::elf::{
    EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_AARCH64, Elf64_Ehdr, SELFMAG,
};
use vm_memory::ByteValued;

pub const QEMU: &str = "qemu-system-aarch64";
/// GICv3: the guest uses its system-register CPU interface.
const MACHINE: &str = "virt,gic-version=3";
const KIB: u64 = 1 << 10;

/// One guest boot.
pub struct Invocation<'a> {
    pub mem_size: u64,
    pub vcpus: u8,
    pub kernel: &'a Path,
    pub cmdline: &'a str,
}

/// The arguments after the program name. Only the guest console reaches stdout: no display,
/// no monitor, no default devices; stdin is not read.
pub fn args(invocation: &Invocation<'_>) -> Vec<OsString> {
    let memory = format!("{}K", invocation.mem_size / KIB);
    let vcpus = invocation.vcpus.to_string();
    let machine = [&tcg_machine(MACHINE, &memory)[..], &["-smp", &vcpus]].concat();
    super::argv::assemble(
        &machine,
        &["-semihosting-config", "enable=on"],
        invocation.cmdline,
        invocation.kernel,
    )
}

/// The options every arm64 boot, bare or under the EL2 host, starts with: TCG (this host has
/// no arm64 KVM) on `machine` with the `max` CPU, and `memory` as QEMU's `-m` value.
pub fn tcg_machine<'a>(machine: &'a str, memory: &'a str) -> [&'a str; 8] {
    [
        "-accel", "tcg", "-machine", machine, "-cpu", "max", "-m", memory,
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot read kernel {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("kernel {}: not a 64-bit little-endian ELF", .path.display())]
    NotElf64 { path: PathBuf },
    #[error("kernel {}: ELF for machine {machine}, but the guest is aarch64", .path.display())]
    WrongMachine { path: PathBuf, machine: u16 },
}

/// Checks that `path` is an aarch64 ELF64, so a wrong file fails with our message rather
/// than QEMU's.
pub fn validate_kernel(path: &Path) -> Result<(), KernelError> {
    let read_error = |source| KernelError::Read {
        path: path.to_owned(),
        source,
    };
    let mut header = Elf64_Ehdr::default();
    match File::open(path).and_then(|mut file| file.read_exact(header.as_mut_slice())) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(KernelError::NotElf64 {
                path: path.to_owned(),
            });
        }
        Err(error) => return Err(read_error(error)),
    }
    header_problem(&header).map_or(Ok(()), |problem| Err(problem.into_error(path)))
}

/// What is wrong with an ELF header for an aarch64 guest, if anything.
#[derive(Debug, PartialEq, Eq)]
enum HeaderProblem {
    NotElf64,
    WrongMachine(u16),
}

impl HeaderProblem {
    fn into_error(self, path: &Path) -> KernelError {
        let path = path.to_owned();
        match self {
            HeaderProblem::NotElf64 => KernelError::NotElf64 { path },
            HeaderProblem::WrongMachine(machine) => KernelError::WrongMachine { path, machine },
        }
    }
}

fn header_problem(header: &Elf64_Ehdr) -> Option<HeaderProblem> {
    if header.e_ident[..SELFMAG] != ELFMAG[..]
        || header.e_ident[EI_CLASS] != ELFCLASS64
        || header.e_ident[EI_DATA] != ELFDATA2LSB
    {
        return Some(HeaderProblem::NotElf64);
    }
    (header.e_machine != EM_AARCH64).then_some(HeaderProblem::WrongMachine(header.e_machine))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::argv::test_support::{strings, value_of};
    use linux_loader::elf::{ELFCLASS32, EM_X86_64};

    fn args_of(cmdline: &str) -> Vec<String> {
        strings(args(&Invocation {
            mem_size: 128 << 20,
            vcpus: 1,
            kernel: Path::new("/k/guest kernel"),
            cmdline,
        }))
    }

    #[test]
    fn virt_boot_under_tcg_with_semihosting() {
        let args = args_of("scenario=demo");
        assert_eq!(value_of(&args, "-accel"), "tcg");
        assert_eq!(value_of(&args, "-machine"), "virt,gic-version=3");
        assert_eq!(value_of(&args, "-cpu"), "max");
        assert_eq!(value_of(&args, "-m"), "131072K");
        assert_eq!(value_of(&args, "-smp"), "1");
        assert_eq!(value_of(&args, "-serial"), "stdio");
        assert_eq!(value_of(&args, "-semihosting-config"), "enable=on");
        assert_eq!(value_of(&args, "-append"), "scenario=demo");
        assert_eq!(value_of(&args, "-kernel"), "/k/guest kernel");
        assert!(args.contains(&"-no-reboot".to_owned()));
        assert!(args.contains(&"-nodefaults".to_owned()));
    }

    fn header(class: u8, machine: u16) -> Elf64_Ehdr {
        let mut header = Elf64_Ehdr::default();
        header.e_ident[..SELFMAG].copy_from_slice(ELFMAG);
        header.e_ident[EI_CLASS] = class;
        header.e_ident[EI_DATA] = ELFDATA2LSB;
        header.e_machine = machine;
        header
    }

    #[test]
    fn only_aarch64_elf64_kernels_pass() {
        assert_eq!(header_problem(&header(ELFCLASS64, EM_AARCH64)), None);
        assert_eq!(
            header_problem(&header(ELFCLASS64, EM_X86_64)),
            Some(HeaderProblem::WrongMachine(EM_X86_64))
        );
        assert_eq!(
            header_problem(&header(ELFCLASS32, EM_AARCH64)),
            Some(HeaderProblem::NotElf64)
        );
        assert_eq!(
            header_problem(&Elf64_Ehdr::default()),
            Some(HeaderProblem::NotElf64)
        );
    }
}
