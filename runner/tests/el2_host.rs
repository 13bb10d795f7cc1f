//! Boots the arm64 EL2 host (`el2-host`) under QEMU TCG with its test payload
//! (`el2-payload`) and checks what both printed: lazy pages served through stage-2 faults,
//! the latency model, hypercalls, and the exit statuses.

/// The shared helpers this binary uses, listed one by one (`common/mod.rs` says why).
mod common {
    pub mod aarch64_guest;
    pub mod build;
    pub mod el2;
}

use common::aarch64_guest::guest_elf as guest_kernel;
use common::build::assert_built;
use common::el2::{Boot, workspace};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const QEMU: &str = "qemu-system-aarch64";
/// Seconds a boot may take before `timeout` stops QEMU.
const BOOT_SECONDS: u32 = 60;
/// Where the host expects QEMU to stage the guest ELF (el2-host's `GUEST_ELF_STAGING`).
const STAGING: &str = "0x5f800000";

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
        assert_built(&out, "el2 build");
        let dir = workspace().join("target/guest/aarch64-unknown-none/release");
        (dir.join("el2-host"), dir.join("el2-payload"))
    })
}

/// Boots host and payload with the host's `-append` words and the payload's after ` -- `.
fn boot(host: &str, payload: &str) -> Boot {
    boot_guest(&images().1, host, payload)
}

/// Boots the host with `guest` staged, the host's words and the guest's after ` -- `.
fn boot_guest(guest: &Path, host: &str, guest_words: &str) -> Boot {
    boot_within(BOOT_SECONDS, guest, host, guest_words)
}

/// As [`boot_guest`], stopping QEMU after `seconds`.
fn boot_within(seconds: u32, guest: &Path, host: &str, guest_words: &str) -> Boot {
    let host_image = &images().0;
    let out = Command::new("timeout")
        .arg(seconds.to_string())
        .args([QEMU, "-machine", "virt,virtualization=on,gic-version=3"])
        .args(["-cpu", "max", "-m", "512M", "-nographic", "-semihosting"])
        .arg("-kernel")
        .arg(host_image)
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={STAGING},force-raw=on",
            guest.display()
        ))
        .arg("-append")
        .arg(format!("{host} -- {guest_words}"))
        .output()
        .expect("qemu-system-aarch64 runs (scripts/setup installs it)");
    Boot::of_qemu(out)
}

/// The `N` of a payload line ending ` in N us`: how long, by the guest's clock.
fn micros_taken(line: &str) -> u64 {
    line.split(" in ")
        .nth(1)
        .unwrap()
        .trim_end_matches(" us")
        .parse()
        .unwrap()
}

/// The host stalled the vCPU for its fetches at least `floor` ns in all, and not twice that.
fn assert_waited_about(b: &Boot, floor: u64) {
    let waited = b.number("el2: STATS", "waited_ns");
    assert!(waited >= floor, "waited {waited} ns < {floor}");
    assert!(waited < floor * 2, "waited {waited} ns, far above {floor}");
}

/// Every one of the payload's `pages` went async and was verified: one not-present and one
/// page-ready each (with matching tokens: the payload checks), no synchronous fault.
fn assert_every_page_async(b: &Boot, pages: u64) {
    assert_eq!(b.number("guest: lazy pages", "verified"), pages);
    assert_eq!(b.number("guest: async PF:", "not_present"), pages);
    assert_eq!(b.number("guest: async PF:", "page_ready"), pages);
    assert_eq!(b.number("el2: STATS", "sync_faults"), 0);
}

#[test]
fn off_mode_serves_lazy_pages_with_their_contents() {
    let b = boot("mode=off latency=0ns seed=5", "seed=5 pages=300").succeeded();
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
    )
    .succeeded();
    let floor = pages * micros * 1000;
    assert_waited_about(&b, floor);
    // The guest sees the stall in its own clock.
    let in_guest = b.line("guest: lazy pages");
    assert!(micros_taken(in_guest) * 1000 >= floor, "{in_guest}");
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
    let off = boot("mode=off", "pages=1").succeeded();
    off.line("guest: smccc 1.1");
    off.line("guest: sdei 1.1 (vendor 0x4b564d)");
    assert!(off.line("guest: async PF").contains("KVM_FEATURES bit 2"));
    let apf = boot("mode=apf", "pages=1").succeeded();
    apf.line("guest: async PF 1.0.0");
    assert!(apf.number("el2: STATS", "hypercalls") >= 6);
}

#[test]
fn apf_mode_sends_not_present_and_page_ready_for_every_page() {
    let pages = 40;
    let b = boot(
        "mode=apf latency=fixed:300us seed=7",
        &format!("seed=7 pages={pages} apf=1"),
    )
    .succeeded();
    assert_every_page_async(&b, pages);
    // Besides, the guest saw the broadcast that follows ENABLE, and nothing stray.
    assert_eq!(b.number("guest: async PF:", "broadcasts"), 1);
    assert_eq!(b.number("guest: async PF:", "stray"), 0);
    assert_eq!(b.number("el2: STATS", "not_present"), pages);
    assert_eq!(b.number("el2: STATS", "page_ready"), pages + 1);
    // The guest had the vCPU back while each fetch ran: it waited in wfi for most of the
    // fetches' time (a stalled vCPU waits not at all). Not all of it: the timer interrupts
    // it handles meanwhile are not waiting, and under TCG on a loaded host (the whole suite
    // in parallel) they take a good part of each 300 us.
    assert!(b.number("guest: async PF:", "waited_us") >= pages * 300 / 2);
}

#[test]
fn apf_mode_without_the_guest_enabling_it_serves_faults_synchronously() {
    let b = boot("mode=apf latency=fixed:50us seed=2", "seed=2 pages=20").succeeded();
    assert_eq!(b.number("el2: STATS", "sync_faults"), 20);
    assert_eq!(b.number("el2: STATS", "not_present"), 0);
}

#[test]
fn el1_faults_stay_synchronous_without_send_always() {
    let b = boot(
        "mode=apf latency=fixed:50us seed=4",
        "seed=4 pages=20 apf=1 send_always=0",
    )
    .succeeded();
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
    )
    .succeeded();
    assert_every_page_async(&b, pages);
}

#[test]
fn the_guests_timer_interrupts_are_forwarded() {
    let b = boot("mode=apf latency=fixed:100us", "pages=10 apf=1 ticks=20").succeeded();
    // Each tick is taken, EOIed by the guest (deactivating the physical PPI through the
    // hardware-linked list register) and re-armed: 20 in about 20 ms.
    assert_eq!(b.number("el2: STATS", "forwarded_irqs"), 20);
    let line = b.line("guest: timer");
    assert!((20_000..200_000).contains(&micros_taken(line)), "{line}");
    assert_eq!(b.number("guest: async PF:", "not_present"), 10);
}

#[test]
fn the_aarch64_guest_kernel_runs_its_tasks_at_el0_on_host_served_pages() {
    let pages = 256;
    let b = boot_guest(
        guest_kernel(),
        "mode=off latency=fixed:50us seed=9",
        &format!("scenario=mem pages={pages} seed=9 source=host"),
    )
    .succeeded();
    // The host gave the guest its own RAM size and only the guest's words.
    b.line("el2: device tree: Patched { memory: true, bootargs: true }");
    assert!(b.line("kernel: 496 MiB RAM").contains("scenario mem"));
    let result = b.result();
    assert_eq!(result["pages_touched"], pages);
    assert_eq!(result["pages_verified"], pages, "{result}");
}

#[test]
fn the_aarch64_guest_kernel_preempts_its_tasks_with_the_forwarded_timer() {
    let b = boot_guest(guest_kernel(), "mode=off", "scenario=demo").succeeded();
    let result = b.result();
    assert!(
        result["sched"]["preemptions"].as_u64().unwrap() > 0,
        "{result}"
    );
    assert!(b.line("spin-a:").contains("(correct)"));
}

/// Boots the payload (async PF on, 100 pages at 100 us) under a host injecting `inject`;
/// checks that it finished with every page verified and every wait answered.
fn boot_injecting(inject: &str) -> Boot {
    boot_injecting_at(inject, "fixed:100us")
}

/// [`boot_injecting`] with each fetch taking `latency`.
fn boot_injecting_at(inject: &str, latency: &str) -> Boot {
    let b = boot(
        &format!("mode=apf latency={latency} seed=3 inject={inject}"),
        "seed=3 pages=100 apf=1",
    )
    .succeeded();
    assert_eq!(b.number("guest: lazy pages", "verified"), 100);
    assert_eq!(b.number("guest: async PF:", "not_present"), 100);
    b
}

#[test]
fn an_unknown_injection_is_refused_with_exit_3() {
    let b = boot("mode=apf inject=reorder,sideways", "");
    assert_eq!(b.status, Some(3), "{}", b.stdout);
    assert!(
        b.line("el2: bad command line")
            .contains("no fault \"sideways\"; known: duplicate-ready")
    );
}

#[test]
fn repeated_and_unknown_page_readies_are_ignored_by_the_guest() {
    for inject in ["duplicate-ready", "unknown-token"] {
        let b = boot_injecting(inject);
        // Every 8th of the 100 page-readies (and of the extra ones): 14.
        let injected = b.number("el2: STATS", inject);
        assert_eq!(injected, 14, "{inject}");
        assert_eq!(b.number("guest: async PF:", "stray"), injected);
        assert_eq!(b.number("guest: async PF:", "page_ready"), 100 + injected);
        assert_eq!(b.number("el2: STATS", "page_ready"), 101 + injected);
    }
}

#[test]
fn wake_all_broadcasts_release_waiters_whose_page_readies_come_later() {
    // Fetches far slower than delivering the broadcast, so every released access reaches
    // its page before it arrives (at 100 us under TCG it sometimes arrived first).
    let b = boot_injecting_at("wake-all", "fixed:5ms");
    let wakes = b.number("el2: STATS", "wake-all");
    assert_eq!(wakes, 100 / 16);
    assert_eq!(b.number("guest: async PF:", "broadcasts"), 1 + wakes);
    // Each woken access re-faulted on its page until it arrived; its page-ready still came.
    assert!(b.number("el2: STATS", "refaults") > 0);
    assert_eq!(b.number("guest: async PF:", "page_ready"), 100);
    assert_eq!(b.number("guest: async PF:", "stray"), wakes);
}

#[test]
fn disable_reenable_forgets_tokens_and_the_broadcast_releases_their_waiters() {
    let b = boot_injecting("disable-reenable");
    let resets = b.number("el2: STATS", "disable-reenable");
    assert_eq!(resets, 100 / 32);
    assert_eq!(b.number("guest: async PF:", "broadcasts"), 1 + resets);
    // The token in flight at each reset never gets its page-ready.
    assert_eq!(b.number("guest: async PF:", "page_ready"), 100 - resets);
    assert_eq!(b.number("guest: async PF:", "stray"), 0);
}

#[test]
fn reorder_and_overflow_never_apply_to_one_fault_at_a_time() {
    // The payload waits for each page before touching the next: no other page is ever
    // coming to release a held page-ready, and it never has 64 in flight.
    let b = boot_injecting("reorder,overflow");
    assert_eq!(b.number("el2: STATS", "reorder"), 0);
    assert_eq!(b.number("el2: STATS", "overflow"), 0);
    assert_eq!(b.number("guest: async PF:", "page_ready"), 100);
    assert_eq!(b.number("guest: async PF:", "stray"), 0);
}

#[test]
fn spikes_make_every_16th_fetch_100_times_slower() {
    let (pages, micros) = (64, 100);
    let b = boot(
        &format!("mode=off latency=fixed:{micros}us seed=1 inject=spikes"),
        &format!("seed=1 pages={pages}"),
    )
    .succeeded();
    let spikes = b.number("el2: STATS", "spikes");
    assert_eq!(spikes, pages / 16);
    assert_waited_about(&b, ((pages - spikes) + spikes * 100) * micros * 1000);
}

#[test]
fn a_dropped_page_ready_strands_the_payload_and_the_host_says_so() {
    // The payload has no watchdog: the access waiting for the 8th token (id 7) waits until
    // QEMU is stopped.
    let b = boot_within(
        10,
        &images().1,
        "mode=apf latency=fixed:100us seed=3 inject=drop-ready",
        "seed=3 pages=100 apf=1",
    );
    assert_eq!(b.status, None, "stopped by timeout: {}", b.stdout);
    b.line("el2: inject: drop-ready dropped the page-ready of token 0x7000");
    assert!(!b.stdout.contains("guest: lazy pages"), "{}", b.stdout);
}
