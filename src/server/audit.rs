//! The audit log (docs/api.md: individual number, institution code): which client asked about whom, when, and what it was told.
//!
//! With `serve --audit-dir DIR`, every query answered (a RESP command, an HTTP query, each
//! query of a batch, malformed ones included) appends one JSON line to its core's file,
//! `DIR/audit-<start>-core<k>-<part>.jsonl`. Lines are buffered per core and written when
//! [`AUDIT_BUFFER_BYTES`] fill, every [`AUDIT_FLUSH_EVERY`], and when the server stops; a
//! file is closed and the next part begun at [`AUDIT_FILE_MAX_BYTES`].
//!
//! A line never holds an individual number: a person query is named by the index's keyed
//! hash of it (docs/api.md#individual-number: linkable only with the operator's key) and its last four digits.
//!
//! When a write fails (disk full), the server goes on answering: a clinic's reception must
//! still check eligibility. The lines lost are counted (`shikaku_audit_lost_total`) and the
//! first failure of a run of them is logged, so the operator is told at once.

use super::metrics::Via;
use crate::domain::text::mask_digit_runs;
use crate::domain::{Date, InstitutionCode, PersonHash, Validity};
use crate::query::write_json_str;
use crate::query::{CardQuery, KohiQuery, PersonQuery};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Lines are written to the file when this many bytes are buffered.
pub const AUDIT_BUFFER_BYTES: usize = 64 * 1024;
/// The most a core buffers while writes fail; lines beyond it are counted as lost.
pub const AUDIT_BUFFER_MAX_BYTES: usize = 16 * AUDIT_BUFFER_BYTES;
/// A file is closed and the next part begun once it holds this many bytes.
pub const AUDIT_FILE_MAX_BYTES: u64 = 256 << 20;
/// Buffered lines are written at least this often.
pub const AUDIT_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Parts of one core's log in one run; beyond it the log is refused (an operator must act).
const AUDIT_MAX_PARTS: u32 = 100_000;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "audit log directory {dir}: {AUDIT_MAX_PARTS} parts of {stem} already; move old logs away"
    )]
    TooManyParts { dir: PathBuf, stem: String },
}

/// What was asked, as the audit log names it.
#[derive(Debug, Clone, Copy)]
pub enum Audited<'q> {
    Card(&'q CardQuery),
    /// A person query and the index's keyed hash of its individual number.
    Person(&'q PersonQuery, PersonHash),
    /// A public-expense query: payer and recipient, as normalized.
    Kohi(&'q KohiQuery),
    /// A malformed query, of the kind it named if any ("card", "person", "kohi").
    Malformed(Option<&'static str>),
    /// A receipt of a claims file checked (`POST /v1/claims`).
    Claim(AuditedClaim<'q>),
}

/// A checked receipt as its audit line shows it: the receipt number, its card as normalized
/// (none when it could not be read), and its verdict and reason. The line's date is the
/// first day of the month of care, and it has no validity.
#[derive(Debug, Clone, Copy)]
pub struct AuditedClaim<'q> {
    pub receipt: &'q str,
    pub card: Option<&'q CardQuery>,
    pub verdict: &'static str,
    pub reason: &'q str,
}

/// One line of the log.
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    /// When the request's bytes were read, in µs since the Unix epoch.
    pub at_us: i64,
    pub via: Via,
    /// The institution authenticated on the connection or request (`None` without `--auth`).
    pub client: Option<InstitutionCode>,
    pub peer: Option<SocketAddr>,
    pub query: Audited<'a>,
    /// The date the query was answered for (its own, or today).
    pub date: Date,
    /// `None`: malformed, answered with an error.
    pub validity: Option<Validity>,
    pub generation: &'a str,
}

/// One core's audit log.
pub struct AuditLog {
    dir: PathBuf,
    stem: String,
    part: u32,
    file: File,
    path: PathBuf,
    file_bytes: u64,
    /// [`AUDIT_FILE_MAX_BYTES`], smaller in tests.
    file_max_bytes: u64,
    buf: Vec<u8>,
    /// The last write failed (the failure is logged once, not at every flush).
    failing: bool,
    /// The head of the last line ([`write_shared_fields`]) and what it was made from: the lines of a
    /// read batch share it, and formatting a time and an address per line costs more than
    /// the rest of the line.
    head: Vec<u8>,
    head_of: Option<HeadKey>,
}

type HeadKey = (i64, Via, Option<InstitutionCode>, Option<SocketAddr>);

impl AuditLog {
    /// Opens core `core`'s first file in `dir` (created if missing), named after `started`
    /// (`YYYYMMDD-HHMMSS`, Japan time). A file of that name is never overwritten: the next
    /// part number is taken.
    pub fn create(dir: &Path, started: &str, core: usize) -> Result<AuditLog, AuditError> {
        std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let stem = format!("audit-{started}-core{core}");
        let (file, path, part) = open_part(dir, &stem, 0)?;
        Ok(AuditLog {
            dir: dir.to_owned(),
            stem,
            part,
            file,
            path,
            file_bytes: 0,
            file_max_bytes: AUDIT_FILE_MAX_BYTES,
            buf: Vec::with_capacity(AUDIT_BUFFER_BYTES + 1024),
            failing: false,
            head: Vec::new(),
            head_of: None,
        })
    }

    /// The file lines go to now.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line, and writes the buffer out when it is full. `false`: the line is
    /// lost, as writes have been failing for [`AUDIT_BUFFER_MAX_BYTES`] of lines.
    pub fn record(&mut self, e: &AuditEntry<'_>) -> bool {
        if self.buf.len() >= AUDIT_BUFFER_MAX_BYTES {
            return false;
        }
        let start = self.buf.len();
        let key = Some((e.at_us, e.via, e.client, e.peer));
        if self.head_of != key {
            self.head.clear();
            write_shared_fields(&mut self.head, e);
            self.head_of = key;
        }
        self.buf.extend_from_slice(&self.head);
        write_rest(&mut self.buf, e);
        debug_assert_eq!(self.buf.last(), Some(&b'\n'));
        debug_assert!(std::str::from_utf8(&self.buf[start..]).is_ok());
        // While writes fail, only the timer retries: not a failing write per query.
        if self.buf.len() >= AUDIT_BUFFER_BYTES && !self.failing {
            self.flush();
        }
        true
    }

    /// Writes the buffered lines. On failure they stay buffered (up to
    /// [`AUDIT_BUFFER_MAX_BYTES`]) for the next try.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if self.file_bytes + self.buf.len() as u64 > self.file_max_bytes && self.file_bytes > 0 {
            match open_part(&self.dir, &self.stem, self.part + 1) {
                Ok((file, path, part)) => {
                    (self.file, self.path, self.part, self.file_bytes) = (file, path, part, 0);
                }
                Err(e) => return self.failed(&e.to_string()),
            }
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.file_bytes += self.buf.len() as u64;
                self.buf.clear();
                if self.failing {
                    tracing::warn!(path = %self.path.display(), "audit log writes again");
                    self.failing = false;
                }
            }
            Err(e) => {
                let message = format!("audit log {}: {e}", self.path.display());
                self.failed(&message);
            }
        }
    }

    fn failed(&mut self, message: &str) {
        if !self.failing {
            tracing::error!("{message}; answering goes on, lines beyond the buffer are lost and counted (shikaku_audit_lost_total)");
            self.failing = true;
        }
    }
}

fn open_part(dir: &Path, stem: &str, first: u32) -> Result<(File, PathBuf, u32), AuditError> {
    for part in first..AUDIT_MAX_PARTS {
        let path = dir.join(format!("{stem}-{part:04}.jsonl"));
        match OpenOptions::new().append(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, path, part)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(AuditError::Io { path, source }),
        }
    }
    Err(AuditError::TooManyParts {
        dir: dir.to_owned(),
        stem: stem.to_owned(),
    })
}

/// `{"at":"2026-11-28T18:20:01.123456+09:00","via":"resp","client":"0110113719",
/// "peer":"127.0.0.1:53412","kind":"card","insurer_number":"33120015","symbol":"12",
/// "number":"3456","branch":"01","date":"2026-11-28","validity":1,"generation":"g…"}`
pub fn write_line(out: &mut Vec<u8>, e: &AuditEntry<'_>) {
    write_shared_fields(out, e);
    write_rest(out, e);
}

/// What the lines of one read batch share: time, protocol, client and peer.
fn write_shared_fields(out: &mut Vec<u8>, e: &AuditEntry<'_>) {
    out.extend_from_slice(b"{\"at\":\"");
    write_jst_timestamp(out, e.at_us);
    out.extend_from_slice(b"\",\"via\":\"");
    out.extend_from_slice(e.via.as_str().as_bytes());
    out.extend_from_slice(b"\",\"client\":");
    match e.client {
        Some(c) => write_json_str(out, c.as_str()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"peer\":");
    match e.peer {
        Some(p) => write_json_str(out, &p.to_string()),
        None => out.extend_from_slice(b"null"),
    }
}

/// The query's part of a line, after [`write_shared_fields`].
fn write_rest(out: &mut Vec<u8>, e: &AuditEntry<'_>) {
    match e.query {
        Audited::Card(q) => {
            out.extend_from_slice(b",\"kind\":\"card\"");
            write_card(out, q);
        }
        Audited::Claim(c) => {
            out.extend_from_slice(b",\"kind\":\"claim\",\"receipt\":");
            write_json_str(out, c.receipt);
            match c.card {
                Some(q) => write_card(out, q),
                None => out.extend_from_slice(b",\"insurer_number\":null"),
            }
            out.extend_from_slice(b",\"date\":\"");
            e.date.write_iso(out);
            out.extend_from_slice(b"\",\"verdict\":\"");
            out.extend_from_slice(c.verdict.as_bytes());
            out.extend_from_slice(b"\",\"reason\":");
            write_json_str(out, c.reason);
            out.extend_from_slice(b",\"generation\":");
            write_json_str(out, e.generation);
            out.extend_from_slice(b"}\n");
            return;
        }
        Audited::Person(q, hash) => {
            out.extend_from_slice(b",\"kind\":\"person\",\"person\":\"");
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for b in hash.0 {
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            out.extend_from_slice(b"\",\"individual_number\":");
            write_json_str(out, &q.individual_number.masked());
        }
        Audited::Kohi(q) => {
            out.extend_from_slice(b",\"kind\":\"kohi\",\"payer_number\":\"");
            out.extend_from_slice(q.payer.as_str().as_bytes());
            out.extend_from_slice(b"\",\"recipient_number\":");
            write_json_str(out, &q.recipient);
        }
        Audited::Malformed(kind) => {
            out.extend_from_slice(b",\"kind\":");
            match kind {
                Some(k) => write_json_str(out, k),
                None => out.extend_from_slice(b"null"),
            }
        }
    }
    out.extend_from_slice(b",\"date\":\"");
    e.date.write_iso(out);
    out.extend_from_slice(b"\",\"validity\":");
    match e.validity {
        Some(v) => out.push(b'0' + v.code()),
        None => out.extend_from_slice(b"null,\"error\":true"),
    }
    out.extend_from_slice(b",\"generation\":");
    write_json_str(out, e.generation);
    out.extend_from_slice(b"}\n");
}

/// A card query's fields: insurer, symbol, number, branch (absent ones null).
fn write_card(out: &mut Vec<u8>, q: &CardQuery) {
    out.extend_from_slice(b",\"insurer_number\":");
    write_json_str(out, q.insurer.as_str());
    // Symbol and number masked as every quoted input is: an individual number typed into
    // either is not logged in clear.
    out.extend_from_slice(b",\"symbol\":");
    match q.symbol.as_str() {
        "" => out.extend_from_slice(b"null"),
        symbol => write_json_str(out, &mask_digit_runs(symbol)),
    }
    out.extend_from_slice(b",\"number\":");
    write_json_str(out, &mask_digit_runs(&q.number));
    out.extend_from_slice(b",\"branch\":");
    match q.branch {
        Some(b) => {
            out.push(b'"');
            out.extend_from_slice(&b.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// The day and the time of day (hours, minutes, seconds) in Japan at `unix_secs`.
fn jst_clock(unix_secs: i64) -> (Date, i64, i64, i64) {
    let of_day = (unix_secs + 9 * 3600).rem_euclid(86_400);
    (
        Date::from_unix_secs_jst(unix_secs),
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff+09:00` for `us` µs since the Unix epoch.
fn write_jst_timestamp(out: &mut Vec<u8>, us: i64) {
    let (day, h, m, s) = jst_clock(us.div_euclid(1_000_000));
    day.write_iso(out);
    let micros = us.rem_euclid(1_000_000);
    out.extend_from_slice(format!("T{h:02}:{m:02}:{s:02}.{micros:06}+09:00").as_bytes());
}

/// The server's start as audit file names give it: `YYYYMMDD-HHMMSS`, Japan time.
pub fn start_stamp(unix_secs: i64) -> String {
    let (day, h, m, s) = jst_clock(unix_secs);
    let day = day.to_string().replace('-', "");
    format!("{day}-{h:02}{m:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IndividualNumber, InsurerNumber, PersonKey};

    fn card() -> CardQuery {
        CardQuery {
            insurer: InsurerNumber::parse("33120015").unwrap(),
            symbol: "記号\"12".into(),
            number: "3456".into(),
            branch: Some(crate::domain::Branch::parse_exact("01").unwrap()),
            birthdate: Date::parse("1980-01-23").unwrap(),
            date: None,
            limit_consent: false,
        }
    }

    /// 2026-11-28T09:20:01.000123Z.
    const AT_US: i64 = 1_795_857_601_000_123;

    fn entry<'a>(query: Audited<'a>, validity: Option<Validity>) -> AuditEntry<'a> {
        AuditEntry {
            at_us: AT_US,
            via: Via::Resp,
            client: Some(InstitutionCode::parse("0110113719").unwrap()),
            peer: Some("127.0.0.1:5000".parse().unwrap()),
            query,
            date: Date::parse("2026-11-28").unwrap(),
            validity,
            generation: "g1",
        }
    }

    fn check(e: AuditEntry<'_>, expected: &str) {
        let mut out = Vec::new();
        write_line(&mut out, &e);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line, format!("{expected}\n"));
        serde_json::from_str::<serde_json::Value>(line.trim_end()).unwrap();
    }

    const HEAD: &str = r#"{"at":"2026-11-28T18:20:01.000123+09:00","via":"resp","client":"0110113719","peer":"127.0.0.1:5000""#;

    #[test]
    fn a_kohi_line_names_payer_and_recipient() {
        let q = crate::query::KohiQuery::parse(&crate::query::KohiFields {
            payer_number: Some("54136015"),
            recipient_number: Some("０１２３４５５"),
            birthdate: Some("1980-01-23"),
            ..crate::query::KohiFields::default()
        })
        .unwrap();
        check(
            entry(Audited::Kohi(&q), Some(Validity::Invalid)),
            &format!(
                r#"{HEAD},"kind":"kohi","payer_number":"54136015","recipient_number":"0123455","date":"2026-11-28","validity":2,"generation":"g1"}}"#
            ),
        );
    }

    #[test]
    fn lines() {
        let q = card();
        check(
            entry(Audited::Card(&q), Some(Validity::Eligible)),
            &format!(
                r#"{HEAD},"kind":"card","insurer_number":"33120015","symbol":"記号\"12","number":"3456","branch":"01","date":"2026-11-28","validity":1,"generation":"g1"}}"#
            ),
        );
        let n = IndividualNumber::from_first11(12345678901);
        let p = PersonQuery {
            individual_number: n,
            date: None,
            limit_consent: false,
        };
        let hash = PersonKey::demo().hash(&n);
        let hex: String = hash.0.iter().map(|b| format!("{b:02x}")).collect();
        check(
            entry(Audited::Person(&p, hash), Some(Validity::NotFound)),
            &format!(
                r#"{HEAD},"kind":"person","person":"{hex}","individual_number":"********9018","date":"2026-11-28","validity":4,"generation":"g1"}}"#
            ),
        );
        // An individual number typed as a card's symbol or number is masked.
        let mut typed = card();
        (typed.symbol, typed.number) = ("1234 5678 9018".into(), "123456789018".into());
        check(
            entry(Audited::Card(&typed), Some(Validity::NotFound)),
            &format!(
                r#"{HEAD},"kind":"card","insurer_number":"33120015","symbol":"**** **** 9018","number":"********9018","branch":"01","date":"2026-11-28","validity":4,"generation":"g1"}}"#
            ),
        );
        let mut e = entry(Audited::Malformed(None), None);
        (e.client, e.peer, e.via) = (None, None, Via::Batch);
        check(
            e,
            r#"{"at":"2026-11-28T18:20:01.000123+09:00","via":"batch","client":null,"peer":null,"kind":null,"date":"2026-11-28","validity":null,"error":true,"generation":"g1"}"#,
        );
    }

    /// The sizes docs/operations.md ("The audit directory") gives: a batch's card query as a
    /// CSV row of 47 bytes becomes a line of 257, so the log is about 5 times the
    /// batch input.
    #[test]
    fn line_sizes_of_the_sizing_section() {
        let sized = |query: Audited<'_>, validity: Option<Validity>| {
            let mut e = entry(query, validity);
            e.via = Via::Batch;
            e.peer = Some("10.0.0.7:53412".parse().unwrap());
            e.generation = "g20261128-184207-984";
            let mut out = Vec::new();
            write_line(&mut out, &e);
            out.len()
        };
        let mut q = card();
        q.symbol = "12".into();
        let row = "card,33120015,12,3456,01,1980-01-23,2026-11-28\n";
        let card_line = sized(Audited::Card(&q), Some(Validity::Eligible));
        let n = IndividualNumber::from_first11(12345678901);
        let p = PersonQuery {
            individual_number: n,
            date: None,
            limit_consent: false,
        };
        let person_line = sized(
            Audited::Person(&p, PersonKey::demo().hash(&n)),
            Some(Validity::Eligible),
        );
        let claim = AuditedClaim {
            receipt: "1",
            card: Some(&q),
            verdict: "ok",
            reason: "",
        };
        let claim_line = sized(Audited::Claim(claim), None);
        assert_eq!(
            (row.len(), card_line, person_line, claim_line),
            (47, 257, 266, 286)
        );
    }

    #[test]
    fn timestamps_are_japan_time() {
        let mut out = Vec::new();
        // 2026-11-28T15:00:00Z is midnight in Japan.
        write_jst_timestamp(&mut out, 1_795_878_000_000_000);
        assert_eq!(out, b"2026-11-29T00:00:00.000000+09:00");
        assert_eq!(start_stamp(1_795_857_601), "20261128-182001");
    }

    fn read_dir_sorted(dir: &Path) -> Vec<(String, usize)> {
        let mut files: Vec<(String, usize)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let lines = std::fs::read_to_string(&p).unwrap().lines().count();
                (p.file_name().unwrap().to_str().unwrap().to_owned(), lines)
            })
            .collect();
        files.sort();
        files
    }

    /// The head a read batch's lines share is reused only while time, protocol, client and
    /// peer are the same.
    #[test]
    fn recorded_lines_are_the_written_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::create(dir.path(), "20261128-182001", 0).unwrap();
        let q = card();
        let first = entry(Audited::Card(&q), Some(Validity::Eligible));
        let later = AuditEntry {
            at_us: AT_US + 1,
            ..first
        };
        let anonymous = AuditEntry {
            client: None,
            ..later
        };
        let mut expected = Vec::new();
        for e in [first, first, later, anonymous, first] {
            assert!(log.record(&e));
            write_line(&mut expected, &e);
        }
        log.flush();
        assert_eq!(std::fs::read(log.path()).unwrap(), expected);
    }

    /// Parts follow one another at the size limit; a name already taken is never reused.
    #[test]
    fn files_turn_over_at_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("audit-20261128-182001-core1-0000.jsonl"),
            "",
        )
        .unwrap();
        let mut log = AuditLog::create(dir.path(), "20261128-182001", 1).unwrap();
        assert!(log
            .path()
            .ends_with("audit-20261128-182001-core1-0001.jsonl"));
        let q = card();
        let mut one = Vec::new();
        write_line(&mut one, &entry(Audited::Card(&q), None));
        log.file_max_bytes = 3 * one.len() as u64;
        for _ in 0..7 {
            assert!(log.record(&entry(Audited::Card(&q), None)));
            log.flush();
        }
        assert_eq!(
            read_dir_sorted(dir.path()),
            [
                ("audit-20261128-182001-core1-0000.jsonl".to_owned(), 0),
                ("audit-20261128-182001-core1-0001.jsonl".to_owned(), 3),
                ("audit-20261128-182001-core1-0002.jsonl".to_owned(), 3),
                ("audit-20261128-182001-core1-0003.jsonl".to_owned(), 1),
            ]
        );
    }

    /// A failing disk keeps the lines buffered up to the limit, then counts them lost.
    #[test]
    fn a_full_disk_loses_lines_only_beyond_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::create(dir.path(), "20261128-182001", 0).unwrap();
        log.file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let q = card();
        let e = entry(Audited::Card(&q), None);
        let mut kept = 0usize;
        while log.record(&e) {
            kept += 1;
            assert!(kept < 100_000, "never refused");
        }
        assert!(log.failing);
        assert!(log.buf.len() >= AUDIT_BUFFER_MAX_BYTES);
        let mut one = Vec::new();
        write_line(&mut one, &e);
        assert_eq!(kept, log.buf.len() / one.len());
        // The disk is back: everything kept is written, and lines are taken again.
        log.file = OpenOptions::new().append(true).open(&log.path).unwrap();
        log.flush();
        assert!(!log.failing && log.buf.is_empty());
        assert!(log.record(&e));
        log.flush();
        assert_eq!(read_dir_sorted(dir.path())[0].1, kept + 1);
    }
}
