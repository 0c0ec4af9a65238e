//! The live generation, shared read-only by every core and replaceable while serving.
//!
//! Readers never lock: each core keeps its own `Arc<Generation>` (in its [`LiveView`]) and the
//! epoch it was taken at, and once per read batch compares that epoch with [`Live::epoch`] (one relaxed
//! load of a word that changes only on publish, so its cache line stays shared and
//! uncontended). Only when the epoch moved does it reload the `Arc` from the `ArcSwap`. Every
//! answer is written from one generation, which it names.
//!
//! Each core holds one view, refreshed per read batch and by a timer every
//! [`VIEW_REFRESH`], so an idle core lets go of an old generation within a second. A view never
//! drops an old generation itself: it hands it to the reaper thread, so the unmapping (the last
//! drop) never runs on a core's query path.

use crate::format::FormatError;
use crate::index::MappedIndex;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often an idle core re-reads the epoch, so it releases an old generation promptly.
pub const VIEW_REFRESH: Duration = Duration::from_millis(500);

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
    /// Old generations on their way to the reaper thread, which drops (unmaps) them.
    retired: crossbeam::channel::Sender<Arc<Generation>>,
    /// Why the generation CURRENT names was refused, while it names one (shown by
    /// `/v1/generation` and `/metrics`); cleared when CURRENT names what is served again.
    pub last_refusal: Mutex<Option<String>>,
    /// Reloads refused since the start (`/metrics`).
    pub reload_refusals: AtomicU64,
    /// Reloads and releases in progress. Cores stop busy-polling meanwhile, so the background
    /// threads get the CPU in the gaps between requests instead of time slices taken from a
    /// polling core (which showed as milliseconds of latency around swaps).
    background: Arc<AtomicU32>,
}

/// Counts one piece of background work while alive.
pub struct Background(Arc<AtomicU32>);

impl Background {
    fn new(count: &Arc<AtomicU32>) -> Background {
        count.fetch_add(1, Ordering::AcqRel);
        Background(Arc::clone(count))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Background threads (reload, release) run at this nice value, below the serving cores'.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority (on Linux, nice is per thread); only advice.
pub fn lower_this_thread_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
        tracing::debug!("cannot lower the background thread's priority: {e}");
    }
}

/// Drops retired generations off the query path; logs when one is released.
fn spawn_reaper(rx: crossbeam::channel::Receiver<Arc<Generation>>, background: Arc<AtomicU32>) {
    let spawned = std::thread::Builder::new()
        .name("shikaku-reaper".into())
        .spawn(move || {
            lower_this_thread_priority();
            for g in rx {
                let id = g.id().to_owned();
                if Arc::strong_count(&g) == 1 {
                    let _quiet = Background::new(&background);
                    drop(g);
                    tracing::info!(generation = %id, "old generation released");
                }
            }
        });
    if let Err(e) = spawned {
        // Without a reaper, retired generations are dropped where they are retired.
        tracing::warn!("cannot start the reaper thread: {e}");
    }
}

impl Live {
    /// Marks background work (a reload) in progress until the guard is dropped.
    pub fn background(&self) -> Background {
        Background::new(&self.background)
    }

    /// The count cores read to stop busy-polling while background work runs.
    pub fn background_count(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.background)
    }

    /// Verifies every checksum of `index` and makes it the live generation.
    pub fn new(index: MappedIndex) -> Result<Live, FormatError> {
        index.verify()?;
        let (retired, rx) = crossbeam::channel::unbounded();
        let background = Arc::new(AtomicU32::new(0));
        spawn_reaper(rx, background.clone());
        Ok(Live {
            current: ArcSwap::from_pointee(Generation { index, epoch: 0 }),
            epoch: AtomicU64::new(0),
            retired,
            last_refusal: Mutex::new(None),
            reload_refusals: AtomicU64::new(0),
            background,
        })
    }

    /// Verifies `index` and makes it live: the next read batch of every connection answers
    /// from it; requests already being answered finish on the old one. Returns the new epoch.
    pub fn publish(&self, index: MappedIndex) -> Result<u64, FormatError> {
        index.verify()?;
        // One publisher at a time is the caller's business (reload is rare); the epoch is
        // bumped after the swap, so a reader that sees the new epoch loads the new generation.
        let epoch = self.epoch.load(Ordering::Acquire) + 1;
        let old = self.current.swap(Arc::new(Generation { index, epoch }));
        self.epoch.store(epoch, Ordering::Release);
        self.retire(old);
        tracing::info!(generation = %self.current.load().id(), epoch, "generation published");
        Ok(epoch)
    }

    /// Hands an old generation to the reaper. If the reaper is gone it is dropped here.
    pub fn retire(&self, old: Arc<Generation>) {
        let _ = self.retired.send(old);
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

/// A core's copy of the live generation (one per core, not per connection).
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
            let old = std::mem::replace(&mut self.current, live.load());
            live.retire(old);
        }
        &self.current
    }

    pub fn current(&self) -> &Arc<Generation> {
        &self.current
    }
}
