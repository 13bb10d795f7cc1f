//! `runner run` with a report file, for the test binaries that read the report (included
//! with `#[path]` beside `mod common`, so binaries that don't use it don't compile it).

use crate::common::{guest_elf, runner};

/// What a `runner run` printed and reported.
pub struct GuestRun {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The `--report` JSON.
    pub report: serde_json::Value,
}

impl GuestRun {
    /// The guest's `RESULT {json}` line.
    pub fn result(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap_or_else(|| panic!("no RESULT in:\n{}\n{}", self.stdout, self.stderr));
        serde_json::from_str(line).expect("RESULT is JSON")
    }

    /// Asserts the run exited 0, showing its output if not.
    pub fn succeeded(self) -> Self {
        assert_eq!(self.status, Some(0), "{}\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs `runner run --mem 128M --timeout 120s --kernel GUEST --report FILE <options> --
/// <guest>` (`--mem` from the options if they have it) and reads its report (`null` if the
/// runner wrote none).
pub fn run_guest(options: &[&str], guest: &[&str]) -> GuestRun {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let report_path =
        std::env::temp_dir().join(format!("runner-report-{}-{n}.json", std::process::id()));
    // 128M unless the options say otherwise.
    let mem: &[&str] = if options.contains(&"--mem") {
        &[]
    } else {
        &["--mem", "128M"]
    };
    let out = runner()
        .arg("run")
        .args(mem)
        .args(["--timeout", "120s", "--kernel"])
        .arg(guest_elf())
        .arg("--report")
        .arg(&report_path)
        .args(options)
        .arg("--")
        .args(guest)
        .output()
        .expect("runner runs");
    let report = std::fs::read_to_string(&report_path)
        .map(|text| serde_json::from_str(&text).expect("the report is JSON"))
        .unwrap_or(serde_json::Value::Null);
    let _ = std::fs::remove_file(&report_path);
    GuestRun {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
    }
}
