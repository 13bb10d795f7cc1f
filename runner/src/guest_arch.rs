//! The guest architectures the command line names, and which of them can run so far.

/// A guest architecture (`--arch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestArch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "aarch64")]
    Aarch64,
}

/// The architecture is named on the command line but cannot be built or booted yet.
#[derive(Debug, thiserror::Error)]
#[error("{0} guests are not yet supported (only x86_64 is)")]
pub struct Unsupported(&'static str);

impl GuestArch {
    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            GuestArch::X86_64 => "x86_64",
            GuestArch::Aarch64 => "aarch64",
        }
    }

    /// Fails for architectures whose guest kernel and VMM path do not exist yet.
    pub fn ensure_supported(self) -> Result<(), Unsupported> {
        match self {
            GuestArch::X86_64 => Ok(()),
            GuestArch::Aarch64 => Err(Unsupported(self.name())),
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
    fn only_x86_64_is_supported() {
        assert!(GuestArch::X86_64.ensure_supported().is_ok());
        let error = GuestArch::Aarch64.ensure_supported().unwrap_err();
        assert_eq!(
            error.to_string(),
            "aarch64 guests are not yet supported (only x86_64 is)"
        );
    }
}
