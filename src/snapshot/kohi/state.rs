//! A payer's state: its newest register's certificates, then its change files applied in
//! name order (C1–C4 and the accounting of `snapshot::apply`, as an insurer's). What the build
//! indexes and `shikaku materialize` writes as a plain register.

use super::super::apply::{apply_file, ChangeInput, ChangeSummary, State};
use super::super::error::SnapshotError;
use super::super::read::account_rejected_file;
use super::super::types::{FileSummary, Issue};
use super::change::read_kohi_changes_bytes;
use super::discover::PayerRegister;
use super::read::{read_register, CertificateOutcome, RegisterContext};
use crate::domain::{Certificate, Date};

/// One payer's state, materialized.
#[derive(Debug, Clone)]
pub struct MaterializedPayer {
    /// In the order the materialized register lists them (certificate `i` on line `i + 2`).
    pub certificates: Vec<Certificate>,
    /// The day of the last change file applied, else the register's (`Date::MIN` without
    /// either).
    pub date: Date,
    /// The register read (`None` when the payer has none yet and starts empty).
    pub register: Option<FileSummary>,
    pub changes: Vec<ChangeSummary>,
    /// Every reject and warning of the register and the change files, in reading order,
    /// with one line-0 issue for each file rejected whole.
    pub issues: Vec<Issue>,
    /// Rows change files took out of the state (see `State::replaced`).
    pub replaced: u64,
}

/// The name of a payer's materialized register: `kohi/<payer>/<YYYYMMDD>.csv`.
pub fn materialized_register_name(register: &PayerRegister, date: Date) -> String {
    format!(
        "{}/{}/{}.csv",
        super::KOHI_DIR,
        register.payer.number,
        date.to_compact()
    )
}

/// Reads a payer's register (a file rejected whole starts the state empty, accounted as the
/// build accounts it) and applies `changes` (read by [`ChangeInput::read_all`]) in order.
/// Only a file the system cannot read is an `Err`.
pub fn materialize_payer(
    register: &PayerRegister,
    changes: &[ChangeInput],
) -> Result<MaterializedPayer, SnapshotError> {
    let payer = register.payer.number;
    let mut issues = Vec::new();
    let mut certificates = Vec::new();
    let read = match &register.file {
        None => None,
        Some(file) => {
            let read = read_register(payer, file, |o| match o {
                CertificateOutcome::Indexed {
                    certificate,
                    warnings,
                    ..
                } => {
                    certificates.push(certificate);
                    issues.extend(warnings);
                }
                CertificateOutcome::Rejected(issue) => issues.push(issue),
            });
            Some(match read {
                Ok(summary) => summary,
                Err(e @ SnapshotError::Io { .. }) => return Err(e),
                Err(e) => {
                    certificates.clear();
                    issues.clear();
                    account_rejected_file(file, None, e.rule(), e.field(), &e.to_string())
                }
            })
        }
    };
    if let Some(s) = &read {
        issues.extend(s.file_warnings.iter().cloned());
        issues.extend(s.file_reject.iter().cloned());
    }
    let mut state = State::new(certificates);
    let summaries: Vec<ChangeSummary> = changes
        .iter()
        .map(|input| {
            let ctx = RegisterContext {
                file: input.file.rel_path.clone(),
                path: input.file.path.clone(),
                payer,
                // "Today" for K3 is the day the change was registered.
                snapshot_date: input.file.time.date,
            };
            let read = |bytes: &[u8]| read_kohi_changes_bytes(bytes, &ctx);
            apply_file(&mut state, input, read, &mut issues)
        })
        .collect();
    let date = changes
        .last()
        .map(|c| c.file.time.date)
        .or(register.file.as_ref().map(|f| f.date))
        .unwrap_or(Date::MIN);
    let replaced = state.replaced();
    Ok(MaterializedPayer {
        certificates: state.into_records(),
        date,
        register: read,
        changes: summaries,
        issues,
        replaced,
    })
}
