//! Boots under the arm64 EL2 host (`el2-host`) in QEMU TCG with `virtualization=on`, and what
//! they printed: the host's lines start `el2: `, its payload's `guest: `.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

/// The workspace root: where `scripts/` is, and where the EL2 images are built.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runner is in the workspace")
}

/// How a boot ended and what it printed.
pub struct Boot {
    /// The guest's or the host's exit status: decoded from QEMU's exit code
    /// ([`Boot::of_qemu`]), or a `runner run --vmm el2`'s own, which is already the guest's.
    pub status: Option<i32>,
    pub stdout: String,
}

impl Boot {
    /// What QEMU printed, and the status decoded from its exit code `(status << 1) | 1`
    /// (`None` if the code was even: no status, e.g. QEMU stopped by `timeout`).
    pub fn of_qemu(out: Output) -> Self {
        Boot {
            status: out
                .status
                .code()
                .filter(|code| code % 2 == 1)
                .map(|code| code >> 1),
            stdout: String::from_utf8_lossy(&out.stdout).replace('\r', ""),
        }
    }

    /// Asserts the boot exited 0, showing its output if not.
    pub fn succeeded(self) -> Self {
        assert_eq!(self.status, Some(0), "{}", self.stdout);
        self
    }

    /// The first line starting with `prefix`.
    pub fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{}", self.stdout))
    }

    /// `key=N` of the line starting with `prefix`.
    pub fn number(&self, prefix: &str, key: &str) -> u64 {
        let line = self.line(prefix);
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
            .parse()
            .expect("a number")
    }

    /// The guest kernel's `RESULT {json}` line.
    pub fn result(&self) -> Value {
        let line = self.line("RESULT ");
        serde_json::from_str(line.trim_start_matches("RESULT ")).expect("RESULT is JSON")
    }
}
