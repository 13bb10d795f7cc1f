//! Boots the arm64 EL2 host (`el2-host`) under QEMU TCG with its test payload
//! (`el2-payload`) and checks what both printed: lazy pages served through stage-2 faults,
//! the latency model, hypercalls, and the exit statuses.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const QEMU: &str = "qemu-system-aarch64";
/// Where the host expects QEMU to stage the guest ELF (el2-host's `GUEST_ELF_STAGING`).
const STAGING: &str = "0x5f800000";

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runner is in the workspace")
}

/// The host and payload images, built once per test binary with `scripts/guest-cargo`.
fn images() -> &'static (PathBuf, PathBuf) {
    static IMAGES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let out = Command::new(workspace().join("scripts/guest-cargo"))
            .args(["build", "-p", "el2-host", "-p", "el2-payload", "--release"])
            .args([
                "--target",
                "aarch64-unknown-none",
                "--target-dir",
                "target/guest",
            ])
            .current_dir(workspace())
            .output()
            .expect("scripts/guest-cargo runs");
        assert!(
            out.status.success(),
            "el2 build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = workspace().join("target/guest/aarch64-unknown-none/release");
        (dir.join("el2-host"), dir.join("el2-payload"))
    })
}

struct Boot {
    status: Option<i32>,
    stdout: String,
}

impl Boot {
    fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{}", self.stdout))
    }

    /// `key=N` of the line starting with `prefix`.
    fn number(&self, prefix: &str, key: &str) -> u64 {
        let line = self.line(prefix);
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
            .parse()
            .expect("a number")
    }
}

/// Boots host and payload with the host's `-append` words and the payload's after ` -- `.
fn boot(host: &str, payload: &str) -> Boot {
    let (host_image, payload_image) = images();
    let out = Command::new("timeout")
        .args([
            "60",
            QEMU,
            "-machine",
            "virt,virtualization=on,gic-version=3",
        ])
        .args(["-cpu", "max", "-m", "512M", "-nographic", "-semihosting"])
        .arg("-kernel")
        .arg(host_image)
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={STAGING},force-raw=on",
            payload_image.display()
        ))
        .arg("-append")
        .arg(format!("{host} -- {payload}"))
        .output()
        .expect("qemu-system-aarch64 runs (scripts/setup installs it)");
    Boot {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).replace('\r', ""),
    }
}

#[test]
fn off_mode_serves_lazy_pages_with_their_contents() {
    let b = boot("mode=off latency=0ns seed=5", "seed=5 pages=300");
    assert_eq!(b.status, Some(0), "{}", b.stdout);
    assert_eq!(b.number("guest: lazy pages", "verified"), 300);
    assert_eq!(b.number("el2: STATS", "sync_faults"), 300);
    b.line("el2: guest powered off");
}

#[test]
fn off_mode_stalls_the_vcpu_for_the_latency() {
    let (pages, micros) = (50, 400);
    let b = boot(
        &format!("mode=off latency=fixed:{micros}us seed=1"),
        &format!("seed=1 pages={pages}"),
    );
    assert_eq!(b.status, Some(0), "{}", b.stdout);
    let waited = b.number("el2: STATS", "waited_ns");
    let floor = pages * micros * 1000;
    assert!(waited >= floor, "waited {waited} ns < {floor}");
    assert!(waited < floor * 2, "waited {waited} ns, far above {floor}");
    // The guest sees the stall in its own clock.
    let in_guest = b.line("guest: lazy pages");
    let guest_us: u64 = in_guest
        .split(" in ")
        .nth(1)
        .unwrap()
        .trim_end_matches(" us")
        .parse()
        .unwrap();
    assert!(guest_us * 1000 >= floor, "{in_guest}");
}

#[test]
fn pages_from_another_seed_fail_the_check() {
    let b = boot("mode=off seed=1", "seed=2 pages=4");
    assert_eq!(b.status, Some(1), "{}", b.stdout);
    assert_eq!(b.number("guest: lazy pages", "verified"), 0);
}

#[test]
fn bad_host_command_line_exits_3() {
    let b = boot("mode=sideways", "");
    assert_eq!(b.status, Some(3), "{}", b.stdout);
    b.line("el2: bad command line");
}

#[test]
fn hypercalls_discover_sdei_everywhere_and_async_pf_only_in_apf_mode() {
    let off = boot("mode=off", "pages=1");
    assert_eq!(off.status, Some(0), "{}", off.stdout);
    off.line("guest: smccc 1.1");
    off.line("guest: sdei 1.1 (vendor 0x4b564d)");
    assert!(off.line("guest: async PF").contains("KVM_FEATURES bit 2"));
    let apf = boot("mode=apf", "pages=1");
    assert_eq!(apf.status, Some(0), "{}", apf.stdout);
    apf.line("guest: async PF 1.0.0");
    assert!(apf.number("el2: STATS", "hypercalls") >= 6);
}

#[test]
fn apf_mode_sends_not_present_and_page_ready_for_every_page() {
    let pages = 40;
    let b = boot(
        "mode=apf latency=fixed:300us seed=7",
        &format!("seed=7 pages={pages} apf=1"),
    );
    assert_eq!(b.status, Some(0), "{}", b.stdout);
    assert_eq!(b.number("guest: lazy pages", "verified"), pages);
    // The guest saw one not-present and one page-ready per page, with matching tokens
    // (the payload checks), plus the broadcast that follows ENABLE.
    assert_eq!(b.number("guest: async PF:", "not_present"), pages);
    assert_eq!(b.number("guest: async PF:", "page_ready"), pages);
    assert_eq!(b.number("guest: async PF:", "broadcasts"), 1);
    assert_eq!(b.number("el2: STATS", "not_present"), pages);
    assert_eq!(b.number("el2: STATS", "page_ready"), pages + 1);
    assert_eq!(b.number("el2: STATS", "sync_faults"), 0);
    // The guest had the vCPU back while each fetch ran: it waited in wfi at least as long
    // as the fetches took.
    assert!(b.number("guest: async PF:", "waited_us") >= pages * 300 * 9 / 10);
}

#[test]
fn apf_mode_without_the_guest_enabling_it_serves_faults_synchronously() {
    let b = boot("mode=apf latency=fixed:50us seed=2", "seed=2 pages=20");
    assert_eq!(b.status, Some(0), "{}", b.stdout);
    assert_eq!(b.number("el2: STATS", "sync_faults"), 20);
    assert_eq!(b.number("el2: STATS", "not_present"), 0);
}

#[test]
fn el1_faults_stay_synchronous_without_send_always() {
    let b = boot(
        "mode=apf latency=fixed:50us seed=4",
        "seed=4 pages=20 apf=1 send_always=0",
    );
    assert_eq!(b.status, Some(0), "{}", b.stdout);
    assert_eq!(b.number("el2: STATS", "sync_faults"), 20);
    assert_eq!(b.number("el2: STATS", "not_present"), 0);
    // Only the broadcast that follows ENABLE.
    assert_eq!(b.number("el2: STATS", "page_ready"), 1);
    assert_eq!(b.number("guest: async PF:", "broadcasts"), 1);
}

#[test]
fn el0_faults_go_async_without_send_always() {
    let pages = 30;
    let b = boot(
        "mode=apf latency=fixed:200us seed=6",
        &format!("seed=6 pages={pages} apf=1 send_always=0 el0=1"),
    );
    assert_eq!(b.status, Some(0), "{}", b.stdout);
    assert_eq!(b.number("guest: lazy pages", "verified"), pages);
    assert_eq!(b.number("guest: async PF:", "not_present"), pages);
    assert_eq!(b.number("guest: async PF:", "page_ready"), pages);
    assert_eq!(b.number("el2: STATS", "sync_faults"), 0);
}
