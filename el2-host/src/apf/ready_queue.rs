//! Page-ready notifications waiting for the guest: tokens in completion order, sent one at a
//! time (the next only after the guest's `IRQ_ACK`, §2.6).

use super::tokens::TABLE;

/// Room for every fetch the table holds, plus two the faulty host adds without a fetch: a
/// broadcast (at enable, or `inject=wake-all`) and a repeated unknown token
/// (`inject=unknown-token` with `duplicate-ready`).
const CAPACITY: usize = TABLE + 2;

/// A FIFO of tokens.
pub struct ReadyQueue {
    tokens: [u32; CAPACITY],
    head: usize,
    len: usize,
}

impl ReadyQueue {
    pub const fn new() -> Self {
        Self {
            tokens: [0; CAPACITY],
            head: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `token`. Cannot overflow: fetches in flight plus queued tokens stay within
    /// the table (`AsyncPf::may_send_not_present`), and `CAPACITY` leaves room for the
    /// extras.
    pub fn push(&mut self, token: u32) {
        assert!(self.len < CAPACITY, "more page-ready tokens than fetches");
        self.tokens[(self.head + self.len) % CAPACITY] = token;
        self.len += 1;
    }

    /// Queues `token` to be sent next (`inject=duplicate-ready`).
    pub fn push_front(&mut self, token: u32) {
        assert!(self.len < CAPACITY, "more page-ready tokens than fetches");
        self.head = (self.head + CAPACITY - 1) % CAPACITY;
        self.tokens[self.head] = token;
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let token = self.tokens[self.head];
        self.head = (self.head + 1) % CAPACITY;
        self.len -= 1;
        Some(token)
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Default for ReadyQueue {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_in_first_out_across_the_wrap() {
        let mut queue = ReadyQueue::new();
        for round in 0..3u32 {
            for i in 0..CAPACITY as u32 {
                queue.push(round * 1000 + i);
            }
            assert_eq!(queue.len(), CAPACITY);
            for i in 0..CAPACITY as u32 {
                assert_eq!(queue.pop(), Some(round * 1000 + i));
            }
            assert!(queue.is_empty());
        }
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn push_front_goes_first_across_the_wrap() {
        let mut queue = ReadyQueue::new();
        queue.push(1);
        queue.push_front(0);
        assert_eq!(
            (queue.pop(), queue.pop(), queue.pop()),
            (Some(0), Some(1), None)
        );
    }

    #[test]
    #[should_panic(expected = "more page-ready tokens")]
    fn overflow_is_a_bug() {
        let mut queue = ReadyQueue::new();
        for i in 0..=CAPACITY as u32 {
            queue.push(i);
        }
    }
}
