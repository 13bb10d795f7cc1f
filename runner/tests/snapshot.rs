//! `runner snapshot` and `runner run --restore` with the real guest: a guest that fills its
//! workload pages itself is saved, and a restored run is served those pages from the file.
//!
//! The guest is built once (`runner build-guest`), as in `guest_boot.rs`.

mod common;

use common::{guest_elf, runner};

use serde_json::Value;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;
/// Guest RAM of every run here, and so of the snapshots.
const MEM: &str = "128M";
const MEM_BYTES: u64 = 128 * MIB;
/// The snapshot header's page, before the RAM image.
const DATA_OFFSET: u64 = 4096;
const PAGES: u64 = 512;

/// A directory for one test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("runner-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn result(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("RESULT "))
            .unwrap_or_else(|| panic!("no RESULT in:\n{}\n{}", self.stdout, self.stderr));
        serde_json::from_str(line.trim_start_matches("RESULT ")).expect("RESULT is JSON")
    }

    /// Pages the lazy memory server installed, from the `-v` report.
    fn served(&self) -> u64 {
        let line = self
            .stderr
            .lines()
            .find(|l| l.contains("lazy memory: "))
            .unwrap_or_else(|| panic!("no lazy memory report in:\n{}", self.stderr));
        let after = line.split("lazy memory: ").nth(1).unwrap();
        after.split_whitespace().next().unwrap().parse().unwrap()
    }
}

/// Runs `runner <subcommand> --mem 128M --kernel GUEST <options> -- <guest>`.
fn runner_with(subcommand: &str, options: &[&str], guest: &[&str]) -> Run {
    let out = runner()
        .args([subcommand, "--mem", MEM, "--timeout", "120s", "--kernel"])
        .arg(guest_elf())
        .args(options)
        .arg("--")
        .args(guest)
        .output()
        .expect("runner runs");
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mem_guest(source: &str, seed: u64) -> Vec<String> {
    vec![
        "scenario=mem".to_owned(),
        format!("source={source}"),
        format!("seed={seed}"),
        format!("pages={PAGES}"),
    ]
}

fn save(path: &Path) -> Run {
    let guest = mem_guest("guest", 5);
    let guest: Vec<&str> = guest.iter().map(String::as_str).collect();
    runner_with("snapshot", &["--out", path.to_str().unwrap()], &guest)
}

fn restore(path: &Path, guest_seed: u64) -> Run {
    let guest = mem_guest("host", guest_seed);
    let guest: Vec<&str> = guest.iter().map(String::as_str).collect();
    let path = path.to_str().unwrap();
    let options = ["-v", "--latency", "fixed:1ms", "--restore", path];
    runner_with("run", &options, &guest)
}

#[test]
fn a_restored_guest_is_served_the_pages_it_saved() {
    let dir = Scratch::new("snapshot-round-trip");
    let path = dir.0.join("mem.snap");
    let saved = save(&path);
    assert_eq!(saved.status, Some(0), "{}\n{}", saved.stdout, saved.stderr);
    assert_eq!(saved.result()["pages_verified"], PAGES);
    let file = fs::metadata(&path).expect("the snapshot exists");
    assert_eq!(file.len(), DATA_OFFSET + MEM_BYTES);
    // The workload's 2 MiB and the kernel's few pages; untouched RAM is holes.
    let on_disk = file.blocks() * 512;
    assert!(on_disk < 16 * MIB, "{on_disk} bytes on disk");

    let restored = restore(&path, 5);
    assert_eq!(
        restored.status,
        Some(0),
        "{}\n{}",
        restored.stdout,
        restored.stderr
    );
    let r = restored.result();
    assert_eq!(
        (&r["pages_touched"], &r["pages_verified"]),
        (&PAGES.into(), &PAGES.into()),
        "{r}"
    );
    assert_eq!(restored.served(), PAGES, "each page served once");

    // The pages hold seed 5's contents: checked against seed 6, none verify. So they came
    // from the file, not from the runner's generator.
    let wrong = restore(&path, 6);
    assert_eq!(wrong.status, Some(1), "{}\n{}", wrong.stdout, wrong.stderr);
    assert_eq!(wrong.result()["pages_verified"], 0);
    assert_eq!(wrong.served(), PAGES);
}

#[test]
fn a_failing_guest_leaves_no_snapshot_and_its_status() {
    let dir = Scratch::new("snapshot-failing");
    let path = dir.0.join("mem.snap");
    // Nobody fills the pages, so the guest's check fails with status 1.
    let out = runner_with(
        "snapshot",
        &["--out", path.to_str().unwrap()],
        &["scenario=mem", "pages=16"],
    );
    assert_eq!(out.status, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("the guest exited with status 1: no snapshot written to"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 0, "no file, no .tmp");
}

#[test]
fn bad_snapshots_are_refused_before_a_vm_starts() {
    let dir = Scratch::new("snapshot-bad");
    let good = dir.0.join("good.snap");
    let saved = save(&good);
    assert_eq!(saved.status, Some(0), "{}", saved.stderr);
    let truncated = dir.0.join("truncated.snap");
    let bytes = fs::read(&good).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() - 4096]).unwrap();
    let not_snapshot = dir.0.join("kernel.snap");
    fs::copy(guest_elf(), &not_snapshot).unwrap();
    for (path, mem, problem) in [
        (truncated, MEM, "it is truncated"),
        (not_snapshot, MEM, "it is not a snapshot file"),
        (dir.0.clone(), MEM, "it is not a regular file"),
        (dir.0.join("missing"), MEM, "cannot open it"),
        (good, "256M", "restore with --mem 128M"),
    ] {
        let out = runner()
            .args(["run", "--mem", mem, "--latency", "1ms", "--restore"])
            .arg(&path)
            .arg("--kernel")
            .arg(guest_elf())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{path:?}: {stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(stderr.contains(problem), "{path:?}: {stderr}");
        assert!(out.stdout.is_empty(), "no guest ran: {:?}", out.stdout);
    }
}
