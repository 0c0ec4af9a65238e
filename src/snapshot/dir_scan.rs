//! What an insurer directory holds (its dated snapshots, its `changes/`, and findings for
//! anything else), and [`ScanCache`]: insurer directories as a process last scanned them,
//! for one that discovers the same delivery build after build (a watch). At the nation a delivery holds 3,445 insurer
//! directories and, after 30 days, 334,000 change files: listing them all again took 0.6 s
//! of every change build, though a change file touches one directory. A directory's scan is
//! taken again when its modification time, or its `changes/`'s, moved (a name added, removed
//! or renamed moves it), or while that time is recent: a file system stamps times at its
//! clock's tick, so a second rename within the tick leaves the time as it was, and a scan
//! taken between the two would hide the second (git's "racily clean" entries). A scan that
//! met a symbolic link is never kept: what a link points at can change without its
//! directory's time moving.

use super::discover::{ChangeFile, ChangeTime, Finding, SnapshotFile, CHANGES_DIR};
use super::error::SnapshotError;
use crate::domain::{text, Date};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A directory entry: (name, path, is directory).
type Entry = (String, PathBuf, bool);

/// Entries of a directory, sorted by name. Names that are not UTF-8 are shown lossily; they
/// can never be insurer numbers or dates anyway.
pub(super) fn sorted_entries(dir: &Path) -> Result<Vec<Entry>, SnapshotError> {
    sorted_entries_noting_links(dir).map(|(entries, _)| entries)
}

/// [`sorted_entries`], and whether any was a symbolic link.
fn sorted_entries_noting_links(dir: &Path) -> Result<(Vec<Entry>, bool), SnapshotError> {
    let read = std::fs::read_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
    let mut out = Vec::new();
    let mut linked = false;
    for entry in read {
        let entry = entry.map_err(|e| SnapshotError::io(dir, e))?;
        let path = entry.path();
        // The entry's type from the listing (no stat: at the nation the changes directories
        // hold 334,000 files); a symbolic link is followed, so a linked directory or file
        // counts as what it points at.
        let file_type = entry.file_type().map_err(|e| SnapshotError::io(&path, e))?;
        linked |= file_type.is_symlink();
        let is_dir = match file_type.is_symlink() {
            true => std::fs::metadata(&path)
                .map_err(|e| SnapshotError::io(&path, e))?
                .is_dir(),
            false => file_type.is_dir(),
        };
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            path,
            is_dir,
        ));
    }
    out.sort();
    Ok((out, linked))
}

/// What one insurer directory holds.
#[derive(Debug, Default, Clone)]
pub(super) struct Scan {
    pub dated: Vec<SnapshotFile>,
    pub changes: Vec<ChangeFile>,
    pub findings: Vec<Finding>,
    /// An entry was a symbolic link (what it points at can change unseen: `ScanCache`).
    pub linked: bool,
}

impl Scan {
    pub(super) fn extend(&mut self, other: Scan) {
        self.dated.extend(other.dated);
        self.changes.extend(other.changes);
        self.findings.extend(other.findings);
        self.linked |= other.linked;
    }
}

/// The dated snapshot files and change files of one insurer directory, and findings for
/// anything else.
pub(super) fn scan_insurer_dir(dir: &Path, dir_name: &str) -> Result<Scan, SnapshotError> {
    let mut scan = Scan::default();
    let (entries, linked) = sorted_entries_noting_links(dir)?;
    scan.linked = linked;
    for (name, path, is_dir) in entries {
        let rel_path: Arc<str> = format!("{dir_name}/{name}").into();
        if is_dir && name == CHANGES_DIR {
            scan_changes_dir(&path, &rel_path, &mut scan)?;
            continue;
        }
        match snapshot_date(&name).filter(|_| !is_dir) {
            Some(date) => scan.dated.push(SnapshotFile {
                path,
                rel_path,
                date,
            }),
            None => scan.findings.push(Finding::BadFileName { path: rel_path }),
        }
    }
    Ok(scan)
}

/// The change files of `<insurer>/changes/`. Only names ending `.csv` are read: a writer
/// renames a complete file into place, so anything else may be a file still being written.
fn scan_changes_dir(dir: &Path, dir_rel: &str, scan: &mut Scan) -> Result<(), SnapshotError> {
    let (entries, linked) = sorted_entries_noting_links(dir)?;
    scan.linked |= linked;
    for (name, path, is_dir) in entries {
        let rel_path: Arc<str> = format!("{dir_rel}/{name}").into();
        let csv_stem = name
            .len()
            .checked_sub(4)
            .filter(|&i| name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case(".csv"))
            .map(|i| &name[..i]);
        match (csv_stem, is_dir) {
            (Some(stem), false) => match ChangeTime::parse(stem) {
                Some(time) => scan.changes.push(ChangeFile {
                    path,
                    rel_path,
                    time,
                }),
                None => scan
                    .findings
                    .push(Finding::BadChangeFileName { path: rel_path }),
            },
            (None, false) => scan
                .findings
                .push(Finding::IgnoredChangeFile { path: rel_path }),
            (_, true) => scan.findings.push(Finding::BadFileName { path: rel_path }),
        }
    }
    Ok(())
}

/// `YYYYMMDD.csv` (extension in any case) naming a real date.
pub(super) fn snapshot_date(file_name: &str) -> Option<Date> {
    let (stem, ext) = file_name.split_once('.')?;
    if !ext.eq_ignore_ascii_case("csv") || stem.len() != 8 || !text::is_ascii_digits(stem) {
        return None;
    }
    Date::parse(stem).ok()
}

/// A directory whose time is younger than this when listed is listed again next time.
const RACY: Duration = Duration::from_secs(2);

/// Whether a listing of a directory taken `at`, when its modification time was `mtime`,
/// holds while that time does not move: the time was already older than a file system
/// clock's tick (see the module docs). The watch's scanner and [`ScanCache`] both ask this.
pub fn settled(mtime: SystemTime, at: SystemTime) -> bool {
    at.duration_since(mtime).is_ok_and(|age| age >= RACY)
}

/// Scans of insurer directories, each with the modification times it was taken at.
#[derive(Debug, Default)]
pub struct ScanCache {
    dirs: Mutex<HashMap<PathBuf, Kept>>,
}

#[derive(Debug)]
struct Kept {
    stamps: Stamps,
    scan: Scan,
}

/// The modification times of an insurer directory and of its `changes/` (none: absent).
type Stamps = (SystemTime, Option<SystemTime>);

impl ScanCache {
    pub fn new() -> ScanCache {
        ScanCache::default()
    }

    /// How many directories' scans are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Kept>> {
        // A panic while holding the lock left at worst a missing entry: scanned again.
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Insurer directory `dir`'s scan (`dir_name`: its name in the snapshots directory):
    /// the kept one while both its times are as they were and old enough, else a new one.
    pub(super) fn scan(&self, dir: &Path, dir_name: &str) -> Result<Scan, SnapshotError> {
        let stamps = stamps(dir)?;
        if let Some(kept) = self.lock().get(dir) {
            if kept.stamps == stamps {
                return Ok(kept.scan.clone());
            }
        }
        let at = SystemTime::now();
        let scan = scan_insurer_dir(dir, dir_name)?;
        let keep = !scan.linked && settled(stamps.0, at) && stamps.1.is_none_or(|t| settled(t, at));
        let mut dirs = self.lock();
        match keep {
            true => dirs.insert(
                dir.to_owned(),
                Kept {
                    stamps,
                    scan: scan.clone(),
                },
            ),
            false => dirs.remove(dir),
        };
        Ok(scan)
    }

    /// Forgets the directories not in `seen` (an insurer directory removed from the delivery).
    pub(super) fn retain(&self, seen: &std::collections::HashSet<PathBuf>) {
        self.lock().retain(|dir, _| seen.contains(dir));
    }
}

fn stamps(dir: &Path) -> Result<Stamps, SnapshotError> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified());
    let own = modified(dir).map_err(|e| SnapshotError::io(dir, e))?;
    let changes = dir.join(CHANGES_DIR);
    let changes = match modified(&changes) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(SnapshotError::io(&changes, e)),
    };
    Ok((own, changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(scan: &Scan) -> Vec<String> {
        let mut out: Vec<String> = scan.dated.iter().map(|f| f.rel_path.to_string()).collect();
        out.extend(scan.changes.iter().map(|c| c.rel_path.to_string()));
        out.extend(scan.findings.iter().map(ToString::to_string));
        out
    }

    fn set_old(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(60);
        fs::File::open(path).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn a_listing_holds_once_its_directory_was_two_seconds_old() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let check = |age_ms: i64, expected: bool| {
            let at = match age_ms >= 0 {
                true => t + Duration::from_millis(age_ms as u64),
                false => t - Duration::from_millis(age_ms.unsigned_abs()),
            };
            assert_eq!(settled(t, at), expected, "{age_ms} ms");
        };
        check(2_000, true);
        check(60_000, true);
        check(1_999, false);
        check(0, false);
        check(-1, false); // a time in the future (a clock set back): never trusted
    }

    #[test]
    fn a_scan_is_kept_while_its_directory_is_old_and_unmoved() {
        let dir = tempfile::tempdir().unwrap();
        let ins = dir.path().join("06040018");
        fs::create_dir_all(ins.join("changes")).unwrap();
        fs::write(ins.join("20261101.csv"), "x").unwrap();
        fs::write(ins.join("changes/20261102-090000.csv"), "x").unwrap();
        let cache = ScanCache::new();
        // Just written: too recent to keep.
        let first = cache.scan(&ins, "06040018").unwrap();
        assert!(cache.is_empty());
        set_old(&ins);
        set_old(&ins.join("changes"));
        assert_eq!(names(&cache.scan(&ins, "06040018").unwrap()), names(&first));
        assert_eq!(cache.len(), 1);
        // A change file renamed in moves `changes/`'s time: scanned again, and (recent) not kept.
        fs::write(ins.join("changes/20261102-100000.csv"), "x").unwrap();
        let now = cache.scan(&ins, "06040018").unwrap();
        assert_eq!(now.changes.len(), 2);
        assert!(cache.is_empty());
        // A kept scan is what a new scan finds, even once the times are old again.
        set_old(&ins.join("changes"));
        let kept = cache.scan(&ins, "06040018").unwrap();
        assert_eq!(
            names(&kept),
            names(&scan_insurer_dir(&ins, "06040018").unwrap())
        );
        assert_eq!(names(&cache.scan(&ins, "06040018").unwrap()), names(&kept));
        // Gone: an error, as a scan without the cache.
        fs::remove_dir_all(&ins).unwrap();
        assert!(cache.scan(&ins, "06040018").is_err());
    }

    #[test]
    fn a_directory_with_a_link_is_never_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ins = dir.path().join("06040018");
        fs::create_dir_all(&ins).unwrap();
        fs::write(dir.path().join("elsewhere.csv"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere.csv"), ins.join("20261101.csv"))
            .unwrap();
        set_old(&ins);
        let cache = ScanCache::new();
        assert_eq!(cache.scan(&ins, "06040018").unwrap().dated.len(), 1);
        assert!(cache.is_empty());
    }
}
