//! Reading one public-expense register row by row, as a snapshot is read (encodings, quoting,
//! header, line accounting shared through `read::Table`).

use super::super::decode::{decode, Source};
use super::super::discover::SnapshotFile;
use super::super::error::SnapshotError;
use super::super::read::{overlong_row, row_cells, unknown_column_warnings, Table, TableRow};
use super::super::types::{FileSummary, Issue};
use super::columns::KohiColumn;
use super::row::{check_certificate, KohiFields};
use crate::domain::{Certificate, Date, PayerNumber};
use csv::ByteRecord;
use std::path::PathBuf;
use std::sync::Arc;

/// What the row rules need to know about the register a row comes from.
#[derive(Debug, Clone)]
pub struct RegisterContext {
    /// Path relative to the snapshots directory (`kohi/<payer>/<date>.csv`), as reports show it.
    pub file: Arc<str>,
    /// Path as opened, for error messages.
    pub path: PathBuf,
    /// The payer of the file's directory (K1).
    pub payer: PayerNumber,
    /// From the file name; "today" for K3.
    pub snapshot_date: Date,
}

/// What became of one data row of a register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateOutcome {
    /// Valid: index it. `warnings` is empty for most rows.
    Indexed {
        certificate: Certificate,
        line: u64,
        warnings: Vec<Issue>,
    },
    /// Not indexed; list it in the report.
    Rejected(Issue),
}

/// Reads one payer's register and hands every data row to `sink`, in file order. An `Err`
/// rejects the file whole (F1, F2, F3), before any row reaches `sink`; count its rows with
/// `account_rejected_file`.
pub fn read_register(
    payer: PayerNumber,
    file: &SnapshotFile,
    sink: impl FnMut(CertificateOutcome),
) -> Result<FileSummary, SnapshotError> {
    let ctx = RegisterContext {
        file: file.rel_path.clone(),
        path: file.path.clone(),
        payer,
        snapshot_date: file.date,
    };
    let source = Source::open_within(&file.path, file.snapshots_root())?;
    read_register_bytes(source.bytes(), &ctx, sink)
}

/// [`read_register`] over bytes already in memory (tests).
pub fn read_register_bytes(
    bytes: &[u8],
    ctx: &RegisterContext,
    mut sink: impl FnMut(CertificateOutcome),
) -> Result<FileSummary, SnapshotError> {
    let decoded = decode(bytes).map_err(|why| SnapshotError::Undecodable {
        path: ctx.path.clone(),
        why,
    })?;
    let mut table: Table<'_, KohiColumn> = Table::open(decoded.text.as_bytes(), &ctx.path)?;
    let mut summary = FileSummary::start(
        ctx.file.clone(),
        None,
        ctx.snapshot_date,
        decoded.encoding,
        unknown_column_warnings(&table.cols, &ctx.file, table.header_line),
    );
    let mut rec = ByteRecord::new();
    while let Some(row) = table.next(&mut rec, &ctx.path)? {
        let outcome = match row {
            TableRow::Record { line } => certificate_row(&rec, &table, ctx, line),
            TableRow::Overlong { line, bytes } => {
                CertificateOutcome::Rejected(overlong_row(&ctx.file, line, bytes))
            }
        };
        count(&mut summary, &outcome);
        sink(outcome);
    }
    Ok(summary)
}

fn certificate_row(
    rec: &ByteRecord,
    table: &Table<'_, KohiColumn>,
    ctx: &RegisterContext,
    line: u64,
) -> CertificateOutcome {
    let mut fields = KohiFields([""; KohiColumn::ALL.len()]);
    if let Err(issue) = row_cells(rec, &table.cols, &ctx.file, line, &mut fields.0) {
        return CertificateOutcome::Rejected(issue);
    }
    match check_certificate(&fields, ctx, line) {
        Ok((certificate, warnings)) => CertificateOutcome::Indexed {
            certificate,
            line,
            warnings,
        },
        Err(issue) => CertificateOutcome::Rejected(issue),
    }
}

fn count(summary: &mut FileSummary, outcome: &CertificateOutcome) {
    summary.rows_read += 1;
    match outcome {
        CertificateOutcome::Indexed { warnings, .. } => {
            summary.indexed += 1;
            for w in warnings {
                summary.by_rule.add(w.rule, 1);
            }
        }
        CertificateOutcome::Rejected(issue) => {
            summary.rejected += 1;
            summary.by_rule.add(issue.rule, 1);
        }
    }
}
