//! Building the guest kernel, for `runner run` without `--kernel` and for `runner build-guest`.
//!
//! The build goes through `scripts/guest-cargo`, the one place that knows which toolchain
//! can build a bare-metal guest here (Debian's with `-Zbuild-std`, or a rustup nightly with
//! `rust-src`); `scripts/test` lints the guest through the same script.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::guest_arch::GuestArch;

/// The guest kernel's package, and the binary it builds.
const GUEST_PACKAGE: &str = "guest-kernel";
/// The arm64 EL2 host's package and binary (`--vmm el2`), built like an aarch64 guest.
const EL2_HOST_PACKAGE: &str = "el2-host";
/// Overrides where the workspace is, for a runner binary used outside its source tree.
const WORKSPACE_ENV: &str = "APF_WORKSPACE";
/// The guest's own target directory: host builds and the `-Zbuild-std` guest build must not
/// invalidate each other's artifacts.
const GUEST_TARGET_DIR: &str = "target/guest";
/// Runs cargo with the bare-metal toolchain and `-Zbuild-std`, relative to the workspace.
const GUEST_CARGO: &str = "scripts/guest-cargo";
/// Flags meant for host builds; set, they would replace the guest's code-generation flags in
/// `.cargo/config.toml` (static relocation model) and break its link.
const HOST_ONLY_ENV: [&str; 2] = ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start the guest build ({program})")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("building the guest kernel failed ({status}); cargo's messages are above")]
    Failed { status: ExitStatus },
    #[error("the guest build succeeded but {} is missing", .0.display())]
    Missing(PathBuf),
}

/// Builds the guest kernel for `arch` in release mode and returns its ELF. Cargo's output goes
/// to our stderr: stdout carries only the guest console (or the path, for `build-guest`).
pub fn build(arch: GuestArch) -> Result<PathBuf, Error> {
    build_package(GUEST_PACKAGE, arch.target_triple())
}

/// Builds the arm64 EL2 host (`--vmm el2`) and returns its ELF.
pub fn build_el2_host() -> Result<PathBuf, Error> {
    build_package(EL2_HOST_PACKAGE, GuestArch::Aarch64.target_triple())
}

fn build_package(package: &str, target: &str) -> Result<PathBuf, Error> {
    let workspace = workspace_root();
    let mut cargo = build_command(&workspace, package, target);
    let status = cargo
        .stdout(io::stderr())
        .status()
        .map_err(|source| Error::Spawn {
            program: cargo.get_program().to_string_lossy().into_owned(),
            source,
        })?;
    if !status.success() {
        return Err(Error::Failed { status });
    }
    let elf = elf_path(&workspace, package, target);
    if !elf.is_file() {
        return Err(Error::Missing(elf));
    }
    Ok(elf)
}

fn workspace_root() -> PathBuf {
    match std::env::var_os(WORKSPACE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the runner crate is a member directory of the workspace")
            .to_path_buf(),
    }
}

fn build_command(workspace: &Path, package: &str, target: &str) -> Command {
    let mut cargo = Command::new(workspace.join(GUEST_CARGO));
    cargo
        .current_dir(workspace)
        .args(["build", "--release", "-p", package, "--target", target])
        .arg("--target-dir")
        .arg(workspace.join(GUEST_TARGET_DIR));
    for name in HOST_ONLY_ENV {
        cargo.env_remove(name);
    }
    cargo
}

fn elf_path(workspace: &Path, package: &str, target: &str) -> PathBuf {
    workspace
        .join(GUEST_TARGET_DIR)
        .join(target)
        .join("release")
        .join(package)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn build_command_builds_the_guest_package_through_guest_cargo() {
        let workspace = Path::new("/ws");
        let cargo = build_command(workspace, GUEST_PACKAGE, "x86_64-unknown-none");
        assert_eq!(cargo.get_program(), "/ws/scripts/guest-cargo");
        assert_eq!(cargo.get_current_dir(), Some(workspace));
        assert_eq!(
            cargo.get_args().collect::<Vec<_>>(),
            [
                "build",
                "--release",
                "-p",
                "guest-kernel",
                "--target",
                "x86_64-unknown-none",
                "--target-dir",
                "/ws/target/guest",
            ]
        );
        let envs: Vec<_> = cargo.get_envs().collect();
        assert!(envs.contains(&(OsStr::new("RUSTFLAGS"), None)));
    }

    #[test]
    fn elf_lands_in_the_guest_target_dir() {
        assert_eq!(
            elf_path(Path::new("/ws"), GUEST_PACKAGE, "x86_64-unknown-none"),
            Path::new("/ws/target/guest/x86_64-unknown-none/release/guest-kernel")
        );
        assert_eq!(
            elf_path(Path::new("/ws"), EL2_HOST_PACKAGE, "aarch64-unknown-none"),
            Path::new("/ws/target/guest/aarch64-unknown-none/release/el2-host")
        );
    }
}
