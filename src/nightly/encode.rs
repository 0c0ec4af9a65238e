//! Per-insurer stage of the build: deduplicate, sort by card key, find card conflicts (X2),
//! and encode the insurer's segment. Runs in parallel, one insurer per task.

use super::report::ReportLine;
use crate::domain::{Date, InsurerKind, InsurerNumber, PersonHash, PersonKey, Record, Sex};
use crate::format::writer::{encode_segment, EncodedSegment, SegmentInput};
use crate::format::{card_key, FormatError, RecordEntry, MAX_CARD_KEY_BYTES};

/// One insurer's validated rows, as the snapshot reader produced them.
#[derive(Debug, Clone)]
pub struct InsurerRows {
    pub number: InsurerNumber,
    pub name: String,
    pub kind: InsurerKind,
    pub snapshot_date: Date,
    /// The snapshot file, relative to the snapshots directory (for reports).
    pub file: String,
    /// Indexed rows with their line numbers.
    pub rows: Vec<(Record, u32)>,
}

/// What the person stage needs of each linked record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    pub hash: PersonHash,
    pub insurer: u32,
    pub record: u32,
    pub birthdate: Date,
    pub sex: Sex,
    pub qualification_date: Date,
    pub disqualification_date: Option<Date>,
    pub line: u32,
}

impl Link {
    /// The link of a record read back from an index: `hash`'s record `record` of insurer
    /// (or segment) `insurer`.
    pub fn of_entry(hash: PersonHash, insurer: u32, record: u32, r: &RecordEntry) -> Link {
        Link {
            hash,
            insurer,
            record,
            birthdate: r.birthdate,
            sex: r.sex,
            qualification_date: r.qualification_date,
            disqualification_date: r.disqualification_date,
            line: r.line,
        }
    }
}

/// An insurer ready to be written.
#[derive(Debug, Clone)]
pub struct InsurerPart {
    pub number: InsurerNumber,
    pub name: String,
    pub kind: InsurerKind,
    pub snapshot_date: Date,
    pub file: String,
    pub segment: EncodedSegment,
    pub covered_count: u32,
    pub records_indexed: u64,
    pub rows_deduplicated: u64,
    pub links: Vec<Link>,
    pub findings: Vec<ReportLine>,
}

/// Keeps each exact duplicate row once (its first line) and returns a `DUP` report line for
/// every other: docs/delivery.md drops nothing without a line in the report.
pub(super) fn dedup<T: Ord>(rows: &mut Vec<(T, u32)>, file: &str) -> Vec<ReportLine> {
    // Equal records end up next to each other, in line order.
    rows.sort_unstable();
    let mut lines = Vec::new();
    let mut kept_line = 0;
    rows.dedup_by(|later, earlier| {
        let duplicate = later.0 == earlier.0;
        if duplicate {
            kept_line = earlier.1;
            lines.push(ReportLine {
                file: file.to_owned(),
                line: u64::from(later.1),
                rule: "DUP",
                field: String::new(),
                reason: format!("the same row as line {kept_line}, indexed once"),
            });
        }
        duplicate
    });
    lines
}

/// Encodes one insurer. `insurer_index` is its position in the final (sorted) insurer table,
/// which person refs point at; `built_on` is the day "covered today" counts are taken.
pub fn encode_insurer(
    mut input: InsurerRows,
    insurer_index: u32,
    key: &PersonKey,
    built_on: Date,
) -> Result<InsurerPart, FormatError> {
    let duplicates = dedup(&mut input.rows, &input.file);
    let rows_deduplicated = duplicates.len() as u64;
    // Segment order: by encoded card key (the FST's order); the sort is stable, so the records
    // of one card keep their order. A key too long to encode sorts last and fails encoding.
    input.rows.sort_by_cached_key(|(r, _)| {
        let mut key = [0u8; MAX_CARD_KEY_BYTES];
        card_key(&r.symbol, &r.number, &mut key).map_or_else(
            || vec![0xFF; MAX_CARD_KEY_BYTES + 1],
            |len| key[..len].to_vec(),
        )
    });
    let hashes: Vec<Option<PersonHash>> = input
        .rows
        .iter()
        .map(|(r, _)| r.individual_number.as_ref().map(|n| key.hash(n)))
        .collect();
    let inputs: Vec<SegmentInput<'_>> = input
        .rows
        .iter()
        .zip(&hashes)
        .map(|((record, line), person)| SegmentInput {
            record,
            line: *line,
            person: *person,
        })
        .collect();
    let segment = encode_segment(&inputs)?;
    let links = input
        .rows
        .iter()
        .zip(&hashes)
        .enumerate()
        .filter_map(|(i, ((r, line), h))| {
            h.map(|hash| Link {
                hash,
                insurer: insurer_index,
                record: i as u32,
                birthdate: r.birthdate,
                sex: r.sex,
                qualification_date: r.qualification_date,
                disqualification_date: r.disqualification_date,
                line: *line,
            })
        })
        .collect();
    let mut findings = duplicates;
    findings.extend(card_conflicts(&input.rows, &input.file));
    let covered_count = input
        .rows
        .iter()
        .filter(|(r, _)| r.covers(built_on))
        .count() as u32;
    Ok(InsurerPart {
        number: input.number,
        name: input.name,
        kind: input.kind,
        snapshot_date: input.snapshot_date,
        file: input.file,
        records_indexed: input.rows.len() as u64,
        rows_deduplicated,
        segment,
        covered_count,
        links,
        findings,
    })
}

fn periods_overlap(a: &Record, b: &Record) -> bool {
    let end = |r: &Record| r.disqualification_date.unwrap_or(Date::MAX);
    a.qualification_date < end(b) && b.qualification_date < end(a)
}

/// X2: one card key (insurer, symbol, number, branch) on records of different people
/// (birthdate or name_kana differ) whose periods overlap. `rows` is sorted by card key.
fn card_conflicts(rows: &[(Record, u32)], file: &str) -> Vec<ReportLine> {
    let mut findings = Vec::new();
    let same_key = |a: &Record, b: &Record| {
        a.symbol == b.symbol && a.number == b.number && a.branch == b.branch
    };
    let mut start = 0;
    while start < rows.len() {
        let end = start
            + rows[start..]
                .iter()
                .take_while(|(r, _)| same_key(r, &rows[start].0))
                .count();
        for i in start..end {
            for j in i + 1..end {
                let (a, la) = &rows[i];
                let (b, lb) = &rows[j];
                let different_people = a.birthdate != b.birthdate || a.name_kana != b.name_kana;
                if different_people && periods_overlap(a, b) {
                    findings.push(ReportLine {
                        file: file.to_owned(),
                        line: u64::from(*lb),
                        rule: "X2",
                        field: "number".into(),
                        reason: format!(
                            "card conflict: same card key as line {la} (branch {}) for a different person with an overlapping period; both kept",
                            b.branch
                        ),
                    });
                }
            }
        }
        start = end;
    }
    findings
}
