//! The replica's follower (`shikaku serve --follow`): a thread that watches the store, downloads
//! each generation the fleet may need into `DATA/tmp/<id>`, checks every file against the
//! manifest (size and xxh3) and the index as a whole (every checksum of the format), seals it
//! as a local build does, records it ready in `replicas/<id>.json`, and makes it live
//! (`DATA/CURRENT`, which the server's reloader swaps to) as soon as the pointer names it.
//!
//! Whatever fails (the store down, a file that does not match, a full disk) leaves the served
//! generation alone: the follower says what is wrong in its state object and in the server's
//! health, and tries again with backoff. A download killed part way resumes: files already in
//! `DATA/tmp/<id>` that match the manifest are kept.

use super::health::FollowHealth;
use super::manifest::{hex, Manifest};
use super::pointer::Pointer;
use super::publish::stored_generations;
use super::remote::Remote;
use super::replica::ReplicaState;
use super::retention::kept;
use super::{keys, unix_now_ms, FleetError};
use crate::domain::PersonKey;
use crate::format::SEGMENTS_DIR;
use crate::generations::{Store, StoreLock, INDEX_FILE};
use crate::index::MappedIndex;
use crate::server::live::{Live, VerifiedIndex};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the pointer is read: a replica goes live within this (plus the server's swap).
pub const POINTER_POLL: Duration = Duration::from_millis(250);
/// How a trouble reading the store begins (cleared when the store answers again).
const STORE_UNREADABLE: &str = "the store cannot be read: ";
/// How often the store's generations are listed.
const LIST_EVERY: Duration = Duration::from_secs(2);
/// A replica rewrites its state at least this often, so `fleet status` shows it is alive.
const STATE_EVERY: Duration = Duration::from_secs(5);
/// The longest wait before a failed generation is tried again.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What one download did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub downloaded_files: usize,
    pub downloaded_bytes: u64,
    /// Segment files taken from a local generation by hard link (after checking them).
    pub linked_files: usize,
    /// Files found complete in `DATA/tmp/<id>` from an interrupted download.
    pub resumed_files: usize,
}

pub struct Follower {
    pub remote: Remote,
    pub store: Store,
    pub key: PersonKey,
    pub replica: String,
    pub health: Arc<FollowHealth>,
    /// Set to ask the server to reload at once (its reloader also polls `CURRENT`).
    pub reload: Option<Arc<AtomicBool>>,
    /// What the server serves now.
    pub serving: Box<dyn Fn() -> Option<String> + Send>,
    /// The server, once it runs: a generation verified here is held ready in it, so its swap
    /// costs no second pass over the index.
    pub live: Option<Arc<Live>>,
}

/// The follower's memory between ticks.
#[derive(Default)]
pub struct Seen {
    pointer: Option<Pointer>,
    stored: Vec<String>,
    listed_at: Option<Instant>,
    written: Option<(ReplicaState, Instant)>,
    /// Generations whose download failed: failures so far and when to try again.
    failed: HashMap<String, (u32, Instant)>,
    /// The thread holding the fleet's previous generation ready, while it runs.
    holding: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    /// Takes the data directory: a follower is its one writer (its generations come from the
    /// store), so a local build or gc there is refused while it runs.
    pub fn take_data_dir(&self) -> Result<StoreLock, FleetError> {
        self.store.require_root().or_else(|_| {
            fs::create_dir_all(self.store.root()).map_err(FleetError::io(self.store.root()))
        })?;
        Ok(self.store.lock()?)
    }

    /// Follows until a generation is live here (a new replica has nothing to serve before):
    /// the one the pointer names, once downloaded; with no pointer yet, until one is promoted.
    pub fn wait_until_live(&self, seen: &mut Seen) {
        let mut said = false;
        while !matches!(self.store.current(), Ok(Some(_))) {
            let started = Instant::now();
            self.tick(seen);
            if !said && seen.pointer.is_none() && !seen.stored.is_empty() {
                tracing::info!("no generation promoted yet: waiting for `shikaku fleet promote`");
                said = true;
            }
            std::thread::sleep(POINTER_POLL.saturating_sub(started.elapsed()));
        }
    }

    /// Runs on its own thread, forever, holding the data directory.
    pub fn spawn(
        self,
        lock: StoreLock,
        seen: Seen,
    ) -> Result<std::thread::JoinHandle<()>, FleetError> {
        std::thread::Builder::new()
            .name("shikaku-follow".into())
            .spawn(move || {
                crate::server::live::lower_this_thread_priority();
                self.run(lock, seen)
            })
            .map_err(FleetError::io(Path::new("follower thread")))
    }

    fn run(self, _lock: StoreLock, mut seen: Seen) {
        loop {
            let started = Instant::now();
            self.tick(&mut seen);
            std::thread::sleep(POINTER_POLL.saturating_sub(started.elapsed()));
        }
    }

    fn tick(&self, seen: &mut Seen) {
        if let Err(e) = self.watch_pointer(seen) {
            self.trouble(format!("{STORE_UNREADABLE}{e}"));
            return;
        }
        // The store answers again: a trouble that said it did not is over (one about a
        // generation stays until that generation is taken).
        self.health.update(|h| {
            if h.trouble
                .as_deref()
                .is_some_and(|t| t.starts_with(STORE_UNREADABLE))
            {
                h.trouble = None;
            }
        });
        let due = seen.listed_at.is_none_or(|t| t.elapsed() >= LIST_EVERY);
        if due {
            match stored_generations(&self.remote) {
                Ok(ids) => {
                    seen.stored = ids;
                    seen.listed_at = Some(Instant::now());
                }
                Err(e) => {
                    return self.trouble(format!("{STORE_UNREADABLE}listing its generations: {e}"))
                }
            }
            self.update_behind(seen);
        }
        self.hold_kept_ready(seen);
        if let Some(id) = self.next_wanted(seen) {
            match self.fetch(&id, seen) {
                Ok(None) => {}
                Ok(Some((f, verified, took))) => {
                    if let Some(live) = &self.live {
                        live.hold_ready(verified);
                    }
                    tracing::info!(generation = %id, downloaded_files = f.downloaded_files, downloaded_bytes = f.downloaded_bytes, linked_files = f.linked_files, resumed_files = f.resumed_files, elapsed_ms = took.as_millis() as u64, "generation downloaded, verified and sealed");
                    seen.failed.remove(&id);
                    self.health.update(|h| h.trouble = None);
                    seen.written = None; // say it is ready now
                }
                Err(e) => {
                    let (n, _) = seen.failed.get(&id).copied().unwrap_or((0, Instant::now()));
                    let wait = (Duration::from_secs(1) * 2u32.saturating_pow(n)).min(RETRY_MAX);
                    seen.failed
                        .insert(id.clone(), (n + 1, Instant::now() + wait));
                    tracing::error!(generation = %id, retry_in_s = wait.as_secs(), "cannot take generation: {e}");
                    self.health.update(|h| h.download_failures += 1);
                    self.trouble(format!("generation {id}: {e}"));
                }
            }
            let _ = self.watch_pointer(seen);
        }
        self.keep_only_needed(seen);
        self.write_state(seen);
    }

    fn trouble(&self, why: String) {
        self.health.update(|h| h.trouble = Some(why));
    }

    /// Reads the pointer and makes what it names live here if it is ready.
    fn watch_pointer(&self, seen: &mut Seen) -> Result<(), FleetError> {
        let read = Pointer::read(&self.remote)?;
        self.health.update(|h| h.store_seen_ms = unix_now_ms());
        let Some(read) = read else {
            return Ok(());
        };
        let p = read.pointer;
        self.health.update(|h| {
            h.fleet_live = Some(p.live.clone());
            h.fleet_changed_ms = p.changed_at_ms;
        });
        let moved = seen.pointer.as_ref() != Some(&p);
        seen.pointer = Some(p.clone());
        if moved {
            self.update_behind(seen);
        }
        if self.store.current()?.as_deref() != Some(p.live.as_str())
            && self.store.list()?.contains(&p.live)
        {
            self.store.publish(&p.live)?;
            if let Some(flag) = &self.reload {
                flag.store(true, Ordering::Release);
            }
            tracing::info!(generation = %p.live, "the fleet's pointer names it: made live");
            seen.written = None;
        }
        Ok(())
    }

    fn update_behind(&self, seen: &Seen) {
        let serving = (self.serving)().or_else(|| self.store.current().ok().flatten());
        let live = seen.pointer.as_ref().map(|p| p.live.as_str());
        let behind = match (serving, live) {
            (Some(s), Some(l)) => seen
                .stored
                .iter()
                .filter(|g| g.as_str() > s.as_str() && g.as_str() <= l)
                .count(),
            (None, Some(_)) => 1,
            _ => 0,
        };
        self.health.update(|h| h.generations_behind = behind as u64);
    }

    /// The generation to download next: the live one, the previous one, then the newer ones,
    /// skipping those held and those waiting out a failure.
    fn next_wanted(&self, seen: &Seen) -> Option<String> {
        let local = self.store.list().ok()?;
        let mut wanted: Vec<&String> = match &seen.pointer {
            Some(p) => {
                let mut w: Vec<&String> = seen.stored.iter().filter(|g| kept(p, g)).collect();
                // Live first, then previous, then the newer ones oldest first.
                w.sort_by_key(|g| {
                    (
                        g.as_str() != p.live,
                        p.previous.as_deref() != Some(g.as_str()),
                        g.as_str(),
                    )
                });
                w
            }
            None => seen.stored.iter().collect(),
        };
        wanted.retain(|g| !local.contains(g));
        let now = Instant::now();
        wanted
            .into_iter()
            .find(|g| seen.failed.get(*g).is_none_or(|(_, at)| *at <= now))
            .cloned()
    }

    /// Holds the fleet's previous generation ready in the server too, so a rollback swaps as
    /// fast as a promote; and lets go of held generations the pointer no longer keeps. The
    /// previous one is opened and verified on a thread of its own (seconds for a large index),
    /// so the pointer is still watched meanwhile: a rollback right after a promote is seen at
    /// once, and swaps as a reload does if the verification has not finished.
    fn hold_kept_ready(&self, seen: &mut Seen) {
        let (Some(live), Some(p)) = (&self.live, &seen.pointer) else {
            return;
        };
        live.release_ready(|g| kept(p, g));
        let Some(prev) = p.previous.as_deref() else {
            return;
        };
        let serving = (self.serving)();
        let busy = seen.holding.as_ref().is_some_and(|h| !h.is_finished());
        let held_here = self
            .store
            .list()
            .unwrap_or_default()
            .iter()
            .any(|g| g == prev);
        if busy
            || serving.as_deref() != Some(p.live.as_str())
            || live.holds_ready(prev)
            || !held_here
        {
            return;
        }
        let (store, key, live, prev) = (
            self.store.clone(),
            self.key.clone(),
            live.clone(),
            prev.to_owned(),
        );
        let spawned = std::thread::Builder::new()
            .name("shikaku-hold".into())
            .spawn(move || {
                crate::server::live::lower_this_thread_priority();
                let opened = store
                    .open(&prev, key)
                    .map_err(|e| e.to_string())
                    .and_then(|i| VerifiedIndex::verify(i).map_err(|e| e.to_string()));
                match opened {
                    Ok(index) => live.hold_ready(index),
                    Err(e) => tracing::warn!(generation = %prev, "cannot hold the fleet's previous generation ready: {e}"),
                }
            });
        match spawned {
            Ok(h) => seen.holding = Some(h),
            Err(e) => tracing::warn!("cannot start a thread to hold the previous generation: {e}"),
        }
    }

    /// Downloads generation `id`; `None` while its publish is still under way.
    fn fetch(
        &self,
        id: &str,
        seen: &mut Seen,
    ) -> Result<Option<(Fetched, VerifiedIndex, Duration)>, FleetError> {
        let started = Instant::now();
        let key = keys::manifest(id);
        let got = self
            .remote
            .get(&key)?
            .ok_or_else(|| FleetError::NotInStore {
                id: id.to_owned(),
                key: key.clone(),
            })?;
        let manifest = Manifest::parse(&got.bytes, &key, id)?;
        // The report goes up after the manifest: until it is there, the publish is not done.
        let report = crate::generations::REPORT_FILE;
        if manifest.files.iter().any(|f| f.path == report)
            && self
                .remote
                .head(&keys::generation_file(id, report))?
                .is_none()
        {
            return Ok(None);
        }
        let mut looked = Instant::now();
        let (fetched, verified) =
            download_verified(&self.remote, &self.store, &manifest, &self.key, &mut || {
                // Between files: a pointer that moved to a generation held here goes live now,
                // not after this download; read at the poll's pace, not once a file (a
                // generation has thousands, most of them linked in microseconds).
                if looked.elapsed() >= POINTER_POLL {
                    let _ = self.watch_pointer(seen);
                    looked = Instant::now();
                }
            })?;
        Ok(Some((fetched, verified, started.elapsed())))
    }

    /// Removes local generations the pointer no longer needs (see `retention`).
    fn keep_only_needed(&self, seen: &Seen) {
        let Some(p) = &seen.pointer else { return };
        let Ok(local) = self.store.list() else { return };
        if self.store.current().ok().flatten().as_deref() != Some(p.live.as_str()) {
            return; // not live with the fleet yet: keep everything
        }
        // By the pointer, not by age: the previous generation need not be the newest older
        // one (a promote of an older generation, a rollback), and removing it by age
        // downloaded it again and removed it again, four times a second.
        if local.iter().any(|g| !kept(p, g)) {
            match self.store.gc_where(|g| kept(p, g), self.key.clone()) {
                Ok(c) => {
                    tracing::info!(removed = ?c.generations, "generations the fleet no longer needs removed")
                }
                Err(e) => tracing::warn!("cannot remove old generations: {e}"),
            }
        }
    }

    fn write_state(&self, seen: &mut Seen) {
        let ready = self.store.list().unwrap_or_default();
        let trouble = self.health.facts().trouble;
        self.health.update(|h| h.ready = ready.clone());
        let state = ReplicaState {
            format: 1,
            replica: self.replica.clone(),
            ready,
            live: (self.serving)().or_else(|| self.store.current().ok().flatten()),
            at_ms: unix_now_ms(),
            trouble,
        };
        let same = seen.written.as_ref().is_some_and(|(w, at)| {
            at.elapsed() < STATE_EVERY
                && w.ready == state.ready
                && w.live == state.live
                && w.trouble == state.trouble
        });
        if same {
            return;
        }
        match state.write(&self.remote) {
            Ok(()) => seen.written = Some((state, Instant::now())),
            Err(e) => self.trouble(format!(
                "cannot write {}: {e}",
                keys::replica(&self.replica)
            )),
        }
    }
}

/// Downloads the generation `manifest` describes into `DATA/tmp/<id>`, checks it, seals it.
/// `between_files` runs before each file. The caller holds the data directory's lock.
pub fn download(
    remote: &Remote,
    store: &Store,
    manifest: &Manifest,
    key: &PersonKey,
    between_files: &mut dyn FnMut(),
) -> Result<Fetched, FleetError> {
    download_verified(remote, store, manifest, key, between_files).map(|(f, _)| f)
}

/// [`download`], giving also the index as it was verified (its mapping stays valid through
/// the seal, which renames its directory).
pub fn download_verified(
    remote: &Remote,
    store: &Store,
    manifest: &Manifest,
    key: &PersonKey,
    between_files: &mut dyn FnMut(),
) -> Result<(Fetched, VerifiedIndex), FleetError> {
    let id = &manifest.generation;
    let tmp = store.tmp_dir().join(id);
    let seg_dir = tmp.join(SEGMENTS_DIR);
    fs::create_dir_all(&seg_dir).map_err(FleetError::io(&seg_dir))?;
    let local = local_segments(store)?;
    let mut out = Fetched::default();
    let mismatch = |file: &str, why: String| FleetError::Mismatch {
        id: id.clone(),
        file: file.to_owned(),
        why,
    };
    for f in &manifest.files {
        between_files();
        let dest = tmp.join(&f.path);
        if matches_entry(&dest, f)? {
            out.resumed_files += 1;
            continue;
        }
        let segment = f.path.strip_prefix("segments/");
        if let Some(from) = segment.and_then(|name| local.get(name)) {
            if matches_entry(from, f)? {
                let _ = fs::remove_file(&dest);
                fs::hard_link(from, &dest).map_err(FleetError::io(&dest))?;
                out.linked_files += 1;
                continue;
            }
        }
        let object = match segment {
            Some(name) => keys::segment(name),
            None => keys::generation_file(id, &f.path),
        };
        let part = PathBuf::from(format!("{}.part", dest.display()));
        let (bytes, xxh3) = remote.download_file(&object, &part, f.bytes)?;
        if bytes != f.bytes || hex(xxh3) != f.xxh3 {
            let _ = fs::remove_file(&part);
            return Err(mismatch(
                &f.path,
                format!(
                    "{bytes} bytes with xxh3 {}, the manifest says {} bytes with xxh3 {}",
                    hex(xxh3),
                    f.bytes,
                    f.xxh3
                ),
            ));
        }
        fs::rename(&part, &dest).map_err(FleetError::io(&dest))?;
        out.downloaded_files += 1;
        out.downloaded_bytes += bytes;
    }
    // The files match the manifest; the index must also hold together and pass every
    // checksum of its own, as a build's read-back does, before it is sealed.
    let index_path = tmp.join(INDEX_FILE);
    let index = MappedIndex::open_file(&index_path, key.clone())
        .map_err(|e| mismatch(INDEX_FILE, e.to_string()))?;
    let index = VerifiedIndex::verify(index).map_err(|e| mismatch(INDEX_FILE, e.to_string()))?;
    if index.id() != id {
        return Err(mismatch(
            INDEX_FILE,
            format!(
                "it is generation {}",
                crate::domain::text::quote_raw(index.id())
            ),
        ));
    }
    store.seal(id)?;
    Ok((out, index))
}

/// Whether `path` exists with the size and xxh3 of `entry`.
fn matches_entry(path: &Path, entry: &super::manifest::FileEntry) -> Result<bool, FleetError> {
    match fs::metadata(path) {
        Ok(m) if m.len() == entry.bytes => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(FleetError::io(path)(e)),
    }
    let (_, xxh3) = super::remote::file_xxh3(path)?;
    Ok(hex(xxh3) == entry.xxh3)
}

/// Segment files of the local generations, by name (newest generation's copy).
fn local_segments(store: &Store) -> Result<HashMap<String, PathBuf>, FleetError> {
    let mut out = HashMap::new();
    for id in store.list()? {
        let dir = store.generation_dir(&id).join(SEGMENTS_DIR);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            if let Ok(name) = e.file_name().into_string() {
                out.insert(name, e.path());
            }
        }
    }
    Ok(out)
}
