//! The memory requests hold beyond each connection's first buffers, under one budget for the
//! whole server, rather than every client's memory added up until the kernel kills the
//! server:
//! - a read buffer beyond its first [`INITIAL_BUFFER_BYTES`](super::limits::INITIAL_BUFFER_BYTES)
//!   grows only as bytes arrive (never to what a header announces), and only while the budget
//!   has room;
//! - the work of a large request (a claims file's decoded text, its receipts and its rows) is
//!   taken before it starts, from what the request will need ([`Held::grow`]);
//! - an answer not yet taken by its client (the connection's write buffer beyond its first
//!   size) is held until the client has read it ([`Held::hold`]).
//!
//! Past the budget a request is refused (`503` with `Retry-After`, `-ERR`) and counted.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Default of `--memory-budget-bytes`: 1 GiB, room for about 120 batches of the largest size
/// at once.
pub const DEFAULT_MEMORY_BUDGET_BYTES: usize = 1 << 30;

/// Bytes of read buffers held beyond their first size, server-wide.
#[derive(Debug)]
pub struct MemoryBudget {
    limit_bytes: usize,
    held_bytes: AtomicUsize,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget::new(DEFAULT_MEMORY_BUDGET_BYTES)
    }
}

impl MemoryBudget {
    pub fn new(limit_bytes: usize) -> MemoryBudget {
        MemoryBudget {
            limit_bytes,
            held_bytes: AtomicUsize::new(0),
        }
    }

    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::Relaxed)
    }

    /// Whether `bytes` more would fit now: a request's work is refused before it starts
    /// when its answer would not fit.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.held_bytes().saturating_add(bytes) <= self.limit_bytes
    }

    /// Takes `bytes` if the budget has them. Only a buffer growing past its first size comes
    /// here, never the query path.
    fn take(&self, bytes: usize) -> bool {
        self.held_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(bytes).filter(|&t| t <= self.limit_bytes)
            })
            .is_ok()
    }

    /// Takes `bytes` whether or not they fit: memory already allocated (an answer made) is
    /// counted as it is, so what follows is refused until it is given back.
    fn take_anyway(&self, bytes: usize) {
        self.held_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn give_back(&self, bytes: usize) {
        self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// What one connection holds of the budget; given back when it shrinks or drops.
pub struct Held<'a> {
    budget: &'a MemoryBudget,
    bytes: usize,
}

impl<'a> Held<'a> {
    pub fn new(budget: &'a MemoryBudget) -> Held<'a> {
        Held { budget, bytes: 0 }
    }

    /// Takes `bytes` more, or says the budget is spent.
    #[must_use]
    pub fn grow(&mut self, bytes: usize) -> bool {
        let ok = self.budget.take(bytes);
        if ok {
            self.bytes += bytes;
        }
        ok
    }

    /// Counts `bytes` more, already allocated, whether or not the budget has room (an
    /// answer made and not yet sent); later requests are refused while it is over.
    pub fn hold(&mut self, bytes: usize) {
        // Nothing to count for an answer within the first buffer: the query path writes no
        // shared atomic.
        if bytes > 0 {
            self.budget.take_anyway(bytes);
            self.bytes += bytes;
        }
    }

    /// Bytes this holder counts.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives back everything held (the buffer went back to its first size).
    pub fn release(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.bytes);
            self.bytes = 0;
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_bytes_stay_under_the_limit_and_come_back() {
        let budget = MemoryBudget::new(100);
        let mut a = Held::new(&budget);
        let mut b = Held::new(&budget);
        assert!(a.grow(60));
        assert!(!b.grow(41), "over the limit");
        assert!(b.grow(40));
        assert_eq!(budget.held_bytes(), 100);
        assert!(!a.grow(1));
        a.release();
        assert_eq!(budget.held_bytes(), 40);
        assert!(a.grow(60));
        drop(a);
        drop(b);
        assert_eq!(budget.held_bytes(), 0);
    }

    #[test]
    fn memory_already_made_is_held_over_the_limit_and_refuses_what_follows() {
        let budget = MemoryBudget::new(100);
        let mut answer = Held::new(&budget);
        answer.hold(150);
        assert_eq!((budget.held_bytes(), answer.bytes()), (150, 150));
        assert!(!budget.has_room(0), "over the limit: nothing fits");
        assert!(!Held::new(&budget).grow(1));
        answer.release();
        assert!(budget.has_room(100));
        assert!(!budget.has_room(101));
    }
}
