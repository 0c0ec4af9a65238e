//! Reading one snapshot file row by row, and accounting for files rejected whole.

use super::decode::{count_data_lines, decode, Decoded, Encoding, Source};
use super::discover::{InsurerEntry, SnapshotFile};
use super::error::SnapshotError;
use super::header::{Column, ColumnMap, ColumnSet};
use super::row::{check_row, Fields};
use super::types::{FileSummary, Issue, RowOutcome, Rule, RuleCounts};
use crate::domain::text::{mask_digit_runs, quote_raw};
use crate::domain::{Date, InsurerNumber};
use csv::ByteRecord;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the row rules need to know about the file a row comes from.
#[derive(Debug, Clone)]
pub struct FileContext {
    /// Path relative to the snapshots directory, as reports show it.
    pub file: Arc<str>,
    /// Path as opened, for error messages.
    pub path: PathBuf,
    /// The insurer of the file's directory (R1).
    pub insurer: InsurerNumber,
    /// From the file name; "today" for R4, W2 and W3.
    pub snapshot_date: Date,
}

impl FileContext {
    pub fn new(file: &SnapshotFile, insurer: InsurerNumber) -> FileContext {
        FileContext {
            file: file.rel_path.clone(),
            path: file.path.clone(),
            insurer,
            snapshot_date: file.date,
        }
    }
}

/// Reads one snapshot and hands every data row to `sink`, in file order, as it is parsed.
///
/// An `Err` means the file is rejected whole (F1 undecodable, F2 bad header, F3 unreadable);
/// it is always returned before any row reaches `sink`. Count its rows with
/// [`account_rejected_file`].
pub fn read_snapshot(
    file: &SnapshotFile,
    insurer: &InsurerEntry,
    sink: impl FnMut(RowOutcome),
) -> Result<FileSummary, SnapshotError> {
    read_snapshot_staged(file, insurer, sink, |_| {})
}

/// A step of [`read_snapshot_staged`], reported as it ends (for the build's profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStep {
    /// The file is in memory.
    Read,
    /// Its encoding is checked (UTF-8) or its text decoded (CP932).
    Decoded,
    /// Every row went to the sink.
    Parsed,
}

/// [`read_snapshot`], calling `step` as each [`ReadStep`] ends (not after a failed one).
pub fn read_snapshot_staged(
    file: &SnapshotFile,
    insurer: &InsurerEntry,
    sink: impl FnMut(RowOutcome),
    mut step: impl FnMut(ReadStep),
) -> Result<FileSummary, SnapshotError> {
    let ctx = FileContext::new(file, insurer.number);
    let source = Source::open_within(&file.path, file.snapshots_root())?;
    step(ReadStep::Read);
    let decoded = decode_snapshot(source.bytes(), &ctx)?;
    step(ReadStep::Decoded);
    let summary = read_decoded(&decoded, &ctx, sink)?;
    step(ReadStep::Parsed);
    Ok(summary)
}

/// [`read_snapshot`] over bytes already in memory (tests, benchmarks).
pub fn read_snapshot_bytes(
    bytes: &[u8],
    ctx: &FileContext,
    sink: impl FnMut(RowOutcome),
) -> Result<FileSummary, SnapshotError> {
    read_decoded(&decode_snapshot(bytes, ctx)?, ctx, sink)
}

fn decode_snapshot<'b>(bytes: &'b [u8], ctx: &FileContext) -> Result<Decoded<'b>, SnapshotError> {
    decode(bytes).map_err(|why| SnapshotError::Undecodable {
        path: ctx.path.clone(),
        why,
    })
}

fn read_decoded(
    decoded: &Decoded<'_>,
    ctx: &FileContext,
    mut sink: impl FnMut(RowOutcome),
) -> Result<FileSummary, SnapshotError> {
    let mut table = Table::open(decoded.text.as_bytes(), &ctx.path)?;
    let mut summary = FileSummary::start(
        ctx.file.clone(),
        Some(ctx.insurer),
        ctx.snapshot_date,
        decoded.encoding,
        unknown_column_warnings(&table.cols, &ctx.file, table.header_line),
    );
    let mut rec = ByteRecord::new();
    while let Some(row) = table.next(&mut rec, &ctx.path)? {
        let outcome = match row {
            TableRow::Record { line } => match row_fields(&rec, &table.cols, ctx, line) {
                Ok(fields) => match check_row(&fields, ctx, line) {
                    Ok((record, warnings)) => RowOutcome::Indexed {
                        record,
                        line,
                        warnings,
                    },
                    Err(issue) => RowOutcome::Rejected(issue),
                },
                Err(issue) => RowOutcome::Rejected(issue),
            },
            TableRow::Overlong { line, bytes } => {
                RowOutcome::Rejected(overlong_row(&ctx.file, line, bytes))
            }
        };
        count(&mut summary, &outcome);
        sink(outcome);
    }
    Ok(summary)
}

/// A decoded file past its header: the columns, and the data rows still to read. Snapshots
/// and change files share it, so both read encodings, quoting and headers alike.
pub(crate) struct Table<'t, C = Column> {
    rows: Rows<'t>,
    pub cols: ColumnMap<C>,
    /// The header's cells, for a reader that looks for a column of its own (`change`).
    pub header: ByteRecord,
    pub header_line: u64,
}

/// One data row of a [`Table`].
pub(crate) enum TableRow {
    /// A CSV record, in the caller's `ByteRecord`, starting on `line`.
    Record { line: u64 },
    /// A physical line longer than [`LINE_BYTES_MAX`], skipped whole.
    Overlong { line: u64, bytes: usize },
}

impl<'t, C: ColumnSet> Table<'t, C> {
    /// Reads the header of a decoded `text` (read from `path`, which errors name). An `Err`
    /// rejects the file whole (F2, F3).
    pub(crate) fn open(text: &'t [u8], path: &Path) -> Result<Table<'t, C>, SnapshotError> {
        let mut rows = Rows::new(text);
        let mut header = ByteRecord::new();
        match rows
            .next(&mut header)
            .map_err(|e| rows.csv_error(&e, path))?
        {
            Next::Record => {}
            Next::Overlong { line, .. } => {
                return Err(SnapshotError::HeaderTooLong {
                    path: path.to_owned(),
                    line,
                    max_bytes: LINE_BYTES_MAX,
                })
            }
            Next::End => {
                return Err(SnapshotError::NoHeader {
                    path: path.to_owned(),
                })
            }
        }
        let header_line = rows.line_of(&header);
        let cols = ColumnMap::from_header(path, header.iter())?;
        Ok(Table {
            rows,
            cols,
            header,
            header_line,
        })
    }

    /// The next data row, `None` at the end.
    pub(crate) fn next(
        &mut self,
        rec: &mut ByteRecord,
        path: &Path,
    ) -> Result<Option<TableRow>, SnapshotError> {
        match self
            .rows
            .next(rec)
            .map_err(|e| self.rows.csv_error(&e, path))?
        {
            Next::Record => Ok(Some(TableRow::Record {
                line: self.rows.line_of(rec),
            })),
            Next::Overlong { line, bytes } => Ok(Some(TableRow::Overlong { line, bytes })),
            Next::End => Ok(None),
        }
    }
}

pub(crate) fn unknown_column_warnings<C>(
    cols: &ColumnMap<C>,
    file: &Arc<str>,
    line: u64,
) -> Vec<Issue> {
    cols.unknown
        .iter()
        .map(|name| Issue {
            file: file.clone(),
            line,
            rule: Rule::W0,
            field: Cow::Owned(mask_digit_runs(name).into_owned()),
            reason: format!("unknown column {} ignored", quote_raw(name)),
        })
        .collect()
}

pub(crate) fn overlong_row(file: &Arc<str>, line: u64, bytes: usize) -> Issue {
    Issue {
        file: file.clone(),
        line,
        rule: Rule::R0,
        field: Cow::Borrowed(""),
        reason: format!(
            "the line is {bytes} bytes, longer than any row can be ({LINE_BYTES_MAX}); not read"
        ),
    }
}

/// The text of a record's cells by column, or its R0 reject (a line break in a cell, another
/// number of cells than the header's, a cell that is not text).
pub(crate) fn row_fields<'r>(
    rec: &'r ByteRecord,
    cols: &ColumnMap,
    ctx: &FileContext,
    line: u64,
) -> Result<Fields<'r>, Issue> {
    let mut fields = Fields([""; Column::ALL.len()]);
    row_cells(rec, cols, &ctx.file, line, &mut fields.0)?;
    Ok(fields)
}

/// The cells of `rec` into `out` by column position (`ColumnSet::position`; an absent column
/// stays as it was), or the row's R0 reject.
pub(crate) fn row_cells<'r, C: ColumnSet>(
    rec: &'r ByteRecord,
    cols: &ColumnMap<C>,
    file: &Arc<str>,
    line: u64,
    out: &mut [&'r str],
) -> Result<(), Issue> {
    let malformed = |reason: String| Issue {
        file: file.clone(),
        line,
        rule: Rule::R0,
        field: Cow::Borrowed(""),
        reason,
    };
    // No delivered field holds a line break; a cell with one is a quote left open, which
    // swallows the rows after it (to the next quote, or the end of the file) into one row.
    // Rejected naming the lines it spans, so those rows are in the report, not lost.
    // One scan of the record's bytes; the cell is looked for only in a record with a break.
    let broken = memchr::memchr2(b'\n', b'\r', rec.as_slice()).and_then(|_| {
        rec.iter()
            .position(|f| f.contains(&b'\n') || f.contains(&b'\r'))
    });
    if let Some(i) = broken {
        // A quote left open to the end of the file holds the file's last line break too.
        let breaks: usize = rec
            .iter()
            .map(|f| f.trim_ascii_end().iter().filter(|&&b| b == b'\n').count())
            .sum();
        let column = C::ALL
            .iter()
            .copied()
            .find(|&c| cols.get(c) == Some(i))
            .map_or("", C::name);
        return Err(Issue {
            file: file.clone(),
            line,
            rule: Rule::R0,
            field: Cow::Borrowed(column),
            reason: format!(
                "a quoted cell holds a line break, so this row runs over lines {line}-{} (a quote left open?); no field holds one",
                line + breaks as u64
            ),
        });
    }
    if rec.len() != cols.width {
        return Err(malformed(format!(
            "{} fields where the header has {}",
            rec.len(),
            cols.width
        )));
    }
    // The whole file is valid UTF-8 and fields split at ASCII bytes, so every field is text;
    // checked anyway rather than assumed, once for the record's bytes (a field then only
    // needs its ends on character boundaries), and field by field if that fails.
    if let Ok(text) = std::str::from_utf8(rec.as_slice()) {
        let field = |i: usize| rec.range(i).map_or(Some(""), |r| text.get(r));
        if C::ALL
            .iter()
            .all(|&c| cols.get(c).is_none_or(|i| field(i).is_some()))
        {
            for &c in C::ALL {
                if let Some(f) = cols.get(c).and_then(field) {
                    out[c.position()] = f;
                }
            }
            return Ok(());
        }
    }
    for &c in C::ALL {
        if let Some(i) = cols.get(c) {
            match std::str::from_utf8(rec.get(i).unwrap_or_default()) {
                Ok(s) => out[c.position()] = s,
                Err(_) => return Err(malformed(format!("field {} is not valid text", c.name()))),
            }
        }
    }
    Ok(())
}

pub(crate) fn count(summary: &mut FileSummary, outcome: &RowOutcome) {
    summary.rows_read += 1;
    match outcome {
        RowOutcome::Indexed { warnings, .. } => {
            summary.indexed += 1;
            for w in warnings {
                summary.by_rule.add(w.rule, 1);
            }
        }
        RowOutcome::Rejected(issue) => {
            summary.rejected += 1;
            summary.by_rule.add(issue.rule, 1);
        }
    }
}

/// The longest physical line a snapshot row may take, in bytes. The longest valid row is
/// well under 1 KiB (fifteen short fields); unknown columns are ignored but still sit on the
/// line, so room is left for them. A longer line is rejected (R0) without being read into a
/// record: the CSV reader never sees it, so a 2 GiB line costs no memory beyond the file's.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// What [`Rows::next`] found.
enum Next {
    /// A CSV record, in the caller's `ByteRecord`.
    Record,
    /// A physical line longer than [`LINE_BYTES_MAX`], skipped whole.
    Overlong {
        line: u64,
        bytes: usize,
    },
    End,
}

/// CSV records of a decoded text, with the physical line each starts on. The text is read in
/// stretches between overlong lines, one CSV reader per stretch.
struct Rows<'a> {
    text: &'a [u8],
    /// The current stretch: `text[start..end]`, its first line numbered `first_line`.
    start: usize,
    end: usize,
    first_line: u64,
    rdr: csv::Reader<&'a [u8]>,
}

impl<'a> Rows<'a> {
    fn new(text: &'a [u8]) -> Rows<'a> {
        let end = next_overlong_line(text, 0);
        Rows {
            text,
            start: 0,
            end,
            first_line: 1,
            rdr: csv_reader(&text[..end]),
        }
    }

    fn next(&mut self, rec: &mut ByteRecord) -> Result<Next, csv::Error> {
        if self.rdr.read_byte_record(rec)? {
            return Ok(Next::Record);
        }
        if self.end >= self.text.len() {
            return Ok(Next::End);
        }
        let line = self.first_line + newlines(&self.text[self.start..self.end]);
        let line_end =
            memchr::memchr(b'\n', &self.text[self.end..]).map_or(self.text.len(), |i| self.end + i);
        let bytes = line_end - self.end;
        self.start = (line_end + 1).min(self.text.len());
        self.end = next_overlong_line(self.text, self.start);
        self.first_line = line + 1;
        self.rdr = csv_reader(&self.text[self.start..self.end]);
        Ok(Next::Overlong { line, bytes })
    }

    /// The line `rec`, just read, starts on.
    fn line_of(&self, rec: &ByteRecord) -> u64 {
        record_line(&self.text[self.start..self.end], rec) + self.first_line - 1
    }

    fn csv_error(&self, e: &csv::Error, path: &Path) -> SnapshotError {
        SnapshotError::Csv {
            path: path.to_owned(),
            line: e.position().map_or(0, |p| p.line() + self.first_line - 1),
            message: e.to_string(),
        }
    }
}

fn csv_reader(text: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(text)
}

/// Start of the first line at or after `from` (a line start) longer than
/// [`LINE_BYTES_MAX`], or `text.len()`.
fn next_overlong_line(text: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < text.len() {
        let line_end = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |i| at + i);
        if line_end - at > LINE_BYTES_MAX {
            return at;
        }
        at = line_end + 1;
    }
    text.len()
}

fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Physical 1-based line where `rec` starts in `text`. The reader's position for a record is
/// where the previous one ended, so blank lines (which the reader skips) and a CRLF's trailing
/// LF may lie between; step over them.
pub(crate) fn record_line(text: &[u8], rec: &ByteRecord) -> u64 {
    let Some(pos) = rec.position() else {
        return 0;
    };
    let start = usize::try_from(pos.byte()).unwrap_or(usize::MAX);
    let skipped = text
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .filter(|&&b| b == b'\n')
        .count();
    pos.line() + skipped as u64
}

/// Accounts for a file rejected whole under a file-level `rule` (F1..F4): every data row counts
/// as read and rejected, and one [`Issue`] (line 0) says why. Rows are CSV records after the
/// header when the file decodes, else non-blank lines after the first
/// ([`count_data_lines`]); an unreadable file has 0.
pub fn account_rejected_file(
    file: &SnapshotFile,
    insurer: Option<InsurerNumber>,
    rule: Rule,
    field: &str,
    reason: &str,
) -> FileSummary {
    let (rows, encoding) = match Source::open_within(&file.path, file.snapshots_root()) {
        Ok(source) => count_rows(source.bytes()),
        Err(_) => (0, None),
    };
    let mut by_rule = RuleCounts::default();
    by_rule.add(rule, rows);
    FileSummary {
        file: file.rel_path.clone(),
        insurer,
        snapshot_date: file.date,
        encoding,
        rows_read: rows,
        indexed: 0,
        rejected: rows,
        by_rule,
        file_warnings: Vec::new(),
        file_reject: Some(Issue {
            file: file.rel_path.clone(),
            line: 0,
            rule,
            field: Cow::Owned(field.to_owned()),
            reason: format!("whole file rejected ({rows} data rows): {reason}"),
        }),
    }
}

pub(crate) fn count_rows(bytes: &[u8]) -> (u64, Option<Encoding>) {
    let Ok(decoded) = decode(bytes) else {
        return (count_data_lines(bytes), None);
    };
    let mut rows = Rows::new(decoded.text.as_bytes());
    let mut rec = ByteRecord::new();
    let mut records = 0u64;
    while let Ok(Next::Record | Next::Overlong { .. }) = rows.next(&mut rec) {
        records += 1;
    }
    (records.saturating_sub(1), Some(decoded.encoding))
}
