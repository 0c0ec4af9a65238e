//! Reading change files (異動, docs/delivery.md#change-files): the snapshot's decoding, quoting
//! and header, plus a `change` column. Each data row becomes a [`Change`] (or a reject); what
//! a change does to an insurer's records is [`apply`](super::apply)'s.

use super::decode::{decode, Encoding};
use super::error::SnapshotError;
use super::header::{Column, ColumnSet};
use super::read::{
    overlong_row, row_fields, unknown_column_warnings, FileContext, Table, TableRow,
};
use super::row::{check_key, check_loss, check_row};
use super::types::{Issue, Rule};
use crate::domain::text::quote_raw;
use crate::domain::{Branch, Date, ReasonOfLoss, Record};
use csv::ByteRecord;
use std::borrow::Cow;

/// The column a change file adds to a snapshot's.
pub const CHANGE_COLUMN: &str = "change";

/// What a change row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// 資格取得: a new record.
    Add,
    /// 資格変更: replaces the record with the same key.
    Update,
    /// 資格喪失: gives the record its disqualification date and reason of loss.
    Lose,
    /// 登録誤り: removes the record.
    Delete,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 4] = [
        ChangeKind::Add,
        ChangeKind::Update,
        ChangeKind::Lose,
        ChangeKind::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Add => "add",
            ChangeKind::Update => "update",
            ChangeKind::Lose => "lose",
            ChangeKind::Delete => "delete",
        }
    }

    /// Trimmed, ASCII case-insensitive, as header names are matched.
    pub fn parse(raw: &str) -> Option<ChangeKind> {
        let raw = raw.trim();
        ChangeKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(raw))
    }
}

/// The key of a record within its insurer: symbol, number, branch and qualification date,
/// normalized. A change names the record it changes by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    pub symbol: String,
    pub number: String,
    pub branch: Branch,
    pub qualification_date: Date,
}

impl RecordKey {
    pub fn of(r: &Record) -> RecordKey {
        RecordKey {
            symbol: r.symbol.clone(),
            number: r.number.clone(),
            branch: r.branch,
            qualification_date: r.qualification_date,
        }
    }
}

/// What change files change: an insurer's record, or a public-expense register's
/// certificate. The rules C1–C4 and the accounting are the same for both (`apply`).
pub trait Changeable: Clone + std::fmt::Debug + PartialEq + Eq {
    /// What names the row a change changes.
    type Key: Clone + Eq + std::hash::Hash + std::fmt::Debug;
    /// What a `lose` row gives the row it names.
    type Loss: Clone + PartialEq + Eq + std::fmt::Debug;
    fn key(&self) -> Self::Key;
    fn lose(&mut self, loss: &Self::Loss);
    /// The key in a reason (quoted text masked, as any quoted input).
    fn describe(key: &Self::Key) -> String;
}

/// What a `lose` row gives an insurer's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLoss {
    pub disqualification_date: Date,
    pub reason_of_loss: Option<ReasonOfLoss>,
}

impl Changeable for Record {
    type Key = RecordKey;
    type Loss = RecordLoss;

    fn key(&self) -> RecordKey {
        RecordKey::of(self)
    }

    fn lose(&mut self, loss: &RecordLoss) {
        self.disqualification_date = Some(loss.disqualification_date);
        self.reason_of_loss = loss.reason_of_loss;
    }

    fn describe(key: &RecordKey) -> String {
        format!(
            "the record of symbol {}, number {}, branch {}, qualification_date {}",
            quote_raw(&key.symbol),
            quote_raw(&key.number),
            key.branch,
            key.qualification_date
        )
    }
}

/// One valid change row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<T: Changeable = Record> {
    Add(T),
    Update(T),
    Lose { key: T::Key, loss: T::Loss },
    Delete(T::Key),
}

impl<T: Changeable> Change<T> {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::Add(_) => ChangeKind::Add,
            Change::Update(_) => ChangeKind::Update,
            Change::Lose { .. } => ChangeKind::Lose,
            Change::Delete(_) => ChangeKind::Delete,
        }
    }

    pub fn key(&self) -> T::Key {
        match self {
            Change::Add(r) | Change::Update(r) => r.key(),
            Change::Lose { key, .. } | Change::Delete(key) => key.clone(),
        }
    }
}

/// What became of one data row of a change file, before it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRow<T: Changeable = Record> {
    /// Passed the row rules; C1, C2 and C4 are decided when it is applied.
    Valid {
        change: Change<T>,
        line: u64,
        warnings: Vec<Issue>,
    },
    Rejected(Issue),
}

/// A change file read whole: its rows in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRows<T: Changeable = Record> {
    pub encoding: Encoding,
    /// W0 unknown-column warnings.
    pub file_warnings: Vec<Issue>,
    pub rows: Vec<ChangeRow<T>>,
}

/// Reads a change file's bytes. Every row is read before any is applied, so a file that
/// fails part-way (F1, F2, F3) is rejected whole and changes nothing.
pub fn read_changes_bytes(bytes: &[u8], ctx: &FileContext) -> Result<ChangeRows, SnapshotError> {
    read_change_rows::<Column, Record>(
        bytes,
        &ctx.path,
        &ctx.file,
        |rec, table, change_at, line| change_row(rec, table, change_at, ctx, line),
    )
}

/// The reading every kind of change file shares: decoding, the header with its `change`
/// column (required, once), W0 for unknown columns, and each data row handed to `row` with
/// the position of its `change` cell (an overlong row rejected under R0).
pub(crate) fn read_change_rows<C: ColumnSet, T: Changeable>(
    bytes: &[u8],
    path: &std::path::Path,
    file: &std::sync::Arc<str>,
    mut row: impl FnMut(&ByteRecord, &Table<'_, C>, usize, u64) -> ChangeRow<T>,
) -> Result<ChangeRows<T>, SnapshotError> {
    let decoded = decode(bytes).map_err(|why| SnapshotError::Undecodable {
        path: path.to_owned(),
        why,
    })?;
    let mut table: Table<'_, C> = Table::open(decoded.text.as_bytes(), path)?;
    let change_at = change_column(&table, path)?;
    table
        .cols
        .unknown
        .retain(|name| !name.eq_ignore_ascii_case(CHANGE_COLUMN));
    let file_warnings = unknown_column_warnings(&table.cols, file, table.header_line);
    let mut rows = Vec::new();
    let mut rec = ByteRecord::new();
    while let Some(next) = table.next(&mut rec, path)? {
        rows.push(match next {
            TableRow::Record { line } => row(&rec, &table, change_at, line),
            TableRow::Overlong { line, bytes } => {
                ChangeRow::Rejected(overlong_row(file, line, bytes))
            }
        });
    }
    Ok(ChangeRows {
        encoding: decoded.encoding,
        file_warnings,
        rows,
    })
}

/// Where the `change` column is: required, once (F2 otherwise, as for a snapshot's columns).
pub(crate) fn change_column<C: ColumnSet>(
    table: &Table<'_, C>,
    path: &std::path::Path,
) -> Result<usize, SnapshotError> {
    let mut at = table.header.iter().enumerate().filter(|(_, name)| {
        String::from_utf8_lossy(name)
            .trim()
            .eq_ignore_ascii_case(CHANGE_COLUMN)
    });
    let Some((first, _)) = at.next() else {
        return Err(SnapshotError::MissingColumn {
            path: path.to_owned(),
            column: CHANGE_COLUMN,
        });
    };
    if at.next().is_some() {
        return Err(SnapshotError::DuplicateColumn {
            path: path.to_owned(),
            column: CHANGE_COLUMN.to_owned(),
        });
    }
    Ok(first)
}

/// R0, then C3, then the rules of the kind of change: R1–R7 and W1–W4 on the record an `add`
/// or `update` makes; the key (and for `lose` the loss) of a `lose` or `delete`.
fn change_row(
    rec: &ByteRecord,
    table: &Table<'_>,
    change_at: usize,
    ctx: &FileContext,
    line: u64,
) -> ChangeRow {
    let fields = match row_fields(rec, &table.cols, ctx, line) {
        Ok(fields) => fields,
        Err(issue) => return ChangeRow::Rejected(issue),
    };
    let kind = match change_kind(rec, change_at, &ctx.file, line) {
        Ok(kind) => kind,
        Err(issue) => return ChangeRow::Rejected(issue),
    };
    let valid = |change, warnings| ChangeRow::Valid {
        change,
        line,
        warnings,
    };
    let checked = match kind {
        ChangeKind::Add | ChangeKind::Update => {
            check_row(&fields, ctx, line).map(|(record, warnings)| {
                let change = match kind {
                    ChangeKind::Add => Change::Add(record),
                    _ => Change::Update(record),
                };
                valid(change, warnings)
            })
        }
        ChangeKind::Lose => check_key(&fields, ctx, line).and_then(|key| {
            let (disqualification_date, reason_of_loss) = check_loss(&fields, ctx, line, &key)?;
            let loss = RecordLoss {
                disqualification_date,
                reason_of_loss,
            };
            let change = Change::Lose { key, loss };
            Ok(valid(change, Vec::new()))
        }),
        ChangeKind::Delete => {
            check_key(&fields, ctx, line).map(|key| valid(Change::Delete(key), Vec::new()))
        }
    };
    checked.unwrap_or_else(ChangeRow::Rejected)
}

/// C3: the `change` cell of a row, one of the four kinds.
pub(crate) fn change_kind(
    rec: &ByteRecord,
    change_at: usize,
    file: &std::sync::Arc<str>,
    line: u64,
) -> Result<ChangeKind, Issue> {
    let raw = std::str::from_utf8(rec.get(change_at).unwrap_or_default()).unwrap_or("");
    ChangeKind::parse(raw).ok_or_else(|| {
        let said = if raw.trim().is_empty() {
            "change is empty".to_owned()
        } else {
            format!("change {} is not listed", quote_raw(raw))
        };
        Issue {
            file: file.clone(),
            line,
            rule: Rule::C3,
            field: Cow::Borrowed(CHANGE_COLUMN),
            reason: format!("{said} (add, update, lose, delete)"),
        }
    })
}
