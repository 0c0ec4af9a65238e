//! The workload file (`queries.csv` of `shikaku-datagen --queries`) and its requests, encoded
//! once before the run so the load loop only copies bytes.
//!
//! Header: `kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,
//! limit_consent,expected` (the batch columns of docs/api.md#batch plus `expected`, the validity 1–5 the
//! contract demands), and `payer_number,recipient_number` when the file holds public-expense
//! rows (kind `kohi`). Columns may come in any order; extra columns are ignored.

use super::resp::encode_command;
use crate::query::batch::CSV_INPUT_COLUMNS;
use crate::query::{parse_consent, CardFields, CardQuery, QueryKind};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Most queries one workload may hold (memory: about 100 bytes each once encoded).
pub const MAX_QUERIES: usize = 20_000_000;

#[derive(Debug, Error)]
pub enum WorkloadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}: {reason}", path.display())]
    Row {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

/// What the load generator sends for each query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `ELIG.CARD` / `ELIG.PERSON` / `ELIG.KOHI` with the raw fields of each query: the
    /// server does the normalizing, as for a real client.
    Elig,
    /// `GET <card key>` for each distinct card query that names a branch: the Redis baseline,
    /// against a Redis loaded by `shikaku redis-export`.
    RedisGet,
    /// `ELIG.CARD` with the raw fields of exactly the rows `redis-get` sends: shikaku's side
    /// of a comparison with Redis on the same requests (no person or branchless queries, no
    /// repeats).
    EligKeyed,
    /// `PING` for every row, expecting `+PONG`: the least work any server does for a request,
    /// so the rate this client, its core and the kernel's loopback path allow (the floor).
    Ping,
}

/// The "expected validity" of a `PING`: a `+PONG` reply, not an answer (validities are 1–5).
pub const EXPECT_PONG: u8 = 0;

/// One row of the workload, borrowing its fields from the CSV record.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub kind: QueryKind,
    pub insurer_number: &'a str,
    pub symbol: &'a str,
    pub number: &'a str,
    pub branch: &'a str,
    pub birthdate: &'a str,
    pub individual_number: &'a str,
    pub date: &'a str,
    pub limit_consent: bool,
    /// A public-expense row's (empty in a file without the columns).
    pub payer_number: &'a str,
    pub recipient_number: &'a str,
    pub expected: u8,
}

impl Row<'_> {
    fn card_fields(&self) -> CardFields<'_> {
        CardFields {
            insurer_number: Some(self.insurer_number),
            symbol: Some(self.symbol),
            number: Some(self.number),
            branch: Some(self.branch),
            birthdate: Some(self.birthdate),
            date: Some(self.date),
            limit_consent: self.limit_consent,
        }
    }

    /// The card query of a card row that names a branch, normalized; `Ok(None)` for person
    /// and public-expense rows and branchless card rows, which have no card key.
    pub fn keyed_card(&self) -> Result<Option<CardQuery>, String> {
        if self.kind != QueryKind::Card || self.branch.trim().is_empty() {
            return Ok(None);
        }
        CardQuery::parse(&self.card_fields())
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// The Redis key of a card query that names a branch:
/// `insurer_number:symbol:number:branch:birthdate`, each part normalized as shikaku does
/// (docs/api.md: identifiers, dates): the 6- or 8-digit insurer number, symbol and number after NFKC with
/// white space removed and leading zeros of all-digit values dropped (empty symbol when the
/// card has none), the two-digit branch, the birthdate as `YYYY-MM-DD`. No part can hold a
/// colon, so the key is unambiguous.
pub fn card_key(q: &CardQuery) -> Option<String> {
    let branch = q.branch?;
    Some(format!(
        "{}:{}:{}:{}:{}",
        q.insurer.as_str(),
        q.symbol,
        q.number,
        branch,
        q.birthdate
    ))
}

/// Column positions, found by name in the header: the query columns and `expected`, and the
/// public-expense columns when the header has them.
struct Columns([usize; 10], Option<[usize; 2]>);

/// The columns of a public-expense row besides those a card row has.
const KOHI_COLUMNS: [&str; 2] = ["payer_number", "recipient_number"];

/// The query columns of a CSV batch, then the expected validity.
const COLUMNS: [&str; 10] = {
    let mut columns = [EXPECTED_COLUMN; 10];
    let mut i = 0;
    while i < CSV_INPUT_COLUMNS.len() {
        columns[i] = CSV_INPUT_COLUMNS[i];
        i += 1;
    }
    columns
};
const EXPECTED_COLUMN: &str = "expected";

impl Columns {
    fn find(header: &csv::StringRecord) -> Result<Columns, String> {
        let position = |name: &str| {
            header
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}') == name)
        };
        let mut at = [0; 10];
        for (slot, name) in at.iter_mut().zip(COLUMNS) {
            *slot = position(name).ok_or_else(|| format!("the header has no column {name:?}"))?;
        }
        let kohi = match KOHI_COLUMNS.map(position) {
            [Some(p), Some(r)] => Some([p, r]),
            _ => None,
        };
        Ok(Columns(at, kohi))
    }

    fn row<'a>(&self, rec: &'a csv::StringRecord) -> Result<Row<'a>, String> {
        let get = |i: usize| rec.get(self.0[i]).unwrap_or("");
        let kind = match get(0) {
            "card" => QueryKind::Card,
            "person" => QueryKind::Person,
            "kohi" if self.1.is_some() => QueryKind::Kohi,
            "kohi" => {
                return Err(format!(
                    "a kohi row needs the columns {}",
                    KOHI_COLUMNS.join(" and ")
                ))
            }
            other => return Err(format!("kind must be card, person or kohi, got {other:?}")),
        };
        let kohi = |i: usize| self.1.and_then(|at| rec.get(at[i])).unwrap_or("");
        let expected = match get(9).trim() {
            e @ ("1" | "2" | "3" | "4" | "5") => e.as_bytes()[0] - b'0',
            other => return Err(format!("expected must be a validity 1-5, got {other:?}")),
        };
        let limit_consent = parse_consent(Some(get(8))).map_err(|e| e.to_string())?;
        Ok(Row {
            kind,
            insurer_number: get(1),
            symbol: get(2),
            number: get(3),
            branch: get(4),
            birthdate: get(5),
            individual_number: get(6),
            date: get(7),
            limit_consent,
            payer_number: kohi(0),
            recipient_number: kohi(1),
            expected,
        })
    }
}

/// Calls `f` with every row of the workload file and its line number; an error from `f`
/// becomes an error naming the file and line.
pub fn for_each_row(
    path: &Path,
    mut f: impl FnMut(&Row<'_>, u64) -> Result<(), String>,
) -> Result<u64, WorkloadError> {
    let file = std::fs::File::open(path).map_err(|source| WorkloadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
    let file_err = |reason: String| WorkloadError::File {
        path: path.to_path_buf(),
        reason,
    };
    let header = reader.headers().map_err(|e| file_err(e.to_string()))?;
    let columns = Columns::find(header).map_err(file_err)?;
    let mut rec = csv::StringRecord::new();
    let mut rows = 0u64;
    loop {
        let line = reader.position().line() + 1;
        let row_err = |reason: String| WorkloadError::Row {
            path: path.to_path_buf(),
            line,
            reason,
        };
        match reader.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(row_err(e.to_string())),
        }
        let line = rec.position().map_or(line, |p| p.line());
        let row_err = |reason: String| WorkloadError::Row {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let row = columns.row(&rec).map_err(row_err)?;
        f(&row, line).map_err(row_err)?;
        rows += 1;
    }
    Ok(rows)
}

/// Every request of a run, encoded back to back in one buffer, with the validity each must
/// get. Shared read-only by all load threads.
#[derive(Debug, Default)]
pub struct Workload {
    bytes: Vec<u8>,
    /// End offset of request i in `bytes`; it starts where request i-1 ends.
    ends: Vec<u32>,
    expected: Vec<u8>,
    /// Rows read but not sent in this mode (redis-get, elig-keyed: person and branchless card
    /// rows, and repeats of a card key).
    pub skipped: u64,
}

impl Workload {
    /// Reads and encodes the workload file for `mode`.
    pub fn load(path: &Path, mode: Mode) -> Result<Workload, WorkloadError> {
        let mut w = Workload::default();
        let mut seen_keys = HashSet::new();
        for_each_row(path, |row, _| {
            if w.len() >= MAX_QUERIES {
                return Err(format!("more than {MAX_QUERIES} queries"));
            }
            match mode {
                Mode::Elig => {
                    encode_elig(row, &mut w.bytes);
                    w.push(row.expected)
                }
                Mode::Ping => {
                    encode_command(&mut w.bytes, &[b"PING"]);
                    w.push(EXPECT_PONG)
                }
                Mode::RedisGet | Mode::EligKeyed => {
                    match row.keyed_card()?.as_ref().and_then(card_key) {
                        Some(key) if seen_keys.insert(key.clone()) => {
                            match mode {
                                Mode::RedisGet => {
                                    encode_command(&mut w.bytes, &[b"GET", key.as_bytes()])
                                }
                                _ => encode_elig(row, &mut w.bytes),
                            }
                            w.push(row.expected)
                        }
                        _ => {
                            w.skipped += 1;
                            Ok(())
                        }
                    }
                }
            }
        })?;
        if w.is_empty() {
            return Err(WorkloadError::File {
                path: path.to_path_buf(),
                reason: match mode {
                    Mode::Elig | Mode::Ping => "holds no queries".into(),
                    Mode::RedisGet | Mode::EligKeyed => {
                        "holds no card query that names a branch".into()
                    }
                },
            });
        }
        Ok(w)
    }

    /// Records the end of the request just encoded.
    fn push(&mut self, expected: u8) -> Result<(), String> {
        let end = u32::try_from(self.bytes.len())
            .map_err(|_| "the encoded workload exceeds 4 GiB".to_string())?;
        self.ends.push(end);
        self.expected.push(expected);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoded request `i` (panics when `i >= len()`).
    pub fn request(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    pub fn expected(&self, i: usize) -> u8 {
        self.expected[i]
    }
}

/// `ELIG.CARD insurer symbol number branch birthdate [date] [LIMIT]`,
/// `ELIG.PERSON individual_number [date] [LIMIT]` or `ELIG.KOHI payer recipient birthdate
/// [date]`, with the fields as the file gives them. The date is positional, so an empty one is
/// sent when only LIMIT follows.
fn encode_elig<'a>(row: &Row<'a>, out: &mut Vec<u8>) {
    let mut args: [&'a [u8]; 8] = [b""; 8];
    let mut n = 0;
    let mut push = |a: &'a [u8]| {
        args[n] = a;
        n += 1;
    };
    match row.kind {
        QueryKind::Person => {
            push(b"ELIG.PERSON");
            push(row.individual_number.as_bytes());
        }
        QueryKind::Card => {
            push(b"ELIG.CARD");
            for f in [
                row.insurer_number,
                row.symbol,
                row.number,
                row.branch,
                row.birthdate,
            ] {
                push(f.as_bytes());
            }
        }
        QueryKind::Kohi => {
            push(b"ELIG.KOHI");
            for f in [row.payer_number, row.recipient_number, row.birthdate] {
                push(f.as_bytes());
            }
        }
    }
    if !row.date.is_empty() || row.limit_consent {
        push(row.date.as_bytes());
    }
    if row.limit_consent {
        push(b"LIMIT");
    }
    encode_command(out, &args[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HEADER: &str =
        "kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent,expected\n";

    fn file(body: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(body.as_bytes()).unwrap();
        f
    }

    #[test]
    fn encodes_elig_requests() {
        let f = file(&format!(
            "{HEADER}card,  131045,,０１２,1,S45.1.23,,2026-11-24,,1\n\
             person,,,,,,123456789018,,1,4\n"
        ));
        let w = Workload::load(f.path(), Mode::Elig).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(
            std::str::from_utf8(w.request(0)).unwrap(),
            "*7\r\n$9\r\nELIG.CARD\r\n$8\r\n  131045\r\n$0\r\n\r\n$9\r\n０１２\r\n$1\r\n1\r\n\
             $8\r\nS45.1.23\r\n$10\r\n2026-11-24\r\n"
        );
        assert_eq!(
            w.request(1),
            b"*4\r\n$11\r\nELIG.PERSON\r\n$12\r\n123456789018\r\n$0\r\n\r\n$5\r\nLIMIT\r\n"
        );
        assert_eq!((w.expected(0), w.expected(1)), (1, 4));
        // Public-expense rows, with their two columns (anywhere in the header).
        let f = file(
            &format!(
                "recipient_number,{}payer_number\n,card,131045,,12,1,S45.1.23,,,,1,\n\
             0123455,kohi,,,,,1980-01-23,,2026-11-24,,2,54136015\n",
                HEADER.trim_end()
            )
            .replacen(",expected", ",expected,", 1),
        );
        let w = Workload::load(f.path(), Mode::Elig).unwrap();
        assert_eq!(
            std::str::from_utf8(w.request(1)).unwrap(),
            "*5\r\n$9\r\nELIG.KOHI\r\n$8\r\n54136015\r\n$7\r\n0123455\r\n$10\r\n1980-01-23\r\n\
             $10\r\n2026-11-24\r\n"
        );
        assert_eq!(w.expected(1), 2);
    }

    #[test]
    fn redis_get_uses_normalized_distinct_card_keys() {
        let f = file(&format!(
            "{HEADER}card,  131045,,０１２,1,S45.1.23,,2026-11-24,,1\n\
             card,131045,,12,01,1970-01-23,,2026-11-25,,2\n\
             card,131045,,12,,1970-01-23,,2026-11-25,,1\n\
             person,,,,,,123456789018,,,4\n\
             card,06139992,ＡＢ 1,0034,2,3450123,,,,3\n"
        ));
        let w = Workload::load(f.path(), Mode::RedisGet).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w.skipped, 3);
        let key = |i| {
            let r = std::str::from_utf8(w.request(i)).unwrap();
            r.rsplit("\r\n").nth(1).unwrap().to_string()
        };
        assert_eq!(key(0), "131045::12:01:1970-01-23");
        assert_eq!(key(1), "06139992:AB1:34:02:1970-01-23");
        assert_eq!((w.expected(0), w.expected(1)), (1, 3));
        // elig-keyed sends the same rows, as ELIG.CARD with their raw fields.
        let e = Workload::load(f.path(), Mode::EligKeyed).unwrap();
        assert_eq!((e.len(), e.skipped), (2, 3));
        assert_eq!((e.expected(0), e.expected(1)), (1, 3));
        let first = std::str::from_utf8(e.request(0)).unwrap();
        assert!(
            first.starts_with("*7\r\n$9\r\nELIG.CARD\r\n") && first.contains("０１２"),
            "{first}"
        );
    }

    /// A bad file is an error naming the file and, for a bad row, its line.
    #[test]
    fn bad_files_name_file_and_line() {
        let check = |body: &str, mode: Mode, want: &[&str]| {
            let f = file(body);
            let msg = Workload::load(f.path(), mode).unwrap_err().to_string();
            let name = f.path().display().to_string();
            assert!(msg.contains(&name), "{msg}");
            for w in want {
                assert!(msg.contains(w), "{msg} lacks {w:?}");
            }
        };
        let ok = "card,131045,,12,01,1970-01-23,,,,1\n";
        check(
            &format!("{HEADER}{ok}{ok}card,131045,,12,01,1970-01-23,,,,9\n"),
            Mode::Elig,
            &["line 4", "expected"],
        );
        check(
            &format!("{HEADER}{ok}bogus,131045,,12,01,1970-01-23,,,,1\n"),
            Mode::Elig,
            &["line 3", "kind"],
        );
        check(
            &format!("{HEADER}{ok}card,131045,,12,01,1970-01-23,,,maybe,1\n"),
            Mode::Elig,
            &["line 3", "limit_consent"],
        );
        check(
            &format!("{HEADER}{ok}card,131046,,12,01,1970-01-23,,,,1\n"),
            Mode::RedisGet,
            &["line 3", "insurer_number"],
        );
        check("kind,number\ncard,1\n", Mode::Elig, &["no column"]);
        check(
            &format!("{HEADER}{ok}kohi,,,,,1980-01-23,,,,1\n"),
            Mode::Elig,
            &["line 3", "payer_number and recipient_number"],
        );
        check(HEADER, Mode::Elig, &["no queries"]);
        check(
            &format!("{HEADER}person,,,,,,123456789018,,,4\n"),
            Mode::RedisGet,
            &["names a branch"],
        );
        let missing = Workload::load(Path::new("/nonexistent/q.csv"), Mode::Elig);
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/q.csv"));
    }
}
