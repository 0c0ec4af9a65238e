//! `shikaku redis-export`: the Redis baseline's data, as RESP `SET <card key> <answer JSON>`
//! commands for `redis-cli --pipe`, keyed by the full card key (`workload::card_key`).
//!
//! Redis holds the same records as shikaku (issue 4): first, for every card query of the
//! workload that names a branch, the answer shikaku gives to that query; then, for every
//! other card key of the index (insurer, symbol, number, branch, birth date of each record),
//! the answer for `today`. `shikaku load --mode redis-get` reads them back with the workload.
//! Exporting only the queried keys would leave Redis a working set that fits in the CPU's
//! caches (50k keys out of 1.3M at 1M persons) while shikaku serves the whole index.
//!
//! Each key is exported once, with the answer to its first query in the file; `redis-get`
//! sends each key once with that query's expected validity, so the two agree.

use super::resp::encode_command;
use super::workload::{card_key, for_each_row, WorkloadError};
use crate::domain::{Date, InsurerNumber};
use crate::index::{Index, RecordView};
use crate::query::{write_answer, CardQuery, Lookup};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// SET commands written (distinct keys), both kinds below.
    pub keys: u64,
    /// Of `keys`: those of records no workload query names, answered for `today`.
    pub record_keys: u64,
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
    let mut write_set = |key: &str, answer: &[u8], out: &mut dyn Write| {
        cmd.clear();
        encode_command(&mut cmd, &[b"SET", key.as_bytes(), answer]);
        out.write_all(&cmd)
    };
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
        if let Err(e) = write_set(&key, &answer, out) {
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
    for r in index.all_records() {
        let Some(q) = record_query(&r) else {
            continue;
        };
        let key = card_key(&q).expect("record_query has a branch");
        if !seen.insert(key.clone()) {
            continue;
        }
        let outcome = index.card(&q, today);
        answer.clear();
        write_answer(
            &mut answer,
            &outcome,
            today,
            index.generation(),
            q.limit_consent,
        );
        write_set(&key, &answer, out).map_err(ExportError::Write)?;
        stats.keys += 1;
        stats.record_keys += 1;
    }
    out.flush().map_err(ExportError::Write)?;
    Ok(stats)
}

/// The card query naming record `r`'s card, branch and birth date, for today. `None` only
/// for an insurer number the index could not have written (the index checked it at build).
fn record_query(r: &RecordView<'_>) -> Option<CardQuery> {
    Some(CardQuery {
        insurer: InsurerNumber::parse(r.insurer_number()).ok()?,
        symbol: r.symbol().to_owned(),
        number: r.number().to_owned(),
        branch: Some(r.branch()),
        birthdate: r.birthdate(),
        date: None,
        limit_consent: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::resp::parse_command;

    /// Splits the export into (key, answer) pairs, checking each is a 3-part SET.
    fn sets(mut bytes: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut args = Vec::new();
        while !bytes.is_empty() {
            let used = parse_command(bytes, &mut args)
                .unwrap()
                .expect("a whole command");
            let text = |i: usize| String::from_utf8(bytes[args[i].clone()].to_vec()).unwrap();
            assert_eq!(args.len(), 3);
            assert_eq!(text(0), "SET");
            out.push((text(1), text(2)));
            bytes = &bytes[used..];
        }
        out
    }

    #[test]
    fn redis_holds_every_record_and_the_workloads_answers_first() {
        let index = crate::testing::three_cards_index("12");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        // 12/3457 was eligible in 2015 and lost in 2016; the workload asks about 2015.
        f.write_all(
            b"kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent,expected\n\
              card,33120015,12,3457,01,1980-01-23,,2015-06-01,,1\n",
        )
        .unwrap();
        let today = Date::parse("2026-11-24").unwrap();
        let mut out = Vec::new();
        let stats = export(&index, f.path(), today, &mut out).unwrap();
        assert_eq!(
            (stats.keys, stats.record_keys, stats.unexpected_validity),
            (3, 2, 0)
        );
        let sets = sets(&out);
        let keys: Vec<&str> = sets.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "33120015:12:3457:01:1980-01-23",
                "33120015:12:3456:00:1980-01-23",
                "33120015:12:3458:00:1980-01-23",
            ]
        );
        // The workload's key keeps the answer to its own query, not today's.
        assert!(sets[0].1.contains("\"validity\":1"), "{}", sets[0].1);
        assert!(sets[1].1.contains("\"validity\":1"), "{}", sets[1].1);
    }
}
