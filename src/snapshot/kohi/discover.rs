//! Finding the public-expense registers of a build: `kohi/payers.csv` and, per listed payer,
//! the newest `kohi/<payer_number>/<YYYYMMDD>.csv` and its change files
//! (`kohi/<payer_number>/changes/<YYYYMMDD>-<hhmmss>.csv`).

use super::super::decode::{decode, Source};
use super::super::dir_scan::{scan_insurer_dir, sorted_entries};
use super::super::discover::{
    bad_line, newest_dated, sort_changes, ChangeFile, ChangeTime, Finding, SnapshotFile,
};
use super::super::error::SnapshotError;
use super::super::header::ColumnSet;
use super::super::read::{row_cells, Table, TableRow};
use super::columns::PayerColumn;
use crate::domain::text::{self, quote_raw};
use crate::domain::PayerNumber;
use csv::ByteRecord;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The directory of the public-expense registers, under the snapshots directory.
pub const KOHI_DIR: &str = "kohi";
/// The list of payers, in [`KOHI_DIR`].
pub const PAYERS_FILE: &str = "payers.csv";

/// One line of `kohi/payers.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayerEntry {
    pub number: PayerNumber,
    pub name: String,
    /// Line in `payers.csv`.
    pub line: u64,
}

/// A listed payer and what a build reads for it: its newest register (none yet: the payer
/// starts empty) and the change files to apply on it, in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayerRegister {
    pub payer: PayerEntry,
    pub file: Option<SnapshotFile>,
    /// Older `YYYYMMDD.csv` files of this payer, not read.
    pub older: usize,
    /// Change files timed on or after the register's day and not after the build's "now".
    pub changes: Vec<ChangeFile>,
    /// Change files timed before the register's day: listed in the report, not applied.
    pub superseded: Vec<ChangeFile>,
}

/// The public-expense part of a delivery, in payer order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KohiDiscovery {
    pub payers: Vec<PayerEntry>,
    pub registers: Vec<PayerRegister>,
    pub findings: Vec<Finding>,
}

/// Reads `kohi/payers.csv` and picks each listed payer's newest register dated on or before
/// `now`'s day, and its change files timed on or after that day and not after `now` (as an
/// insurer's: `discover_at`). No `kohi/` directory: no registers (a delivery of insurers only). A `kohi/`
/// directory without `payers.csv`, or with a bad line in it, fails: a build that silently
/// lost a payer would answer "not found" for all its recipients.
pub fn discover_kohi(
    snapshots_dir: &Path,
    now: ChangeTime,
) -> Result<KohiDiscovery, SnapshotError> {
    let built_on = now.date;
    let dir = snapshots_dir.join(KOHI_DIR);
    if !dir.is_dir() {
        return Ok(KohiDiscovery::default());
    }
    let payers = read_payers(&dir.join(PAYERS_FILE))?;
    let listed: BTreeMap<PayerNumber, &PayerEntry> = payers.iter().map(|p| (p.number, p)).collect();
    let mut findings = Vec::new();
    let mut dated: BTreeMap<PayerNumber, Vec<SnapshotFile>> = BTreeMap::new();
    let mut changes: BTreeMap<PayerNumber, Vec<ChangeFile>> = BTreeMap::new();
    for (name, path, is_dir) in sorted_entries(&dir)? {
        let rel: Arc<str> = format!("{KOHI_DIR}/{name}").into();
        if !is_dir {
            if name != PAYERS_FILE {
                findings.push(Finding::BadFileName { path: rel });
            }
            continue;
        }
        let mut scan = scan_insurer_dir(&path, &rel)?;
        findings.append(&mut scan.findings);
        match PayerNumber::parse(&name)
            .ok()
            .filter(|n| listed.contains_key(n))
        {
            Some(n) => {
                dated.entry(n).or_default().extend(scan.dated);
                changes.entry(n).or_default().extend(scan.changes);
            }
            None => {
                if !scan.changes.is_empty() {
                    findings.push(Finding::UnlistedChanges {
                        dir: rel.clone(),
                        files: scan.changes.len(),
                    });
                }
                let (newest, _) = newest_dated(scan.dated, built_on, &mut findings);
                findings.push(Finding::UnlistedPayerDirectory { dir: rel, newest });
            }
        }
    }
    let mut registers = Vec::new();
    for payer in &payers {
        let files = dated.remove(&payer.number).unwrap_or_default();
        let (file, older) = newest_dated(files, built_on, &mut findings);
        let timed = changes.remove(&payer.number).unwrap_or_default();
        let (changes, superseded) = sort_changes(timed, file.as_ref(), now, &mut findings);
        if file.is_none() && changes.is_empty() {
            findings.push(Finding::PayerWithoutRegister {
                payer: payer.number,
            });
            continue;
        }
        registers.push(PayerRegister {
            payer: payer.clone(),
            file,
            older,
            changes,
            superseded,
        });
    }
    Ok(KohiDiscovery {
        payers,
        registers,
        findings,
    })
}

/// Reads `kohi/payers.csv`: any bad line fails the whole list, naming file, line and field.
/// Unknown columns are ignored.
pub fn read_payers(path: &Path) -> Result<Vec<PayerEntry>, SnapshotError> {
    let source = Source::open(path)?;
    let decoded = decode(source.bytes()).map_err(|why| SnapshotError::Undecodable {
        path: path.to_owned(),
        why,
    })?;
    let mut table: Table<'_, PayerColumn> = Table::open(decoded.text.as_bytes(), path)?;
    let file: Arc<str> = path.display().to_string().into();
    let mut rec = ByteRecord::new();
    let mut payers: Vec<PayerEntry> = Vec::new();
    let mut seen: BTreeMap<PayerNumber, u64> = BTreeMap::new();
    while let Some(row) = table.next(&mut rec, path)? {
        let line = match row {
            TableRow::Record { line } => line,
            TableRow::Overlong { line, .. } => {
                return Err(bad_line(
                    path,
                    line,
                    "row",
                    "the line is too long".to_owned(),
                ))
            }
        };
        let mut cells = [""; 2];
        row_cells(&rec, &table.cols, &file, line, &mut cells)
            .map_err(|issue| bad_line(path, line, "row", issue.reason))?;
        let raw = cells[PayerColumn::PayerNumber.position()];
        let number = PayerNumber::parse(raw).map_err(|e| {
            bad_line(
                path,
                line,
                "payer_number",
                format!("{} {e}", quote_raw(raw)),
            )
        })?;
        let name = cells[PayerColumn::PayerName.position()].trim_matches(text::is_space);
        if name.is_empty() {
            return Err(bad_line(path, line, "payer_name", "is empty".to_owned()));
        }
        if let Some(first) = seen.insert(number, line) {
            return Err(bad_line(
                path,
                line,
                "payer_number",
                format!("{number} listed twice (first on line {first})"),
            ));
        }
        payers.push(PayerEntry {
            number,
            name: name.to_owned(),
            line,
        });
    }
    Ok(payers)
}
