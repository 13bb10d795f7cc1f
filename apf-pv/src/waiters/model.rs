//! Property test: random operation sequences against a plain `Vec`-based reference model.

use super::{Counters, MAX_OUTSTANDING, Token, Wait, WaiterTable, Wake};
use proptest::prelude::*;
use std::collections::{HashSet, VecDeque};

/// The rules of the module doc, written as directly as possible with growable containers.
#[derive(Default)]
struct Model {
    parked: Vec<(Token, u32)>,
    early: VecDeque<Token>,
    counters: Counters,
}

impl Model {
    fn wait(&mut self, token: Token, waiter: u32) -> Wait {
        self.counters.not_present += 1;
        if let Some(i) = self.early.iter().position(|&t| t == token) {
            self.early.remove(i);
            self.counters.wake_before_wait += 1;
            Wait::AlreadyReady
        } else if self.parked.len() == MAX_OUTSTANDING {
            self.counters.full += 1;
            Wait::Full
        } else {
            self.parked.push((token, waiter));
            let len = self.parked.len() as u64;
            self.counters.max_parked = self.counters.max_parked.max(len);
            Wait::Park
        }
    }

    fn wake(&mut self, token: Token) -> Wake<u32> {
        self.counters.ready += 1;
        if let Some(i) = self.parked.iter().position(|&(t, _)| t == token) {
            return Wake::Woke(self.parked.remove(i).1);
        }
        if !self.early.contains(&token) {
            self.early.push_back(token);
            if self.early.len() > MAX_OUTSTANDING {
                self.early.pop_front();
                self.counters.unknown_tokens += 1;
            }
        }
        Wake::Early
    }

    fn wake_all(&mut self) -> Vec<u32> {
        self.counters.broadcasts += 1;
        self.early.clear();
        self.parked.drain(..).map(|(_, w)| w).collect()
    }

    fn cancel(&mut self, waiter: u32) -> Option<Token> {
        let i = self.parked.iter().position(|&(_, w)| w == waiter)?;
        Some(self.parked.remove(i).0)
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A fault by a fresh waiter.
    Wait(Token),
    Wake(Token),
    WakeAll,
    /// Cancels the parked waiter this selects (modulo the number parked), or an unknown one.
    Cancel(usize),
}

/// Few tokens so waits and wakes meet often; as often many, so that un-woken waits fill
/// the table and unclaimed wakes fill the early set.
fn token() -> impl Strategy<Value = Token> {
    prop_oneof![1..8u32, 1..1000u32]
}

/// Waits and wakes dominate. Broadcasts empty the table, so their weight (0 to 2) is drawn
/// per sequence: without them [`MAX_OUTSTANDING`] and early-set eviction are reached.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    (0..3u32).prop_flat_map(|broadcast_weight| {
        let op = prop_oneof![
            40 => token().prop_map(Op::Wait),
            30 => token().prop_map(Op::Wake),
            broadcast_weight => Just(Op::WakeAll),
            6 => any::<usize>().prop_map(Op::Cancel),
        ];
        prop::collection::vec(op, 0..800)
    })
}

/// Records who came back, so a waiter returned twice is caught where it happens.
#[derive(Default)]
struct Returned(HashSet<u32>);

impl Returned {
    fn note(&mut self, waiter: u32) {
        assert!(self.0.insert(waiter), "waiter {waiter} returned twice");
    }
}

/// The layout lookups depend on: every waiter lies in an unbroken run of occupied slots
/// from its token's home, after every waiter with its token that parked earlier.
fn assert_probe_runs(table: &WaiterTable<u32>) {
    let occupied = |slot: usize| table.seqs[slot] != super::FREE;
    let count = (0..super::SLOTS).filter(|&slot| occupied(slot)).count();
    assert_eq!(count, table.parked_count, "every waiter is counted");
    for slot in (0..super::SLOTS).filter(|&slot| occupied(slot)) {
        let (token, seq) = (table.tokens[slot], table.seqs[slot]);
        let mut probe = super::home(token);
        while probe != slot {
            assert!(occupied(probe), "a probe run has no gap");
            assert!(
                table.tokens[probe] != token || table.seqs[probe] < seq,
                "same-token waiters are in parking order along the run"
            );
            probe = (probe + 1) & super::SLOT_MASK;
        }
    }
}

/// 512 cases per `cargo test`; `scripts/fuzz` runs many more through `APF_FUZZ_CASES`.
fn cases() -> u32 {
    std::env::var("APF_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn table_matches_model(ops in ops()) {
        let mut table = WaiterTable::<u32>::new();
        let mut model = Model::default();
        let mut next_waiter = 0;
        let mut ever_parked = HashSet::new();
        let mut returned = Returned::default();

        for op in ops {
            match op {
                Op::Wait(token) => {
                    let waiter = next_waiter;
                    next_waiter += 1;
                    let outcome = table.wait(token, waiter);
                    prop_assert_eq!(outcome, model.wait(token, waiter));
                    if outcome == Wait::Park {
                        ever_parked.insert(waiter);
                    }
                }
                Op::Wake(token) => {
                    let outcome = table.wake(token);
                    prop_assert_eq!(outcome, model.wake(token));
                    if let Wake::Woke(w) = outcome {
                        returned.note(w);
                    }
                }
                Op::WakeAll => {
                    let mut woken = Vec::new();
                    let count = table.wake_all(|w| woken.push(w));
                    prop_assert_eq!(count, woken.len());
                    prop_assert_eq!(&woken, &model.wake_all());
                    woken.into_iter().for_each(|w| returned.note(w));
                }
                Op::Cancel(pick) => {
                    let waiter = match model.parked.len() {
                        0 => next_waiter, // never used: nobody to cancel
                        n => model.parked[pick % n].1,
                    };
                    let token = table.cancel(waiter);
                    prop_assert_eq!(token, model.cancel(waiter));
                    if token.is_some() {
                        returned.note(waiter);
                    }
                }
            }
            prop_assert!(table.parked() <= MAX_OUTSTANDING);
            prop_assert_eq!(table.parked(), model.parked.len());
            prop_assert_eq!(table.unclaimed(), model.early.len());
            assert_probe_runs(&table);
            prop_assert_eq!(table.counters(), model.counters);
        }

        // A final broadcast returns everyone still parked: no waiter is ever stranded.
        table.wake_all(|w| returned.note(w));
        prop_assert_eq!(table.parked(), 0);
        prop_assert_eq!(returned.0, ever_parked);
    }
}
