//! Finding the snapshots of a build (docs/delivery.md#layout): `insurers.csv` and, per listed insurer,
//! the newest `SNAPSHOTS/<insurer_number>/<YYYYMMDD>.csv`.

use super::decode::{decode, Source};
use super::dir_scan::{scan_insurer_dir, sorted_entries, Scan, ScanCache};
use super::error::SnapshotError;
use super::read::record_line;
use crate::domain::text::quote_raw;
use crate::domain::{text, Date, InsurerKind, InsurerNumber, PayerNumber};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const INSURERS_FILE: &str = "insurers.csv";

/// One line of `insurers.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsurerEntry {
    pub number: InsurerNumber,
    pub name: String,
    pub kind: InsurerKind,
    /// Line in `insurers.csv`.
    pub line: u64,
}

/// One snapshot file: where it is and the date its name gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub path: PathBuf,
    /// Relative to the snapshots directory, `/`-separated (`131045/20260401.csv`).
    pub rel_path: Arc<str>,
    pub date: Date,
}

impl SnapshotFile {
    /// The snapshots directory this file was found in: `path` ends in `rel_path`
    /// (`<insurer>/<file>`, or `kohi/<payer>/<file>` for a register).
    pub fn snapshots_root(&self) -> &Path {
        root_of(&self.path, &self.rel_path)
    }
}

/// The time a change file's name gives (`YYYYMMDD-hhmmss`, in Japan), or the time a build
/// takes as "now" to refuse change files from the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeTime {
    pub date: Date,
    pub second_of_day: u32,
}

impl ChangeTime {
    const DAY_SECONDS: u32 = 86_400;

    /// Now in Japan (Asia/Tokyo, UTC+9, no daylight saving).
    pub fn now_jst() -> ChangeTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let jst = secs + 9 * 3600;
        ChangeTime {
            date: Date::from_unix_secs_jst(secs),
            second_of_day: jst.rem_euclid(i64::from(Self::DAY_SECONDS)) as u32,
        }
    }

    /// The last second of `date`: "now" for a build dated with `--date`.
    pub fn end_of(date: Date) -> ChangeTime {
        ChangeTime {
            date,
            second_of_day: Self::DAY_SECONDS - 1,
        }
    }

    /// A build's "now" for change files: the current time in Japan when the build is dated
    /// today, else the end of its day (a build dated ahead or back with `--date` takes every
    /// change file of that day).
    pub fn for_build(built_on: Date) -> ChangeTime {
        let now = ChangeTime::now_jst();
        if now.date == built_on {
            now
        } else {
            ChangeTime::end_of(built_on)
        }
    }

    /// `YYYYMMDD-hhmmss` with a real date and time of day.
    pub fn parse(stem: &str) -> Option<ChangeTime> {
        let (day, time) = stem.split_once('-')?;
        if day.len() != 8 || time.len() != 6 || !text::is_ascii_digits(day) {
            return None;
        }
        if !text::is_ascii_digits(time) {
            return None;
        }
        let part = |r: std::ops::Range<usize>| time[r].parse::<u32>().ok();
        let (h, m, sec) = (part(0..2)?, part(2..4)?, part(4..6)?);
        if h > 23 || m > 59 || sec > 59 {
            return None;
        }
        Some(ChangeTime {
            date: Date::parse(day).ok()?,
            second_of_day: h * 3600 + m * 60 + sec,
        })
    }
}

impl fmt::Display for ChangeTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.second_of_day;
        write!(
            f,
            "{} {:02}:{:02}:{:02} JST",
            self.date,
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }
}

/// Where an insurer's change files are: `<insurer>/changes/`.
pub const CHANGES_DIR: &str = "changes";

/// One change file (異動): where it is and the time its name gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFile {
    pub path: PathBuf,
    /// Relative to the snapshots directory (`131045/changes/20260401-101500.csv`).
    pub rel_path: Arc<str>,
    pub time: ChangeTime,
}

impl ChangeFile {
    /// The snapshots directory: `path` ends in `rel_path` (`<insurer>/changes/<file>`, or
    /// `kohi/<payer>/changes/<file>` for a register's).
    pub fn snapshots_root(&self) -> &Path {
        root_of(&self.path, &self.rel_path)
    }
}

/// The directory `path` was found in, given its path `rel` relative to it.
fn root_of<'p>(path: &'p Path, rel: &str) -> &'p Path {
    path.ancestors()
        .nth(Path::new(rel).components().count())
        .unwrap_or_else(|| Path::new("."))
}

/// What a build reads for one listed insurer: its newest snapshot (if any) and the change
/// files to apply on it, in name order. An insurer with change files and no snapshot starts
/// empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsurerDelivery {
    pub insurer: InsurerEntry,
    pub snapshot: Option<SnapshotFile>,
    /// Older `YYYYMMDD.csv` files of this insurer, not read.
    pub older: usize,
    /// Change files timed on or after the snapshot's day and not after the build's "now".
    pub changes: Vec<ChangeFile>,
    /// Change files timed before the snapshot's day: listed in the report, not applied.
    pub superseded: Vec<ChangeFile>,
}

impl InsurerDelivery {
    /// The plain snapshot a build reads when there are no change files to apply.
    pub fn snapshot(&self) -> Option<InsurerSnapshot> {
        self.snapshot.clone().map(|file| InsurerSnapshot {
            insurer: self.insurer.clone(),
            file,
            older: self.older,
        })
    }
}

/// A listed insurer and the snapshot a build reads for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsurerSnapshot {
    pub insurer: InsurerEntry,
    pub file: SnapshotFile,
    /// Older `YYYYMMDD.csv` files of this insurer, not read.
    pub older: usize,
}

/// What a build should report besides rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Listed in `insurers.csv` but no `YYYYMMDD.csv` in its directory (or no directory).
    InsurerWithoutSnapshot { insurer: InsurerNumber },
    /// A directory that is not a listed insurer. `newest` is the file a build would have read:
    /// account for its rows under F4 with `account_rejected_file`.
    UnlistedDirectory {
        dir: Arc<str>,
        insurer: Option<InsurerNumber>,
        newest: Option<SnapshotFile>,
    },
    /// A file or directory where only `YYYYMMDD.csv` files (or insurer directories) belong.
    BadFileName { path: Arc<str> },
    /// A column of `insurers.csv` that is not `insurer_number`, `insurer_name` or `kind`.
    UnknownInsurersColumn { column: String },
    /// Two files of one insurer and one date (`20261124.csv`, `20261124.CSV`): `read` is
    /// read (the last by name), `ignored` not.
    SameDate { read: Arc<str>, ignored: Arc<str> },
    /// A snapshot file dated after the build's date (a mistyped name, say `20621124.csv`):
    /// not read, or it would win as the newest for as long as its date lies ahead.
    FutureSnapshot { path: Arc<str>, built_on: Date },
    /// A `.csv` file in a `changes/` directory not named `YYYYMMDD-hhmmss.csv`: not read.
    BadChangeFileName { path: Arc<str> },
    /// A file in a `changes/` directory whose name does not end `.csv` (a file still being
    /// written, say): not read.
    IgnoredChangeFile { path: Arc<str> },
    /// A change file timed before the day of its insurer's newest snapshot, which already
    /// holds it: not applied.
    SupersededChange { path: Arc<str>, snapshot: Arc<str> },
    /// A change file timed after the build's "now": not applied until a build after its time.
    FutureChange { path: Arc<str>, now: ChangeTime },
    /// Change files in the directory of an insurer `insurers.csv` does not list: not read.
    UnlistedChanges { dir: Arc<str>, files: usize },
    /// Listed in `kohi/payers.csv` but no `YYYYMMDD.csv` in its directory.
    PayerWithoutRegister { payer: PayerNumber },
    /// A directory under `kohi/` that is not a listed payer. `newest` is the file a build
    /// would have read: its rows are accounted for under F4.
    UnlistedPayerDirectory {
        dir: Arc<str>,
        newest: Option<SnapshotFile>,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::InsurerWithoutSnapshot { insurer } => {
                write!(f, "insurer {insurer} is listed but has no snapshot")
            }
            Finding::UnlistedDirectory { dir, newest, .. } => {
                write!(f, "directory {dir} is not a listed insurer")?;
                match newest {
                    Some(file) => write!(f, "; its newest snapshot {} is not read", file.rel_path),
                    None => write!(f, " and holds no snapshot"),
                }
            }
            Finding::BadFileName { path } => {
                write!(
                    f,
                    "{path} is not named <insurer_number>/YYYYMMDD.csv; ignored"
                )
            }
            Finding::UnknownInsurersColumn { column } => {
                write!(
                    f,
                    "{INSURERS_FILE}: unknown column {} ignored",
                    quote_raw(column)
                )
            }
            Finding::SameDate { read, ignored } => {
                write!(
                    f,
                    "{ignored} has the date of {read}, which is read; {ignored} is not"
                )
            }
            Finding::FutureSnapshot { path, built_on } => {
                write!(
                    f,
                    "{path} is dated after the build date {built_on}; not read (a mistyped date?)"
                )
            }
            Finding::BadChangeFileName { path } => write!(
                f,
                "{path} is not named <insurer_number>/changes/YYYYMMDD-hhmmss.csv; not read"
            ),
            Finding::IgnoredChangeFile { path } => write!(
                f,
                "{path} does not end in .csv; not read (a change file still being written?)"
            ),
            Finding::SupersededChange { path, snapshot } => write!(
                f,
                "{path} is timed before the day of the snapshot {snapshot}; superseded, not applied"
            ),
            Finding::UnlistedChanges { dir, files } => write!(
                f,
                "directory {dir} is not a listed insurer; its {files} change files are not read"
            ),
            Finding::PayerWithoutRegister { payer } => {
                write!(f, "public-expense payer {payer} is listed but has no register")
            }
            Finding::UnlistedPayerDirectory { dir, newest } => {
                write!(f, "directory {dir} is not a payer listed in kohi/payers.csv")?;
                match newest {
                    Some(file) => write!(f, "; its newest register {} is not read", file.rel_path),
                    None => write!(f, " and holds no register"),
                }
            }
            Finding::FutureChange { path, now } => write!(
                f,
                "{path} is timed after the build's time {now}; not applied yet (a build after that time applies it)"
            ),
        }
    }
}

/// Everything a build reads, in insurer order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub insurers: Vec<InsurerEntry>,
    /// The newest snapshot of each listed insurer that has one.
    pub snapshots: Vec<InsurerSnapshot>,
    /// Each listed insurer with a snapshot or a change file to apply: what its state is made of.
    pub deliveries: Vec<InsurerDelivery>,
    pub findings: Vec<Finding>,
}

/// Reads `insurers.csv`. Any bad line fails the whole list (see the module docs for why).
pub fn read_insurers(path: &Path) -> Result<Vec<InsurerEntry>, SnapshotError> {
    read_insurers_reporting(path).map(|(entries, _)| entries)
}

/// Columns of `insurers.csv`: (name, position).
struct InsurerColumns {
    number: usize,
    name: usize,
    kind: usize,
    width: usize,
}

fn read_insurers_reporting(path: &Path) -> Result<(Vec<InsurerEntry>, Vec<String>), SnapshotError> {
    let source = Source::open(path)?;
    let decoded = decode(source.bytes()).map_err(|why| SnapshotError::Undecodable {
        path: path.to_owned(),
        why,
    })?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(decoded.text.as_bytes());
    let mut records = rdr.byte_records();
    let header = match records.next() {
        Some(h) => h.map_err(|e| csv_error(path, &e))?,
        None => {
            return Err(SnapshotError::NoHeader {
                path: path.to_owned(),
            })
        }
    };
    let (cols, unknown) = insurer_columns(path, &header)?;
    let mut entries: Vec<InsurerEntry> = Vec::new();
    let mut seen: BTreeMap<InsurerNumber, u64> = BTreeMap::new();
    for rec in records {
        let rec = rec.map_err(|e| csv_error(path, &e))?;
        let line = record_line(decoded.text.as_bytes(), &rec);
        let entry = insurer_entry(path, &rec, &cols, line)?;
        if let Some(first) = seen.insert(entry.number, line) {
            return Err(bad_line(
                path,
                line,
                "insurer_number",
                format!("{} listed twice (first on line {first})", entry.number),
            ));
        }
        entries.push(entry);
    }
    Ok((entries, unknown))
}

fn insurer_columns(
    path: &Path,
    header: &csv::ByteRecord,
) -> Result<(InsurerColumns, Vec<String>), SnapshotError> {
    let (mut number, mut name, mut kind) = (None, None, None);
    let mut unknown = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let col = String::from_utf8_lossy(raw);
        let slot = match col.trim().to_ascii_lowercase().as_str() {
            "insurer_number" => &mut number,
            "insurer_name" => &mut name,
            "kind" => &mut kind,
            _ => {
                unknown.push(col.trim().to_owned());
                continue;
            }
        };
        if slot.replace(i).is_some() {
            return Err(SnapshotError::DuplicateColumn {
                path: path.to_owned(),
                column: col.trim().to_owned(),
            });
        }
    }
    let missing = |column| SnapshotError::MissingColumn {
        path: path.to_owned(),
        column,
    };
    let cols = InsurerColumns {
        number: number.ok_or_else(|| missing("insurer_number"))?,
        name: name.ok_or_else(|| missing("insurer_name"))?,
        kind: kind.ok_or_else(|| missing("kind"))?,
        width: header.len(),
    };
    Ok((cols, unknown))
}

fn insurer_entry(
    path: &Path,
    rec: &csv::ByteRecord,
    cols: &InsurerColumns,
    line: u64,
) -> Result<InsurerEntry, SnapshotError> {
    if rec.len() != cols.width {
        return Err(bad_line(
            path,
            line,
            "row",
            format!("{} fields where the header has {}", rec.len(), cols.width),
        ));
    }
    let field = |i: usize| std::str::from_utf8(rec.get(i).unwrap_or_default()).unwrap_or("");
    let raw_number = field(cols.number);
    let number = InsurerNumber::parse(raw_number).map_err(|e| {
        bad_line(
            path,
            line,
            "insurer_number",
            format!("{} {e}", quote_raw(raw_number)),
        )
    })?;
    let name = field(cols.name).trim_matches(text::is_space);
    if name.is_empty() {
        return Err(bad_line(path, line, "insurer_name", "is empty".to_owned()));
    }
    let raw_kind = field(cols.kind);
    let kind = InsurerKind::parse(raw_kind).ok_or_else(|| {
        bad_line(
            path,
            line,
            "kind",
            format!(
                "{} is not one of kyokai, senin, kumiai, kyosai, kokuho, kokuho_kumiai, koki",
                quote_raw(raw_kind)
            ),
        )
    })?;
    Ok(InsurerEntry {
        number,
        name: name.to_owned(),
        kind,
        line,
    })
}

pub(super) fn bad_line(
    path: &Path,
    line: u64,
    field: &'static str,
    reason: String,
) -> SnapshotError {
    SnapshotError::InsurerLine {
        path: path.to_owned(),
        line,
        field,
        reason,
    }
}

fn csv_error(path: &Path, e: &csv::Error) -> SnapshotError {
    SnapshotError::Csv {
        path: path.to_owned(),
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    }
}

/// Reads `insurers.csv` and picks, for each listed insurer, its newest snapshot dated on or
/// before `built_on`, and the change files timed from that snapshot's day to the end of
/// `built_on`.
pub fn discover(snapshots_dir: &Path, built_on: Date) -> Result<Discovery, SnapshotError> {
    discover_at(snapshots_dir, ChangeTime::end_of(built_on))
}

/// [`discover`] as of `now`: a snapshot dated after `now`'s day, or a change file timed after
/// `now`, is not read.
pub fn discover_at(snapshots_dir: &Path, now: ChangeTime) -> Result<Discovery, SnapshotError> {
    discover_scanned(snapshots_dir, now, None)
}

/// [`discover_at`], taking each insurer directory's scan from `scans` while it holds (a
/// watch's: see [`ScanCache`]).
pub fn discover_scanned(
    snapshots_dir: &Path,
    now: ChangeTime,
    scans: Option<&ScanCache>,
) -> Result<Discovery, SnapshotError> {
    let built_on = now.date;
    let (insurers, unknown_columns) = read_insurers_reporting(&snapshots_dir.join(INSURERS_FILE))?;
    let mut findings: Vec<Finding> = unknown_columns
        .into_iter()
        .map(|column| Finding::UnknownInsurersColumn { column })
        .collect();
    let listed: BTreeMap<InsurerNumber, &InsurerEntry> =
        insurers.iter().map(|e| (e.number, e)).collect();
    // Several directories could name one insurer (e.g. full-width digits); pool their files.
    let mut files: BTreeMap<InsurerNumber, Scan> = BTreeMap::new();
    let mut seen = scans.map(|_| std::collections::HashSet::new());
    for (name, path, is_dir) in sorted_entries(snapshots_dir)? {
        if is_dir && name == super::kohi::KOHI_DIR {
            // The public-expense registers: `kohi::discover_kohi` reads them.
            continue;
        }
        if !is_dir {
            if name != INSURERS_FILE {
                findings.push(Finding::BadFileName { path: name.into() });
            }
            continue;
        }
        let mut scan = match scans {
            Some(cache) => cache.scan(&path, &name)?,
            None => scan_insurer_dir(&path, &name)?,
        };
        if let Some(seen) = seen.as_mut() {
            seen.insert(path.clone());
        }
        findings.append(&mut scan.findings);
        let insurer = InsurerNumber::parse(&name).ok();
        match insurer.filter(|n| listed.contains_key(n)) {
            Some(n) => files.entry(n).or_default().extend(scan),
            None => {
                if !scan.changes.is_empty() {
                    findings.push(Finding::UnlistedChanges {
                        dir: name.as_str().into(),
                        files: scan.changes.len(),
                    });
                }
                findings.push(Finding::UnlistedDirectory {
                    dir: name.into(),
                    insurer,
                    newest: scan.dated.into_iter().max_by(newest_first_order),
                })
            }
        }
    }
    if let (Some(cache), Some(seen)) = (scans, seen) {
        cache.retain(&seen);
    }
    let mut snapshots = Vec::new();
    let mut deliveries = Vec::new();
    for entry in &insurers {
        let scan = files.remove(&entry.number).unwrap_or_default();
        let (newest, older) = newest_dated(scan.dated, built_on, &mut findings);
        let (changes, superseded) = sort_changes(scan.changes, newest.as_ref(), now, &mut findings);
        let delivery = InsurerDelivery {
            insurer: entry.clone(),
            snapshot: newest,
            older,
            changes,
            superseded,
        };
        match delivery.snapshot() {
            Some(s) => snapshots.push(s),
            None if delivery.changes.is_empty() => findings.push(Finding::InsurerWithoutSnapshot {
                insurer: entry.number,
            }),
            None => {}
        }
        if delivery.snapshot.is_some() || !delivery.changes.is_empty() {
            deliveries.push(delivery);
        }
    }
    Ok(Discovery {
        insurers,
        snapshots,
        deliveries,
        findings,
    })
}

/// The newest of a directory's dated files on or before `built_on`, and how many older ones
/// there are; a file dated later is noted and not read, and so is a second file of the
/// newest date.
pub(super) fn newest_dated(
    dated: Vec<SnapshotFile>,
    built_on: Date,
    findings: &mut Vec<Finding>,
) -> (Option<SnapshotFile>, usize) {
    let (mut dated, future): (Vec<_>, Vec<_>) = dated.into_iter().partition(|f| f.date <= built_on);
    findings.extend(future.into_iter().map(|f| Finding::FutureSnapshot {
        path: f.rel_path,
        built_on,
    }));
    dated.sort_by(newest_first_order);
    let newest = dated.pop();
    if let Some(file) = &newest {
        findings.extend(
            dated
                .iter()
                .filter(|f| f.date == file.date)
                .map(|f| Finding::SameDate {
                    read: file.rel_path.clone(),
                    ignored: f.rel_path.clone(),
                }),
        );
    }
    (newest, dated.len())
}

/// Splits an insurer's change files into those to apply (in name order) and those its
/// snapshot supersedes; those timed after `now` are neither, and noted.
pub(super) fn sort_changes(
    mut changes: Vec<ChangeFile>,
    snapshot: Option<&SnapshotFile>,
    now: ChangeTime,
    findings: &mut Vec<Finding>,
) -> (Vec<ChangeFile>, Vec<ChangeFile>) {
    // Name order is time order; the name breaks a tie (`….csv` before `….CSV`).
    changes.sort_by(|a, b| (a.time, &a.rel_path).cmp(&(b.time, &b.rel_path)));
    let mut apply = Vec::new();
    let mut superseded = Vec::new();
    for c in changes {
        if c.time > now {
            findings.push(Finding::FutureChange {
                path: c.rel_path.clone(),
                now,
            });
        } else if let Some(s) = snapshot.filter(|s| c.time.date < s.date) {
            findings.push(Finding::SupersededChange {
                path: c.rel_path.clone(),
                snapshot: s.rel_path.clone(),
            });
            superseded.push(c);
        } else {
            apply.push(c);
        }
    }
    (apply, superseded)
}

/// Orders by date, then by path so that two names of one date pick deterministically.
pub(super) fn newest_first_order(a: &SnapshotFile, b: &SnapshotFile) -> std::cmp::Ordering {
    (a.date, &a.rel_path).cmp(&(b.date, &b.rel_path))
}

#[cfg(test)]
mod tests {
    use super::super::dir_scan::snapshot_date;
    use super::*;

    #[test]
    fn snapshot_file_names() {
        let check = |name: &str, expected: Option<&str>| {
            assert_eq!(
                snapshot_date(name).map(|d| d.to_string()),
                expected.map(str::to_owned),
                "{name}"
            )
        };
        check("20260401.csv", Some("2026-04-01"));
        check("20260401.CSV", Some("2026-04-01"));
        check("20260431.csv", None);
        check("2026041.csv", None);
        check("3450123.csv", None);
        check("20260401.csv.bak", None);
        check("20260401", None);
        check("２０２６０４０１.csv", None);
        check("notes.txt", None);
    }

    #[test]
    fn change_file_names() {
        let check = |stem: &str, expected: Option<&str>| {
            assert_eq!(
                ChangeTime::parse(stem).map(|t| t.to_string()),
                expected.map(str::to_owned),
                "{stem}"
            )
        };
        check("20260401-101500", Some("2026-04-01 10:15:00 JST"));
        check("20260401-000000", Some("2026-04-01 00:00:00 JST"));
        check("20260401-235959", Some("2026-04-01 23:59:59 JST"));
        check("20260401-240000", None);
        check("20260401-236000", None);
        check("20260401-235960", None);
        check("20260431-101500", None);
        check("20260401-10150", None);
        check("20260401101500", None);
        check("20260401-1015a0", None);
        check("20260401-+10150", None);
        check("20260401", None);
    }
}
