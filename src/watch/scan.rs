//! What the snapshots directory holds: every `.csv` file (insurers.csv, snapshots, change
//! files, the public-expense registers) with its size and modification time, found by
//! polling. A directory is listed again only when its modification time moved (a file
//! renamed in or out moves it), or while that time is recent: a file system stamps times at
//! its clock's tick, so two renames within one tick leave one time, and a listing taken
//! between them would otherwise hide the second for good (git's "racily clean" entries).
//!
//! Polling, not inotify: deliveries often land on a network share, whose writers inotify does
//! not see; one inotify watch per directory (about 7,000 at national scale, each insurer's
//! own and its `changes/`) runs into the per-user watch limit; and a poll stats only the
//! directories and re-lists only those that moved. Its result shares each directory's
//! listing ([`Files`]): one map of every path took ≈ 1 s a poll at the nation's 338,000
//! files (perf/RESULTS.md).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// The deepest directory listed: SNAPSHOTS/kohi/<payer>/changes (a register's change files;
/// an insurer's are one level up, in SNAPSHOTS/<insurer>/changes).
const DEPTH_MAX: usize = 3;

/// A file's size and modification time (ns since the epoch).
pub type Identity = (u64, u128);

/// One directory's `.csv` files by name, sorted, with their identities.
pub type DirFiles = crate::snapshot::ListedFiles;

/// Every `.csv` file under the root, by directory relative to it. Kept per directory, each
/// listing shared with the scanner's (`Arc`): at the nation a delivery holds 338,000 files in
/// 7,000 directories, and a scan that built one map of every path took a second a poll; now
/// a scan costs a map of the directories, and comparing two scans skips every listing they
/// share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    dirs: BTreeMap<PathBuf, DirFiles>,
}

impl Files {
    pub fn new() -> Files {
        Files::default()
    }

    /// Each directory (relative to the root) and its files.
    pub fn dirs(&self) -> impl Iterator<Item = (&Path, &DirFiles)> {
        self.dirs.iter().map(|(d, f)| (d.as_path(), f))
    }

    /// Every file, by path relative to the root, directory by directory.
    pub fn iter(&self) -> impl Iterator<Item = (PathBuf, Identity)> + '_ {
        self.dirs
            .iter()
            .flat_map(|(d, f)| f.iter().map(move |(n, id)| (d.join(n), *id)))
    }

    pub fn keys(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.iter().map(|(p, _)| p)
    }

    pub fn len(&self) -> usize {
        self.dirs.values().map(|f| f.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    pub fn get(&self, path: &Path) -> Option<Identity> {
        let (dir, name) = split(path)?;
        let files = self.dirs.get(dir)?;
        let at = files.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok()?;
        Some(files[at].1)
    }

    pub fn contains_key(&self, path: &Path) -> bool {
        self.get(path).is_some()
    }

    /// Adds or replaces one file.
    pub fn insert(&mut self, path: PathBuf, id: Identity) {
        let Some((dir, name)) = split(&path) else {
            return;
        };
        let files = Arc::make_mut(self.dirs.entry(dir.to_owned()).or_default());
        match files.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(at) => files[at].1 = id,
            Err(at) => files.insert(at, (name.to_owned(), id)),
        }
    }
}

/// A relative path as (directory, file name); `None` for a name that is not UTF-8.
fn split(path: &Path) -> Option<(&Path, &str)> {
    Some((path.parent()?, path.file_name()?.to_str()?))
}

impl FromIterator<(PathBuf, Identity)> for Files {
    fn from_iter<I: IntoIterator<Item = (PathBuf, Identity)>>(files: I) -> Files {
        let mut out = Files::new();
        for (p, id) in files {
            out.insert(p, id);
        }
        out
    }
}

struct Listed {
    mtime: SystemTime,
    at: SystemTime,
    csv: DirFiles,
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
            if !listed.csv.is_empty() {
                files.dirs.insert(rel.clone(), listed.csv.clone());
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
            if old.mtime == mtime && crate::snapshot::settled(old.mtime, old.at) {
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
        csv.sort_unstable();
        Ok(Listed {
            mtime,
            at,
            csv: Arc::new(csv),
            dirs,
        })
    }
}

/// The files of `now` that are new or differ from `before`, and those gone: only the
/// directories whose listings differ are looked into.
pub fn changed(before: &Files, now: &Files) -> Vec<PathBuf> {
    let empty = DirFiles::default();
    let mut out = Vec::new();
    for (dir, files) in &now.dirs {
        let was = before.dirs.get(dir).unwrap_or(&empty);
        if was != files {
            let differ = files.iter().filter(|f| !was.contains(f));
            out.extend(differ.map(|(n, _)| dir.join(n)));
            let gone = was
                .iter()
                .filter(|(n, _)| !files.iter().any(|(m, _)| m == n));
            out.extend(gone.map(|(n, _)| dir.join(n)));
        }
    }
    for (dir, files) in &before.dirs {
        if !now.dirs.contains_key(dir) {
            out.extend(files.iter().map(|(n, _)| dir.join(n)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: &Files) -> Vec<String> {
        let mut names: Vec<String> = files.keys().map(|p| p.display().to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn files_are_kept_per_directory_and_found_by_path() {
        let mut files: Files = [
            ("a/changes/2.csv", 2),
            ("a/1.csv", 1),
            ("a/changes/1.csv", 3),
        ]
        .into_iter()
        .map(|(p, n)| (PathBuf::from(p), (n, 0)))
        .collect();
        assert_eq!(
            names(&files),
            ["a/1.csv", "a/changes/1.csv", "a/changes/2.csv"]
        );
        assert_eq!(files.get(Path::new("a/changes/2.csv")), Some((2, 0)));
        assert_eq!(files.get(Path::new("a/changes/3.csv")), None);
        let before = files.clone();
        files.insert(PathBuf::from("a/changes/2.csv"), (9, 0));
        files.insert(PathBuf::from("b/1.csv"), (1, 0));
        assert_eq!(files.len(), 4);
        assert_eq!(
            changed(&before, &files),
            [PathBuf::from("a/changes/2.csv"), PathBuf::from("b/1.csv")]
        );
        assert_eq!(
            changed(&files, &before),
            [PathBuf::from("a/changes/2.csv"), PathBuf::from("b/1.csv")]
        );
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
