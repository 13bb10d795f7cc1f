use super::*;

fn sched(n: usize) -> Scheduler<u32> {
    let mut s = Scheduler::default();
    for i in 0..n {
        s.spawn("t", i as u32);
    }
    s
}

/// `n` tasks (at least 3): task 0 parked on key 10, task 1 on key 11, task 2 running.
fn parked_0_and_1(n: usize) -> Scheduler<u32> {
    let mut s = sched(n);
    assert_eq!(s.schedule(), Some(0));
    assert_eq!(s.park_current(10), Park::Parked);
    assert_eq!(s.schedule(), Some(1));
    assert_eq!(s.park_current(11), Park::Parked);
    assert_eq!(s.schedule(), Some(2));
    s
}

/// As [`parked_0_and_1`], with tasks 0 and 1 blocked instead.
fn blocked_0_and_1(n: usize) -> Scheduler<u32> {
    let mut s = sched(n);
    for id in [0, 1] {
        assert_eq!(s.schedule(), Some(id));
        s.block_current(id);
    }
    assert_eq!(s.schedule(), Some(2));
    s
}

#[test]
fn round_robin_on_ticks() {
    let mut s = sched(3);
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(s.schedule().unwrap());
        s.tick();
    }
    assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    assert_eq!(s.stats().preemptions, 6);
    assert_eq!(s.stats().switches, 5);
}

#[test]
fn a_lone_task_keeps_running_and_is_not_counted_as_preempted() {
    let mut s = sched(1);
    assert_eq!(s.schedule(), Some(0));
    s.tick();
    assert_eq!(s.schedule(), Some(0));
    assert_eq!(s.stats().preemptions, 0);
    assert_eq!(s.stats().switches, 0);
}

#[test]
fn current_keeps_running_until_an_event() {
    let mut s = sched(2);
    assert_eq!(s.schedule(), Some(0));
    assert_eq!(s.schedule(), Some(0));
    assert_eq!(s.schedule_context(), Some(0), "task 0's context");
    s.yield_current();
    assert_eq!(s.schedule_context(), Some(1));
    assert_eq!(s.current(), Some(1));
}

#[test]
fn wake_finds_a_cpus_tasks_by_their_global_ids() {
    // CPU 1 of two: tasks 1 and 3.
    let mut s = Scheduler::default();
    s.spawn_as(1, "a", 1u32);
    s.spawn_as(3, "b", 3u32);
    assert_eq!(s.schedule(), Some(1));
    s.yield_current();
    assert_eq!(s.schedule(), Some(3));
    assert_eq!(s.park_current(7), Park::Parked);
    assert_eq!(s.wake(7), Wake::Woken(1));
    assert_eq!(s.task(3).state, State::Ready);
    assert_eq!(s.entries().map(|(id, _)| id).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(s.schedule(), Some(1));
    s.yield_current();
    assert_eq!(s.schedule(), Some(3), "task 3 was queued, not task 1 twice");
    s.yield_current();
    assert_eq!(s.schedule(), Some(1));
}

#[test]
fn park_then_wake() {
    let mut s = sched(2);
    assert_eq!(s.schedule(), Some(0));
    assert_eq!(s.park_current(7), Park::Parked);
    assert_eq!(s.task(0).state, State::Parked(7));
    assert_eq!(s.schedule(), Some(1));
    assert_eq!(s.wake(7), Wake::Woken(1));
    assert_eq!(s.task(0).state, State::Ready);
    s.tick();
    assert_eq!(s.schedule(), Some(0));
}

#[test]
fn wake_before_park_is_not_lost_and_is_consumed_once() {
    let mut s = sched(1);
    assert_eq!(s.schedule(), Some(0));
    assert_eq!(s.wake(9), Wake::Early);
    assert_eq!(s.wake(9), Wake::Early, "duplicate early wakes collapse");
    assert_eq!(s.park_current(9), Park::AlreadyWoken);
    assert_eq!(s.schedule(), Some(0));
    assert_eq!(
        s.park_current(9),
        Park::Parked,
        "the early wake was used up"
    );
    assert_eq!(s.schedule(), None, "idle: the only task is parked");
    assert_eq!(s.stats().early_wakes, 2);
}

#[test]
fn a_wake_reaches_every_task_on_the_key_and_only_them() {
    let mut s = sched(3);
    for key in [5, 5, 6] {
        s.schedule();
        assert_eq!(s.park_current(key), Park::Parked);
    }
    assert_eq!(s.schedule(), None);
    assert_eq!(s.wake(5), Wake::Woken(2));
    assert_eq!(s.task(2).state, State::Parked(6));
    assert_eq!(s.schedule(), Some(0));
}

#[test]
fn wake_first_runs_the_woken_task_next_and_requeues_the_runner() {
    let mut s = sched(3);
    assert_eq!(s.schedule(), Some(0));
    assert_eq!(s.park_current(4), Park::Parked);
    assert_eq!(s.schedule(), Some(1));
    assert_eq!(s.wake_first(4), Wake::Woken(1));
    assert_eq!(s.schedule(), Some(0), "the woken task runs before task 2");
    s.tick();
    assert_eq!(s.schedule(), Some(2));
    s.tick();
    assert_eq!(s.schedule(), Some(1), "the interrupted task kept its turn");
    // Waking nobody preempts nobody (and is remembered like `wake`).
    assert_eq!(s.wake_first(99), Wake::Early);
    assert_eq!(s.schedule(), Some(1));
}

#[test]
fn unblocking_first_is_wake_first_of_a_task_parked_on_its_own_key() {
    let (mut by_key, mut by_id) = (parked_0_and_1(3), blocked_0_and_1(3));
    assert_eq!(by_key.wake_first(11), Wake::Woken(1));
    assert!(by_id.unblock_first(1));
    // Not blocked (running, ready, or no such task): nothing happens, nothing is
    // remembered.
    assert!(!by_id.unblock_first(1) && !by_id.unblock_first(2) && !by_id.unblock_first(7));
    for s in [&mut by_key, &mut by_id] {
        assert_eq!(s.schedule(), Some(1), "the unblocked task runs first");
        assert_eq!(s.task(2).state, State::Ready, "the runner was requeued");
    }
    assert_eq!(by_key.task(0).state, State::Parked(10));
    assert_eq!(by_id.task(0).state, State::Blocked);
    assert_eq!(by_id.stats(), by_key.stats());
}

#[test]
fn a_blocked_task_is_no_keys_and_a_parked_one_unblocks_not() {
    let mut s = blocked_0_and_1(3);
    assert_eq!(s.wake(0), Wake::Early, "no key reaches a blocked task");
    assert_eq!(s.wake(1), Wake::Early);
    assert_eq!(s.park_current(5), Park::Parked);
    assert!(!s.unblock(2), "parked on a key, not blocked");
    assert_eq!(s.schedule(), None);
    assert!(s.unblock(0));
    assert_eq!(s.schedule(), Some(0));
}

#[test]
fn running_an_unblocked_task_at_once_is_unblocking_it_first_then_scheduling() {
    // The same events on two schedulers: by the run queue, and directly.
    let (mut queued, mut direct) = (blocked_0_and_1(4), blocked_0_and_1(4));
    assert!(queued.unblock_first(1));
    assert_eq!(direct.run_unblocked(1), Some(1), "task 1's context runs");
    assert_eq!(direct.current(), Some(1), "no schedule needed");
    // While idle (nobody running), too.
    for s in [&mut queued, &mut direct] {
        for id in [1, 3, 2] {
            assert_eq!(s.schedule(), Some(id));
            s.block_current(id);
        }
        assert_eq!(s.schedule(), None);
    }
    assert!(queued.unblock_first(3));
    assert_eq!(direct.run_unblocked(3), Some(3));
    assert!(
        !queued.unblock_first(3) && direct.run_unblocked(3).is_none(),
        "not blocked now"
    );
    let mut order = [Vec::new(), Vec::new()];
    for (s, order) in [&mut queued, &mut direct].into_iter().zip(&mut order) {
        while let Some(id) = s.schedule() {
            order.push(id);
            s.exit_current(0);
        }
    }
    assert_eq!(order[0], order[1]);
    assert_eq!(order[0], [3]);
    assert_eq!(queued.stats(), direct.stats());
    for id in 0..4 {
        assert_eq!(queued.task(id).state, direct.task(id).state, "task {id}");
        assert_eq!(queued.task(id).dispatches, direct.task(id).dispatches);
    }
}

#[test]
fn unblocking_is_a_wake_of_a_task_parked_on_its_own_key() {
    let (mut by_key, mut by_id) = (parked_0_and_1(3), blocked_0_and_1(3));
    assert_eq!(by_key.wake(11), Wake::Woken(1));
    assert!(by_id.unblock(1));
    for s in [&mut by_key, &mut by_id] {
        assert_eq!(s.current(), Some(2), "the runner keeps running");
        s.yield_current();
        assert_eq!(
            s.schedule(),
            Some(1),
            "the unblocked task queued at the back"
        );
    }
    assert_eq!(by_id.stats(), by_key.stats());
}

#[test]
fn exit_and_idle() {
    let mut s = sched(2);
    assert!(!s.all_exited());
    s.schedule();
    assert_eq!(s.exit_current(0), 0);
    s.schedule();
    s.exit_current(3);
    assert_eq!(s.schedule(), None);
    assert!(s.all_exited());
    assert_eq!(s.task(1).state, State::Exited(3));
    assert!(!Scheduler::<u8>::default().all_exited());
}

#[test]
fn blocking_and_switching_is_blocking_then_scheduling() {
    let (mut two_steps, mut one) = (sched(3), sched(3));
    for s in [&mut two_steps, &mut one] {
        assert_eq!(s.schedule(), Some(0));
    }
    // Task 0 blocks, 1 runs; 1 blocks, 2 runs; 2 blocks: idle.
    for (id, next) in [(0, Some(1)), (1, Some(2)), (2, None)] {
        two_steps.block_current(id);
        assert_eq!(two_steps.schedule(), next);
        assert_eq!(
            one.block_and_switch(id),
            next.map(|n| n as u32),
            "task {id} blocks"
        );
        assert_eq!(one.current(), next);
    }
    assert_eq!(one.stats(), two_steps.stats());
    for id in 0..3 {
        assert_eq!(one.task(id).state, State::Blocked);
        assert_eq!(one.task(id).dispatches, two_steps.task(id).dispatches);
    }
    // Unblocked while idle, the last task to run resumes without a switch, in both.
    assert_eq!(one.run_unblocked(2), Some(2));
    assert!(two_steps.unblock(2));
    assert_eq!(two_steps.schedule(), Some(2));
    assert_eq!(one.stats(), two_steps.stats());
}

#[test]
fn only_a_task_that_would_wait_is_given_away() {
    // Idle with one ready task: it runs here.
    let mut s = sched(1);
    assert!(s.give_away().is_none());
    // Running one, one waiting: the waiting one goes.
    let mut s = sched(2);
    assert_eq!(s.schedule(), Some(0));
    let m = s.give_away().expect("task 1 waits");
    assert_eq!((m.id, m.ctx), (1, 1));
    assert!(s.give_away().is_none(), "the running task stays");
    assert_eq!(s.tasks().count(), 1);
    // Blocked tasks (async PF waiters) never move.
    let mut s = blocked_0_and_1(3);
    assert!(s.give_away().is_none());
}

#[test]
fn the_back_of_the_queue_moves_with_its_dispatches_and_runs_there() {
    let mut from = sched(3);
    for _ in 0..4 {
        from.schedule();
        from.tick();
    }
    from.schedule();
    let m = from.give_away().expect("two tasks wait");
    let moved = from.stats().switches;
    let mut to: Scheduler<u32> = Scheduler::default();
    to.adopt(m);
    assert_eq!(to.task(m.id).dispatches, m.dispatches);
    assert_eq!(to.schedule(), Some(m.id));
    assert_eq!(to.schedule_context(), Some(m.id as u32));
    // Counted where it is now, not twice.
    assert_eq!(moved + m.dispatches, 4);
    // The giver is done once its own tasks are: the migrant no longer counts there.
    for _ in 0..2 {
        from.schedule();
        from.exit_current(0);
    }
    assert!(from.all_exited());
    assert!(!to.all_exited());
}
