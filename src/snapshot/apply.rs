//! An insurer's state (docs/delivery.md#change-files): its newest snapshot's records, then its
//! change files applied in name order. [`State`] applies one [`Change`] (C1, C2);
//! [`apply_change_file`] one file (C4, per-file accounting); [`materialize`] a whole delivery,
//! which the build indexes and `shikaku materialize` writes as a plain snapshot.

use super::change::{read_changes_bytes, Change, ChangeRow, ChangeRows, Changeable, CHANGE_COLUMN};
use super::decode::{Encoding, Source};
use super::discover::{ChangeFile, ChangeTime, InsurerDelivery};
use super::error::SnapshotError;
use super::read::{account_rejected_file, count_rows, read_snapshot, FileContext};
use super::types::{FileSummary, Issue, RowOutcome, Rule, RuleCounts};
use crate::domain::{Date, InsurerNumber, Record};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// One insurer's records (or one payer's certificates), keyed for changes. Records keep
/// their order: a changed record stays in its place, an added one goes last (the order a
/// materialized snapshot lists them in).
#[derive(Debug, Clone)]
pub struct State<T: Changeable = Record> {
    records: Vec<Option<T>>,
    /// The last position pushed of each key's hash; `next` chains the earlier ones. Records
    /// on a chain are compared with the key itself, so a collision costs a comparison, never
    /// a wrong record; and keys are not held twice (a large insurer's state would grow by
    /// half). A snapshot may hold one key more than once (an exact duplicate, or an X2 card
    /// conflict): a change then applies to each of them.
    heads: HashMap<u64, u32>,
    next: Vec<u32>,
    /// Records in the state (`records` less the removed ones).
    live: usize,
    /// Rows no longer in the state: records an `update` replaced or a `delete` removed, and
    /// the `lose` and `delete` rows themselves, which make no record of their own.
    replaced: u64,
}

impl<T: Changeable> Default for State<T> {
    fn default() -> State<T> {
        State {
            records: Vec::new(),
            heads: HashMap::new(),
            next: Vec::new(),
            live: 0,
            replaced: 0,
        }
    }
}

/// The end of a chain. A segment holds fewer records than this (its counts are 32-bit).
const END: u32 = u32::MAX;

/// Why a change could not be applied: C1 or C2, and the reason.
pub type Refusal = (Rule, String);

fn key_hash<K: Hash>(key: &K) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    key.hash(&mut h);
    h.finish()
}

impl<T: Changeable> State<T> {
    pub fn new(records: impl IntoIterator<Item = T>) -> State<T> {
        let mut state = State::default();
        for r in records {
            state.push(r);
        }
        state
    }

    fn push(&mut self, r: T) {
        let hash = key_hash(&r.key());
        let at = u32::try_from(self.records.len()).unwrap_or(END);
        self.next.push(self.heads.insert(hash, at).unwrap_or(END));
        self.records.push(Some(r));
        self.live += 1;
    }

    /// Positions of the records of `key` in the state, ascending.
    fn positions(&self, key: &T::Key) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = self.heads.get(&key_hash(key)).copied().unwrap_or(END);
        while let Some(i) = usize::try_from(at).ok().filter(|_| at != END) {
            if let Some(Some(r)) = self.records.get(i) {
                if r.key() == *key {
                    out.push(i);
                }
            }
            at = self.next.get(i).copied().unwrap_or(END);
        }
        out.reverse();
        out
    }

    pub fn contains(&self, key: &T::Key) -> bool {
        !self.positions(key).is_empty()
    }

    /// Applies one change, or says why not (C1, C2); a refused change changes nothing.
    pub fn apply(&mut self, change: Change<T>) -> Result<(), Refusal> {
        let key = change.key();
        let at = self.positions(&key);
        match (change, at.split_first()) {
            (Change::Add(record), None) => self.push(record),
            (Change::Add(_), Some(_)) => {
                return Err((
                    Rule::C2,
                    format!("add of {}, which exists", T::describe(&key)),
                ))
            }
            (other, None) => {
                return Err((
                    Rule::C1,
                    format!(
                        "{} of {}, which does not exist",
                        other.kind().as_str(),
                        T::describe(&key)
                    ),
                ))
            }
            (Change::Update(record), Some((&first, rest))) => {
                // The first keeps the record's place (and its place on the key's chain).
                self.replaced += at.len() as u64;
                self.remove(rest);
                if let Some(slot) = self.records.get_mut(first) {
                    *slot = Some(record);
                }
            }
            (Change::Lose { loss, .. }, Some(_)) => {
                self.replaced += 1;
                for &i in &at {
                    if let Some(Some(r)) = self.records.get_mut(i) {
                        r.lose(&loss);
                    }
                }
            }
            (Change::Delete(_), Some(_)) => {
                self.replaced += at.len() as u64 + 1;
                self.remove(&at);
            }
        }
        Ok(())
    }

    fn remove(&mut self, positions: &[usize]) {
        for &i in positions {
            if let Some(slot) = self.records.get_mut(i) {
                self.live -= usize::from(slot.take().is_some());
            }
        }
    }

    /// Records removed from the state (by an `update` of a key held more than once, or a
    /// `delete`): every record after one removed moves up a place.
    pub fn removed(&self) -> usize {
        self.records.len() - self.live
    }

    pub fn records(&self) -> impl Iterator<Item = &T> {
        self.records.iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// See the field: rows read = records + replaced + rejected holds for the state.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// Every record pushed, in order: `None` where one was removed.
    pub fn into_slots(self) -> Vec<Option<T>> {
        self.records
    }

    pub fn into_records(self) -> Vec<T> {
        self.records.into_iter().flatten().collect()
    }
}

/// The largest change file read: 256 MiB, about 1.5 million rows, some thirty times a day's
/// changes for the whole country. A change file is read whole into memory before any row is
/// applied; one larger is refused unread (F3), its insurer's state unchanged by it.
pub const MAX_CHANGE_FILE_BYTES: u64 = 256 << 20;

/// A change file's bytes, read once: what is hashed is what is applied.
#[derive(Debug, Clone)]
pub struct ChangeInput {
    pub file: ChangeFile,
    pub bytes: Vec<u8>,
    /// xxh3 of the bytes: how a later build knows the file it applied from another of the
    /// same name.
    pub xxh3: u64,
    /// Why the file was refused unread (F3: not a regular file, or a link out of the
    /// snapshots directory), as a snapshot file would be.
    pub refused: Option<String>,
    /// The file's (size, modification time) taken before it was read: a later build that
    /// finds the same name and identity takes the recorded hash instead of reading the file
    /// again ((0, 0) when unknown, which never matches).
    pub identity: (u64, u64),
}

/// A file's (size in bytes, modification time in ns since the epoch): how a build knows a
/// file unchanged without reading it.
pub fn file_identity(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let m = std::fs::metadata(path)?;
    let mtime = m
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Ok((m.len(), mtime))
}

/// One directory's files as a caller listed them: (name, (size, modification time in ns)),
/// sorted by name.
pub type ListedFiles = std::sync::Arc<Vec<(String, (u64, u128))>>;

/// Sizes and modification times (ns) of delivery files, by directory relative to the
/// snapshots directory, as a caller listed them just before a build (a watch's poll): the
/// build takes a change file's identity from here rather than asking the file system again
/// (at the nation, 334,000 stats a build). A file the listing lacks is asked for. A file
/// rewritten in place after the listing keeps its listed identity until listed again, as the
/// watch sees it.
#[derive(Debug, Default)]
pub struct Identities {
    listed: std::collections::HashMap<String, ListedFiles>,
}

impl Identities {
    /// Identities from a listing: each directory (relative path) and its files.
    pub fn listed(dirs: impl IntoIterator<Item = (String, ListedFiles)>) -> Identities {
        Identities {
            listed: dirs.into_iter().collect(),
        }
    }

    /// `file`'s (size, modification time): as listed, else from the file system.
    pub fn of(&self, file: &ChangeFile) -> std::io::Result<(u64, u64)> {
        self.of_path(&file.rel_path, &file.path)
    }

    /// The file at `path` (`rel_path` in the snapshots directory): as [`Self::of`].
    pub fn of_path(&self, rel_path: &str, path: &std::path::Path) -> std::io::Result<(u64, u64)> {
        let listed = rel_path.rsplit_once('/').and_then(|(dir, name)| {
            let files = self.listed.get(dir)?;
            let at = files.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok()?;
            let (bytes, mtime) = files[at].1;
            Some((bytes, mtime as u64))
        });
        match listed {
            Some(identity) => Ok(identity),
            None => file_identity(path),
        }
    }
}

impl ChangeInput {
    /// Reads a change file whole (a regular file inside the snapshots directory, as a
    /// snapshot). A file gone or unreadable is an error naming it: the state would lack its
    /// changes. A pipe, device, link out of the delivery or file over
    /// [`MAX_CHANGE_FILE_BYTES`] is refused unread (F3).
    pub fn read(file: &ChangeFile) -> Result<ChangeInput, SnapshotError> {
        // Before the read: a file replaced after it has another identity next time.
        let identity = file_identity(&file.path).unwrap_or((0, 0));
        let source =
            Source::open_within_at_most(&file.path, file.snapshots_root(), MAX_CHANGE_FILE_BYTES);
        let (bytes, refused) = match source {
            Ok(source) => (source.into_bytes(), None),
            Err(e @ SnapshotError::Io { .. }) => return Err(e),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        Ok(ChangeInput {
            file: file.clone(),
            xxh3: xxhash_rust::xxh3::xxh3_64(&bytes),
            bytes,
            refused,
            identity,
        })
    }

    pub fn read_all(files: &[ChangeFile]) -> Result<Vec<ChangeInput>, SnapshotError> {
        files.iter().map(ChangeInput::read).collect()
    }
}

/// The accounting of one change file: `rows_read == applied + rejected` always.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSummary {
    pub file: Arc<str>,
    pub time: ChangeTime,
    pub xxh3: u64,
    /// `None` when the file was not decoded (F1).
    pub encoding: Option<Encoding>,
    pub rows_read: u64,
    pub applied: u64,
    pub rejected: u64,
    pub by_rule: RuleCounts,
    /// Set when the whole file was rejected (F1, F2, F3): nothing of it applied.
    pub file_reject: Option<Issue>,
}

impl ChangeSummary {
    pub fn balanced(&self) -> bool {
        self.rows_read == self.applied + self.rejected
    }
}

/// A change file's rows as [`apply_change_file`] reads them (`Err` when the file is rejected
/// whole), for a caller that looks at the rows before it applies them with [`apply_file`].
pub fn read_change_input(
    input: &ChangeInput,
    insurer: InsurerNumber,
) -> Result<ChangeRows, SnapshotError> {
    read_changes_bytes(&input.bytes, &context(input, insurer))
}

fn context(input: &ChangeInput, insurer: InsurerNumber) -> FileContext {
    FileContext {
        file: input.file.rel_path.clone(),
        path: input.file.path.clone(),
        insurer,
        // "Today" for R4, W2 and W3 is the day the change was registered.
        snapshot_date: input.file.time.date,
    }
}

/// Applies one of an insurer's change files to `state`, row by row in file order; rejects
/// and warnings go to `issues`. A file rejected whole (F1, F2, F3) changes nothing.
pub fn apply_change_file(
    state: &mut State,
    input: &ChangeInput,
    insurer: InsurerNumber,
    issues: &mut Vec<Issue>,
) -> ChangeSummary {
    let ctx = context(input, insurer);
    apply_file(
        state,
        input,
        |bytes| read_changes_bytes(bytes, &ctx),
        issues,
    )
}

/// [`apply_change_file`] for any [`Changeable`]: `read` turns the file's bytes into its rows
/// (the rules of the file's kind), or rejects it whole.
pub fn apply_file<T: Changeable>(
    state: &mut State<T>,
    input: &ChangeInput,
    read: impl FnOnce(&[u8]) -> Result<ChangeRows<T>, SnapshotError>,
    issues: &mut Vec<Issue>,
) -> ChangeSummary {
    let mut summary = ChangeSummary {
        file: input.file.rel_path.clone(),
        time: input.file.time,
        xxh3: input.xxh3,
        encoding: None,
        rows_read: 0,
        applied: 0,
        rejected: 0,
        by_rule: RuleCounts::default(),
        file_reject: None,
    };
    if let Some(why) = &input.refused {
        reject_file(&mut summary, issues, (Rule::F3, "", why), 0);
        return summary;
    }
    match read(&input.bytes) {
        Ok(rows) => apply_rows(state, rows, &mut summary, issues),
        Err(e) => {
            let (rows, encoding) = count_rows(&input.bytes);
            summary.encoding = encoding;
            reject_file(
                &mut summary,
                issues,
                (e.rule(), e.field(), &e.to_string()),
                rows,
            );
        }
    }
    summary
}

/// A change file rejected whole: its `rows` read and rejected, one line-0 issue saying why.
fn reject_file(
    summary: &mut ChangeSummary,
    issues: &mut Vec<Issue>,
    (rule, field, why): (Rule, &str, &str),
    rows: u64,
) {
    summary.rows_read = rows;
    summary.rejected = rows;
    summary.by_rule.add(rule, rows);
    let issue = Issue {
        file: summary.file.clone(),
        line: 0,
        rule,
        field: Cow::Owned(field.to_owned()),
        reason: format!("whole file rejected ({rows} data rows), nothing applied: {why}"),
    };
    summary.file_reject = Some(issue.clone());
    issues.push(issue);
}

fn apply_rows<T: Changeable>(
    state: &mut State<T>,
    rows: ChangeRows<T>,
    summary: &mut ChangeSummary,
    issues: &mut Vec<Issue>,
) {
    summary.encoding = Some(rows.encoding);
    summary
        .by_rule
        .add(Rule::W0, rows.file_warnings.len() as u64);
    issues.extend(rows.file_warnings);
    // Keys an applied row of this file changed (C4): a second change of one key in one file
    // leaves its order to chance in the insurer's system, so the second is refused.
    let mut changed: HashSet<T::Key> = HashSet::new();
    for row in rows.rows {
        summary.rows_read += 1;
        let (change, line, warnings) = match row {
            ChangeRow::Valid {
                change,
                line,
                warnings,
            } => (change, line, warnings),
            ChangeRow::Rejected(issue) => {
                reject(summary, issues, issue);
                continue;
            }
        };
        let key = change.key();
        let refused = if changed.contains(&key) {
            Err((
                Rule::C4,
                format!(
                    "{} of {}, already changed earlier in this file",
                    change.kind().as_str(),
                    T::describe(&key)
                ),
            ))
        } else {
            state.apply(change)
        };
        match refused {
            Ok(()) => {
                changed.insert(key);
                summary.applied += 1;
                for w in &warnings {
                    summary.by_rule.add(w.rule, 1);
                }
                issues.extend(warnings);
            }
            Err((rule, reason)) => {
                let issue = Issue {
                    file: summary.file.clone(),
                    line,
                    rule,
                    field: Cow::Borrowed(CHANGE_COLUMN),
                    reason,
                };
                reject(summary, issues, issue);
            }
        }
    }
}

fn reject(summary: &mut ChangeSummary, issues: &mut Vec<Issue>, issue: Issue) {
    summary.rejected += 1;
    summary.by_rule.add(issue.rule, 1);
    issues.push(issue);
}

/// One insurer's state, materialized: what the build indexes, and what
/// `shikaku materialize` writes as `<insurer>/<YYYYMMDD>.csv` with `date`.
#[derive(Debug, Clone)]
pub struct Materialized {
    pub records: Vec<Record>,
    /// The day of the last change file applied, else the snapshot's: no record of the state
    /// was registered after it, so the materialized snapshot passes R4 as its rows did.
    pub date: Date,
    /// The snapshot read (`None` when the insurer has none yet and starts empty).
    pub snapshot: Option<FileSummary>,
    pub changes: Vec<ChangeSummary>,
    /// Every reject and warning of the snapshot and the change files, in reading order,
    /// with one line-0 issue for each file rejected whole.
    pub issues: Vec<Issue>,
    /// See [`State::replaced`].
    pub replaced: u64,
}

/// The name a materialized state has: `<insurer>/<YYYYMMDD>.csv`.
pub fn materialized_file_name(insurer: InsurerNumber, date: Date) -> String {
    format!("{}/{}.csv", insurer.as_str(), date.to_compact())
}

/// Reads an insurer's snapshot (a file rejected whole starts the state empty, accounted as
/// the build accounts it) and applies `changes` (read by [`ChangeInput::read_all`]) in order.
/// Only a file the system cannot read is an `Err`.
pub fn materialize(
    delivery: &InsurerDelivery,
    changes: &[ChangeInput],
) -> Result<Materialized, SnapshotError> {
    let insurer = delivery.insurer.number;
    let mut issues = Vec::new();
    let mut records = Vec::new();
    let snapshot = match &delivery.snapshot {
        None => None,
        Some(file) => {
            let read = read_snapshot(file, &delivery.insurer, |o| match o {
                RowOutcome::Indexed {
                    record, warnings, ..
                } => {
                    records.push(record);
                    issues.extend(warnings);
                }
                RowOutcome::Rejected(issue) => issues.push(issue),
            });
            Some(match read {
                Ok(summary) => summary,
                Err(e @ SnapshotError::Io { .. }) => return Err(e),
                Err(e) => {
                    records.clear();
                    issues.clear();
                    let reason = e.to_string();
                    account_rejected_file(file, Some(insurer), e.rule(), e.field(), &reason)
                }
            })
        }
    };
    if let Some(s) = &snapshot {
        issues.extend(s.file_warnings.iter().cloned());
        issues.extend(s.file_reject.iter().cloned());
    }
    let mut state = State::new(records);
    let summaries: Vec<ChangeSummary> = changes
        .iter()
        .map(|c| apply_change_file(&mut state, c, insurer, &mut issues))
        .collect();
    let date = changes
        .last()
        .map(|c| c.file.time.date)
        .or(delivery.snapshot.as_ref().map(|s| s.date))
        .unwrap_or(Date::MIN);
    let replaced = state.replaced();
    Ok(Materialized {
        records: state.into_records(),
        date,
        snapshot,
        changes: summaries,
        issues,
        replaced,
    })
}
