//! The memory every connection's read buffer holds beyond its first
//! [`INITIAL_BUFFER_BYTES`](super::limits::INITIAL_BUFFER_BYTES), under one budget for the
//! whole server: a buffer grows only as bytes arrive (never to what a header announces), and
//! only while the budget has room; past it the request is refused (`503`, `-ERR`) and
//! counted, rather than every client's memory added up until the kernel kills the server.

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

    /// Takes `bytes` if the budget has them. Only a buffer growing past its first size comes
    /// here, never the query path.
    fn take(&self, bytes: usize) -> bool {
        self.held_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(bytes).filter(|&t| t <= self.limit_bytes)
            })
            .is_ok()
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

    /// Gives back everything held (the buffer went back to its first size).
    pub fn release(&mut self) {
        self.budget.give_back(self.bytes);
        self.bytes = 0;
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
}
