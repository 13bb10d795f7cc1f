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
#[error(
    "{0} guests run only under --vmm qemu (the builtin KVM VMM, and with it lazy memory, \
     snapshots and compare, is x86_64-only)"
)]
pub struct Unsupported(&'static str);

impl GuestArch {
    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            GuestArch::X86_64 => "x86_64",
            GuestArch::Aarch64 => "aarch64",
        }
    }

    /// Fails for an architecture `vmm` cannot boot: aarch64 guests run in QEMU (TCG) only.
    pub fn ensure_supported(self, vmm: VmmKind) -> Result<(), Unsupported> {
        match (self, vmm) {
            (GuestArch::X86_64, _) | (GuestArch::Aarch64, VmmKind::Qemu) => Ok(()),
            (GuestArch::Aarch64, VmmKind::Builtin) => Err(Unsupported(self.name())),
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
    fn aarch64_runs_under_qemu_only() {
        for vmm in [VmmKind::Builtin, VmmKind::Qemu] {
            assert!(GuestArch::X86_64.ensure_supported(vmm).is_ok());
        }
        assert!(GuestArch::Aarch64.ensure_supported(VmmKind::Qemu).is_ok());
        let error = GuestArch::Aarch64
            .ensure_supported(VmmKind::Builtin)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("aarch64 guests run only under --vmm qemu"),
            "{error}"
        );
    }
}
