use super::*;
use alloc::vec;
use proptest::prelude::*;

fn woken(waits: &mut KeyedWaits, key: u64) -> (Wake, Vec<(usize, TaskId)>) {
    let mut who = Vec::new();
    let outcome = waits.wake(key, |cpu, task| who.push((cpu, task)));
    (outcome, who)
}

#[test]
fn a_wake_reaches_the_parked_task_on_its_own_cpu() {
    let mut w = KeyedWaits::new();
    assert_eq!(w.park(7, 1, 3), Park::Parked);
    assert_eq!(woken(&mut w, 7), (Wake::Woken(1), vec![(1, 3)]));
    assert_eq!(w.parked(), 0);
}

#[test]
fn a_wake_releases_every_task_on_the_key_and_no_other() {
    let mut w = KeyedWaits::new();
    w.park(7, 0, 2);
    w.park(8, 0, 4);
    w.park(7, 1, 5);
    assert_eq!(woken(&mut w, 7), (Wake::Woken(2), vec![(0, 2), (1, 5)]));
    assert_eq!(w.parked(), 1);
    assert_eq!(woken(&mut w, 8), (Wake::Woken(1), vec![(0, 4)]));
}

#[test]
fn a_wake_before_the_park_is_remembered_once_for_any_cpu() {
    let mut w = KeyedWaits::new();
    assert_eq!(woken(&mut w, 9), (Wake::Early, vec![]));
    assert_eq!(woken(&mut w, 9), (Wake::Early, vec![]));
    // Either CPU's park uses it up; the next park waits.
    assert_eq!(w.park(9, 1, 0), Park::AlreadyWoken);
    assert_eq!(w.park(9, 0, 1), Park::Parked);
    assert_eq!(woken(&mut w, 9), (Wake::Woken(1), vec![(0, 1)]));
}

#[test]
#[should_panic(expected = "parks twice")]
fn a_task_parked_twice_is_a_kernel_bug() {
    let mut w = KeyedWaits::new();
    w.park(1, 0, 0);
    w.park(2, 0, 0);
}

#[test]
fn the_inbox_hands_over_each_posted_task_once() {
    let inbox = WakeInbox::new();
    for task in [127, 0, 64, 5, 5] {
        inbox.post(task);
    }
    let mut got = Vec::new();
    inbox.drain(|t| got.push(t));
    assert_eq!(got, vec![0, 5, 64, 127]);
    inbox.drain(|t| panic!("task {t} taken twice"));
}

#[test]
fn posts_from_other_threads_all_arrive() {
    let inbox = WakeInbox::new();
    std::thread::scope(|s| {
        for cpu in 0..4 {
            let inbox = &inbox;
            s.spawn(move || (cpu..MAX_TASKS).step_by(4).for_each(|t| inbox.post(t)));
        }
    });
    let mut got = Vec::new();
    inbox.drain(|t| got.push(t));
    assert_eq!(got, (0..MAX_TASKS).collect::<Vec<_>>());
}

#[derive(Clone, Debug)]
enum Op {
    Park { task: TaskId, key: u64, cpu: usize },
    Wake { key: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6usize, 0..3u64, 0..2usize).prop_map(|(task, key, cpu)| Op::Park { task, key, cpu }),
        (0..3u64).prop_map(|key| Op::Wake { key }),
    ]
}

proptest! {
    /// Against the obvious model (a list of waiters and a set of early keys): every wake
    /// releases exactly the tasks parked on its key, with their CPUs, and an early wake
    /// lets exactly one later park through.
    #[test]
    fn matches_a_model(ops in proptest::collection::vec(op(), 0..64)) {
        let mut w = KeyedWaits::new();
        let mut waiting: Vec<(TaskId, u64, usize)> = Vec::new();
        let mut early: Vec<u64> = Vec::new();
        for op in ops {
            match op {
                Op::Park { task, key, cpu } => {
                    if waiting.iter().any(|&(t, _, _)| t == task) {
                        continue;
                    }
                    let expected = if let Some(i) = early.iter().position(|&k| k == key) {
                        early.remove(i);
                        Park::AlreadyWoken
                    } else {
                        waiting.push((task, key, cpu));
                        Park::Parked
                    };
                    prop_assert_eq!(w.park(key, cpu, task), expected);
                }
                Op::Wake { key } => {
                    let mut expected: Vec<(usize, TaskId)> = waiting
                        .iter()
                        .filter(|&&(_, k, _)| k == key)
                        .map(|&(t, _, c)| (c, t))
                        .collect();
                    expected.sort_by_key(|&(_, t)| t);
                    waiting.retain(|&(_, k, _)| k != key);
                    let (outcome, got) = woken(&mut w, key);
                    if expected.is_empty() {
                        prop_assert_eq!(outcome, Wake::Early);
                        if !early.contains(&key) {
                            early.push(key);
                        }
                    } else {
                        prop_assert_eq!(outcome, Wake::Woken(expected.len()));
                    }
                    prop_assert_eq!(got, expected);
                }
            }
            prop_assert_eq!(w.parked(), waiting.len());
        }
    }
}
