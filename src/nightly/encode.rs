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
    /// Each row's person, when the caller knows it (a record read back from an index keeps
    /// its hash, not its individual number); empty: hashed from the rows' individual numbers.
    pub persons: Vec<Option<PersonHash>>,
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
    input: InsurerRows,
    insurer_index: u32,
    key: &PersonKey,
    built_on: Date,
) -> Result<InsurerPart, FormatError> {
    let (kept, duplicates) = segment_order(&input.rows, &input.file);
    let rows_deduplicated = duplicates.len() as u64;
    let rows: Vec<&(Record, u32)> = kept.iter().map(|&i| &input.rows[i as usize]).collect();
    let hashes: Vec<Option<PersonHash>> = kept
        .iter()
        .map(|&i| match input.persons.get(i as usize) {
            Some(known) => *known,
            None => input.rows[i as usize]
                .0
                .individual_number
                .as_ref()
                .map(|n| key.hash(n)),
        })
        .collect();
    let inputs: Vec<SegmentInput<'_>> = rows
        .iter()
        .zip(&hashes)
        .map(|((record, line), person)| SegmentInput {
            record,
            line: *line,
            person: *person,
        })
        .collect();
    let segment = encode_segment(&inputs)?;
    let links = rows
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
    findings.extend(card_conflicts(&rows, &input.file));
    let covered_count = rows.iter().filter(|(r, _)| r.covers(built_on)).count() as u32;
    let records_indexed = rows.len() as u64;
    drop(rows);
    Ok(InsurerPart {
        number: input.number,
        name: input.name,
        kind: input.kind,
        snapshot_date: input.snapshot_date,
        file: input.file,
        records_indexed,
        rows_deduplicated,
        segment,
        covered_count,
        links,
        findings,
    })
}

/// The rows' positions in segment order, each exact duplicate left out, and a `DUP` line for every
/// duplicate (docs/delivery.md drops nothing without a line in the report).
///
/// Segment order is the encoded card key's (the FST's); the records of one card follow in
/// record order, then line order, and a key too long to encode sorts last (its encoding then
/// fails). Equal records are next to each other in that order, so one sort serves both the
/// deduplication and the segment, and the sort moves 4-byte positions rather than records.
/// The `DUP` lines come in record order, as [`dedup`] gives them.
fn segment_order(rows: &[(Record, u32)], file: &str) -> (Vec<u32>, Vec<ReportLine>) {
    let keys = CardKeys::of(rows);
    let mut order: Vec<u32> = (0..rows.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        keys.prefix[a as usize]
            .cmp(&keys.prefix[b as usize])
            .then_with(|| keys.cmp_full(a, b))
            .then_with(|| rows[a as usize].cmp(&rows[b as usize]))
    });
    let mut kept: Vec<u32> = Vec::with_capacity(rows.len());
    // (duplicate, the line kept in its place)
    let mut duplicates: Vec<(&(Record, u32), u32)> = Vec::new();
    for &i in &order {
        let row = &rows[i as usize];
        match kept.last().map(|&k| &rows[k as usize]) {
            Some(earlier) if earlier.0 == row.0 => duplicates.push((row, earlier.1)),
            _ => kept.push(i),
        }
    }
    duplicates.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let lines = duplicates
        .into_iter()
        .map(|((_, line), kept_line)| ReportLine {
            file: file.to_owned(),
            line: u64::from(*line),
            rule: "DUP",
            field: String::new(),
            reason: format!("the same row as line {kept_line}, indexed once"),
        })
        .collect();
    (kept, lines)
}

/// Every row's encoded card key: its first 16 bytes as a number (zero-padded, so numbers
/// order as the keys do: keys are prefix-free), and the whole key for the rare longer one.
struct CardKeys {
    prefix: Vec<u128>,
    /// Keys longer than 16 bytes, by row; `None` where the key cannot be encoded.
    long: std::collections::HashMap<u32, Option<Vec<u8>>>,
}

impl CardKeys {
    fn of(rows: &[(Record, u32)]) -> CardKeys {
        let mut prefix = Vec::with_capacity(rows.len());
        let mut long = std::collections::HashMap::new();
        let mut key = [0u8; MAX_CARD_KEY_BYTES];
        for (i, (r, _)) in rows.iter().enumerate() {
            let len = card_key(&r.symbol, &r.number, &mut key);
            let mut head = [0u8; 16];
            match len {
                Some(len) => {
                    let n = len.min(16);
                    head[..n].copy_from_slice(&key[..n]);
                    if len > 16 {
                        long.insert(i as u32, Some(key[..len].to_vec()));
                    }
                }
                // No valid key starts with 0xFF (tags are at most 0x80 + 80): last.
                None => {
                    head = [0xFF; 16];
                    long.insert(i as u32, None);
                }
            }
            prefix.push(u128::from_be_bytes(head));
        }
        CardKeys { prefix, long }
    }

    /// Two rows whose prefixes are equal, by whole key (an unencodable one last).
    fn cmp_full(&self, a: u32, b: u32) -> std::cmp::Ordering {
        if self.long.is_empty() {
            return std::cmp::Ordering::Equal;
        }
        let whole = |i: u32| match self.long.get(&i) {
            None => (false, None),
            Some(None) => (true, None),
            Some(Some(k)) => (false, Some(k.as_slice())),
        };
        let (a_bad, a_key) = whole(a);
        let (b_bad, b_key) = whole(b);
        a_bad.cmp(&b_bad).then_with(|| a_key.cmp(&b_key))
    }
}

fn periods_overlap(a: &Record, b: &Record) -> bool {
    let end = |r: &Record| r.disqualification_date.unwrap_or(Date::MAX);
    a.qualification_date < end(b) && b.qualification_date < end(a)
}

/// X2: one card key (insurer, symbol, number, branch) on records of different people
/// (birthdate or name_kana differ) whose periods overlap. `rows` is sorted by card key.
fn card_conflicts(rows: &[&(Record, u32)], file: &str) -> Vec<ReportLine> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Member;
    use proptest::prelude::*;

    /// The order as the build made it before `segment_order`: sort and deduplicate by record,
    /// then a stable sort by encoded card key (an unencodable key last).
    fn naive(mut rows: Vec<(Record, u32)>, file: &str) -> (Vec<(Record, u32)>, Vec<ReportLine>) {
        let duplicates = dedup(&mut rows, file);
        rows.sort_by_cached_key(|(r, _)| {
            let mut key = [0u8; MAX_CARD_KEY_BYTES];
            card_key(&r.symbol, &r.number, &mut key).map_or_else(
                || vec![0xFF; MAX_CARD_KEY_BYTES + 1],
                |len| key[..len].to_vec(),
            )
        });
        (rows, duplicates)
    }

    fn check(rows: Vec<(Record, u32)>) {
        let (expected, expected_lines) = naive(rows.clone(), "f.csv");
        let (kept, lines) = segment_order(&rows, "f.csv");
        let kept: Vec<(Record, u32)> = kept.into_iter().map(|i| rows[i as usize].clone()).collect();
        assert_eq!(kept, expected);
        assert_eq!(lines, expected_lines);
    }

    /// Symbols and numbers whose keys are short, exactly 16 bytes, longer than 16 (sharing a
    /// 16-byte prefix), or too long to encode; birthdates and branches make equal cards of
    /// different records, and repeats make exact duplicates.
    const SYMBOLS: [&str; 6] = [
        "",
        "12",
        "12A45678B01234567C",
        "ABCDEFGHIJKLMN",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "ABCDEFGHIJKLMNOPQRSTUVWXYY",
    ];
    const NUMBERS: [&str; 4] = ["1", "3456", "12345678901", "00001"];

    fn row(symbol: usize, number: usize, branch: u8, born: usize, line: u32) -> (Record, u32) {
        let births = ["1980-01-23", "1990-05-06", "1975-12-31"];
        let mut r = Member {
            symbol: SYMBOLS[symbol],
            number: NUMBERS[number],
            branch,
            birth: births[born],
            ..Member::default()
        }
        .record();
        if symbol == 0 && number == 3 {
            // Longer than a key part may be: the key cannot be encoded.
            r.symbol = "X".repeat(90);
        }
        (r, line)
    }

    #[test]
    fn segment_order_is_card_key_order_without_duplicates() {
        check(Vec::new());
        check(vec![row(1, 1, 0, 0, 2)]);
        check(vec![
            row(1, 1, 0, 0, 2),
            row(1, 1, 0, 0, 3),
            row(1, 1, 0, 0, 4),
        ]);
        check(vec![
            row(4, 2, 0, 0, 2),
            row(5, 2, 0, 0, 3),
            row(4, 2, 1, 0, 4),
        ]);
        check(vec![
            row(0, 3, 0, 0, 2),
            row(1, 1, 0, 0, 3),
            row(0, 3, 0, 0, 4),
        ]);
    }

    proptest! {
        #[test]
        fn segment_order_is_the_two_sorts_it_replaces(
            picks in prop::collection::vec((0..6usize, 0..4usize, 0..2u8, 0..3usize), 0..80),
            lines in Just(()).prop_perturb(|_, mut rng| {
                let mut lines: Vec<u32> = (2..82).collect();
                for i in (1..lines.len()).rev() {
                    lines.swap(i, (rng.next_u32() as usize) % (i + 1));
                }
                lines
            }),
        ) {
            let rows = picks
                .iter()
                .zip(&lines)
                .map(|(&(s, n, b, born), &line)| row(s, n, b, born, line))
                .collect();
            check(rows);
        }
    }
}
