//! Change files of a public-expense register (`kohi/<payer>/changes/YYYYMMDD-hhmmss.csv`):
//! the register's columns plus `change`, read and applied as an insurer's change files are
//! (C1–C4, per-file accounting: `snapshot::apply`), a certificate named by its payer,
//! recipient number and valid_from. A `lose` row gives the certificate its `valid_to`
//! (required, inclusive), as 資格喪失 gives a record its disqualification date.

use super::super::change::{
    change_kind, read_change_rows, Change, ChangeKind, ChangeRow, ChangeRows, Changeable,
};
use super::super::error::SnapshotError;
use super::super::read::{row_cells, Table};
use super::columns::KohiColumn;
use super::read::RegisterContext;
use super::row::{check_certificate, check_certificate_key, check_certificate_loss, KohiFields};
use crate::domain::text::quote_raw;
use crate::domain::{Certificate, Date, PayerNumber};
use csv::ByteRecord;

/// The key of a certificate within its payer's register: what a change names it by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificateKey {
    pub payer: PayerNumber,
    /// Normalized (leading zeros kept).
    pub recipient: String,
    pub valid_from: Date,
}

impl Changeable for Certificate {
    type Key = CertificateKey;
    /// The new valid_to.
    type Loss = Date;

    fn key(&self) -> CertificateKey {
        CertificateKey {
            payer: self.payer,
            recipient: self.recipient.clone(),
            valid_from: self.valid_from,
        }
    }

    fn lose(&mut self, valid_to: &Date) {
        self.valid_to = Some(*valid_to);
    }

    fn describe(key: &CertificateKey) -> String {
        format!(
            "the certificate of payer {}, recipient_number {}, valid_from {}",
            key.payer,
            quote_raw(&key.recipient),
            key.valid_from
        )
    }
}

/// Reads a register's change file. `ctx.snapshot_date` is the day the file was registered
/// ("today" for K3). Every row is read before any is applied: a file that fails part-way
/// (F1, F2, F3) is rejected whole.
pub fn read_kohi_changes_bytes(
    bytes: &[u8],
    ctx: &RegisterContext,
) -> Result<ChangeRows<Certificate>, SnapshotError> {
    read_change_rows::<KohiColumn, Certificate>(
        bytes,
        &ctx.path,
        &ctx.file,
        |rec, table, at, line| change_row(rec, table, at, ctx, line),
    )
}

/// R0, then C3, then the rules of the kind of change: K1–K6 and W1 on the certificate an
/// `add` or `update` makes; the key (and for `lose` the new valid_to) of a `lose` or `delete`.
fn change_row(
    rec: &ByteRecord,
    table: &Table<'_, KohiColumn>,
    change_at: usize,
    ctx: &RegisterContext,
    line: u64,
) -> ChangeRow<Certificate> {
    let mut fields = KohiFields([""; KohiColumn::ALL.len()]);
    if let Err(issue) = row_cells(rec, &table.cols, &ctx.file, line, &mut fields.0) {
        return ChangeRow::Rejected(issue);
    }
    let kind = match change_kind(rec, change_at, &ctx.file, line) {
        Ok(kind) => kind,
        Err(issue) => return ChangeRow::Rejected(issue),
    };
    let checked = match kind {
        ChangeKind::Add | ChangeKind::Update => {
            check_certificate(&fields, ctx, line).map(|(certificate, warnings)| {
                let change = match kind {
                    ChangeKind::Add => Change::Add(certificate),
                    _ => Change::Update(certificate),
                };
                (change, warnings)
            })
        }
        ChangeKind::Lose => check_certificate_key(&fields, ctx, line).and_then(|key| {
            let loss = check_certificate_loss(&fields, ctx, line, &key)?;
            Ok((Change::Lose { key, loss }, Vec::new()))
        }),
        ChangeKind::Delete => {
            check_certificate_key(&fields, ctx, line).map(|key| (Change::Delete(key), Vec::new()))
        }
    };
    match checked {
        Ok((change, warnings)) => ChangeRow::Valid {
            change,
            line,
            warnings,
        },
        Err(issue) => ChangeRow::Rejected(issue),
    }
}
