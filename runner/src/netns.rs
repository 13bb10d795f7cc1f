//! A network namespace of our own, holding the guest's TAP device and the host's end of its
//! network (10.0.0.1/24), so that a benchmark's traffic reaches no other interface and two
//! benchmarks never see each other's guest. It is deleted when dropped, on error paths too.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The TAP device's name inside the namespace.
pub const TAP: &str = "tap0";
/// The host's address on the TAP.
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Its network's prefix length, which the guest's address shares.
pub const PREFIX: u8 = 24;
/// Where `ip netns` keeps its namespaces' bind mounts.
const NETNS_DIR: &str = "/run/netns";

/// Namespaces this process created, so that each gets its own name.
static CREATED: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start `{command}` (is iproute2 installed?)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot open the network namespace {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter the network namespace {} (setns)", path.display())]
    Enter {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A namespace `apf-<pid>-<n>` with `lo` up and [`TAP`] up at [`HOST`]/[`PREFIX`].
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn create() -> Result<Self, Error> {
        let n = CREATED.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            remove_orphans();
        }
        let name = format!("apf-{}-{n}", std::process::id());
        run(&add_command(&name))?;
        // From here on, Drop deletes it whatever fails next.
        let netns = Netns { name };
        for args in setup_commands(&netns.name) {
            run(&args)?;
        }
        Ok(netns)
    }

    /// The bind mount a VMM opens to put its TAP device's file in this namespace.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `work` on a thread of its own that has entered this namespace: sockets it opens
    /// live there (and stay there), while the caller's thread keeps the host's network.
    pub fn run_inside<T: Send>(&self, work: impl FnOnce() -> T + Send) -> Result<T, Error> {
        let path = self.path();
        let file = File::open(&path).map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        std::thread::scope(|scope| {
            let thread = scope.spawn(|| {
                // SAFETY: setns only reads the file descriptor, which `file` keeps open for
                // the call; it changes this thread's network namespace alone.
                let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if result != 0 {
                    return Err(Error::Enter {
                        path: path.clone(),
                        source: std::io::Error::last_os_error(),
                    });
                }
                Ok(work())
            });
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// The pid in a name of ours (`apf-<pid>-<n>`).
fn owner(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("apf-")?.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Deletes the namespaces of runners that are gone: a runner killed by a signal (or a
/// panic, which aborts) cannot run its `Drop`s. A failure is only reported: it does not
/// stop this run.
fn remove_orphans() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner(&name) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match run(&delete_command(&name)) {
            Ok(()) => {
                eprintln!("runner: deleted network namespace {name} of a runner that is gone")
            }
            Err(error) => eprintln!("runner: cannot delete network namespace {name}: {error}"),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(error) = run(&delete_command(&self.name)) {
            eprintln!(
                "runner: cannot delete network namespace {}: {error}",
                self.name
            );
        }
    }
}

fn add_command(name: &str) -> Vec<String> {
    words(&["netns", "add", name])
}

fn delete_command(name: &str) -> Vec<String> {
    words(&["netns", "del", name])
}

/// The `ip` commands that make a fresh namespace ready for a guest.
fn setup_commands(name: &str) -> Vec<Vec<String>> {
    let host = format!("{HOST}/{PREFIX}");
    [
        &["link", "set", "lo", "up"][..],
        &["tuntap", "add", "dev", TAP, "mode", "tap"],
        &["addr", "add", &host, "dev", TAP],
        &["link", "set", TAP, "up"],
    ]
    .iter()
    .map(|args| words(&[&["-n", name][..], args].concat()))
    .collect()
}

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|&arg| arg.to_owned()).collect()
}

/// Runs `ip ARGS`; a failure names the command and quotes its stderr.
fn run(args: &[String]) -> Result<(), Error> {
    let command = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Failed {
        command,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_have_an_owner() {
        assert_eq!(owner("apf-1234-0"), Some(1234));
        assert_eq!(owner("apf-1234-17"), Some(1234));
        for other in [
            "apf-1234",
            "apf-x-0",
            "apf-1234-x",
            "t1",
            "xapf-1-0",
            "apf--0",
        ] {
            assert_eq!(owner(other), None, "{other}");
        }
    }

    #[test]
    fn commands_name_the_namespace_and_the_tap() {
        assert_eq!(add_command("apf-1-0"), ["netns", "add", "apf-1-0"]);
        assert_eq!(delete_command("apf-1-0"), ["netns", "del", "apf-1-0"]);
        let setup: Vec<String> = setup_commands("ns").iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            setup,
            [
                "-n ns link set lo up",
                "-n ns tuntap add dev tap0 mode tap",
                "-n ns addr add 10.0.0.1/24 dev tap0",
                "-n ns link set tap0 up",
            ]
        );
    }

    #[test]
    fn a_failing_command_is_named_with_its_stderr() {
        let error = run(&words(&["netns", "del", "apf-no-such-namespace"])).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("`ip netns del apf-no-such-namespace` failed"),
            "{text}"
        );
    }
}
