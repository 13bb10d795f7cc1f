//! Lines of `perf script -F tid,event,trace` for KVM's `kvm:kvm_emulate_insn` tracepoint:
//! one per guest instruction KVM's emulator ran (on this host, every ring-0 instruction).
//!
//! ```text
//!   17491   kvm:kvm_emulate_insn: 0:10a370:6a 0e (prot64)
//! ```
//!
//! The payload is `csbase:rip:bytes (mode)`, with ` failed` after the mode when the emulator
//! gave up on the instruction. Other events in the same recording are skipped, not errors.

use thiserror::Error;

/// The tracepoint this module reads.
pub const EVENT: &str = "kvm:kvm_emulate_insn";

/// One emulated instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insn {
    /// The vCPU thread that ran it.
    pub tid: u32,
    pub rip: u64,
    /// Its encoding as traced, in hex pairs separated by spaces.
    pub bytes: String,
    /// The emulator could not run it.
    pub failed: bool,
}

impl Insn {
    /// `iretq` (REX.W + CF): the instruction every trap of our guest returns with.
    pub fn is_iretq(&self) -> bool {
        self.bytes == "48 cf"
    }

    /// An atomic read-modify-write: a `LOCK`-prefixed instruction, or `xchg` with memory
    /// (locked without the prefix). A lock acquisition takes one; releasing a spin lock is a
    /// plain store.
    pub fn is_locked(&self) -> bool {
        let mut bytes = self
            .bytes
            .split(' ')
            .filter_map(|b| u8::from_str_radix(b, 16).ok())
            .peekable();
        let mut lock = false;
        while let Some(&b) = bytes.peek() {
            if !LEGACY_PREFIXES.contains(&b) {
                break;
            }
            lock |= b == LOCK_PREFIX;
            bytes.next();
        }
        if lock {
            return true;
        }
        if bytes.peek().is_some_and(|b| REX.contains(b)) {
            bytes.next();
        }
        let (Some(opcode), Some(modrm)) = (bytes.next(), bytes.next()) else {
            return false;
        };
        XCHG.contains(&opcode) && modrm >> 6 != MODRM_REGISTER
    }
}

const LOCK_PREFIX: u8 = 0xf0;
/// Operand-size, address-size, segment, REP and LOCK prefixes, in any order.
const LEGACY_PREFIXES: [u8; 11] = [
    0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67,
];
const REX: core::ops::RangeInclusive<u8> = 0x40..=0x4f;
/// `xchg r/m8, r8` and `xchg r/m, r`.
const XCHG: [u8; 2] = [0x86, 0x87];
/// ModRM.mod for a register operand: `xchg` between registers is not locked.
const MODRM_REGISTER: u8 = 0b11;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {what}: {text:?}")]
pub struct Error {
    pub line: usize,
    pub what: &'static str,
    pub text: String,
}

/// The instruction on `text` (line number `line`, for errors), or `None` for another
/// event's line or a blank one.
pub fn parse_line(line: usize, text: &str) -> Result<Option<Insn>, Error> {
    let error = |what| Error {
        line,
        what,
        text: text.to_owned(),
    };
    let mut fields = text.split_whitespace();
    let (Some(tid), Some(event)) = (fields.next(), fields.next()) else {
        return Ok(None);
    };
    if event.strip_suffix(':') != Some(EVENT) {
        return Ok(None);
    }
    let tid = tid
        .parse()
        .map_err(|_| error("thread id is not a number"))?;
    let payload = text
        .split_once(EVENT)
        .map(|(_, rest)| rest.trim_start_matches(':').trim())
        .ok_or_else(|| error("no payload"))?;
    let (location, rest) = payload
        .split_once(' ')
        .map_or((payload, ""), |(l, r)| (l, r));
    let mut parts = location.splitn(3, ':');
    let (Some(_csbase), Some(rip), Some(first_byte)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(error("expected csbase:rip:bytes"));
    };
    let rip = u64::from_str_radix(rip, 16).map_err(|_| error("rip is not hex"))?;
    let Some(mode_at) = rest.find('(') else {
        return Err(error("no (mode) after the bytes"));
    };
    let more_bytes = rest[..mode_at].trim();
    let bytes = if more_bytes.is_empty() {
        first_byte.to_owned()
    } else {
        format!("{first_byte} {more_bytes}")
    };
    if !bytes
        .split(' ')
        .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(error("bytes are not hex pairs"));
    }
    let failed = rest[mode_at..].contains("failed");
    Ok(Some(Insn {
        tid,
        rip,
        bytes,
        failed,
    }))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An instruction the emulator ran, for tests here and of the trap counter.
    pub fn insn(tid: u32, rip: u64, bytes: &str) -> Insn {
        Insn {
            tid,
            rip,
            bytes: bytes.to_owned(),
            failed: false,
        }
    }

    #[test]
    fn parses_perf_script_lines() {
        let line = "   17491         kvm:kvm_emulate_insn: 0:10a370:6a 0e (prot64)";
        assert_eq!(
            parse_line(1, line),
            Ok(Some(insn(17491, 0x10a370, "6a 0e")))
        );
        let one_byte = "17491 kvm:kvm_emulate_insn: 0:100000:fa (prot32)";
        assert_eq!(
            parse_line(1, one_byte),
            Ok(Some(insn(17491, 0x100000, "fa")))
        );
        let iretq = parse_line(1, "1 kvm:kvm_emulate_insn: 0:10b2cd:48 cf (prot64)")
            .unwrap()
            .unwrap();
        assert!(iretq.is_iretq());
        let failed = parse_line(1, "1 kvm:kvm_emulate_insn: 0:200:c5 f9 (prot64) failed")
            .unwrap()
            .unwrap();
        assert!(failed.failed);
        assert!(!failed.is_iretq());
    }

    #[test]
    fn atomics_are_lock_prefixed_or_xchg_with_memory() {
        let locked = |bytes: &str| insn(1, 0, bytes).is_locked();
        assert!(locked("f0 0f b0 0d dc 99 02 00"), "lock cmpxchg");
        assert!(locked("f0 48 0f b1 0e"), "lock cmpxchg with REX.W");
        assert!(locked("66 f0 0f c1 07"), "lock after another prefix");
        assert!(locked("48 87 07"), "xchg with memory");
        assert!(locked("86 07"));
        assert!(!locked("48 87 c7"), "xchg between registers");
        assert!(
            !locked("c6 03 00"),
            "releasing a spin lock is a plain store"
        );
        assert!(!locked("48 cf"));
        assert!(!locked("f3 48 ab"), "rep stos");
    }

    #[test]
    fn other_events_and_blank_lines_are_skipped() {
        let ready = "17491       kvm:kvm_async_pf_ready: token 0x1000 gva 0x4000ff8";
        assert_eq!(parse_line(1, ready), Ok(None));
        assert_eq!(parse_line(2, ""), Ok(None));
        assert_eq!(parse_line(3, "17491"), Ok(None));
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_problem() {
        let cases = [
            (
                "x kvm:kvm_emulate_insn: 0:1:90 (prot64)",
                "thread id is not a number",
            ),
            ("1 kvm:kvm_emulate_insn: 0:zz:90 (prot64)", "rip is not hex"),
            (
                "1 kvm:kvm_emulate_insn: 0:100 (prot64)",
                "expected csbase:rip:bytes",
            ),
            (
                "1 kvm:kvm_emulate_insn: 0:100:90",
                "no (mode) after the bytes",
            ),
            (
                "1 kvm:kvm_emulate_insn: 0:100:9g (prot64)",
                "bytes are not hex pairs",
            ),
        ];
        for (text, what) in cases {
            let err = parse_line(7, text).unwrap_err();
            assert_eq!(err.what, what, "{text}");
            assert!(err.to_string().starts_with("line 7: "), "{err}");
        }
    }
}
