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

use super::supervise::{spawn_supervised, BackgroundPanics, BackgroundThread};
use crate::format::FormatError;
use crate::index::{MappedIndex, VerifiedSegments};
use crate::signing::{Trust, Unsigned};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often an idle core re-reads the epoch, so it releases an old generation promptly.
pub const VIEW_REFRESH: Duration = Duration::from_millis(500);

/// What a replica following a fleet says of itself in `/healthz`, `/v1/generation` (a JSON
/// value) and `/metrics` (Prometheus lines), given the generation served.
pub trait FleetReport: Send + Sync {
    fn write_json(&self, out: &mut Vec<u8>, serving: &str);
    fn write_metrics(&self, out: &mut String, serving: &str);
}

/// An index this process verified since it opened it (deep-checked, or checksums checked
/// against a manifest a trusted key signed): only [`VerifiedIndex::verify`] makes one, so
/// [`Live::publish_verified`] need not check again.
pub struct VerifiedIndex {
    index: MappedIndex,
    trust: Trust,
}

/// The segment files this process has verified: a generation that shares them by hard link
/// (a nightly build's unchanged insurers, a replica's linked segments) verifies only its main
/// file and its new segments.
static VERIFIED_SEGMENTS: std::sync::LazyLock<VerifiedSegments> =
    std::sync::LazyLock::new(VerifiedSegments::default);

impl VerifiedIndex {
    /// Verifies `index` as its signature allows ([`crate::signing::verify_generation`]:
    /// checksums only if a trusted key signed it, else the deep check), but for the segment
    /// files this process verified before (the same files, by device and inode).
    pub fn verify(index: MappedIndex) -> Result<VerifiedIndex, FormatError> {
        let trust = verify_new(&index)?;
        Ok(VerifiedIndex { index, trust })
    }

    pub fn id(&self) -> &str {
        self.index.generation()
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }
}

/// Verifies `index` but for the segment files this process verified before, and says what
/// it checked and how far it trusted a signature.
fn verify_new(index: &MappedIndex) -> Result<Trust, FormatError> {
    let started = std::time::Instant::now();
    let (trust, v) = crate::signing::verify_generation(
        index,
        crate::signing::trusted_keys(),
        &VERIFIED_SEGMENTS,
    )?;
    tracing::info!(
        generation = index.generation(),
        trust = %trust,
        segments_verified = v.segments_verified,
        segments_known = v.segments_known,
        verified_mb = v.bytes_verified >> 20,
        ms = started.elapsed().as_millis() as u64,
        "verified"
    );
    if let Trust::Unsigned(why @ (Unsigned::BadSignature(_) | Unsigned::UnknownKey(_))) = &trust {
        // Signed, but not so this host can rely on it: worth an operator's look.
        tracing::warn!(
            generation = index.generation(),
            "{why}; deep-checked instead"
        );
    }
    Ok(trust)
}

/// Generations held opened and verified before they are live, at most this many: a fleet's
/// replica holds the one it downloaded (and the fleet's previous one), so the swap when the
/// pointer names it is a pointer swap, not a second pass over an index of many gigabytes.
pub const STANDBY_MAX: usize = 3;

/// One verified index generation being served.
pub struct Generation {
    pub index: MappedIndex,
    /// Publish count: 0 for the generation the server started with.
    pub epoch: u64,
    /// How it was verified before serving (`/healthz`, `/metrics`).
    pub trust: Trust,
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
    /// Panics caught in the background threads, which were restarted (`/metrics`).
    pub background_panics: Arc<BackgroundPanics>,
    /// A replica following a fleet (`serve --follow`) says here how it keeps up.
    pub fleet: std::sync::OnceLock<Arc<dyn FleetReport>>,
    /// Generations opened and verified ahead of their swap ([`STANDBY_MAX`] at most).
    standby: Mutex<Vec<VerifiedIndex>>,
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

/// Drops retired generations off the query path; logs when one is released. Supervised: a
/// panic while releasing one (it is dropped by the unwinding) leaves the reaper running.
fn spawn_reaper(
    rx: crossbeam::channel::Receiver<Arc<Generation>>,
    background: Arc<AtomicU32>,
    panics: Arc<BackgroundPanics>,
) {
    let spawned = spawn_supervised(BackgroundThread::Reaper, panics, move || {
        for g in rx.iter() {
            let id = g.id().to_owned();
            if Arc::strong_count(&g) == 1 {
                let _quiet = Background::new(&background);
                #[cfg(test)]
                super::supervise::inject::maybe_panic(&id);
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
        let trust = verify_new(&index)?;
        let (retired, rx) = crossbeam::channel::unbounded();
        let background = Arc::new(AtomicU32::new(0));
        let background_panics = Arc::new(BackgroundPanics::default());
        spawn_reaper(rx, background.clone(), background_panics.clone());
        Ok(Live {
            current: ArcSwap::from_pointee(Generation {
                index,
                epoch: 0,
                trust,
            }),
            epoch: AtomicU64::new(0),
            retired,
            last_refusal: Mutex::new(None),
            reload_refusals: AtomicU64::new(0),
            background,
            background_panics,
            fleet: std::sync::OnceLock::new(),
            standby: Mutex::new(Vec::new()),
        })
    }

    /// Verifies `index` and makes it live: the next read batch of every connection answers
    /// from it; requests already being answered finish on the old one. Returns the new epoch.
    pub fn publish(&self, index: MappedIndex) -> Result<u64, FormatError> {
        Ok(self.publish_verified(VerifiedIndex::verify(index)?))
    }

    /// Holds `index` ready for its swap (replacing a held one of the same generation); the
    /// oldest held goes when more than [`STANDBY_MAX`] would be.
    pub fn hold_ready(&self, index: VerifiedIndex) {
        let mut held = self.standby.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|h| h.id() != index.id());
        held.push(index);
        if held.len() > STANDBY_MAX {
            held.remove(0);
        }
    }

    /// Whether generation `id` is held ready.
    pub fn holds_ready(&self, id: &str) -> bool {
        let held = self.standby.lock().unwrap_or_else(|e| e.into_inner());
        held.iter().any(|h| h.id() == id)
    }

    /// Takes generation `id` if it is held ready.
    pub fn take_ready(&self, id: &str) -> Option<VerifiedIndex> {
        let mut held = self.standby.lock().unwrap_or_else(|e| e.into_inner());
        let at = held.iter().position(|h| h.id() == id)?;
        Some(held.remove(at))
    }

    /// Lets go of the held generations `keep` refuses (their files may then be removed).
    pub fn release_ready(&self, keep: impl Fn(&str) -> bool) {
        let mut held = self.standby.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|h| keep(h.id()));
    }

    /// Makes an index verified in this process live, as [`Self::publish`] does.
    pub fn publish_verified(&self, index: VerifiedIndex) -> u64 {
        let VerifiedIndex { index, trust } = index;
        // One publisher at a time is the caller's business (reload is rare); the epoch is
        // bumped after the swap, so a reader that sees the new epoch loads the new generation.
        let epoch = self.epoch.load(Ordering::Acquire) + 1;
        let old = self.current.swap(Arc::new(Generation {
            index,
            epoch,
            trust,
        }));
        self.epoch.store(epoch, Ordering::Release);
        self.retire(old);
        tracing::info!(generation = %self.current.load().id(), epoch, "generation published");
        epoch
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::*;
    use crate::nightly::write_files;
    use crate::server::supervise::inject;
    use crate::testing::{build, insurer, Member, INSURER, INSURER_NAME};

    /// A one-member generation `id` (the fixtures' default member), in memory.
    pub(crate) fn generation_files(id: &str) -> crate::index::IndexFiles<Vec<u8>> {
        let rows = insurer(
            INSURER,
            INSURER_NAME,
            InsurerKind::Kyosai,
            "2026-11-01",
            &[Member::default()],
        );
        build(vec![rows], "2026-11-24", id)
    }

    /// [`generation_files`] written under `dir` and mapped.
    fn generation(dir: &std::path::Path, id: &str) -> MappedIndex {
        let path = write_files(&generation_files(id), &dir.join(id)).unwrap();
        MappedIndex::open_file(&path, PersonKey::demo()).unwrap()
    }

    fn released_within(g: &std::sync::Weak<Generation>, wait: Duration) -> bool {
        let until = std::time::Instant::now() + wait;
        while g.strong_count() > 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        g.strong_count() == 0
    }

    #[test]
    fn the_reaper_survives_a_panic_and_releases_the_next_generation() {
        let dir = tempfile::tempdir().unwrap();
        let live = Live::new(generation(dir.path(), "g-reaper-1")).unwrap();
        inject::panic_once_at("g-reaper-1");
        let first = Arc::downgrade(&live.load());
        live.publish(generation(dir.path(), "g-reaper-2")).unwrap();
        // The panic unwinds through the release, which still drops the generation.
        assert!(released_within(&first, Duration::from_secs(10)));
        let second = Arc::downgrade(&live.load());
        live.publish(generation(dir.path(), "g-reaper-3")).unwrap();
        assert!(
            released_within(&second, Duration::from_secs(10)),
            "the reaper was not restarted"
        );
        assert_eq!(
            live.background_panics.counts(),
            [("reload", 0), ("reaper", 1)]
        );
    }

    #[test]
    fn generations_held_ready_are_taken_by_id_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let live = Live::new(generation(dir.path(), "g-held-0")).unwrap();
        let ready = |id: &str| VerifiedIndex::verify(generation(dir.path(), id)).unwrap();
        for id in ["g-held-1", "g-held-2", "g-held-3", "g-held-4"] {
            live.hold_ready(ready(id));
        }
        // STANDBY_MAX held: the oldest went.
        assert!(!live.holds_ready("g-held-1"));
        assert!(live.holds_ready("g-held-2") && live.holds_ready("g-held-4"));
        live.release_ready(|id| id != "g-held-3");
        assert!(!live.holds_ready("g-held-3"));
        let taken = live.take_ready("g-held-4").unwrap();
        assert!(!live.holds_ready("g-held-4"));
        assert_eq!(live.publish_verified(taken), 1);
        assert_eq!(live.load().id(), "g-held-4");
        assert!(live.take_ready("g-held-4").is_none());
    }
}
