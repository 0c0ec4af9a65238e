//! Index generations in a data directory (docs/operations.md#the-nightly-cycle):
//!
//! ```text
//! DATA/CURRENT                      names the live generation (replaced atomically by rename)
//! DATA/generations/<id>/index.shk   the index file
//! DATA/generations/<id>/report.json the build report
//! DATA/generations/<id>/rejects.csv rows rejected, warnings and cross-check findings
//! DATA/refused/<id>/                builds the delivery guard refused, kept for inspection
//! DATA/tmp/                         builds in progress and directories being deleted; never
//!                                   published, emptied by the next build or gc
//! ```
//!
//! A generation directory is written under `tmp/`, fsynced, then renamed into `generations/`;
//! only then is `CURRENT` replaced (write `CURRENT.tmp`, fsync, rename, fsync the directory).
//! Nothing here ever modifies a published generation; gc takes one out of `generations/` by
//! renaming it into `tmp/` before deleting it, so none is ever seen half deleted.

use crate::domain::text::quote_raw;
use crate::domain::PersonKey;
use crate::index::{MappedIndex, OpenError};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub mod manifest;
pub use manifest::GenerationKind;
#[cfg(test)]
mod tests;

pub const INDEX_FILE: &str = "index.shk";
pub const REPORT_FILE: &str = "report.json";
pub const REJECTS_FILE: &str = "rejects.csv";
/// A signed generation's manifest (every file's size and xxh3), byte for byte what its
/// signature covers (`crate::signing`; FORMAT.md).
pub const MANIFEST_FILE: &str = "manifest.json";
/// The signature over [`MANIFEST_FILE`].
pub const SIGNATURE_FILE: &str = "manifest.sig";
pub const CURRENT_FILE: &str = "CURRENT";
/// Locked by whoever changes the data directory ([`Store::lock`]).
pub const LOCK_FILE: &str = "LOCK";
/// Where the build keeps a build the delivery guard refused (`DATA/refused/<id>/`).
pub const REFUSED_DIR: &str = "refused";

/// The fix when `CURRENT` cannot say which generation is live.
const MAKE_ONE_LIVE: &str = "make one live with `shikaku generations rollback --to <id>` (`shikaku generations list` shows the ids)";

/// The data directory taken for a change; released when dropped.
#[derive(Debug)]
pub struct StoreLock(#[allow(dead_code)] fs::File);

#[derive(Debug, Error)]
pub enum StoreError {
    /// A generation's directory holds another generation's index (a copy under a new name):
    /// served, it would report another id than CURRENT names, and a server would reload it
    /// again and again.
    #[error("{path} holds generation {}, not {id}: a copy under another name; publish a generation under its own id (or rebuild)", quote_raw(found))]
    Misnamed {
        path: String,
        id: String,
        found: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("data directory {path} does not exist; give the --data of `shikaku build`")]
    NoData { path: String },
    #[error(
        "{path} does not exist: no generation has been published yet; run `shikaku build` first"
    )]
    NothingPublished { path: String },
    #[error("{path} does not exist, so no generation is live; {MAKE_ONE_LIVE}")]
    NoCurrent { path: String },
    #[error(
        "cannot read {path} ({source}), so which generation is live is unknown; {MAKE_ONE_LIVE}"
    )]
    UnreadableCurrent {
        path: String,
        #[source]
        source: io::Error,
    },
    /// `CURRENT` could not be opened for want of a descriptor: nothing is wrong with it or
    /// the generation, so the fix is the limit, not a rollback.
    #[error("cannot open {path} ({source}): the process has no file descriptor left, which says nothing about {path} or the generation it names; raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) or hold fewer connections, then try again")]
    CurrentNoDescriptor {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} holds {}, which is not a generation id; {MAKE_ONE_LIVE}",
        quote_raw(content)
    )]
    BadCurrent { path: String, content: String },
    #[error(
        "{path} names generation {}, which is not in {dir}; {MAKE_ONE_LIVE}",
        quote_raw(id)
    )]
    DanglingCurrent {
        path: String,
        id: String,
        dir: String,
    },
    #[error("{path} names generation {id}, which is incomplete: {missing} does not exist; {MAKE_ONE_LIVE}")]
    CurrentIncomplete {
        path: String,
        id: String,
        missing: String,
    },
    #[error(
        "there is no generation {} in {dir}; `shikaku generations list` shows the ids",
        quote_raw(id)
    )]
    UnknownGeneration { id: String, dir: String },
    #[error("generation {id} is incomplete: {missing} does not exist; `shikaku generations list` shows the complete generations")]
    Incomplete { id: String, missing: String },
    #[error("no generation was live before {live}; name one to roll back to (`shikaku generations list`)")]
    NothingBefore { live: String },
    #[error("another build, rollback or gc is at work on this data directory (it holds {path}); wait for it to finish: two at once would remove each other's work")]
    Busy { path: String },
    #[error("{} is not a valid generation id (ids look like g20261128-184207-984; `shikaku generations list` shows them)", quote_raw(.0))]
    BadId(String),
    #[error("gc removed nothing: {0}")]
    GcRefused(#[source] Box<StoreError>),
    #[error("gc removed nothing: the live generation {id} fails verification ({source}); the older generations may be the way back: roll back first (`shikaku generations rollback`), then gc")]
    LiveUnverified {
        id: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("cannot move {from} to {to} to delete it ({source}); nothing of it was removed")]
    Move {
        from: String,
        to: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove {path} ({source}); once that is fixed, the next build or gc removes what is left of it")]
    Remove {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Open(#[from] OpenError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// What a gc removed, oldest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub generations: Vec<String>,
    /// Directories in `generations/` without their index file: left half-deleted by a gc of
    /// an earlier version (builds are sealed whole, so nothing else leaves one).
    pub incomplete: Vec<String>,
    /// Builds the delivery guard refused (`DATA/refused/<id>`).
    pub refused: Vec<String>,
}

/// A data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Generation ids are ASCII, sortable by time: `gYYYYMMDD-HHMMSS-NNN` in UTC+9.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Fails with [`StoreError::NoData`] unless the data directory exists: a mistyped
    /// `--data` would otherwise read as a store where nothing was ever built.
    pub fn require_root(&self) -> Result<(), StoreError> {
        if self.root.is_dir() {
            Ok(())
        } else {
            Err(StoreError::NoData {
                path: shown(&self.root),
            })
        }
    }

    /// Takes the data directory for a change (a build, a rollback, a gc), or fails at once
    /// with [`StoreError::Busy`] while another process has it: a build begins by removing
    /// unfinished builds, which would be the other build's work. The lock is the OS's on
    /// `DATA/LOCK` and ends with the returned handle, or with the process however it ends.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let path = self.root.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(StoreLock(file)),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Busy {
                path: path.display().to_string(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    pub fn generations_dir(&self) -> PathBuf {
        self.root.join("generations")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn refused_dir(&self) -> PathBuf {
        self.root.join(REFUSED_DIR)
    }

    pub fn current_path(&self) -> PathBuf {
        self.root.join(CURRENT_FILE)
    }

    pub fn generation_dir(&self, id: &str) -> PathBuf {
        self.generations_dir().join(id)
    }

    pub fn index_path(&self, id: &str) -> PathBuf {
        self.generation_dir(id).join(INDEX_FILE)
    }

    /// The id `CURRENT` holds, or `None` when there is no `CURRENT`; whether that generation
    /// exists is [`Store::live`]'s question.
    pub fn current(&self) -> Result<Option<String>, StoreError> {
        let path = self.current_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                return Err(StoreError::CurrentNoDescriptor {
                    path: shown(&path),
                    source,
                })
            }
            Err(source) => {
                return Err(StoreError::UnreadableCurrent {
                    path: shown(&path),
                    source,
                })
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let id = text.trim();
        if !valid_id(id) {
            return Err(StoreError::BadCurrent {
                path: shown(&path),
                content: id.to_owned(),
            });
        }
        Ok(Some(id.to_owned()))
    }

    /// The live generation: the complete one `CURRENT` names. The errors name `CURRENT` and
    /// the fix when it is missing, unreadable, not an id, or names no complete generation.
    pub fn live(&self) -> Result<String, StoreError> {
        let Some(id) = self.current()? else {
            return Err(self.why_no_current());
        };
        let path = shown(&self.current_path());
        match self.locate(&id) {
            Ok(_) => Ok(id),
            Err(StoreError::UnknownGeneration { id, dir }) => {
                Err(StoreError::DanglingCurrent { path, id, dir })
            }
            Err(StoreError::Incomplete { id, missing }) => {
                Err(StoreError::CurrentIncomplete { path, id, missing })
            }
            Err(e) => Err(e),
        }
    }

    /// Why there is no `CURRENT`: no data directory, nothing published yet, or it was lost.
    fn why_no_current(&self) -> StoreError {
        if let Err(e) = self.require_root() {
            return e;
        }
        let path = shown(&self.current_path());
        match self.list() {
            Ok(ids) if ids.is_empty() => StoreError::NothingPublished { path },
            Ok(_) => StoreError::NoCurrent { path },
            Err(e) => e,
        }
    }

    /// The index file of generation `id`, which must be a complete generation.
    fn locate(&self, id: &str) -> Result<PathBuf, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId(id.to_owned()));
        }
        self.require_root()?;
        let index = self.index_path(id);
        if index.is_file() {
            Ok(index)
        } else if self.generation_dir(id).is_dir() {
            Err(StoreError::Incomplete {
                id: id.to_owned(),
                missing: shown(&index),
            })
        } else {
            Err(StoreError::UnknownGeneration {
                id: id.to_owned(),
                dir: shown(&self.generations_dir()),
            })
        }
    }

    /// Opens the live generation's index (structure checked, checksums not yet).
    pub fn open_current(&self, key: PersonKey) -> Result<MappedIndex, StoreError> {
        self.open_named(&self.live()?, key)
    }

    /// Opens generation `id`'s index (structure checked, checksums not yet), whatever id it
    /// carries (the store's own tests keep copies of one build under several names).
    pub fn open(&self, id: &str, key: PersonKey) -> Result<MappedIndex, StoreError> {
        let path = self.locate(id)?;
        Ok(MappedIndex::open_file(&path, key)?)
    }

    /// [`Store::open`], refusing a directory whose index carries another id: what a server
    /// serves reports the id that CURRENT names, or the server would see CURRENT name
    /// another generation than the one it serves and reload it again and again.
    pub fn open_named(&self, id: &str, key: PersonKey) -> Result<MappedIndex, StoreError> {
        self.open_named_after(id, key, None)
    }

    /// [`Store::open_named_after`] for a caller done with `parent`
    /// (`MappedIndex::open_file_from`).
    pub fn open_named_from(
        &self,
        id: &str,
        key: PersonKey,
        parent: MappedIndex,
    ) -> Result<MappedIndex, StoreError> {
        let index = MappedIndex::open_file_from(&self.locate(id)?, key, parent)?;
        self.named(id, index)
    }

    /// [`Store::open_named`], starting from `parent` when generation `id` is a child of it
    /// (`MappedIndex::open_file_after`).
    pub fn open_named_after(
        &self,
        id: &str,
        key: PersonKey,
        parent: Option<&MappedIndex>,
    ) -> Result<MappedIndex, StoreError> {
        let index = match parent {
            Some(parent) => MappedIndex::open_file_after(&self.locate(id)?, key, parent)?,
            None => self.open(id, key)?,
        };
        self.named(id, index)
    }

    /// `index`, opened as generation `id`, unless it carries another id.
    fn named(&self, id: &str, index: MappedIndex) -> Result<MappedIndex, StoreError> {
        if index.generation() != id {
            return Err(StoreError::Misnamed {
                path: shown(&self.index_path(id)),
                id: id.to_owned(),
                found: index.generation().to_owned(),
            });
        }
        Ok(index)
    }

    /// Opens generation `id` and checks every checksum, as a server does before serving it.
    pub fn open_verified(&self, id: &str, key: PersonKey) -> Result<MappedIndex, StoreError> {
        // Every file, on every core: nothing is known verified to a fresh set.
        self.open_verified_known(id, key, &crate::index::VerifiedSegments::default())
    }

    /// [`Self::open_verified`], checking only the files `known` does not hold (and adding
    /// them to it).
    pub fn open_verified_known(
        &self,
        id: &str,
        key: PersonKey,
        known: &crate::index::VerifiedSegments,
    ) -> Result<MappedIndex, StoreError> {
        let index = self.open(id, key)?;
        index
            .verify_new(known)
            .map_err(|e| OpenError::Format(shown(&self.index_path(id)), e))?;
        Ok(index)
    }

    /// Published generations, oldest first.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        ids_in(&self.generations_dir(), |dir| {
            dir.join(INDEX_FILE).is_file()
        })
    }

    /// Directories of `generations/` that hold no index file, oldest first.
    pub fn incomplete(&self) -> Result<Vec<String>, StoreError> {
        ids_in(&self.generations_dir(), |dir| {
            dir.is_dir() && !dir.join(INDEX_FILE).is_file()
        })
    }

    /// Builds the delivery guard refused, kept in `refused/`, oldest first.
    pub fn refused(&self) -> Result<Vec<String>, StoreError> {
        ids_in(&self.refused_dir(), Path::is_dir)
    }

    /// A fresh directory under `tmp/` for a build in progress.
    pub fn begin(&self, id: &str) -> Result<PathBuf, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId(id.to_owned()));
        }
        let dir = self.tmp_dir().join(id);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(dir)
    }

    /// Removes what `tmp/` holds: builds that never finished (a crash or kill leaves them)
    /// and what a gc failed to delete. What cannot be removed is logged and left: it must not
    /// stop builds. Returns how many entries were removed.
    pub fn clean_tmp(&self) -> Result<usize, StoreError> {
        let dir = self.tmp_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in entries.filter_map(|e| e.ok()) {
            // A leftover that cannot be removed (permissions) is left for the operator, said
            // in the log: it must not stop every later build from starting.
            match remove_tree(&e.path()) {
                Ok(()) => n += 1,
                Err(err) => tracing::warn!("cannot remove a leftover: {err}"),
            }
        }
        Ok(n)
    }

    /// Moves a finished, fsynced build from `tmp/<id>` to `generations/<id>`. Not yet live.
    pub fn seal(&self, id: &str) -> Result<PathBuf, StoreError> {
        let from = self.tmp_dir().join(id);
        for name in [INDEX_FILE, REPORT_FILE, REJECTS_FILE] {
            let p = from.join(name);
            if p.exists() {
                fsync_file(&p)?;
            }
        }
        // Segment files are fsynced where they are written; their directory entries (new
        // files and hard links) are made durable here.
        for sub in [crate::format::SEGMENTS_DIR, crate::format::LAYERS_DIR] {
            let dir = from.join(sub);
            if dir.is_dir() {
                fsync_dir(&dir)?;
            }
        }
        fsync_dir(&from)?;
        let gens = self.generations_dir();
        fs::create_dir_all(&gens).map_err(io_err(&gens))?;
        let to = self.generation_dir(id);
        fs::rename(&from, &to).map_err(io_err(&to))?;
        fsync_dir(&gens)?;
        Ok(to)
    }

    /// Makes `id` live by atomically replacing `CURRENT`.
    pub fn publish(&self, id: &str) -> Result<(), StoreError> {
        self.locate(id)?;
        let tmp = self.root.join("CURRENT.tmp");
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(format!("{id}\n").as_bytes())
                .map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        let current = self.current_path();
        fs::rename(&tmp, &current).map_err(io_err(&current))?;
        fsync_dir(&self.root)?;
        // Pair assertion: what we published is what a reader now sees.
        debug_assert_eq!(self.current().ok().flatten().as_deref(), Some(id));
        Ok(())
    }
}

impl Store {
    /// The generation published before the live one (the rollback target by default), or
    /// `None` when the live one is the oldest.
    pub fn previous(&self) -> Result<Option<String>, StoreError> {
        Ok(self.older_than(&self.live()?)?.pop())
    }

    /// Generations older than `live`, oldest first: ids sort by time.
    fn older_than(&self, live: &str) -> Result<Vec<String>, StoreError> {
        let mut ids = self.list()?;
        ids.retain(|id| id.as_str() < live);
        Ok(ids)
    }

    /// Makes a generation live again after verifying every checksum of it: `to`, or the one
    /// before the live one. A named one can be made live whatever `CURRENT` holds (the fix
    /// for a lost or damaged `CURRENT`).
    pub fn rollback(&self, to: Option<&str>, key: PersonKey) -> Result<String, StoreError> {
        let target = match to {
            Some(id) => id.to_owned(),
            None => {
                let live = self.live()?;
                self.older_than(&live)?
                    .pop()
                    .ok_or(StoreError::NothingBefore { live })?
            }
        };
        drop(self.open_verified(&target, key)?);
        self.publish(&target)?;
        Ok(target)
    }

    /// Deletes all but the newest `keep` generations, never the live one nor one newer than
    /// it: after a rollback, the generation rolled back from stays for inspection and for
    /// rolling forward, until a later build goes live. Refused builds beyond the newest
    /// `keep` go too. A server still mapping a removed index keeps reading it (unlinked
    /// inodes stay valid until unmapped).
    ///
    /// Removes nothing unless `CURRENT` names a generation that passes verification: when
    /// the live one is damaged, the older ones may be the way back.
    pub fn gc(&self, keep: usize, key: PersonKey) -> Result<Collected, StoreError> {
        self.gc_known(keep, key, &crate::index::VerifiedSegments::default())
    }

    /// [`Self::gc`], where the live generation's files `known` holds as verified (by an
    /// earlier check of this process: a watch verifies off its loop, then collects) are not
    /// verified again.
    pub fn gc_known(
        &self,
        keep: usize,
        key: PersonKey,
        known: &crate::index::VerifiedSegments,
    ) -> Result<Collected, StoreError> {
        let check = |live: &str| self.open_verified_known(live, key, known).map(drop);
        self.collect(check, keep, self.oldest_beyond(keep)?)
    }

    /// [`Self::gc`] by the builder that wrote and verified the live generation `built` (a
    /// watch, right after its build): that generation is not read again. Any other live
    /// generation is checked whole first, as `gc` does.
    pub fn gc_built(
        &self,
        keep: usize,
        key: PersonKey,
        built: &str,
    ) -> Result<Collected, StoreError> {
        let check = |live: &str| match live == built {
            true => Ok(()),
            false => self.open_verified(live, key).map(drop),
        };
        self.collect(check, keep, self.oldest_beyond(keep)?)
    }

    /// A pick of the oldest generations beyond the newest `keep`.
    fn oldest_beyond(
        &self,
        keep: usize,
    ) -> Result<impl FnOnce(Vec<String>) -> Vec<String>, StoreError> {
        let excess = self.list()?.len().saturating_sub(keep);
        Ok(move |older: Vec<String>| older.into_iter().take(excess).collect())
    }

    /// As [`Self::gc`], but the generations older than the live one that go are those
    /// `keep` refuses, whatever their age: a fleet's replica keeps the fleet's previous
    /// generation, which is not always the newest before the live one (after a rollback, or
    /// a promote of an older generation). Refused builds and leftovers go as in `gc`.
    pub fn gc_where(
        &self,
        keep: impl Fn(&str) -> bool,
        key: PersonKey,
    ) -> Result<Collected, StoreError> {
        let kept = self.list()?.iter().filter(|g| keep(g)).count();
        let check = |live: &str| self.open_verified(live, key).map(drop);
        self.collect(check, kept, |older| {
            older.into_iter().filter(|g| !keep(g)).collect()
        })
    }

    /// What `gc` and `gc_where` share: `pick` chooses, among the generations older than the
    /// live one (oldest first), those to remove; `keep_refused` refused builds are kept.
    fn collect(
        &self,
        check: impl FnOnce(&str) -> Result<(), StoreError>,
        keep_refused: usize,
        pick: impl FnOnce(Vec<String>) -> Vec<String>,
    ) -> Result<Collected, StoreError> {
        let older = match self.live() {
            Ok(live) => {
                check(&live).map_err(|e| StoreError::LiveUnverified {
                    id: live.clone(),
                    source: Box::new(e),
                })?;
                self.older_than(&live)?
            }
            // Nothing was ever published: no generation to remove, refused builds maybe.
            Err(StoreError::NothingPublished { .. }) => Vec::new(),
            Err(e) => return Err(StoreError::GcRefused(Box::new(e))),
        };
        let mut collected = Collected::default();
        for id in pick(older) {
            self.discard(&self.generation_dir(&id), &format!("gc-generation-{id}"))?;
            collected.generations.push(id);
        }
        for id in self.incomplete()? {
            self.discard(&self.generation_dir(&id), &format!("gc-incomplete-{id}"))?;
            collected.incomplete.push(id);
        }
        let refused = self.refused()?;
        let excess = refused.len().saturating_sub(keep_refused);
        for id in refused.into_iter().take(excess) {
            self.discard(&self.refused_dir().join(&id), &format!("gc-refused-{id}"))?;
            collected.refused.push(id);
        }
        self.clean_tmp()?;
        Ok(collected)
    }

    /// Deletes `dir` by first renaming it into `tmp/` as `name` (atomic: it leaves its
    /// place whole), then removing it there; what a failure leaves is `clean_tmp`'s.
    fn discard(&self, dir: &Path, name: &str) -> Result<(), StoreError> {
        let tmp = self.tmp_dir();
        let to = tmp.join(name);
        fs::create_dir_all(&tmp)
            .and_then(|()| fs::rename(dir, &to))
            .map_err(|source| StoreError::Move {
                from: shown(dir),
                to: shown(&to),
                source,
            })?;
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
        remove_tree(&to)
    }
}

/// The valid ids among the entries of `dir` that pass `wanted`, sorted (oldest first).
fn ids_in(dir: &Path, wanted: impl Fn(&Path) -> bool) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| wanted(&e.path()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| valid_id(id))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Deletes `path` and everything under it, not following links; an error names the exact
/// entry that could not be removed (`remove_dir_all` names only the top).
fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let is_dir = fs::symlink_metadata(path)
        .map_err(remove_err(path))?
        .is_dir();
    if is_dir {
        for entry in fs::read_dir(path).map_err(remove_err(path))? {
            remove_tree(&entry.map_err(remove_err(path))?.path())?;
        }
    }
    remove_entry(path, is_dir)
}

fn remove_entry(path: &Path, is_dir: bool) -> Result<(), StoreError> {
    #[cfg(test)]
    tests::fail_point(path).map_err(remove_err(path))?;
    if is_dir {
        fs::remove_dir(path).map_err(remove_err(path))
    } else {
        fs::remove_file(path).map_err(remove_err(path))
    }
}

fn remove_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Remove {
        path: shown(path),
        source,
    }
}

fn fsync_file(p: &Path) -> Result<(), StoreError> {
    File::open(p).and_then(|f| f.sync_all()).map_err(io_err(p))
}

fn fsync_dir(p: &Path) -> Result<(), StoreError> {
    File::open(p).and_then(|f| f.sync_all()).map_err(io_err(p))
}

/// A new generation id from the current time in Japan: `gYYYYMMDD-HHMMSS-mmm`.
pub fn new_generation_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64 + 9 * 3600;
    let day = crate::domain::Date::from_days(secs.div_euclid(86_400) as i32);
    let s = secs.rem_euclid(86_400);
    format!(
        "g{}-{:02}{:02}{:02}-{:03}",
        day.to_compact(),
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_millis()
    )
}
