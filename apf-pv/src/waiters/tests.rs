//! Unit tests for each rule of the waiter table.

use super::{Counters, MAX_OUTSTANDING, Token, Wait, WaiterTable, Wake};

type Table = WaiterTable<u32>;

/// Wakes everything and returns the waiters in the order they were handed out.
fn drain(table: &mut Table) -> Vec<u32> {
    let mut woken = Vec::new();
    table.wake_all(|w| woken.push(w));
    woken
}

#[test]
fn new_table_is_empty() {
    let table = Table::new();
    assert_eq!(table.parked(), 0);
    assert_eq!(table.counters(), Counters::default());
}

#[test]
fn wait_then_wake_returns_the_waiter() {
    let mut table = Table::new();
    assert_eq!(table.wait(0x1001, 7), Wait::Park);
    assert_eq!(table.parked(), 1);
    assert_eq!(table.wake(0x1001), Wake::Woke(7));
    assert_eq!(table.parked(), 0);
    let c = table.counters();
    assert_eq!((c.not_present, c.ready, c.max_parked), (1, 1, 1));
}

#[test]
fn wake_matches_the_token_not_the_order() {
    let mut table = Table::new();
    table.wait(1, 10);
    table.wait(2, 20);
    table.wait(3, 30);
    assert_eq!(table.wake(2), Wake::Woke(20));
    assert_eq!(table.wake(3), Wake::Woke(30));
    assert_eq!(table.wake(1), Wake::Woke(10));
}

#[test]
fn wake_before_wait_is_consumed_exactly_once() {
    let mut table = Table::new();
    assert_eq!(table.wake(5), Wake::Early);
    assert_eq!(table.wait(5, 1), Wait::AlreadyReady);
    assert_eq!(table.parked(), 0);
    // The early token is gone: the next wait for the same token parks.
    assert_eq!(table.wait(5, 2), Wait::Park);
    let c = table.counters();
    assert_eq!((c.wake_before_wait, c.not_present, c.ready), (1, 2, 1));
}

#[test]
fn repeated_early_wake_is_remembered_once() {
    let mut table = Table::new();
    assert_eq!(table.wake(5), Wake::Early);
    assert_eq!(table.wake(5), Wake::Early);
    assert_eq!(table.wait(5, 1), Wait::AlreadyReady);
    assert_eq!(table.wait(5, 2), Wait::Park);
    assert_eq!(table.counters().ready, 2);
}

#[test]
fn duplicate_token_waiters_are_woken_first_parked_first() {
    let mut table = Table::new();
    assert_eq!(table.wait(9, 1), Wait::Park);
    assert_eq!(table.wait(9, 2), Wait::Park);
    assert_eq!(table.wake(9), Wake::Woke(1));
    assert_eq!(table.wake(9), Wake::Woke(2));
    assert_eq!(table.wake(9), Wake::Early);
}

#[test]
fn broadcast_wakes_all_in_parking_order() {
    let mut table = Table::new();
    for (token, waiter) in [(1, 10), (2, 20), (3, 30)] {
        table.wait(token, waiter);
    }
    let mut woken = Vec::new();
    assert_eq!(table.wake_all(|w| woken.push(w)), 3);
    assert_eq!(woken, [10, 20, 30]);
    assert_eq!(table.parked(), 0);
    assert_eq!(table.counters().broadcasts, 1);
    // Nothing is left to wake: the old tokens now count as early.
    assert_eq!(table.wake(2), Wake::Early);
}

#[test]
fn broadcast_forgets_early_tokens() {
    let mut table = Table::new();
    table.wake(4);
    assert!(drain(&mut table).is_empty());
    assert_eq!(table.wait(4, 1), Wait::Park);
    assert_eq!(table.counters().wake_before_wait, 0);
}

#[test]
fn broadcast_on_empty_table_counts() {
    let mut table = Table::new();
    assert_eq!(table.wake_all(|_| unreachable!("nobody is parked")), 0);
    assert_eq!(table.counters().broadcasts, 1);
}

#[test]
fn release_all_is_a_broadcast_that_counts_nothing() {
    let mut table = Table::new();
    table.wake(4);
    for (token, waiter) in [(1, 10), (2, 20)] {
        table.wait(token, waiter);
    }
    let before = table.counters();
    let mut released = Vec::new();
    assert_eq!(table.release_all(|w| released.push(w)), 2);
    assert_eq!(released, [10, 20]);
    assert_eq!((table.parked(), table.unclaimed()), (0, 0));
    assert_eq!(table.counters(), before);
}

#[test]
fn full_at_max_outstanding_never_parks_the_next() {
    let mut table = Table::new();
    for i in 0..MAX_OUTSTANDING as u32 {
        assert_eq!(table.wait(i + 1, i), Wait::Park);
    }
    assert_eq!(table.wait(1000, 999), Wait::Full);
    assert_eq!(table.wait(1001, 998), Wait::Full);
    assert_eq!(table.parked(), MAX_OUTSTANDING);
    assert_eq!(table.cancel(999), None, "a refused waiter is not parked");
    let c = table.counters();
    assert_eq!(c.full, 2);
    assert_eq!(c.max_parked, MAX_OUTSTANDING as u64);
    assert_eq!(c.not_present, MAX_OUTSTANDING as u64 + 2);
    // Room again after one wake.
    assert_eq!(table.wake(1), Wake::Woke(0));
    assert_eq!(table.wait(1000, 999), Wait::Park);
}

#[test]
fn early_token_beats_full() {
    let mut table = Table::new();
    for i in 0..MAX_OUTSTANDING as u32 {
        table.wait(i + 1, i);
    }
    assert_eq!(table.wake(500), Wake::Early);
    assert_eq!(table.wait(500, 999), Wait::AlreadyReady);
    assert_eq!(table.counters().full, 0);
}

#[test]
fn full_early_set_evicts_the_oldest_token() {
    let mut table = Table::new();
    let first: Token = 1000;
    for t in first..first + MAX_OUTSTANDING as Token {
        assert_eq!(table.wake(t), Wake::Early);
    }
    assert_eq!(table.counters().unknown_tokens, 0);
    assert_eq!(table.wake(1), Wake::Early);
    assert_eq!(table.counters().unknown_tokens, 1);
    // The oldest is gone, the second oldest and the newest are still there.
    assert_eq!(table.wait(first, 1), Wait::Park);
    assert_eq!(table.wait(first + 1, 2), Wait::AlreadyReady);
    assert_eq!(table.wait(1, 3), Wait::AlreadyReady);
}

#[test]
fn consuming_an_early_token_makes_room() {
    let mut table = Table::new();
    for t in 1..=MAX_OUTSTANDING as Token {
        table.wake(t);
    }
    assert_eq!(table.wait(10, 1), Wait::AlreadyReady);
    table.wake(1000);
    assert_eq!(table.counters().unknown_tokens, 0);
}

#[test]
fn cancel_removes_the_waiter_and_returns_its_token() {
    let mut table = Table::new();
    table.wait(1, 10);
    table.wait(2, 20);
    table.wait(3, 30);
    assert_eq!(table.cancel(20), Some(2));
    assert_eq!(table.cancel(20), None);
    assert_eq!(table.parked(), 2);
    assert_eq!(table.wake(2), Wake::Early, "a cancelled wait is not woken");
    assert_eq!(drain(&mut table), [10, 30], "order of the rest is kept");
}

#[test]
fn cancel_of_unknown_waiter_changes_nothing() {
    let mut table = Table::new();
    table.wait(1, 10);
    let before = table.counters();
    assert_eq!(table.cancel(99), None);
    assert_eq!(table.parked(), 1);
    assert_eq!(table.counters(), before);
}

#[test]
fn counters_add_up() {
    let mut table = Table::new();
    table.wait(1, 1); // park
    table.wait(2, 2); // park
    table.wake(3); // early
    table.wait(3, 3); // wake before wait
    table.wake(1); // woke 1
    table.cancel(2);
    table.wake_all(|_| {});
    assert_eq!(
        table.counters(),
        Counters {
            not_present: 3,
            ready: 2,
            wake_before_wait: 1,
            broadcasts: 1,
            unknown_tokens: 0,
            full: 0,
            max_parked: 2,
        }
    );
}

#[test]
fn default_equals_new() {
    let table = Table::default();
    assert_eq!(table.parked(), 0);
    assert_eq!(table.counters(), Counters::default());
}

#[test]
fn usable_in_a_static() {
    static TABLE: WaiterTable<u32> = WaiterTable::new();
    assert_eq!(TABLE.parked(), 0);
}

#[test]
#[should_panic(expected = "wake_all")]
#[cfg(debug_assertions)]
fn wake_with_broadcast_token_is_a_caller_bug() {
    Table::new().wake(super::BROADCAST);
}

#[test]
fn a_full_table_keeps_parking_order_through_wakes_and_refills() {
    let mut table = Table::new();
    let slots = MAX_OUTSTANDING as u32;
    for waiter in 0..slots {
        assert_eq!(table.wait(waiter, waiter), Wait::Park);
    }
    for waiter in [0, 5, 6, 40] {
        assert_eq!(table.wake(waiter), Wake::Woke(waiter));
    }
    assert_eq!(table.wait(1000, 1000), Wait::Park);
    // Same token for two waiters: the one that parked first wakes first.
    assert_eq!(table.wait(7, 2000), Wait::Park);
    assert_eq!(table.wake(7), Wake::Woke(7));
    assert_eq!(table.wake(7), Wake::Woke(2000));
    assert_eq!(
        table.parked(),
        MAX_OUTSTANDING - 5 + 1,
        "0, 5, 6, 7, 40 woken; 1000 parked"
    );
    let expected: Vec<u32> = (0..slots)
        .filter(|w| ![0, 5, 6, 7, 40].contains(w))
        .chain([1000])
        .collect();
    assert_eq!(drain(&mut table), expected);
}

#[test]
fn colliding_tokens_are_found_after_removals_in_their_run() {
    // Tokens with one home: KVM-style counters shifted by 12 collide only by chance, so
    // pick ones that do.
    let home = super::home(0x1000);
    let same: Vec<Token> = (1..1_000_000u32)
        .map(|i| i << 12)
        .filter(|&t| super::home(t) == home)
        .take(6)
        .collect();
    assert_eq!(same.len(), 6);
    let mut table = Table::new();
    for (waiter, &token) in same.iter().enumerate() {
        assert_eq!(table.wait(token, waiter as u32), Wait::Park);
    }
    // Out of order, from the middle of the run: each removal shifts the rest back.
    for &i in &[2, 0, 5, 1, 4, 3] {
        assert_eq!(table.wake(same[i]), Wake::Woke(i as u32));
    }
    assert_eq!(table.parked(), 0);
}

#[test]
fn waking_the_newest_waiters_frees_their_slots_at_once() {
    let mut table = Table::new();
    let slots = MAX_OUTSTANDING as u32;
    for round in 0..3 * slots {
        // Far more waits than slots: each is woken before the next, so no hole ever stays.
        assert_eq!(table.wait(round, round), Wait::Park);
        assert_eq!(table.wake(round), Wake::Woke(round));
    }
    assert_eq!(table.parked(), 0);
    assert_eq!(table.counters().full, 0);
}

#[test]
fn readies_nobody_claimed_are_counted_until_claimed_or_broadcast() {
    let mut table = Table::new();
    assert_eq!(table.wake(1), Wake::Early);
    assert_eq!(table.wake(2), Wake::Early);
    assert_eq!(table.wake(2), Wake::Early, "a repeat is held once");
    assert_eq!(table.unclaimed(), 2);
    assert_eq!(table.wait(1, 10), Wait::AlreadyReady);
    assert_eq!(table.unclaimed(), 1);
    drain(&mut table);
    assert_eq!(table.unclaimed(), 0);
}
