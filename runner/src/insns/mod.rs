//! `runner insns`: how many ring-0 instructions each kind of guest trap costs, counted
//! exactly from a recording of KVM's `kvm:kvm_emulate_insn` tracepoint (`bench/insns`
//! makes one around a `runner run`).
//!
//! On this host KVM emulates every ring-0 guest instruction, about a microsecond each, so
//! the count per async PF event is the guest's side of what an async fault costs; the
//! functions it is spent in say where to cut.

mod episodes;
mod symbols;
mod trace;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};
use thiserror::Error;

use crate::compare::table::Table;
use episodes::{Counter, Tally, Traps, UNKNOWN_SYMBOL};
use symbols::Symbols;

/// `runner insns` arguments.
#[derive(Debug, Args)]
pub struct InsnsArgs {
    /// The guest kernel ELF that ran (its symbols name the functions).
    #[arg(long, value_name = "PATH")]
    pub kernel: PathBuf,
    /// The output of `perf script -F tid,event,trace` for a recording of
    /// `kvm:kvm_emulate_insn` [default: stdin].
    #[arg(long, value_name = "PATH")]
    pub trace: Option<PathBuf>,
    /// Functions listed per trap kind, most instructions first.
    #[arg(long, default_value_t = 12, value_name = "N")]
    pub top: usize,
    /// Also list every instruction traps of this vector ran (e.g. 14 or 0xf3), with its
    /// function, offset, encoding and mean executions per trap: where to cut.
    #[arg(long, value_name = "VECTOR", value_parser = parse_vector)]
    pub listing: Option<u8>,
    /// Write the counts as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Also write the tables as Markdown here.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
}

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Symbols(#[from] symbols::Error),
    #[error("reading the trace {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("the trace {path}, {source}")]
    Parse { path: String, source: trace::Error },
    #[error("the trace {path} has no {event} events: was it recorded around a KVM guest run?")]
    Empty { path: String, event: &'static str },
    #[error("--listing {vector:#x}: the trace has no trap on that vector")]
    NoTraps { vector: u8 },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The x86_64 guest's trap vectors (guest-kernel `arch/x86_64/trap.rs` and `apf.rs`), named
/// for the tables.
fn trap_name(vector: u8) -> String {
    match vector {
        3 => "system call".to_owned(),
        14 => "not-present (#PF)".to_owned(),
        0x20 => "timer".to_owned(),
        0xf3 => "page-ready".to_owned(),
        0xff => "spurious".to_owned(),
        v => format!("vector {v:#x}"),
    }
}

const NOT_PRESENT: u8 = 14;
const PAGE_READY: u8 = 0xf3;

pub fn insns(args: InsnsArgs) -> Result<(), Error> {
    let symbols = Symbols::load(&args.kernel)?;
    let name = args
        .trace
        .as_deref()
        .map_or_else(|| "on stdin".to_owned(), |p| p.display().to_string());
    let input: Box<dyn BufRead> = match &args.trace {
        Some(path) => Box::new(BufReader::new(File::open(path).map_err(|source| {
            Error::Read {
                path: name.clone(),
                source,
            }
        })?)),
        None => Box::new(io::stdin().lock()),
    };
    let tally = count(&symbols, input, &name)?;
    let mut tables = tables(&tally, args.top);
    if let Some(vector) = args.listing {
        tables.push(listing(&tally, &symbols, vector)?);
    }
    let text: Vec<String> = tables.iter().map(Table::text).collect();
    // A reader that stops early (`| head`) is no error.
    let _ = writeln!(io::stdout().lock(), "{}", text.join("\n"));
    if let Some(path) = &args.markdown {
        let markdown: Vec<String> = tables.iter().map(Table::markdown).collect();
        write(path, &markdown.join("\n"))?;
    }
    if let Some(path) = &args.json {
        write(path, &format!("{:#}\n", to_json(&tally)))?;
    }
    Ok(())
}

/// A vector as `--listing` takes it: decimal or `0x` hex.
fn parse_vector(text: &str) -> Result<u8, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("'{text}' is not a vector (0-255, decimal or 0x hex)"))
}

/// Every instruction the traps on `vector` ran, in address order.
fn listing(tally: &Tally, symbols: &Symbols, vector: u8) -> Result<Table, Error> {
    let traps = tally
        .by_vector
        .get(&vector)
        .ok_or(Error::NoTraps { vector })?;
    let mut table = Table::new(
        format!(
            "{}: every instruction, mean executions per trap",
            trap_name(vector)
        ),
        &["address", "function+offset", "encoding", "per trap"],
    );
    for (rip, mean, bytes) in traps.by_instruction() {
        let place = symbols.locate(rip).map_or_else(
            || UNKNOWN_SYMBOL.to_owned(),
            |(name, off)| format!("{name}+{off:#x}"),
        );
        table.row(vec![
            format!("{rip:#x}"),
            place,
            bytes.to_owned(),
            format!("{mean:.2}"),
        ]);
    }
    Ok(table)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// Counts every instruction line of `input`; `name` is the input's, for errors.
fn count<'s>(symbols: &'s Symbols, input: impl BufRead, name: &str) -> Result<Tally<'s>, Error> {
    let mut counter = Counter::new(symbols);
    for (index, line) in input.lines().enumerate() {
        let line = line.map_err(|source| Error::Read {
            path: name.to_owned(),
            source,
        })?;
        let parsed = trace::parse_line(index + 1, &line).map_err(|source| Error::Parse {
            path: name.to_owned(),
            source,
        })?;
        if let Some(insn) = parsed {
            counter.add(&insn);
        }
    }
    let tally = counter.finish();
    if tally.total == 0 {
        return Err(Error::Empty {
            path: name.to_owned(),
            event: trace::EVENT,
        });
    }
    Ok(tally)
}

/// One not-present plus one page-ready, their means: what one async PF event costs; `None`
/// if the recording has no trap of either kind.
fn per_async_pf(tally: &Tally) -> Option<f64> {
    let mean = |vector| tally.by_vector.get(&vector).map(Traps::mean);
    Some(mean(NOT_PRESENT)? + mean(PAGE_READY)?)
}

/// The summary table (one row per trap kind, and the sum per async PF event) and, per
/// kind, its `top` functions.
fn tables(tally: &Tally, top: usize) -> Vec<Table> {
    let mut summary = Table::new(
        format!(
            "ring-0 instructions per guest trap (kvm:kvm_emulate_insn): {} emulated, {} outside \
             traps (boot, idle), {} trap(s) unfinished at the end",
            tally.total, tally.outside, tally.unfinished
        ),
        &[
            "trap",
            "vector",
            "traps",
            "mean",
            "median",
            "min",
            "max",
            "atomics max",
        ],
    );
    for (&vector, traps) in &tally.by_vector {
        let s = traps.summary();
        summary.row(vec![
            trap_name(vector),
            format!("{vector:#x}"),
            traps.insns.len().to_string(),
            format!("{:.1}", traps.mean()),
            s.median.to_string(),
            s.min.to_string(),
            s.max.to_string(),
            traps.max_locked.to_string(),
        ]);
    }
    if let Some(per_event) = per_async_pf(tally) {
        summary.note(format!(
            "per async PF (one not-present and one page-ready, means): {per_event:.1}"
        ));
    }
    if tally.failed > 0 {
        summary.note(format!(
            "{} failed emulation attempt(s) (KVM retraces each iretq to ring 3 so), not counted",
            tally.failed
        ));
    }
    let mut tables = vec![summary];
    for (&vector, traps) in &tally.by_vector {
        let mut by_symbol = Table::new(
            format!(
                "{}: mean instructions per trap, by function",
                trap_name(vector)
            ),
            &["function", "insns"],
        );
        for (name, mean) in traps.by_function().into_iter().take(top) {
            by_symbol.row(vec![name.to_owned(), format!("{mean:.1}")]);
        }
        tables.push(by_symbol);
    }
    tables
}

/// `{"total", "outside", "unfinished", "failed", "traps": [{"vector", "name", "count",
/// "mean", "median", "min", "max", "max_locked", "by_symbol": {name: mean}}],
/// "per_async_pf"}`.
fn to_json(tally: &Tally) -> Value {
    let traps: Vec<Value> = tally
        .by_vector
        .iter()
        .map(|(&vector, traps)| {
            let s = traps.summary();
            let by_symbol: serde_json::Map<String, Value> = traps
                .by_function()
                .into_iter()
                .map(|(name, mean)| (name.to_owned(), json!(mean)))
                .collect();
            json!({
                "vector": vector,
                "name": trap_name(vector),
                "count": traps.insns.len(),
                "mean": traps.mean(),
                "median": s.median,
                "min": s.min,
                "max": s.max,
                "max_locked": traps.max_locked,
                "by_symbol": by_symbol,
            })
        })
        .collect();
    json!({
        "total": tally.total,
        "outside": tally.outside,
        "unfinished": tally.unfinished,
        "failed": tally.failed,
        "traps": traps,
        "per_async_pf": per_async_pf(tally),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> String {
        // Two not-present traps (4 and 6 instructions) and one page-ready (5), between idle
        // halts.
        let mut lines = vec!["1 kvm:kvm_async_pf_ready: token 0x1000 gva 0x4000ff8".to_owned()];
        let mut trap = |vector: u64, handler: u64| {
            lines.push(format!(
                "1 kvm:kvm_emulate_insn: 0:{:x}:6a 0e (prot64)",
                0x1000 + vector * 16
            ));
            for i in 0..handler {
                lines.push(format!(
                    "1 kvm:kvm_emulate_insn: 0:{:x}:90 (prot64)",
                    0x3000 + i
                ));
            }
            lines.push("1 kvm:kvm_emulate_insn: 0:2040:48 cf (prot64)".to_owned());
            lines.push("1 kvm:kvm_emulate_insn: 0:5000:f4 (prot64)".to_owned());
        };
        trap(14, 2);
        trap(0xf3, 3);
        trap(14, 4);
        lines.join("\n")
    }

    #[test]
    fn counts_a_trace_and_reports_per_async_pf() {
        let symbols = symbols::tests::example();
        let tally = count(&symbols, trace().as_bytes(), "t").unwrap();
        let json = to_json(&tally);
        assert_eq!(json["total"], 18);
        assert_eq!(json["outside"], 3);
        assert_eq!(json["traps"][0]["name"], "not-present (#PF)");
        assert_eq!(json["traps"][0]["count"], 2);
        assert_eq!(json["traps"][0]["mean"], 5.0);
        assert_eq!(
            json["traps"][0]["by_symbol"]["guest_kernel::kernel::apf_present"],
            3.0
        );
        assert_eq!(json["traps"][1]["name"], "page-ready");
        assert_eq!(json["per_async_pf"], 10.0);
        let text: Vec<String> = tables(&tally, 1).iter().map(Table::text).collect();
        assert!(text[0].contains("per async PF (one not-present and one page-ready, means): 10.0"));
        assert_eq!(text.len(), 3, "the summary and one table per kind");
        assert!(
            text[1].contains("guest_kernel::kernel::apf_present"),
            "{}",
            text[1]
        );
        assert!(
            !text[1].contains("trap_stubs"),
            "only the top function: {}",
            text[1]
        );
    }

    #[test]
    fn lists_one_vectors_instructions_and_refuses_a_vector_without_traps() {
        let symbols = symbols::tests::example();
        let tally = count(&symbols, trace().as_bytes(), "t").unwrap();
        let text = listing(&tally, &symbols, 14).unwrap().text();
        assert!(text.contains("0x10e0"), "the #PF stub: {text}");
        assert!(
            text.contains("guest_kernel::kernel::apf_present+0x3"),
            "{text}"
        );
        assert!(!text.contains("0x1f30"), "not the page-ready stub: {text}");
        let err = listing(&tally, &symbols, 0x20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--listing 0x20: the trace has no trap on that vector"
        );
        assert_eq!(parse_vector("0xf3"), Ok(0xf3));
        assert_eq!(parse_vector("14"), Ok(14));
        assert!(parse_vector("256").is_err() && parse_vector("0xzz").is_err());
    }

    #[test]
    fn a_trace_without_instructions_or_with_a_bad_line_is_an_error() {
        let symbols = symbols::tests::example();
        let err = count(&symbols, "1 kvm:kvm_exit: reason HLT".as_bytes(), "t").unwrap_err();
        assert!(
            err.to_string()
                .contains("has no kvm:kvm_emulate_insn events"),
            "{err}"
        );
        let bad = "1 kvm:kvm_emulate_insn: 0:xyz:90 (prot64)";
        let err = count(&symbols, bad.as_bytes(), "t").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the trace t, line 1: rip is not hex: {bad:?}")
        );
    }
}
