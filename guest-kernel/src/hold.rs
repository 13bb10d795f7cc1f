//! The gate a migrating guest's workload waits at (`hold=console`): every workload task
//! arrives after writing its pages and waits; once all live tasks are there, the kernel says
//! `hold: ready` and the host migrates the VM; a byte on the console releases them all, so
//! their timed phase runs on the destination. Plain state here; the kernel parks the tasks
//! and polls the console.

/// Where the gate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No `hold=console`: tasks pass.
    Off,
    /// Tasks are arriving; `held` wait.
    Gathering,
    /// Every live task waits, since `since_ns`; the console is polled for the release.
    Ready { since_ns: u64 },
    /// Released after `held_ns`; later arrivals pass.
    Released { held_ns: u64 },
}

/// The gate's state: its phase and how many tasks wait at it.
#[derive(Clone, Copy, Debug)]
pub struct Hold {
    phase: Phase,
    held: usize,
}

impl Hold {
    pub const fn new(enabled: bool) -> Self {
        Self {
            phase: if enabled {
                Phase::Gathering
            } else {
                Phase::Off
            },
            held: 0,
        }
    }

    /// A task reaches the gate: `true` if it must wait (the caller parks it).
    pub fn arrive(&mut self) -> bool {
        let waits = self.phase == Phase::Gathering;
        self.held += usize::from(waits);
        waits
    }

    /// Whether the gate has just become ready: every one of the `live` tasks (those that
    /// have not exited) waits. True once; the kernel then says so.
    pub fn check_ready(&mut self, live: usize, now_ns: u64) -> bool {
        let ready = self.phase == Phase::Gathering && self.held > 0 && self.held == live;
        if ready {
            self.phase = Phase::Ready { since_ns: now_ns };
        }
        ready
    }

    /// Still gathering: the kernel re-checks readiness when a task arrives or exits (and
    /// only then counts the live tasks).
    pub fn gathering(&self) -> bool {
        self.phase == Phase::Gathering
    }

    /// Ready and waiting for the host's byte: the only phase that polls the console.
    pub fn polling(&self) -> bool {
        matches!(self.phase, Phase::Ready { .. })
    }

    /// Opens the gate (the caller wakes the waiting tasks).
    pub fn release(&mut self, now_ns: u64) {
        if let Phase::Ready { since_ns } = self.phase {
            self.phase = Phase::Released {
                held_ns: now_ns.saturating_sub(since_ns),
            };
            self.held = 0;
        }
    }

    /// How long the tasks waited from `hold: ready` to the release (0 if they never did).
    pub fn held_ns(&self) -> u64 {
        match self.phase {
            Phase::Released { held_ns } => held_ns,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_hold_everyone_passes_and_nothing_polls() {
        let mut hold = Hold::new(false);
        assert!(!hold.arrive());
        assert!(!hold.check_ready(1, 5));
        assert!(!hold.gathering() && !hold.polling());
        assert_eq!(hold.held_ns(), 0);
    }

    #[test]
    fn ready_once_every_live_task_waits_then_released_by_the_host() {
        let mut hold = Hold::new(true);
        assert!(hold.arrive());
        assert!(!hold.check_ready(2, 10), "one of two tasks still works");
        assert!(hold.arrive());
        assert!(hold.check_ready(2, 20));
        assert!(!hold.check_ready(2, 21), "ready is said once");
        assert!(hold.polling() && !hold.gathering());
        hold.release(1_020);
        assert!(!hold.polling());
        assert_eq!(hold.held_ns(), 1_000);
        assert!(!hold.arrive(), "the gate stays open");
    }

    #[test]
    fn a_task_that_exits_before_the_gate_does_not_keep_it_shut() {
        let mut hold = Hold::new(true);
        assert!(hold.arrive());
        assert!(!hold.check_ready(2, 1));
        // The other task died before it reached the gate: one live task, and it waits.
        assert!(hold.check_ready(1, 2));
    }

    #[test]
    fn no_task_at_the_gate_is_not_ready_and_a_release_before_ready_is_ignored() {
        let mut hold = Hold::new(true);
        assert!(!hold.check_ready(0, 1));
        hold.release(5);
        assert!(hold.gathering());
        assert_eq!(hold.held_ns(), 0);
    }
}
