//! `shikaku redis-export`: the Redis baseline's data. For every card query of the workload
//! that names a branch, the answer shikaku gives (from the index) is written as a RESP
//! `SET <card key> <answer JSON>` command, for `redis-cli --pipe`. Redis then holds the same
//! records as shikaku, keyed by the full card key (`workload::card_key`), and
//! `shikaku load --mode redis-get` reads them back with the same workload.
//!
//! Each key is exported once, with the answer to its first query in the file; `redis-get`
//! sends each key once with that query's expected validity, so the two agree.

use super::resp::encode_command;
use super::workload::{card_key, for_each_row, WorkloadError};
use crate::domain::Date;
use crate::index::Index;
use crate::query::write_answer;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// SET commands written (distinct keys).
    pub keys: u64,
    /// Rows not exported: person queries, card queries without a branch, repeated keys.
    pub skipped: u64,
    /// Exported answers whose validity differs from the row's `expected` (a shikaku bug,
    /// or a workload made for other data); `redis-get` will count them as wrong.
    pub unexpected_validity: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("writing the export: {0}")]
    Write(#[source] std::io::Error),
}

/// Writes the SET commands for `queries` answered from `index` to `out`. `today` is the date
/// of queries that give none.
pub fn export<B: AsRef<[u8]>>(
    index: &Index<B>,
    queries: &Path,
    today: Date,
    out: &mut impl Write,
) -> Result<ExportStats, ExportError> {
    let mut stats = ExportStats::default();
    let mut seen = HashSet::new();
    let mut answer = Vec::with_capacity(1024);
    let mut cmd = Vec::with_capacity(2048);
    let mut write_error = None;
    for_each_row(queries, |row, _| {
        let Some(q) = row.keyed_card()? else {
            stats.skipped += 1;
            return Ok(());
        };
        let key = card_key(&q).expect("keyed_card has a branch");
        if !seen.insert(key.clone()) {
            stats.skipped += 1;
            return Ok(());
        }
        let outcome = index.card(&q, today);
        if outcome.validity().code() != row.expected {
            stats.unexpected_validity += 1;
        }
        answer.clear();
        let date = q.date.unwrap_or(today);
        write_answer(
            &mut answer,
            &outcome,
            date,
            index.generation(),
            q.limit_consent,
        );
        cmd.clear();
        encode_command(&mut cmd, &[b"SET", key.as_bytes(), &answer]);
        if let Err(e) = out.write_all(&cmd) {
            write_error = Some(e);
            return Err("write failed".into());
        }
        stats.keys += 1;
        Ok(())
    })
    .map_err(|e| match write_error.take() {
        Some(io) => ExportError::Write(io),
        None => ExportError::Workload(e),
    })?;
    out.flush().map_err(ExportError::Write)?;
    Ok(stats)
}
