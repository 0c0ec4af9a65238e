//! The live generation, shared read-only by every core and replaceable while serving.
//!
//! Readers never lock: each connection keeps its own `Arc<Generation>` and the epoch it was
//! taken at, and once per read batch compares that epoch with [`Live::epoch`] (one relaxed
//! load of a word that changes only on publish, so its cache line stays shared and
//! uncontended). Only when the epoch moved does it reload the `Arc` from the `ArcSwap`. Every
//! answer is written from one generation, which it names.
//!
//! An old generation is unmapped when the last connection holding it has moved on (an idle
//! connection moves on at its next request).

use crate::format::FormatError;
use crate::index::MappedIndex;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One verified index generation being served.
pub struct Generation {
    pub index: MappedIndex,
    /// Publish count: 0 for the generation the server started with.
    pub epoch: u64,
}

impl Generation {
    pub fn id(&self) -> &str {
        self.index.generation()
    }
}

/// The generation being served, replaceable by [`Live::publish`].
pub struct Live {
    current: ArcSwap<Generation>,
    epoch: AtomicU64,
}

impl Live {
    /// Verifies every checksum of `index` and makes it the live generation.
    pub fn new(index: MappedIndex) -> Result<Live, FormatError> {
        index.verify()?;
        Ok(Live {
            current: ArcSwap::from_pointee(Generation { index, epoch: 0 }),
            epoch: AtomicU64::new(0),
        })
    }

    /// Verifies `index` and makes it live: the next read batch of every connection answers
    /// from it; requests already being answered finish on the old one. Returns the new epoch.
    pub fn publish(&self, index: MappedIndex) -> Result<u64, FormatError> {
        index.verify()?;
        // One publisher at a time is the caller's business (reload is rare); the epoch is
        // bumped after the swap, so a reader that sees the new epoch loads the new generation.
        let epoch = self.epoch.load(Ordering::Acquire) + 1;
        self.current.store(Arc::new(Generation { index, epoch }));
        self.epoch.store(epoch, Ordering::Release);
        tracing::info!(generation = %self.current.load().id(), epoch, "generation published");
        Ok(epoch)
    }

    /// The current generation (takes a reference count; not for the per-request path).
    pub fn load(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The publish count; changes only when a generation is published.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A reader's handle on the live generation, refreshed by [`LiveView::refresh`].
    pub fn view(&self) -> LiveView {
        let epoch = self.epoch();
        LiveView {
            epoch,
            current: self.load(),
        }
    }
}

/// A connection's (or core's) copy of the live generation.
pub struct LiveView {
    epoch: u64,
    current: Arc<Generation>,
}

impl LiveView {
    /// Returns the generation to answer the next batch from, reloading it only when a new
    /// one was published since the last call.
    #[inline]
    pub fn refresh(&mut self, live: &Live) -> &Arc<Generation> {
        let epoch = live.epoch();
        if epoch != self.epoch {
            self.epoch = epoch;
            self.current = live.load();
        }
        &self.current
    }

    pub fn current(&self) -> &Arc<Generation> {
        &self.current
    }
}
