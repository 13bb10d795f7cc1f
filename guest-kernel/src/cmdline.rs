//! The guest command line: `key=value` words separated by spaces.
//!
//! Every word must be understood: an unknown key, a bad value or a repeated key is an error
//! that the kernel prints before exiting with [`ExitStatus::BadCommandLine`], never a guess.
//!
//! [`ExitStatus::BadCommandLine`]: crate::exit_status::ExitStatus::BadCommandLine

use crate::watchdog;
use core::fmt;
use core::ops::RangeInclusive;
use workloads::mem::Pattern;

/// What the guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Two CPU tasks that prove timer preemption, a yielding task, and a syscall benchmark.
    Demo,
    /// A task divides by zero (#DE); it is killed and reported, the guest exits non-zero.
    DivideByZero,
    /// A task reads an unmapped address (#PF); it is killed and reported.
    Unmapped,
    /// A task writes kernel memory (supervisor-only page, #PF protection violation).
    KernelWrite,
    /// One CPU task alone (the solo run for the ideal bound).
    Cpu,
    /// One memory task alone.
    Mem,
    /// One CPU task and one memory task on one vCPU: the seed threads' experiment.
    Seed,
    /// This many memory tasks over disjoint pages (memory-level parallelism).
    Mlp(u32),
    /// A UDP key-value service on the virtio-mmio network card (`workloads::kv`): a ring-3
    /// network task and a pool of ring-3 workers, so a request waiting for its value's
    /// page holds up only its worker.
    Kv,
}

/// Scenarios without a parameter, by command-line name.
const SCENARIOS: &[(&str, Scenario)] = &[
    ("demo", Scenario::Demo),
    ("div0", Scenario::DivideByZero),
    ("unmapped", Scenario::Unmapped),
    ("kernel-write", Scenario::KernelWrite),
    ("cpu", Scenario::Cpu),
    ("mem", Scenario::Mem),
    ("seed", Scenario::Seed),
    ("kv", Scenario::Kv),
];

/// Most memory tasks `mlp:k` may start.
pub const MLP_MAX: u32 = workloads::mem::MAX_PARALLEL_TASKS;

impl Scenario {
    fn parse(value: &str) -> Option<Self> {
        if let Some(k) = value.strip_prefix("mlp:") {
            return k
                .parse()
                .ok()
                .filter(|k| (1..=MLP_MAX).contains(k))
                .map(Scenario::Mlp);
        }
        SCENARIOS.iter().find(|(n, _)| *n == value).map(|(_, s)| *s)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Mlp(k) => write!(f, "mlp:{k}"),
            fixed => {
                let name = SCENARIOS.iter().find(|(_, s)| s == fixed).map(|(n, _)| *n);
                f.write_str(name.expect("every fixed scenario has a name"))
            }
        }
    }
}

/// The order in which memory tasks touch their pages.
fn parse_pattern(value: &str) -> Option<Pattern> {
    match value {
        "seq" => Some(Pattern::Sequential),
        "random" => Some(Pattern::Random),
        _ => value
            .strip_prefix("stride:")?
            .parse()
            .ok()
            .filter(|n| (1..=PAGES_MAX).contains(n))
            .map(Pattern::Strided),
    }
}

/// Timer interrupt rates the kernel accepts, in Hz. The ceiling is low because our KVM
/// emulates every ring-0 instruction: one timer interrupt costs a few hundred us,
/// so much faster ticks would leave tasks no time to run.
pub const HZ_RANGE: RangeInclusive<u64> = 10..=1_000;
/// Rounds of the CPU workload's hash chain (about 3 ns each in ring 3).
pub const CPU_RANGE: RangeInclusive<u64> = 1..=1_000_000_000_000;
/// Pages one memory task may touch (4 GiB).
pub const PAGES_MAX: u64 = 1 << 20;

/// Parsed command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub scenario: Scenario,
    /// Timer interrupt (preemption) rate.
    pub hz: u32,
    /// Each demo CPU task counts the primes below this (a size with a tabulated answer).
    pub primes: u64,
    /// Rounds of the CPU workload's hash chain.
    pub cpu: u64,
    /// Pages each memory task touches.
    pub pages: u64,
    pub pattern: Pattern,
    /// Seed of the page generator (the host fills lazily served pages with the same one).
    pub seed: u64,
    /// Who fills workload pages with the generator's contents.
    pub source: PageSource,
    /// Enable KVM async page faults (`apf=on`).
    pub apf: bool,
    /// Before enabling async PF, make one deliberately wrong MSR write (`apf-test=`) and
    /// report whether the host refused it.
    pub apf_test: Option<ApfTest>,
    /// Turn async PF off and on again after every this many not-present events
    /// (`apf-cycle=N`), as a CPU going offline or a migration would.
    pub apf_cycle: Option<u64>,
    /// Retry a task parked on async PF for this long without its page-ready
    /// (`apf-watchdog=MS`, see [`watchdog`]).
    pub apf_watchdog_ms: u64,
    /// Workload tasks wait after writing their pages until a byte arrives on the console,
    /// and the kernel waits for another after the result line (`hold=console`, see
    /// [`crate::hold`]): the host migrates the guest in between.
    pub hold: bool,
    /// CPUs to run tasks on (`cpus=N`): the boot CPU and N-1 it starts. The runner passes
    /// the VM's vCPU count.
    pub cpus: usize,
    /// Whether an idle CPU takes waiting tasks from a busy one (`balance=on`, the default);
    /// off, every task stays on CPU `id mod cpus`.
    pub balance: bool,
    /// The network card's registers (`virtio_mmio.device=`, Linux's syntax, which QEMU's
    /// microvm machine appends itself).
    pub virtio_mmio: Option<MmioDevice>,
    /// The guest's address on that card (`ip=A.B.C.D/PREFIX`).
    pub ip: Option<Ipv4Cidr>,
    /// `kv`: keys whose values live in memory the host populated (`kv-hot=N`), keys 0..N.
    pub kv_hot: u64,
    /// `kv`: keys whose values live in the workload region (`kv-cold=N`), keys after the
    /// hot ones.
    pub kv_cold: u64,
    /// `kv`: worker tasks (`kv-workers=N`).
    pub kv_workers: u32,
}

/// The largest virtio-mmio window accepted: registers and configuration space fit in a
/// page; a larger "window" would map RAM for tasks.
const MMIO_WINDOW_MAX: u64 = 0x1000;

/// A virtio-mmio device's register window and interrupt line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioDevice {
    pub base: u64,
    pub size: u64,
    pub irq: u32,
}

impl MmioDevice {
    /// `SIZE@BASE:IRQ` as Linux reads it: SIZE with an optional K or M suffix, BASE and
    /// SIZE decimal or 0x hex, IRQ decimal.
    fn parse(value: &str) -> Option<Self> {
        let (size, rest) = value.split_once('@')?;
        let (base, irq) = rest.split_once(':')?;
        let (size, unit) = match size.as_bytes().last()? {
            b'K' | b'k' => (&size[..size.len() - 1], 1 << 10),
            b'M' | b'm' => (&size[..size.len() - 1], 1 << 20),
            _ => (size, 1),
        };
        let size = integer(size)?.checked_mul(unit)?;
        let base = integer(base)?;
        let device = MmioDevice {
            base,
            size,
            irq: irq.parse().ok()?,
        };
        let end = base.checked_add(size)?.checked_next_multiple_of(4096)?;
        (size > 0 && size <= MMIO_WINDOW_MAX && end <= 1 << 52).then_some(device)
    }

    /// The pages the window lies in (QEMU's microvm packs 512-byte windows eight to a
    /// page), which the kernel maps for the ring-3 driver.
    pub fn pages(&self) -> core::ops::Range<u64> {
        self.base & !4095..(self.base + self.size).next_multiple_of(4096)
    }
}

/// Decimal, or hex after `0x`.
fn integer(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// An IPv4 address and its network's prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub address: [u8; 4],
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// `A.B.C.D/PREFIX`, PREFIX from 1 to 30 (a network with room for a peer).
    fn parse(value: &str) -> Option<Self> {
        let (address, prefix) = value.split_once('/')?;
        let mut octets = address.split('.');
        let mut out = [0; 4];
        for octet in &mut out {
            let text = octets.next()?;
            if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *octet = text.parse().ok()?;
        }
        let prefix: u8 = prefix.parse().ok()?;
        (octets.next().is_none() && (1..=30).contains(&prefix)).then_some(Ipv4Cidr {
            address: out,
            prefix,
        })
    }
}

/// The wrong MSR write of `apf-test=`: does the host refuse it with #GP, as KVM does?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApfTest {
    /// `bad-area`: an enable with reserved EN bit 4 set (KVM: #GP).
    BadArea,
    /// `vector:N`: this raw value in `MSR_KVM_ASYNC_PF_INT`; up to 255 it is just a vector,
    /// above that it sets reserved bits 63:8 (KVM: #GP).
    Int(u64),
}

impl ApfTest {
    fn parse(value: &str) -> Option<Self> {
        if value == "bad-area" {
            return Some(ApfTest::BadArea);
        }
        let raw = value.strip_prefix("vector:")?;
        match raw.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => raw.parse().ok(),
        }
        .map(ApfTest::Int)
    }
}

/// Who gives workload pages their contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSource {
    /// The host's page source (our VMM with lazy memory).
    Host,
    /// Each memory task fills its pages before touching them (QEMU, or no lazy memory).
    Guest,
}

impl Config {
    /// The command line's defaults, usable in a `static`.
    pub const DEFAULT: Self = Self {
        scenario: Scenario::Demo,
        hz: 100,
        primes: 1_000_000,
        cpu: 20_000_000,
        pages: 256,
        pattern: Pattern::Sequential,
        seed: 1,
        source: PageSource::Host,
        apf: false,
        apf_test: None,
        apf_cycle: None,
        apf_watchdog_ms: watchdog::DEFAULT_TIMEOUT_MS,
        hold: false,
        cpus: 1,
        balance: true,
        virtio_mmio: None,
        ip: None,
        kv_hot: 64,
        kv_cold: 1024,
        kv_workers: 4,
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a command line was refused. Displaying it does not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<'a> {
    /// A word without `=`.
    NotKeyValue(&'a str),
    UnknownKey(&'a str),
    DuplicateKey(&'a str),
    UnknownScenario(&'a str),
    UnknownPattern(&'a str),
    UnknownSource(&'a str),
    UnknownApfTest(&'a str),
    /// An async PF option while async PF stays off.
    NeedsApf(&'static str),
    UnknownHold(&'a str),
    /// `hold=console` with a scenario that has no workload tasks to hold.
    HoldNeedsWorkload,
    /// `hold=console` with more than one CPU (the gate is one CPU's).
    HoldNeedsOneCpu,
    BadMmioDevice(&'a str),
    BadIp(&'a str),
    /// `scenario=kv` without a network card or an address.
    KvNeedsNetwork,
    /// `scenario=kv` with more than one CPU (its tasks share one CPU's park keys).
    KvNeedsOneCpu,
    NotOnOff {
        key: &'a str,
        value: &'a str,
    },
    /// `primes=N` with an N whose answer is not tabulated (so it could not be verified).
    UntabulatedPrimes(&'a str),
    /// A number that does not parse or is outside its range.
    BadNumber {
        key: &'a str,
        value: &'a str,
        min: u64,
        max: u64,
    },
}

impl fmt::Display for Error<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotKeyValue(w) => write!(f, "'{w}' is not of the form key=value"),
            Error::UnknownKey(k) => {
                // No allocation: the kernel reports this before its heap exists.
                write!(f, "unknown option '{k}' (known:")?;
                for key in KEYS {
                    write!(f, " {key}")?;
                }
                write!(f, ")")
            }
            Error::DuplicateKey(k) => write!(f, "option '{k}' given twice"),
            Error::UnknownScenario(s) => {
                write!(f, "unknown scenario '{s}' (known:")?;
                for (name, _) in SCENARIOS {
                    write!(f, " {name}")?;
                }
                write!(f, " mlp:1..{MLP_MAX})")
            }
            Error::UnknownSource(v) => write!(f, "source={v}: expected host or guest"),
            Error::NotOnOff { key, value } => write!(f, "{key}={value}: expected on or off"),
            Error::UnknownApfTest(v) => write!(
                f,
                "apf-test={v}: expected bad-area or vector:N (N the raw MSR_KVM_ASYNC_PF_INT \
                 value, decimal or 0x hex: a vector up to 255, above that reserved bits set)"
            ),
            Error::NeedsApf(key) => write!(f, "{key} needs apf=on"),
            Error::UnknownHold(v) => write!(f, "hold={v}: expected console"),
            Error::HoldNeedsWorkload => {
                write!(
                    f,
                    "hold=console needs a workload scenario (cpu, mem, seed or mlp:K)"
                )
            }
            Error::HoldNeedsOneCpu => write!(f, "hold=console needs cpus=1"),
            Error::BadMmioDevice(v) => write!(
                f,
                "virtio_mmio.device={v}: expected SIZE@BASE:IRQ (e.g. 4K@0xd0000000:5), \
                 SIZE at most 4K, below 2^52"
            ),
            Error::BadIp(v) => write!(f, "ip={v}: expected A.B.C.D/PREFIX, PREFIX 1 to 30"),
            Error::KvNeedsNetwork => write!(
                f,
                "scenario=kv needs a network card (virtio_mmio.device=) and an address (ip=)"
            ),
            Error::KvNeedsOneCpu => write!(f, "scenario=kv needs cpus=1"),
            Error::UnknownPattern(p) => write!(
                f,
                "pattern={p}: expected seq, random or stride:N with N from 1 to {PAGES_MAX}"
            ),
            Error::UntabulatedPrimes(v) => {
                write!(f, "primes={v}: expected one of")?;
                for (n, _) in workloads::cpu::PRIME_COUNTS {
                    write!(f, " {n}")?;
                }
                Ok(())
            }
            Error::BadNumber {
                key,
                value,
                min,
                max,
            } => write!(
                f,
                "{key}={value}: expected a whole number from {min} to {max}"
            ),
        }
    }
}

/// The most CPUs the kernel brings up: a power of two, so a per-CPU index masks cheaply.
pub const MAX_CPUS: usize = 8;
const _: () = assert!(MAX_CPUS.is_power_of_two());

const KEYS: &[&str] = &[
    "scenario",
    "hz",
    "primes",
    "cpu",
    "pages",
    "pattern",
    "seed",
    "source",
    "apf",
    "apf-test",
    "apf-cycle",
    "apf-watchdog",
    "hold",
    "cpus",
    "balance",
    "virtio_mmio.device",
    "ip",
    "kv-hot",
    "kv-cold",
    "kv-workers",
];

/// Most hot keys (`kv-hot`): their copies live below the workload region.
pub const KV_HOT_MAX: u64 = 4096;
/// Most `kv` worker tasks.
pub const KV_WORKERS_MAX: u64 = 16;

/// Keys that only mean something with async PF on: given with `apf=off`, they are refused.
const NEEDS_APF: &[&str] = &["apf-test", "apf-cycle", "apf-watchdog"];

/// Parses `line`; an empty line gives the defaults.
pub fn parse(line: &str) -> Result<Config, Error<'_>> {
    let mut config = Config::default();
    let mut seen = [false; KEYS.len()];
    for word in line.split_ascii_whitespace() {
        let (key, value) = word.split_once('=').ok_or(Error::NotKeyValue(word))?;
        let index = KEYS
            .iter()
            .position(|k| *k == key)
            .ok_or(Error::UnknownKey(key))?;
        if core::mem::replace(&mut seen[index], true) {
            return Err(Error::DuplicateKey(key));
        }
        match key {
            "scenario" => {
                config.scenario = Scenario::parse(value).ok_or(Error::UnknownScenario(value))?
            }
            "cpus" => config.cpus = number(key, value, 1..=MAX_CPUS as u64)? as usize,
            "virtio_mmio.device" => {
                config.virtio_mmio =
                    Some(MmioDevice::parse(value).ok_or(Error::BadMmioDevice(value))?)
            }
            "ip" => config.ip = Some(Ipv4Cidr::parse(value).ok_or(Error::BadIp(value))?),
            "kv-hot" => config.kv_hot = number(key, value, 1..=KV_HOT_MAX)?,
            "kv-cold" => config.kv_cold = number(key, value, 0..=PAGES_MAX)?,
            "kv-workers" => config.kv_workers = number(key, value, 1..=KV_WORKERS_MAX)? as u32,
            "hz" => config.hz = number(key, value, HZ_RANGE)? as u32,
            "cpu" => config.cpu = number(key, value, CPU_RANGE)?,
            "pages" => config.pages = number(key, value, 1..=PAGES_MAX)?,
            "pattern" => {
                config.pattern = parse_pattern(value).ok_or(Error::UnknownPattern(value))?
            }
            "seed" => config.seed = number(key, value, 0..=u64::MAX)?,
            "apf" => config.apf = on_off(key, value)?,
            "balance" => config.balance = on_off(key, value)?,
            "apf-test" => {
                config.apf_test = Some(ApfTest::parse(value).ok_or(Error::UnknownApfTest(value))?)
            }
            "apf-cycle" => config.apf_cycle = Some(number(key, value, 1..=u64::MAX)?),
            "apf-watchdog" => {
                config.apf_watchdog_ms = number(key, value, watchdog::TIMEOUT_RANGE_MS)?
            }
            "hold" => {
                config.hold = match value {
                    "console" => true,
                    _ => return Err(Error::UnknownHold(value)),
                }
            }
            "source" => {
                config.source = match value {
                    "host" => PageSource::Host,
                    "guest" => PageSource::Guest,
                    _ => return Err(Error::UnknownSource(value)),
                }
            }
            "primes" => {
                config.primes = value
                    .parse()
                    .ok()
                    .filter(|&n| workloads::cpu::expected_prime_count(n).is_some())
                    .ok_or(Error::UntabulatedPrimes(value))?
            }
            _ => unreachable!("every entry of KEYS is handled"),
        }
    }
    let workload = matches!(
        config.scenario,
        Scenario::Cpu | Scenario::Mem | Scenario::Seed | Scenario::Mlp(_)
    );
    if config.hold && !workload {
        return Err(Error::HoldNeedsWorkload);
    }
    if config.hold && config.cpus > 1 {
        return Err(Error::HoldNeedsOneCpu);
    }
    if config.scenario == Scenario::Kv {
        if config.virtio_mmio.is_none() || config.ip.is_none() {
            return Err(Error::KvNeedsNetwork);
        }
        if config.cpus > 1 {
            return Err(Error::KvNeedsOneCpu);
        }
    }
    if !config.apf {
        let given = |key: &str| KEYS.iter().zip(seen).any(|(k, seen)| seen && *k == key);
        if let Some(key) = NEEDS_APF.iter().find(|key| given(key)) {
            return Err(Error::NeedsApf(key));
        }
    }
    Ok(config)
}

/// `on` or `off`.
fn on_off<'a>(key: &'a str, value: &'a str) -> Result<bool, Error<'a>> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(Error::NotOnOff { key, value }),
    }
}

fn number<'a>(key: &'a str, value: &'a str, range: RangeInclusive<u64>) -> Result<u64, Error<'a>> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or(Error::BadNumber {
            key,
            value,
            min: *range.start(),
            max: *range.end(),
        })
}

#[cfg(test)]
mod tests;
