//! What a `runner run` of a guest kernel printed, and checks of it shared by the x86_64 and
//! the aarch64 guest.

use std::process::Output;

use serde_json::Value;

/// How a boot ended and what it printed.
pub struct Boot {
    /// The runner's exit status (the guest's, or the runner's own 124 or 125).
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Boot {
    fn from(out: Output) -> Self {
        Boot {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Boot {
    /// The first line of stdout containing `needle`.
    pub fn line(&self, needle: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", self.stdout))
    }

    /// The guest's `RESULT {json}` line.
    pub fn result(&self) -> Value {
        let line = self.line("RESULT ");
        serde_json::from_str(line.trim_start_matches("RESULT ")).expect("RESULT is JSON")
    }
}

/// Asserts that the demo (the guest's default scenario) ran to the end: exit status 0, both
/// spinners with the right count, the yielder, ping and the syscall benchmark done, and all
/// six tasks exited 0. Each spinner must have seen the other run in the middle of its own
/// loop, which only timer preemption can cause (neither yields). `context` starts the
/// failure messages.
pub fn assert_demo_finished(b: &Boot, context: &str) {
    assert_eq!(b.status, Some(0), "{context}: {}\n{}", b.stdout, b.stderr);
    for spinner in ["spin-a:", "spin-b:"] {
        let line = b.line(spinner);
        assert!(line.contains("= 78498 (correct)"), "{context}: {line}");
        assert!(
            interleavings(line) >= 1,
            "{context}: no interleaving: {line}"
        );
    }
    b.line("yielder: yielded 50 times");
    b.line("ping: 100 park/wake rounds");
    b.line("syscall-bench: round trip min");
    let r = b.result();
    let tasks = r["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6, "{context}: {r}");
    assert!(tasks.iter().all(|t| t["status"] == 0), "{context}: {r}");
}

/// Asserts that the guest `boot` starts (given the guest's command-line words) refuses an
/// unknown option and an out-of-range value with exit status 3, saying which. `context`
/// starts the failure messages.
pub fn assert_bad_command_lines_refused(boot: impl Fn(&[&str]) -> Boot, context: &str) {
    for (word, message) in [
        ("bogus=1", "bad command line: unknown option 'bogus'"),
        (
            "hz=5000",
            "hz=5000: expected a whole number from 10 to 1000",
        ),
    ] {
        let b = boot(&[word]);
        assert_eq!(b.status, Some(3), "{context}: {}", b.stdout);
        b.line(message);
    }
}

/// Number in "interleaved N times" on a spinner's line.
fn interleavings(line: &str) -> u64 {
    let rest = line
        .split("interleaved ")
        .nth(1)
        .expect("interleaved count");
    rest.split_whitespace().next().unwrap().parse().unwrap()
}
