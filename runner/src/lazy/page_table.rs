//! Which lazy pages are missing, being fetched, or served. Duplicate userfaultfd messages are
//! normal (KVM may fault on one page from several paths before it arrives); the table turns
//! them into one fetch per page.
//!
//! For each page in flight the table keeps when it is due (the fault's time plus its sampled
//! latency), so a repeated fault knows how long its page will still take.
//!
//! A served page stays served: nothing in the VMM discards guest pages (no `MADV_DONTNEED`),
//! so a later message for one is stale, and its faulting thread was already woken by the
//! `UFFDIO_COPY` that installed the page.

use std::time::Instant;

/// What to do about a fault message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The page was missing: fetch it (it is now in flight).
    Fetch,
    /// The page is already in flight, due then.
    InFlight { due: Instant },
    /// The page is already served.
    Served,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Missing,
    InFlight { due: Instant },
    Served,
}

/// The state of each page of the lazy window, by index.
#[derive(Debug)]
pub struct PageTable {
    pages: Vec<State>,
    in_flight: usize,
    max_in_flight: usize,
}

impl PageTable {
    pub fn new(pages: usize) -> Self {
        PageTable {
            pages: vec![State::Missing; pages],
            in_flight: 0,
            max_in_flight: 0,
        }
    }

    /// Records a fault message for page `index`, which if missing is fetched and due at
    /// `due()`.
    pub fn fault(&mut self, index: usize, due: impl FnOnce() -> Instant) -> Fault {
        let page = &mut self.pages[index];
        match *page {
            State::Missing => {
                *page = State::InFlight { due: due() };
                self.in_flight += 1;
                self.max_in_flight = self.max_in_flight.max(self.in_flight);
                Fault::Fetch
            }
            State::InFlight { due } => Fault::InFlight { due },
            State::Served => Fault::Served,
        }
    }

    /// Records that page `index`, which was in flight, is now in guest memory.
    pub fn served(&mut self, index: usize) {
        let page = &mut self.pages[index];
        assert!(
            matches!(page, State::InFlight { .. }),
            "page {index} was not being fetched"
        );
        *page = State::Served;
        self.in_flight -= 1;
    }

    /// Most pages in flight (queued or being fetched) at any one time.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn first_fault_fetches_later_ones_see_it_due_or_served() {
        let mut table = PageTable::new(4);
        let due = Instant::now();
        assert_eq!(table.fault(2, || due), Fault::Fetch);
        let later = due + Duration::from_millis(1);
        assert_eq!(
            table.fault(2, || later),
            Fault::InFlight { due },
            "the first due"
        );
        table.served(2);
        assert_eq!(
            table.fault(2, || due),
            Fault::Served,
            "served pages stay served"
        );
        assert_eq!(
            table.fault(3, || due),
            Fault::Fetch,
            "pages are independent"
        );
    }

    #[test]
    fn max_in_flight_is_the_high_water_mark() {
        let mut table = PageTable::new(8);
        let now = Instant::now();
        for index in 0..3 {
            table.fault(index, || now);
        }
        table.fault(1, || now);
        assert_eq!(table.max_in_flight(), 3, "duplicates do not count");
        table.served(0);
        table.served(1);
        table.fault(5, || now);
        assert_eq!(table.max_in_flight(), 3);
        for index in 6..8 {
            table.fault(index, || now);
        }
        assert_eq!(table.max_in_flight(), 4);
    }

    #[test]
    #[should_panic(expected = "was not being fetched")]
    fn serving_a_page_nobody_asked_for_is_a_bug() {
        PageTable::new(2).served(1);
    }
}
