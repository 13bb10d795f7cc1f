//! The guest architectures the command line names, and which VMM can run each.

use crate::cli::VmmKind;

/// A guest architecture (`--arch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestArch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "aarch64")]
    Aarch64,
}

/// The architecture cannot run in the VMM asked for.
#[derive(Debug, thiserror::Error)]
pub enum Unsupported {
    #[error(
        "{0} guests run only under --vmm qemu or el2 (the builtin KVM VMM, and with it \
         snapshots, is x86_64-only)"
    )]
    NotBuiltin(&'static str),
    #[error("--vmm el2 (the arm64 EL2 host) runs aarch64 guests only")]
    El2IsArm64,
}

impl GuestArch {
    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            GuestArch::X86_64 => "x86_64",
            GuestArch::Aarch64 => "aarch64",
        }
    }

    /// Fails for an architecture `vmm` cannot boot: aarch64 guests run in QEMU (TCG), bare
    /// or under the EL2 host, which runs nothing else.
    pub fn ensure_supported(self, vmm: VmmKind) -> Result<(), Unsupported> {
        match (self, vmm) {
            (GuestArch::X86_64, VmmKind::Builtin | VmmKind::Qemu)
            | (GuestArch::Aarch64, VmmKind::Qemu | VmmKind::El2) => Ok(()),
            (GuestArch::Aarch64, VmmKind::Builtin) => Err(Unsupported::NotBuiltin(self.name())),
            (GuestArch::X86_64, VmmKind::El2) => Err(Unsupported::El2IsArm64),
        }
    }

    /// The Rust target the guest kernel is built for.
    pub fn target_triple(self) -> &'static str {
        match self {
            GuestArch::X86_64 => "x86_64-unknown-none",
            GuestArch::Aarch64 => "aarch64-unknown-none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aarch64_runs_under_qemu_and_el2_only() {
        for vmm in [VmmKind::Builtin, VmmKind::Qemu] {
            assert!(GuestArch::X86_64.ensure_supported(vmm).is_ok());
        }
        assert!(GuestArch::Aarch64.ensure_supported(VmmKind::Qemu).is_ok());
        assert!(GuestArch::Aarch64.ensure_supported(VmmKind::El2).is_ok());
        assert!(matches!(
            GuestArch::X86_64.ensure_supported(VmmKind::El2),
            Err(Unsupported::El2IsArm64)
        ));
        let error = GuestArch::Aarch64
            .ensure_supported(VmmKind::Builtin)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("aarch64 guests run only under --vmm qemu or el2"),
            "{error}"
        );
    }
}
