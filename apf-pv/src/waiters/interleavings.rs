//! Exhaustive check of the orderings the kernel's handlers can run in.
//!
//! Each guest CPU has its own table, and both handlers that use it run to completion on
//! that CPU with interrupts off: the #PF handler (not-present → [`WaiterTable::wait`]) and the
//! page-ready interrupt handler ([`WaiterTable::wake`], or [`WaiterTable::wake_all`] for a
//! broadcast). So the state space is not thread interleavings (no loom) but the orders in
//! which whole handler runs happen; every permutation of a small set of events is tried.
//!
//! For each permutation the outcome of every event is compared with an oracle stated in
//! terms of positions only, i.e. independently of how the table stores anything:
//! * a fault parks unless its ready came earlier with no broadcast in between;
//! * a parked task is woken by the first of its ready or a broadcast that follows its fault,
//!   so a task whose ready follows its fault is never lost;
//! * a ready wakes its task if it follows the fault with no broadcast in between, and
//!   otherwise is remembered; so no ready is lost either: it reaches its task directly, is
//!   consumed by the later fault, or a broadcast released the task in the meantime.
//!
//! One order leaves a task parked at the end: ready, broadcast, then the fault. The
//! broadcast forgot the early ready (as Linux frees its dummies on broadcast), so the task
//! waits for the next broadcast. On one vCPU whose #PF handler calls `wait` before
//! interrupts are on again, a ready cannot even precede its fault, but the table does not
//! rely on that. A final broadcast is appended to every run and must return every
//! task still parked, each task exactly once over the whole run.
//!
//! Several CPUs: the host's tokens are per vCPU (the same value may be outstanding on two)
//! and it sends each page-ready to the vCPU that took the not-present, so each CPU's events
//! reach only its own table. [`one_table_per_cpu_is_right_in_every_interleaving`] runs two
//! CPUs' events in every interleaving, each CPU's table seeing what that CPU sees, and
//! shows the same oracle holds per CPU, while one table shared by both would hand a task the
//! other CPU's page-ready.

use super::{Token, Wait, WaiterTable, Wake};
use std::collections::HashMap;

type Task = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Event {
    /// The #PF handler: a not-present for `token` taken by `task`.
    Fault { token: Token, task: Task },
    /// The interrupt handler: a page-ready for `token`.
    Ready(Token),
    /// The interrupt handler: a page-ready with the broadcast token.
    Broadcast,
}

use Event::{Broadcast, Fault, Ready};

const A: Token = 0x1001;
const B: Token = 0x2001;
const C: Token = 0x3001;

/// What actually happened in one run.
#[derive(Debug)]
struct Run {
    /// Per fault position, the outcome of its wait.
    waits: HashMap<usize, Wait>,
    /// Per ready position, the outcome of its wake.
    wakes: HashMap<usize, Wake<Task>>,
    /// Per task, the position of the event that returned it (the final broadcast is at
    /// `events.len()`).
    woken_at: HashMap<Task, usize>,
}

fn run(events: &[Event]) -> Run {
    let mut table = WaiterTable::<Task>::new();
    let mut result = Run {
        waits: HashMap::new(),
        wakes: HashMap::new(),
        woken_at: HashMap::new(),
    };
    let mut note_woken = |task: Task, at: usize| {
        let first = result.woken_at.insert(task, at);
        assert_eq!(first, None, "task {task} woken twice in {events:?}");
    };
    for (at, &event) in events.iter().enumerate() {
        match event {
            Fault { token, task } => {
                result.waits.insert(at, table.wait(token, task));
            }
            Ready(token) => {
                let outcome = table.wake(token);
                if let Wake::Woke(task) = outcome {
                    note_woken(task, at);
                }
                result.wakes.insert(at, outcome);
            }
            Broadcast => {
                table.wake_all(|task| note_woken(task, at));
            }
        }
    }
    table.wake_all(|task| note_woken(task, events.len()));
    assert_eq!(table.parked(), 0);

    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count() as u64;
    let already = result
        .waits
        .values()
        .filter(|&&w| w == Wait::AlreadyReady)
        .count() as u64;
    let c = table.counters();
    assert_eq!(c.not_present, count(|e| matches!(e, Fault { .. })));
    assert_eq!(c.ready, count(|e| matches!(e, Ready(_))));
    assert_eq!(c.broadcasts, count(|e| *e == Broadcast) + 1);
    assert_eq!(c.wake_before_wait, already);
    assert_eq!((c.full, c.unknown_tokens), (0, 0));
    result
}

/// Checks one run against the oracle of the module doc.
fn check(events: &[Event]) {
    let actual = run(events);
    let broadcast_in = |from: usize, to: usize| (from + 1..to).any(|i| events[i] == Broadcast);
    for (f, &event) in events.iter().enumerate() {
        let Fault { token, task } = event else {
            continue;
        };
        let r = events.iter().position(|&e| e == Ready(token));
        let ready_first = r.is_some_and(|r| r < f && !broadcast_in(r, f));
        if ready_first {
            assert_eq!(actual.waits[&f], Wait::AlreadyReady, "{events:?}");
            assert_eq!(actual.woken_at.get(&task), None, "{events:?}");
            continue;
        }
        assert_eq!(actual.waits[&f], Wait::Park, "{events:?}");
        let releaser = (f + 1..events.len())
            .find(|&e| Some(e) == r || events[e] == Broadcast)
            .unwrap_or(events.len());
        assert_eq!(
            actual.woken_at[&task], releaser,
            "task {task} in {events:?}"
        );
        if r.is_some_and(|r| r > f) {
            assert!(releaser < events.len(), "task {task} lost in {events:?}");
        }
        if let Some(r) = r {
            let expected = if r > f && !broadcast_in(f, r) {
                Wake::Woke(task)
            } else {
                Wake::Early
            };
            assert_eq!(actual.wakes[&r], expected, "{events:?}");
        }
    }
}

/// Calls `f` with every permutation of `items` (Heap's algorithm).
fn for_each_permutation<T>(items: &mut [T], f: &mut impl FnMut(&[T])) {
    fn permute<T>(k: usize, items: &mut [T], f: &mut impl FnMut(&[T])) {
        if k <= 1 {
            f(items);
            return;
        }
        for i in 0..k - 1 {
            permute(k - 1, items, f);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            items.swap(j, k - 1);
        }
        permute(k - 1, items, f);
    }
    permute(items.len(), items, f);
}

/// Checks every ordering of `events`; returns how many were checked.
fn check_all(mut events: Vec<Event>) -> usize {
    let mut checked = 0;
    for_each_permutation(&mut events, &mut |order| {
        check(order);
        checked += 1;
    });
    checked
}

const fn fault(token: Token, task: Task) -> Event {
    Fault { token, task }
}

#[test]
fn fault_and_ready_in_either_order() {
    assert_eq!(check_all(vec![fault(A, 1), Ready(A)]), 2);
}

#[test]
fn fault_ready_and_a_broadcast() {
    assert_eq!(check_all(vec![fault(A, 1), Ready(A), Broadcast]), 6);
}

#[test]
fn two_tokens_and_a_broadcast() {
    let events = vec![fault(A, 1), Ready(A), fault(B, 2), Ready(B), Broadcast];
    assert_eq!(check_all(events), 120);
}

#[test]
fn three_tokens_interleaved() {
    let events = vec![
        fault(A, 1),
        Ready(A),
        fault(B, 2),
        Ready(B),
        fault(C, 3),
        Ready(C),
    ];
    assert_eq!(check_all(events), 720);
}

#[test]
fn two_tokens_and_two_broadcasts() {
    let events = vec![
        fault(A, 1),
        Ready(A),
        fault(B, 2),
        Ready(B),
        Broadcast,
        Broadcast,
    ];
    assert_eq!(check_all(events), 720);
}

/// The host dropped B's ready (e.g. its queue was reset); only a broadcast releases B.
#[test]
fn lost_ready_is_rescued_by_a_broadcast() {
    let events = vec![
        fault(A, 1),
        Ready(A),
        fault(B, 2),
        fault(C, 3),
        Ready(C),
        Broadcast,
    ];
    assert_eq!(check_all(events), 720);
}

#[test]
fn heaps_algorithm_yields_distinct_orders() {
    let mut events: Vec<Event> = (0..4).map(Ready).collect();
    let mut seen = std::collections::HashSet::new();
    for_each_permutation(&mut events, &mut |order| {
        assert!(seen.insert(order.to_vec()));
    });
    assert_eq!(seen.len(), 24);
}

/// Two CPUs with colliding tokens (A outstanding on both), one broadcast: in every order of
/// the eight events (each CPU's own in any order, as the host's timing allows, interleaved
/// any way with the other's), each CPU's table gives exactly the outcomes of that CPU's
/// events alone, and those pass the oracle; a single table shared by both CPUs, in the same interleavings,
/// wakes some task with the other CPU's page-ready.
#[test]
fn one_table_per_cpu_is_right_in_every_interleaving() {
    let cpus: [Vec<Event>; 2] = [
        vec![fault(A, 1), Ready(A), fault(B, 3), Broadcast],
        vec![fault(A, 2), Ready(A), fault(C, 4), Ready(C)],
    ];
    let mut events: Vec<(usize, Event)> = cpus
        .iter()
        .enumerate()
        .flat_map(|(cpu, own)| own.iter().map(move |&e| (cpu, e)))
        .collect();
    let (mut orders, mut shared_wrong) = (0, 0);
    for_each_permutation(&mut events, &mut |order| {
        orders += 1;
        let mut tables = [WaiterTable::<Task>::new(), WaiterTable::new()];
        let mut seen: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        for &(cpu, event) in order {
            seen[cpu].extend(outcomes(&mut tables[cpu], &[event]));
        }
        for (cpu, seen) in seen.iter().enumerate() {
            let own: Vec<Event> = order.iter().filter(|e| e.0 == cpu).map(|e| e.1).collect();
            check(&own);
            let alone = outcomes(&mut WaiterTable::new(), &own);
            assert_eq!(*seen, alone, "CPU {cpu} in {order:?}");
        }
        let mut shared = WaiterTable::<Task>::new();
        let mut woke_other = false;
        for &(cpu, event) in order {
            if let Ready(token) = event
                && let Wake::Woke(task) = shared.wake(token)
            {
                woke_other |= !cpus[cpu].contains(&fault(token, task));
            } else if let Fault { token, task } = event {
                shared.wait(token, task);
            } else {
                shared.wake_all(|_| ());
            }
        }
        shared_wrong += usize::from(woke_other);
    });
    assert_eq!(orders, 40_320);
    assert!(
        shared_wrong > 0,
        "a shared table never mixed the CPUs' tokens up"
    );
}

/// What `table` answers to each of `events`, as text (waits, wakes and who a broadcast
/// released, in order).
fn outcomes(table: &mut WaiterTable<Task>, events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|&event| match event {
            Fault { token, task } => format!("{:?}", table.wait(token, task)),
            Ready(token) => format!("{:?}", table.wake(token)),
            Broadcast => {
                let mut released = Vec::new();
                table.wake_all(|task| released.push(task));
                format!("broadcast {released:?}")
            }
        })
        .collect()
}
