//! Splits each vCPU's stream of emulated instructions into traps and counts them.
//!
//! A trap starts at the first instruction of its vector's entry stub and ends with the
//! `iretq` that leaves it, or where the kernel enters its idle loop (`idle_enter`, which
//! restores nothing): from the event to the next context running, which is what one async
//! PF event costs the guest's kernel. Every guest trap returns through `iretq`, and
//! the kernel runs with interrupts masked, so traps nest only when a trap's own code faults
//! (a refused MSR write); a nested trap is counted as its own and not in the outer one.
//! What runs outside any trap (boot, the idle loop's `hlt`) is counted apart.
//!
//! KVM traces an `iretq` to ring 3 twice: once emulated, once more marked failed (the
//! emulator hands it back). A failed event is not another instruction: it is counted apart
//! and changes nothing else. A trap ends at the first instruction after its `iretq`.

use std::collections::{BTreeMap, HashMap};

use super::symbols::Symbols;
use super::trace::Insn;
use crate::compare::stats::Summary;

/// The name of instructions no symbol covers.
pub const UNKNOWN_SYMBOL: &str = "?";

/// A trap still running on one vCPU.
struct Open {
    vector: u8,
    insns: u64,
    /// Its atomic read-modify-writes: one per lock it took.
    locked: u64,
    /// Executions of each instruction address, with its encoding (the per-function counts
    /// follow from it when the trap closes).
    by_rip: HashMap<u64, (u64, String)>,
    /// Its `iretq` ran: the next instruction on this vCPU is no longer part of it.
    returned: bool,
}

/// Every trap of one vector.
#[derive(Debug, Default, PartialEq)]
pub struct Traps<'s> {
    /// Instructions of each trap, in the order they ended.
    pub insns: Vec<u64>,
    /// The most atomic read-modify-writes one trap ran (a lock acquisition is one).
    pub max_locked: u64,
    /// Instructions of all of them, by the function they ran in.
    pub by_symbol: BTreeMap<&'s str, u64>,
    /// Executions of each instruction of all of them, by address, with its encoding.
    pub by_rip: BTreeMap<u64, (u64, String)>,
}

/// The counts of one recording.
#[derive(Debug, Default, PartialEq)]
pub struct Tally<'s> {
    pub by_vector: BTreeMap<u8, Traps<'s>>,
    /// Every emulated instruction (not counting failed attempts).
    pub total: u64,
    /// Instructions outside any trap.
    pub outside: u64,
    /// Traps the recording ended in before their `iretq` (the guest's exit path).
    pub unfinished: u64,
    /// Emulation attempts traced as failed.
    pub failed: u64,
}

/// Counts instructions as they come, any number of vCPU threads interleaved.
pub struct Counter<'s> {
    symbols: &'s Symbols,
    open: HashMap<u32, Vec<Open>>,
    tally: Tally<'s>,
}

impl Traps<'_> {
    /// Mean instructions per trap.
    pub fn mean(&self) -> f64 {
        self.insns.iter().sum::<u64>() as f64 / self.insns.len().max(1) as f64
    }

    /// Minimum, median and maximum instructions per trap.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.insns).expect("a kind has at least one trap")
    }

    /// Mean executions per trap of each instruction, in address order: `(rip, mean,
    /// encoding)`.
    pub fn by_instruction(&self) -> impl Iterator<Item = (u64, f64, &str)> {
        let n = self.insns.len().max(1) as f64;
        self.by_rip
            .iter()
            .map(move |(&rip, (count, bytes))| (rip, *count as f64 / n, bytes.as_str()))
    }

    /// Mean instructions per trap in each function, most first (ties by name, so output
    /// repeats).
    pub fn by_function(&self) -> Vec<(&str, f64)> {
        let n = self.insns.len().max(1) as f64;
        let mut ranked: Vec<(&str, u64)> = self.by_symbol.iter().map(|(&k, &v)| (k, v)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        ranked
            .into_iter()
            .map(|(name, total)| (name, total as f64 / n))
            .collect()
    }
}

impl<'s> Counter<'s> {
    pub fn new(symbols: &'s Symbols) -> Self {
        Self {
            symbols,
            open: HashMap::new(),
            tally: Tally::default(),
        }
    }

    pub fn add(&mut self, insn: &Insn) {
        if insn.failed {
            self.tally.failed += 1;
            return;
        }
        self.tally.total += 1;
        let stack = self.open.entry(insn.tid).or_default();
        if stack.last().is_some_and(|top| top.returned) {
            let done = stack.pop().expect("just looked at it");
            Self::close(self.symbols, &mut self.tally, done);
        }
        if self.symbols.is_idle_enter(insn.rip) {
            for done in stack.drain(..) {
                Self::close(self.symbols, &mut self.tally, done);
            }
        }
        if let Some(vector) = self.symbols.trap_entry(insn.rip) {
            stack.push(Open {
                vector,
                insns: 0,
                locked: 0,
                by_rip: HashMap::new(),
                returned: false,
            });
        }
        let Some(top) = stack.last_mut() else {
            self.tally.outside += 1;
            return;
        };
        top.insns += 1;
        top.locked += u64::from(insn.is_locked());
        top.by_rip
            .entry(insn.rip)
            .or_insert_with(|| (0, insn.bytes.clone()))
            .0 += 1;
        top.returned = insn.is_iretq();
    }

    /// The counts, once the recording has ended: traps past their `iretq` are complete,
    /// the others unfinished.
    pub fn finish(mut self) -> Tally<'s> {
        for (_, stack) in self.open.drain() {
            for open in stack {
                if open.returned {
                    Self::close(self.symbols, &mut self.tally, open);
                } else {
                    self.tally.unfinished += 1;
                }
            }
        }
        self.tally
    }

    fn close(symbols: &'s Symbols, tally: &mut Tally<'s>, open: Open) {
        let traps = tally.by_vector.entry(open.vector).or_default();
        traps.insns.push(open.insns);
        traps.max_locked = traps.max_locked.max(open.locked);
        for (rip, (n, bytes)) in open.by_rip {
            let name = symbols.name(rip).unwrap_or(UNKNOWN_SYMBOL);
            *traps.by_symbol.entry(name).or_default() += n;
            traps.by_rip.entry(rip).or_insert((0, bytes)).0 += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::symbols::tests::example;
    use super::super::trace::tests::insn;
    use super::*;

    const STUBS: u64 = 0x1000;
    const COMMON: u64 = 0x2000;
    const HANDLER: u64 = 0x3000;
    /// `idle_enter`.
    const IDLE: u64 = 0x5000;

    /// One trap on `vector`: its stub, `handler` instructions in the handler, `iretq`.
    fn trap(tid: u32, vector: u8, handler: u64) -> Vec<Insn> {
        let mut insns = vec![
            insn(tid, STUBS + u64::from(vector) * 16, "6a 0e"),
            insn(tid, COMMON, "f0 0f b0 0d 00 00 00 00"),
        ];
        insns.extend((0..handler).map(|i| insn(tid, HANDLER + i, "90")));
        insns.push(insn(tid, COMMON + 0x40, "48 cf"));
        insns
    }

    fn count<'s>(symbols: &'s Symbols, insns: &[Insn]) -> Tally<'s> {
        let mut counter = Counter::new(symbols);
        insns.iter().for_each(|i| counter.add(i));
        counter.finish()
    }

    #[test]
    fn counts_each_trap_from_its_stub_to_its_iretq_by_symbol() {
        let symbols = example();
        let mut insns = trap(1, 14, 5);
        insns.push(insn(1, IDLE, "f4"));
        insns.extend(trap(1, 0xf3, 10));
        insns.extend(trap(1, 14, 7));
        let tally = count(&symbols, &insns);
        assert_eq!(tally.total, 5 + 3 + 1 + 10 + 3 + 7 + 3);
        assert_eq!(tally.outside, 1, "the idle hlt");
        assert_eq!(tally.unfinished, 0);
        let pf = &tally.by_vector[&14];
        assert_eq!(pf.insns, [8, 10]);
        assert_eq!(pf.by_symbol["trap_stubs"], 2);
        assert_eq!(pf.by_symbol["trap_common"], 4);
        assert_eq!(pf.by_symbol["guest_kernel::kernel::apf_present"], 12);
        assert_eq!(tally.by_vector[&0xf3].insns, [13]);
        assert_eq!(pf.max_locked, 1, "each trap took one lock");
        let listing: Vec<_> = pf.by_instruction().take(3).collect();
        assert_eq!(
            listing,
            [
                (STUBS + 14 * 16, 1.0, "6a 0e"),
                (COMMON, 1.0, "f0 0f b0 0d 00 00 00 00"),
                (COMMON + 0x40, 1.0, "48 cf"),
            ]
        );
        let last = pf.by_instruction().last().unwrap();
        assert_eq!(
            last,
            (HANDLER + 6, 0.5, "90"),
            "only the second trap ran it"
        );
    }

    #[test]
    fn a_failed_retry_of_the_iretq_is_no_instruction_and_a_trap_right_after_is_new() {
        let symbols = example();
        let mut insns = trap(1, 14, 2);
        let mut retry = insn(1, COMMON + 0x40, "48 cf");
        retry.failed = true;
        insns.push(retry);
        insns.extend(trap(1, 0x20, 1));
        let tally = count(&symbols, &insns);
        assert_eq!(tally.by_vector[&14].insns, [5]);
        assert_eq!(tally.by_vector[&0x20].insns, [4]);
        assert_eq!((tally.outside, tally.failed, tally.total), (0, 1, 9));
    }

    #[test]
    fn a_trap_that_goes_idle_ends_at_the_idle_loop() {
        let symbols = example();
        let mut insns = trap(1, 14, 3);
        insns.pop();
        insns.push(insn(1, IDLE, "48 8d 25 00 00 00 00"));
        insns.push(insn(1, IDLE + 8, "fb"));
        insns.extend(trap(1, 0xf3, 1));
        let tally = count(&symbols, &insns);
        assert_eq!(tally.by_vector[&14].insns, [5]);
        assert_eq!(tally.by_vector[&0xf3].insns, [4]);
        assert_eq!((tally.outside, tally.unfinished), (2, 0));
    }

    #[test]
    fn a_nested_trap_is_counted_on_its_own() {
        let symbols = example();
        let mut insns = trap(1, 14, 0);
        let iretq = insns.pop().unwrap();
        insns.extend(trap(1, 13, 3));
        insns.push(insn(1, HANDLER, "90"));
        insns.push(iretq);
        let tally = count(&symbols, &insns);
        assert_eq!(tally.by_vector[&13].insns, [6]);
        assert_eq!(tally.by_vector[&14].insns, [4]);
    }

    #[test]
    fn threads_are_separate_streams() {
        let symbols = example();
        let (a, b) = (trap(1, 14, 4), trap(2, 0xf3, 6));
        let mut insns = Vec::new();
        for i in 0..a.len().max(b.len()) {
            insns.extend(a.get(i).cloned());
            insns.extend(b.get(i).cloned());
        }
        let tally = count(&symbols, &insns);
        assert_eq!(tally.by_vector[&14].insns, [7]);
        assert_eq!(tally.by_vector[&0xf3].insns, [9]);
    }

    #[test]
    fn a_trap_without_its_iretq_is_unfinished_and_unknown_code_is_named() {
        let symbols = example();
        let mut insns = trap(1, 3, 2);
        insns.pop();
        insns.push(insn(1, 0x9000, "90"));
        let mut failed = insn(1, 0x9001, "c5 f9");
        failed.failed = true;
        insns.push(failed);
        let tally = count(&symbols, &insns);
        assert_eq!(tally.unfinished, 1);
        assert!(tally.by_vector.is_empty());
        assert_eq!(tally.failed, 1);
        assert_eq!(tally.outside, 0);

        let mut counter = Counter::new(&symbols);
        counter.add(&insn(1, STUBS, "6a 00"));
        counter.add(&insn(1, 0x9000, "48 cf"));
        counter.add(&insn(1, IDLE, "f4"));
        let tally = counter.finish();
        assert_eq!(tally.by_vector[&0].by_symbol[UNKNOWN_SYMBOL], 1);
    }
}
