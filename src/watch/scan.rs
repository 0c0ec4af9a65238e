//! What the snapshots directory holds: every `.csv` file (insurers.csv, snapshots, change
//! files, the public-expense registers) with its size and modification time, found by
//! polling. A directory is listed again only when its modification time moved (a file
//! renamed in or out moves it), or while that time is recent: a file system stamps times at
//! its clock's tick, so two renames within one tick leave one time, and a listing taken
//! between them would otherwise hide the second for good (git's "racily clean" entries).
//!
//! Polling, not inotify: deliveries often land on a network share, whose writers inotify does
//! not see; one inotify watch per directory (about 7,000 at national scale, each insurer's
//! own and its `changes/`) runs into the per-user watch limit; and a poll that stats only the
//! directories costs a few milliseconds each quarter second (perf/RESULTS.md).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A directory whose time is younger than this when listed is listed again next poll.
const RACY: Duration = Duration::from_secs(2);
/// The deepest directory listed: SNAPSHOTS/kohi/<payer>/changes (a register's change files;
/// an insurer's are one level up, in SNAPSHOTS/<insurer>/changes).
const DEPTH_MAX: usize = 3;

/// A file's size and modification time (ns since the epoch).
pub type Identity = (u64, u128);

/// Every `.csv` file under the root, by path relative to it.
pub type Files = BTreeMap<PathBuf, Identity>;

struct Listed {
    mtime: SystemTime,
    at: SystemTime,
    csv: Vec<(String, Identity)>,
    dirs: Vec<String>,
}

/// The root's directories as last listed.
pub struct Scanner {
    root: PathBuf,
    listed: HashMap<PathBuf, Listed>,
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl Scanner {
    pub fn new(root: &Path) -> Scanner {
        Scanner {
            root: root.to_owned(),
            listed: HashMap::new(),
        }
    }

    /// The `.csv` files now. Fails only when the root itself cannot be read; a directory
    /// below that vanishes meanwhile holds nothing.
    pub fn scan(&mut self) -> io::Result<Files> {
        let mut seen = HashMap::new();
        let mut files = Files::new();
        let mut todo = vec![(PathBuf::new(), 0)];
        while let Some((rel, depth)) = todo.pop() {
            let listed = match self.list(&rel, depth) {
                Ok(l) => l,
                Err(e) if depth > 0 && e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for (name, id) in &listed.csv {
                files.insert(rel.join(name), *id);
            }
            todo.extend(listed.dirs.iter().map(|d| (rel.join(d), depth + 1)));
            seen.insert(rel, listed);
        }
        self.listed = seen;
        Ok(files)
    }

    /// Directory `rel`'s listing: the last one while its time has not moved and is old.
    fn list(&mut self, rel: &Path, depth: usize) -> io::Result<Listed> {
        let dir = self.root.join(rel);
        let mtime = fs::metadata(&dir)?.modified()?;
        if let Some(old) = self.listed.remove(rel) {
            let settled = old
                .at
                .duration_since(old.mtime)
                .is_ok_and(|age| age >= RACY);
            if old.mtime == mtime && settled {
                return Ok(old);
            }
        }
        let at = SystemTime::now();
        let mut csv = Vec::new();
        let mut dirs = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not a name a delivery uses; the build reports it
            };
            let Ok(meta) = entry.metadata() else {
                continue; // renamed away meanwhile
            };
            if meta.is_dir() && depth < DEPTH_MAX {
                dirs.push(name);
            } else if meta.is_file() && name.ends_with(".csv") {
                let modified = meta.modified().map_or(0, nanos);
                csv.push((name, (meta.len(), modified)));
            }
        }
        Ok(Listed {
            mtime,
            at,
            csv,
            dirs,
        })
    }
}

/// The files of `now` that are new or differ from `before`, and those gone.
pub fn changed(before: &Files, now: &Files) -> Vec<PathBuf> {
    let differ = now.iter().filter(|(p, id)| before.get(*p) != Some(id));
    let gone = before.keys().filter(|p| !now.contains_key(*p));
    differ
        .map(|(p, _)| p.clone())
        .chain(gone.cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: &Files) -> Vec<String> {
        files.keys().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn sees_renamed_csv_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("01130012/changes")).unwrap();
        fs::write(root.join("insurers.csv"), "x").unwrap();
        fs::write(root.join("01130012/20261101.csv"), "x").unwrap();
        let mut scanner = Scanner::new(root);
        let before = scanner.scan().unwrap();
        assert_eq!(names(&before), ["01130012/20261101.csv", "insurers.csv"]);
        // A file being written under another name is not seen; renamed into place, it is,
        // at once (the directory's time is recent, so it is listed again).
        let part = root.join("01130012/changes/20261110-090000.csv.part");
        fs::write(&part, "row").unwrap();
        assert!(changed(&before, &scanner.scan().unwrap()).is_empty());
        let landed = root.join("01130012/changes/20261110-090000.csv");
        fs::rename(&part, &landed).unwrap();
        let now = scanner.scan().unwrap();
        assert_eq!(
            changed(&before, &now),
            [PathBuf::from("01130012/changes/20261110-090000.csv")]
        );
        fs::remove_file(&landed).unwrap();
        assert_eq!(scanner.scan().unwrap(), before);
        // A register's change files are seen; deeper directories are not a delivery's.
        fs::create_dir_all(root.join("kohi/54136015/changes/old")).unwrap();
        fs::write(root.join("kohi/54136015/changes/old/x.csv"), "x").unwrap();
        assert_eq!(scanner.scan().unwrap(), before);
        fs::write(root.join("kohi/54136015/changes/20261110-090000.csv"), "x").unwrap();
        assert_eq!(
            changed(&before, &scanner.scan().unwrap()),
            [PathBuf::from("kohi/54136015/changes/20261110-090000.csv")]
        );
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Scanner::new(&dir.path().join("none")).scan().is_err());
    }
}
