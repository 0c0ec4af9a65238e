//! The replica's follower (`shikaku serve --follow`): a thread that watches the store, downloads
//! each generation the fleet may need (`download`), records it ready in `replicas/<id>.json`,
//! and makes it live (`DATA/CURRENT`, which the server's reloader swaps to) as soon as the
//! pointer names it.
//!
//! Whatever fails (the store down, a pointer that is not valid or names a generation the
//! store lacks, a generation whose publish did not finish, a key the client cannot name, a
//! file that does not match, a full disk) leaves the served generation alone: the follower
//! names it as a `Trouble` (health, log, metrics), steps past it to the generations it can
//! take, and ends the trouble on the tick after its cause is gone. A download that failed is
//! tried again with backoff; one killed part way resumes.

use super::download::{download_verified, free_bytes, Destination, FreeBytes};
use super::health::FollowHealth;
use super::manifest::Manifest;
use super::pointer::Pointer;
use super::publish::{list_generations, StoredGenerations};
use super::remote::Bucket;
use super::replica::ReplicaState;
use super::retention::kept;
use super::trouble::{StoreRead, Trouble, TroubleKind, Troubles};
use super::{keys, unix_now_ms, FleetError};
use crate::domain::PersonKey;
use crate::generations::{Store, StoreLock};
use crate::server::live::{Live, VerifiedIndex};
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::download::{download, Fetched};

/// How often the pointer is read: a replica goes live within this (plus the server's swap).
pub const POINTER_POLL: Duration = Duration::from_millis(250);

/// How often the follower does what it does not do every tick.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How often the store's generations are listed: a new generation is seen within this.
    pub list_every: Duration,
    /// A replica rewrites its state at least this often, so `fleet status` shows it is alive.
    pub state_every: Duration,
    /// The first wait before a failed generation is tried again; it doubles each failure.
    pub retry_first: Duration,
    /// The longest such wait.
    pub retry_max: Duration,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            // Two LISTs (`generations/`, `main/`) a second: freshness, a change answered
            // on every replica within seconds, is worth it (2 s before, half of the wait).
            list_every: Duration::from_secs(1),
            state_every: Duration::from_secs(5),
            retry_first: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
        }
    }
}

pub struct Follower {
    pub remote: Box<dyn Bucket>,
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
    pub pace: Pace,
    /// The free space of the data directory's file system.
    pub free_bytes: FreeBytes,
}

/// The follower's memory between ticks.
#[derive(Default)]
pub struct Seen {
    pointer: Option<Pointer>,
    /// When the pointer last moved as this replica saw it.
    pointer_moved_at: Option<Instant>,
    /// The last listing of `generations/`, and the ids in it with a manifest.
    stored: StoredGenerations,
    ids: Vec<String>,
    listed_at: Option<Instant>,
    /// Manifests read, by generation (a generation is immutable).
    manifests: HashMap<String, Manifest>,
    written: Option<(ReplicaState, Instant)>,
    /// Generations whose download failed: failures so far and when to try again.
    failed: HashMap<String, (u32, Instant)>,
    /// The thread holding the fleet's previous generation ready, while it runs: the
    /// generation, and whether it could be opened and verified.
    holding: Option<(String, std::thread::JoinHandle<bool>)>,
    /// Previous generations that could not be held ready (a generation is immutable: it is
    /// not opened and verified again on every tick; before, it was, about four times a
    /// second).
    unholdable: std::collections::HashSet<String>,
    troubles: Troubles,
}

impl Seen {
    /// The troubles of the last tick.
    pub fn troubles(&self) -> &Troubles {
        &self.troubles
    }
}

fn unreadable(read: StoreRead) -> impl Fn(&Trouble) -> bool {
    move |t| matches!(t, Trouble::StoreUnreadable { read: r, .. } if *r == read)
}

/// A trouble about taking generation `id` (its download or the room for it).
fn taking(id: &str) -> impl Fn(&Trouble) -> bool + '_ {
    move |t| {
        matches!(
            t.kind(),
            TroubleKind::DownloadFailed | TroubleKind::DiskFull
        ) && t.generation() == Some(id)
    }
}

impl Follower {
    /// A follower with the default pace, measuring the real disk.
    pub fn new(remote: Box<dyn Bucket>, store: Store, key: PersonKey, replica: &str) -> Follower {
        Follower {
            remote,
            store,
            key,
            replica: replica.to_owned(),
            health: Arc::new(FollowHealth::new(replica)),
            reload: None,
            serving: Box::new(|| None),
            live: None,
            pace: Pace::default(),
            free_bytes,
        }
    }

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
            if !said && seen.pointer.is_none() && !seen.ids.is_empty() {
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

    /// One round: the pointer, the listing when due, the next generation to take, retention,
    /// this replica's state; then what is wrong, told to the server's health.
    pub fn tick(&self, seen: &mut Seen) {
        // What is sealed here is ready before this tick's download (minutes, perhaps): right
        // after a restart too, `/healthz` lists it.
        self.say_ready();
        if self.follow_once(seen) {
            self.write_state(seen);
        }
        self.tell_troubles(seen);
    }

    fn tell_troubles(&self, seen: &Seen) {
        let troubles = seen.troubles.clone();
        self.health.update(|h| h.troubles = troubles);
    }

    /// Returns whether the store answered.
    fn follow_once(&self, seen: &mut Seen) -> bool {
        if !self.watch_pointer(seen) {
            return false;
        }
        let stale = seen.pointer_moved_at > seen.listed_at;
        let due = stale
            || seen
                .listed_at
                .is_none_or(|t| t.elapsed() >= self.pace.list_every);
        if due && !self.list(seen) {
            return true;
        }
        self.check_pointer_names_stored(seen);
        self.hold_kept_ready(seen);
        self.take_next(seen);
        self.settle_generation_troubles(seen);
        self.keep_only_needed(seen);
        true
    }

    /// Reads the pointer and makes what it names live here if it is ready. Returns whether
    /// the store answered; a pointer that is not valid is a trouble, and the last valid one
    /// is followed meanwhile.
    fn watch_pointer(&self, seen: &mut Seen) -> bool {
        let read = Pointer::read(&*self.remote);
        let answered = !matches!(read, Err(FleetError::Request { .. }));
        seen.troubles.settle(
            unreadable(StoreRead::Pointer),
            match &read {
                Err(e @ FleetError::Request { .. }) => vec![Trouble::StoreUnreadable {
                    read: StoreRead::Pointer,
                    why: e.to_string(),
                }],
                _ => vec![],
            },
        );
        let invalid = match &read {
            Err(e) if answered => Some(Trouble::PointerInvalid { why: e.to_string() }),
            _ => None,
        };
        seen.troubles
            .settle_kind(TroubleKind::PointerInvalid, invalid);
        if !answered {
            return false;
        }
        self.health.update(|h| h.store_seen_ms = unix_now_ms());
        if let Ok(Some(read)) = read {
            self.saw_pointer(read.pointer, seen);
        }
        let made = self.make_live(seen);
        let trouble = made.err().map(|e| Trouble::DataDir { why: e.to_string() });
        seen.troubles.settle_kind(TroubleKind::DataDir, trouble);
        true
    }

    fn saw_pointer(&self, p: Pointer, seen: &mut Seen) {
        self.health.update(|h| {
            h.fleet_live = Some(p.live.clone());
            h.fleet_changed_ms = p.changed_at_ms;
        });
        if seen.pointer.as_ref() != Some(&p) {
            seen.pointer = Some(p);
            seen.pointer_moved_at = Some(Instant::now());
            self.update_behind(seen);
        }
    }

    /// Makes the generation the pointer names live here, if it is held here.
    fn make_live(&self, seen: &mut Seen) -> Result<(), FleetError> {
        let Some(live) = seen.pointer.as_ref().map(|p| p.live.clone()) else {
            return Ok(());
        };
        if self.store.current()?.as_deref() != Some(live.as_str())
            && self.store.list()?.contains(&live)
        {
            self.store.publish(&live)?;
            if let Some(flag) = &self.reload {
                flag.store(true, Ordering::Release);
            }
            tracing::info!(generation = %live, "the fleet's pointer names it: made live");
            seen.written = None;
        }
        Ok(())
    }

    /// Lists the store's generations; returns whether it could.
    fn list(&self, seen: &mut Seen) -> bool {
        let listed = list_generations(&*self.remote);
        let trouble = listed.as_ref().err().map(|e| Trouble::StoreUnreadable {
            read: StoreRead::Generations,
            why: e.to_string(),
        });
        seen.troubles.settle(
            unreadable(StoreRead::Generations),
            trouble.into_iter().collect(),
        );
        let Ok(stored) = listed else {
            return false;
        };
        let unnamable = stored
            .unnamable
            .iter()
            .map(|key| Trouble::UnnamableKey { key: key.clone() });
        seen.troubles.settle(
            |t| t.kind() == TroubleKind::UnnamableKey,
            unnamable.collect(),
        );
        seen.ids = stored.ids();
        seen.manifests.retain(|id, _| seen.ids.contains(id));
        seen.stored = stored;
        seen.listed_at = Some(Instant::now());
        self.update_behind(seen);
        true
    }

    fn check_pointer_names_stored(&self, seen: &mut Seen) {
        let missing = match &seen.pointer {
            Some(p) if seen.listed_at.is_some() && !seen.ids.contains(&p.live) => {
                Some(Trouble::PointerNamesMissing { id: p.live.clone() })
            }
            _ => None,
        };
        seen.troubles
            .settle_kind(TroubleKind::PointerNamesMissing, missing);
    }

    /// The generations in the store up to the fleet's live one: `/healthz` counts those newer
    /// than the one serving when it answers, so the count and `behind` agree at every
    /// moment (counted here, a tick late, it said 1 behind for a second after each swap).
    fn update_behind(&self, seen: &Seen) {
        let live = seen.pointer.as_ref().map(|p| p.live.as_str());
        let up_to_live: Vec<String> = match live {
            Some(l) => seen
                .ids
                .iter()
                .filter(|g| g.as_str() <= l)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        self.health.update(|h| h.stored_up_to_live = up_to_live);
    }

    /// The generations to take, in order: the live one, the previous one, then the newer
    /// ones oldest first; not those held here already.
    fn wanted(&self, seen: &Seen) -> Vec<String> {
        let Ok(local) = self.store.list() else {
            return Vec::new();
        };
        let mut wanted: Vec<&String> = match &seen.pointer {
            Some(p) => {
                let mut w: Vec<&String> = seen.ids.iter().filter(|g| kept(p, g)).collect();
                w.sort_by_key(|g| {
                    (
                        g.as_str() != p.live,
                        p.previous.as_deref() != Some(g.as_str()),
                        g.as_str(),
                    )
                });
                w
            }
            None => seen.ids.iter().collect(),
        };
        wanted.retain(|g| !local.contains(g));
        wanted.into_iter().cloned().collect()
    }

    /// Takes the first wanted generation that is complete in the store and not waiting out
    /// a failure: one whose publish did not finish is stepped over, not waited on.
    fn take_next(&self, seen: &mut Seen) {
        let now = Instant::now();
        for id in self.wanted(seen) {
            if seen.failed.get(&id).is_some_and(|(_, at)| *at > now) {
                continue;
            }
            let manifest = match self.manifest(&id, seen) {
                Ok(Some(m)) => m,
                Ok(None) => continue, // removed since the listing
                Err(e) => return self.failed(&id, e, seen),
            };
            if !seen.stored.missing(&manifest).is_empty() {
                continue; // named by settle_generation_troubles
            }
            match self.fetch(&manifest, seen) {
                Ok((f, verified, took)) => {
                    if let Some(live) = &self.live {
                        live.hold_ready(verified);
                    }
                    tracing::info!(generation = %id, downloaded_files = f.downloaded_files, downloaded_bytes = f.downloaded_bytes, linked_files = f.linked_files, resumed_files = f.resumed_files, resumed_bytes = f.resumed_bytes, elapsed_ms = took.as_millis() as u64, "generation downloaded, verified and sealed");
                    seen.failed.remove(&id);
                    seen.troubles.settle(taking(&id), vec![]);
                    seen.written = None; // say it is ready now
                }
                Err(e) => self.failed(&id, e, seen),
            }
            self.watch_pointer(seen);
            return;
        }
    }

    /// Generation `id`'s manifest, read once.
    fn manifest(&self, id: &str, seen: &mut Seen) -> Result<Option<Manifest>, FleetError> {
        if let Some(m) = seen.manifests.get(id) {
            return Ok(Some(m.clone()));
        }
        let key = keys::manifest(id);
        let Some(got) = self.remote.get(&key)? else {
            return Ok(None);
        };
        let manifest = Manifest::parse(&got.bytes, &key, id)?;
        seen.manifests.insert(id.to_owned(), manifest.clone());
        Ok(Some(manifest))
    }

    fn failed(&self, id: &str, e: FleetError, seen: &mut Seen) {
        let (n, _) = seen.failed.get(id).copied().unwrap_or((0, Instant::now()));
        let wait = (self.pace.retry_first)
            .saturating_mul(2u32.saturating_pow(n))
            .min(self.pace.retry_max);
        seen.failed
            .insert(id.to_owned(), (n + 1, Instant::now() + wait));
        tracing::error!(generation = %id, retry_in_s = wait.as_secs(), "cannot take generation: {e}");
        self.health.update(|h| h.download_failures += 1);
        let trouble = match e {
            FleetError::NoRoom {
                id,
                needed_bytes,
                free_bytes,
            } => Trouble::DiskFull {
                id,
                needed_bytes,
                free_bytes,
            },
            e => Trouble::DownloadFailed {
                id: id.to_owned(),
                why: e.to_string(),
            },
        };
        seen.troubles.settle(taking(id), vec![trouble]);
    }

    /// Names the wanted generations whose publish did not finish, and ends the troubles of
    /// generations no longer wanted (taken, gone from the store, or let go by the pointer).
    fn settle_generation_troubles(&self, seen: &mut Seen) {
        let wanted = self.wanted(seen);
        let incomplete: Vec<Trouble> = wanted
            .iter()
            .filter_map(|id| {
                let missing = seen.stored.missing(seen.manifests.get(id)?);
                (!missing.is_empty()).then(|| Trouble::IncompleteGeneration {
                    id: id.clone(),
                    missing,
                })
            })
            .collect();
        seen.troubles.settle(
            |t| t.kind() == TroubleKind::IncompleteGeneration,
            incomplete,
        );
        let gone = |t: &Trouble| {
            matches!(
                t.kind(),
                TroubleKind::DownloadFailed | TroubleKind::DiskFull
            ) && !t
                .generation()
                .is_some_and(|g| wanted.iter().any(|w| w == g))
        };
        seen.troubles.settle(gone, vec![]);
        seen.failed.retain(|id, _| wanted.contains(id));
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
        let busy = seen.holding.as_ref().is_some_and(|(_, h)| !h.is_finished());
        if !busy {
            if let Some((id, h)) = seen.holding.take() {
                if !h.join().unwrap_or(false) {
                    seen.unholdable.insert(id);
                }
            }
        }
        let held_here = self
            .store
            .list()
            .unwrap_or_default()
            .iter()
            .any(|g| g == prev);
        if busy
            || serving.as_deref() != Some(p.live.as_str())
            || live.holds_ready(prev)
            || seen.unholdable.contains(prev)
            || !held_here
        {
            return;
        }
        let held = prev.to_owned();
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
                    Ok(index) => {
                        live.hold_ready(index);
                        true
                    }
                    Err(e) => {
                        tracing::warn!(generation = %prev, "cannot hold the fleet's previous generation ready (not tried again; a rollback to it verifies it as a reload does): {e}");
                        false
                    }
                }
            });
        match spawned {
            Ok(h) => seen.holding = Some((held, h)),
            Err(e) => tracing::warn!("cannot start a thread to hold the previous generation: {e}"),
        }
    }

    /// Downloads the generation `manifest` describes, watching the pointer meanwhile.
    fn fetch(
        &self,
        manifest: &Manifest,
        seen: &mut Seen,
    ) -> Result<(Fetched, VerifiedIndex, Duration), FleetError> {
        let started = Instant::now();
        let mut looked = Instant::now();
        let to = Destination {
            store: &self.store,
            serving: self.live.as_deref(),
        };
        let (fetched, verified) = download_verified(
            &*self.remote,
            to,
            manifest,
            &self.key,
            self.free_bytes,
            &mut || {
                // Between files and pieces of one: a pointer that moved to a generation held
                // here (a rollback) goes live now, not after this download; read at the
                // poll's pace, not once a file (a generation has thousands, most of them
                // linked in microseconds) or a piece.
                if looked.elapsed() >= POINTER_POLL {
                    self.watch_pointer(seen);
                    // A fault met meanwhile shows now, not when the download ends; and the
                    // replica's state goes on being written (`fleet status` said "seen 12 s
                    // ago" of every replica through a download, and would not say a
                    // rollback meanwhile had gone live).
                    self.tell_troubles(seen);
                    self.write_state(seen);
                    looked = Instant::now();
                }
            },
        )?;
        Ok((fetched, verified, started.elapsed()))
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

    /// Tells the server's health what is sealed here; returns it.
    fn say_ready(&self) -> Vec<String> {
        let ready = self.store.list().unwrap_or_default();
        self.health.update(|h| h.ready = ready.clone());
        ready
    }

    fn write_state(&self, seen: &mut Seen) {
        let ready = self.say_ready();
        let state = ReplicaState {
            format: 1,
            replica: self.replica.clone(),
            ready,
            live: (self.serving)().or_else(|| self.store.current().ok().flatten()),
            at_ms: unix_now_ms(),
            trouble: seen.troubles.summary(),
        };
        let same = seen.written.as_ref().is_some_and(|(w, at)| {
            at.elapsed() < self.pace.state_every
                && w.ready == state.ready
                && w.live == state.live
                && w.trouble == state.trouble
        });
        if same {
            return;
        }
        let written = state.write(&*self.remote);
        let trouble = written.as_ref().err().map(|e| Trouble::StateUnwritable {
            why: format!("{}: {e}", keys::replica(&self.replica)),
        });
        seen.troubles
            .settle_kind(TroubleKind::StateUnwritable, trouble);
        if written.is_ok() {
            seen.written = Some((state, Instant::now()));
        }
    }
}
