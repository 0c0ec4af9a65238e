//! Index generations in a data directory (SPEC 7):
//!
//! ```text
//! DATA/CURRENT                      names the live generation (replaced atomically by rename)
//! DATA/generations/<id>/index.shk   the index file
//! DATA/generations/<id>/report.json the build report
//! DATA/generations/<id>/rejects.csv rows rejected, warnings and cross-check findings
//! DATA/tmp/                         builds in progress; never published, cleaned by the next build
//! ```
//!
//! A generation directory is written under `tmp/`, fsynced, then renamed into `generations/`;
//! only then is `CURRENT` replaced (write `CURRENT.tmp`, fsync, rename, fsync the directory).
//! Nothing here ever modifies a published generation.

use crate::domain::PersonKey;
use crate::index::{MappedIndex, OpenError};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const INDEX_FILE: &str = "index.shk";
pub const REPORT_FILE: &str = "report.json";
pub const REJECTS_FILE: &str = "rejects.csv";
pub const CURRENT_FILE: &str = "CURRENT";
/// Locked by whoever changes the data directory ([`Store::lock`]).
pub const LOCK_FILE: &str = "LOCK";

/// The data directory taken for a change; released when dropped.
#[derive(Debug)]
pub struct StoreLock(#[allow(dead_code)] fs::File);

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{0} names no generation; run `shikaku build` first")]
    NoCurrent(String),
    #[error("{path} names generation {id:?}, which does not exist; roll back with `shikaku generations rollback`")]
    MissingGeneration { path: String, id: String },
    #[error("no generation was live before {live}; name one to roll back to (`shikaku generations list`)")]
    NothingBefore { live: String },
    #[error("another build, rollback or gc is at work on this data directory (it holds {path}); wait for it to finish: two at once would remove each other's work")]
    Busy { path: String },
    #[error("{0:?} is not a valid generation id")]
    BadId(String),
    #[error(transparent)]
    Open(#[from] OpenError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
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

    pub fn current_path(&self) -> PathBuf {
        self.root.join(CURRENT_FILE)
    }

    pub fn generation_dir(&self, id: &str) -> PathBuf {
        self.generations_dir().join(id)
    }

    pub fn index_path(&self, id: &str) -> PathBuf {
        self.generation_dir(id).join(INDEX_FILE)
    }

    /// The live generation's id, or `None` before the first publish.
    pub fn current(&self) -> Result<Option<String>, StoreError> {
        let path = self.current_path();
        match fs::read_to_string(&path) {
            Ok(s) => {
                let id = s.trim().to_owned();
                if !valid_id(&id) {
                    return Err(StoreError::BadId(id));
                }
                Ok(Some(id))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Opens the live generation's index (structure checked, checksums not yet).
    pub fn open_current(&self, key: PersonKey) -> Result<MappedIndex, StoreError> {
        let id = self
            .current()?
            .ok_or_else(|| StoreError::NoCurrent(self.current_path().display().to_string()))?;
        self.open(&id, key)
    }

    pub fn open(&self, id: &str, key: PersonKey) -> Result<MappedIndex, StoreError> {
        let path = self.index_path(id);
        if !path.exists() {
            return Err(StoreError::MissingGeneration {
                path: self.current_path().display().to_string(),
                id: id.to_owned(),
            });
        }
        Ok(MappedIndex::open_file(&path, key)?)
    }

    /// Published generations, oldest first.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.generations_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(INDEX_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| valid_id(id))
            .collect();
        ids.sort();
        Ok(ids)
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

    /// Removes builds that never finished (a crash or kill leaves them in `tmp/`).
    pub fn clean_tmp(&self) -> Result<usize, StoreError> {
        let dir = self.tmp_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            let removed = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            removed.map_err(io_err(&p))?;
            n += 1;
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
        let segments = from.join(crate::format::SEGMENTS_DIR);
        if segments.is_dir() {
            fsync_dir(&segments)?;
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
        if !valid_id(id) || !self.index_path(id).is_file() {
            return Err(StoreError::MissingGeneration {
                path: self.current_path().display().to_string(),
                id: id.to_owned(),
            });
        }
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
    /// The generation published before the live one (the rollback target by default).
    pub fn previous(&self) -> Result<Option<String>, StoreError> {
        let ids = self.list()?;
        let Some(live) = self.current()? else {
            return Ok(None);
        };
        Ok(ids.iter().take_while(|id| **id != live).last().cloned())
    }

    /// Makes an older generation live again after verifying every checksum of it.
    pub fn rollback(&self, to: Option<&str>, key: PersonKey) -> Result<String, StoreError> {
        let target = match to {
            Some(id) => id.to_owned(),
            None => match (self.previous()?, self.current()?) {
                (Some(id), _) => id,
                (None, Some(live)) => return Err(StoreError::NothingBefore { live }),
                (None, None) => {
                    return Err(StoreError::NoCurrent(
                        self.current_path().display().to_string(),
                    ))
                }
            },
        };
        let index = self.open(&target, key)?;
        index.verify().map_err(|e| {
            StoreError::Open(OpenError::Format(
                self.index_path(&target).display().to_string(),
                e,
            ))
        })?;
        drop(index);
        self.publish(&target)?;
        Ok(target)
    }

    /// Deletes all but the newest `keep` generations, never the live one nor one newer than
    /// it: after a rollback, the generation rolled back from stays for inspection and for
    /// rolling forward, until a later build goes live. Returns the ids removed. A server
    /// still mapping a removed index keeps reading it (unlinked inodes stay valid until
    /// unmapped).
    pub fn gc(&self, keep: usize) -> Result<Vec<String>, StoreError> {
        let live = self.current()?;
        let ids = self.list()?;
        let excess = ids.len().saturating_sub(keep);
        // Ids sort by time, so everything from the live one on is the live one or newer.
        let older_than_live = match &live {
            Some(live) => ids.iter().take_while(|id| *id != live).count(),
            None => ids.len(),
        };
        let mut removed = Vec::new();
        for id in ids.into_iter().take(excess.min(older_than_live)) {
            let dir = self.generation_dir(&id);
            fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            removed.push(id);
        }
        self.clean_tmp()?;
        Ok(removed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = new_generation_id();
        assert!(valid_id(&id), "{id}");
        assert_eq!(id.len(), 20);
        assert!(!valid_id("../etc"));
        assert!(!valid_id(""));
    }

    #[test]
    fn publish_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.current().unwrap(), None);
        let tmp = store.begin("g1").unwrap();
        fs::write(tmp.join(INDEX_FILE), b"x").unwrap();
        store.seal("g1").unwrap();
        assert_eq!(store.list().unwrap(), vec!["g1".to_owned()]);
        store.publish("g1").unwrap();
        assert_eq!(store.current().unwrap().as_deref(), Some("g1"));
        assert!(store.publish("g2").is_err());
        store.begin("g3").unwrap();
        assert_eq!(store.clean_tmp().unwrap(), 1);
    }

    /// Four sealed generations g1..g4, `live` published; `gc(keep)` removes exactly
    /// `removed` and leaves the rest, the live one still live.
    fn check_gc(live: Option<&str>, keep: usize, removed: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let all = ["g1", "g2", "g3", "g4"];
        for id in all {
            fs::write(store.begin(id).unwrap().join(INDEX_FILE), b"x").unwrap();
            store.seal(id).unwrap();
        }
        if let Some(live) = live {
            store.publish(live).unwrap();
        }
        assert_eq!(
            store.gc(keep).unwrap(),
            removed,
            "live {live:?}, keep {keep}"
        );
        let left: Vec<&str> = all.into_iter().filter(|id| !removed.contains(id)).collect();
        assert_eq!(store.list().unwrap(), left);
        assert_eq!(store.current().unwrap().as_deref(), live);
        let before_live = left.iter().take_while(|id| Some(**id) != live).last();
        let previous = live.and(before_live.copied());
        assert_eq!(store.previous().unwrap().as_deref(), previous);
    }

    #[test]
    fn gc_keeps_the_newest_and_the_live_generation() {
        check_gc(None, 1, &["g1", "g2", "g3"]);
        check_gc(Some("g4"), 2, &["g1", "g2"]);
        check_gc(Some("g4"), 0, &["g1", "g2", "g3"]);
        check_gc(Some("g3"), 1, &["g1", "g2"]);
        check_gc(Some("g3"), 9, &[]);
        // Regression: `gc --keep 0` after a rollback deleted the generation rolled back from.
        check_gc(Some("g2"), 0, &["g1"]);
        check_gc(Some("g1"), 0, &[]);
    }
}
