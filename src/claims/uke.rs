//! The UKE reader: a monthly claims file of the レセプト電算処理システム (医科) split into its
//! receipts, with the few fields the eligibility check reads and the days of service.
//!
//! A file is records of comma-separated fields, one per line (CRLF or LF), in CP932 or UTF-8
//! (chosen for the whole file as for snapshot files), with an optional 0x1A at the end. The
//! first field names the record. A receipt is an `RE` record and the records after it up to
//! the next `RE` or the closing `GO`. What is read, by 1-based field number:
//!
//! | record | fields |
//! |---|---|
//! | `IR` | 3 prefecture, 4 fee table, 5 institution code (7 digits), 8 claim month |
//! | `RE` | 2 receipt number, 4 month of care (`YYYYMM`, or `GYYMM` with the era code), 6 sex, 7 birthdate, 37 name in katakana (optional) |
//! | `HO` | 2 insurer number (8 characters, a 6-digit number padded with spaces), 3 symbol, 4 number, 6 total points |
//! | `SN` | with field 2 = `1` (health insurance): 7 branch (枝番) |
//! | `KO` | public expense: 2 payer number (公費負担者番号), 3 recipient number (受給者番号), 6 total points |
//! | `SI`, `IY` | 14–44: counts on days 1–31 |
//! | `TO` | 18–48: counts on days 1–31 |
//! | `GO` | 2 number of receipts |
//!
//! The reader never gives up on one receipt for the sake of another: a field it cannot read
//! marks that receipt (`Receipt::malformed`, the first such field), and the check reports it
//! as an `error` row. Only what belongs to no receipt stops the file: bytes in no single
//! encoding, a record before the first `RE` other than `IR`, a record after `GO`.

use super::limits::{UKE_MAX_BYTES, UKE_MAX_FIELDS};
use crate::domain::text::quote_raw;
use crate::domain::Date;
use crate::snapshot::decode::{self, Encoding, Undecodable};
use std::borrow::Cow;
use std::ops::Range;
use thiserror::Error;

/// Why a file cannot be read at all. Lines are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UkeError {
    #[error(
        "the file is {0} bytes; at most {UKE_MAX_BYTES} are read (split the month into volumes)"
    )]
    TooLarge(usize),
    #[error("the file {0}")]
    Encoding(Undecodable),
    #[error("the file holds no RE record: it is not a claims file, or it is empty")]
    NoReceipts,
    #[error("the file's lines end in CR alone (old Mac line ends), so it reads as one line; save it with CRLF or LF line ends")]
    CrLineEnds,
    #[error("line {line}: a {record} record before the first RE record belongs to no receipt")]
    BeforeFirstReceipt { line: u64, record: String },
    #[error(
        "line {line}: a {record} record after the GO record (line {go_line}) belongs to no receipt"
    )]
    AfterEnd {
        line: u64,
        record: String,
        go_line: u64,
    },
}

/// A month of care: its first day and its number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub first: Date,
    pub days: u8,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Month> {
        let first = Date::from_ymd(year, month, 1)?;
        let days = (28..=31)
            .rev()
            .find(|&d| Date::from_ymd(year, month, d).is_some())?;
        Some(Month {
            first,
            days: days as u8,
        })
    }

    /// `YYYYMM`, or the older `GYYMM` (era code, year of the era, month).
    pub fn parse(s: &str) -> Option<Month> {
        let b = s.as_bytes();
        if !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = |r: Range<usize>| s[r].parse::<u32>().ok();
        match b.len() {
            6 => Month::new(n(0..4)? as i32, n(4..6)?),
            5 => {
                // The era's calendar through the date parser's `Gyymmdd` form, on the 1st; a
                // month that began before its era (H1.01) is read on its last day instead.
                let mut g = [b'0'; 7];
                g[..5].copy_from_slice(b);
                g[5..].copy_from_slice(b"01");
                let on_first = std::str::from_utf8(&g)
                    .ok()
                    .and_then(|t| Date::parse(t).ok());
                let first = match on_first {
                    Some(d) => d,
                    None => {
                        g[5..].copy_from_slice(b"28");
                        Date::parse(std::str::from_utf8(&g).ok()?).ok()?
                    }
                };
                let (y, m, _) = first.ymd();
                Month::new(y, m)
            }
            _ => None,
        }
    }

    /// Day `d` (1-based) of the month.
    pub fn day(&self, d: u8) -> Date {
        self.first.add_days(i32::from(d) - 1)
    }

    /// Every day of the month, as a day set.
    pub fn all_days(&self) -> u32 {
        if self.days >= 32 {
            u32::MAX
        } else {
            (1u32 << self.days) - 1
        }
    }
}

/// A field of a record that could not be read: the record, its 1-based field number, the
/// line, and what was wrong (for the summary; the value is quoted with `quote_raw`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub record: &'static str,
    pub field: u8,
    pub line: u64,
    pub why: String,
}

impl Malformed {
    /// As a row's reason names it: `HO 2`; `record` alone for a record that is wrong whole.
    pub fn field_name(&self) -> String {
        if self.field == 0 {
            self.record.to_string()
        } else {
            format!("{} {}", self.record, self.field)
        }
    }
}

/// One receipt: the fields the check reads, as byte ranges of the file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Line of the `RE` record.
    pub line: u64,
    pub number: Range<usize>,
    pub month: Option<Month>,
    pub sex: Range<usize>,
    pub birthdate: Range<usize>,
    pub kana: Range<usize>,
    pub insurance: Option<Insurance>,
    /// `SN` 7 of the first health-insurance `SN` record, if any.
    pub branch: Option<Range<usize>>,
    /// Its `KO` records: a range of [`UkeFile::public_expenses`] (a receipt's are consecutive).
    pub public_expenses: Range<u32>,
    /// Days with a non-zero count in an `SI`, `IY` or `TO` record: bit `d - 1` for day `d`.
    pub days: u32,
    /// The first field of the receipt that could not be read.
    pub malformed: Option<Malformed>,
}

/// The `HO` record of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insurance {
    pub line: u64,
    pub insurer_number: Range<usize>,
    pub symbol: Range<usize>,
    pub number: Range<usize>,
    pub points: Range<usize>,
}

/// A `KO` record: a public expense (公費) the receipt claims beside, or instead of, `HO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicExpenseRecord {
    pub line: u64,
    pub payer_number: Range<usize>,
    pub recipient_number: Range<usize>,
    pub points: Range<usize>,
}

/// A file read into its receipts.
#[derive(Debug)]
pub struct UkeFile<'a> {
    text: Cow<'a, str>,
    pub encoding: Encoding,
    /// The institution code of `IR` (prefecture, fee table and code: 10 digits), when the
    /// file has an `IR` record whose fields hold one.
    pub institution: Option<String>,
    pub receipts: Vec<Receipt>,
    /// Every receipt's `KO` records, in file order (few receipts have any: one vector for
    /// the file, not one per receipt).
    pub public_expenses: Vec<PublicExpenseRecord>,
    /// The `GO` record's line and receipt count (`None` when unreadable), when there is one.
    pub go: Option<(u64, Option<u64>)>,
    /// Lines read, blank ones included.
    pub lines: u64,
}

impl UkeFile<'_> {
    /// The whole decoded text, which the receipts' ranges index.
    pub fn whole_text(&self) -> &str {
        &self.text
    }

    /// The text of a field.
    pub fn text(&self, r: &Range<usize>) -> &str {
        self.text.get(r.clone()).unwrap_or("")
    }

    /// The `KO` records of receipt `r`, in file order.
    pub fn public_expenses_of(&self, r: &Receipt) -> &[PublicExpenseRecord] {
        let range = r.public_expenses.start as usize..r.public_expenses.end as usize;
        self.public_expenses.get(range).unwrap_or(&[])
    }
}

/// Record types of the 医科 file besides those read above: accepted and skipped.
const SKIPPED_RECORDS: [&str; 14] = [
    "JD", "MF", "SY", "CO", "SJ", "TI", "TR", "TS", "GR", "KH", "NI", "SK", "GT", "KS",
];

/// The fields of one record: the first `UKE_MAX_FIELDS`, as byte ranges of the text.
struct Fields {
    ranges: [Range<usize>; UKE_MAX_FIELDS],
    count: usize,
}

impl Fields {
    fn split(line: &str, offset: usize, out: &mut Fields) {
        out.count = 0;
        // Eight bytes at a time, each comma found by a bit of a mask: fields are a few bytes
        // long, so a search per comma (memchr's set-up per call, or a byte loop before it)
        // cost more than the scan; splitting was a quarter of reading a file. A comma never
        // appears inside a CP932 or UTF-8 character, so splitting text is splitting bytes.
        let bytes = line.as_bytes();
        let mut start = 0;
        let mut words = bytes.chunks_exact(8);
        let mut at = 0;
        for word in &mut words {
            let mut commas = comma_bytes(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            while commas != 0 {
                let i = at + (commas.trailing_zeros() / 8) as usize;
                out.push(offset + start..offset + i);
                start = i + 1;
                commas &= commas - 1;
            }
            at += 8;
        }
        for (i, &b) in words.remainder().iter().enumerate() {
            if b == b',' {
                out.push(offset + start..offset + at + i);
                start = at + i + 1;
            }
        }
        out.push(offset + start..offset + line.len());
    }

    fn push(&mut self, r: Range<usize>) {
        if self.count < UKE_MAX_FIELDS {
            self.ranges[self.count] = r;
        }
        self.count += 1;
    }

    /// Field `n` (1-based); an absent trailing field reads as empty.
    fn get(&self, n: usize) -> Range<usize> {
        if n <= self.count.min(UKE_MAX_FIELDS) {
            self.ranges[n - 1].clone()
        } else {
            0..0
        }
    }
}

/// Bit 7 set in each byte of `word` that is a comma, every other bit clear. Exact: no carry
/// crosses from one byte into the next, as the sum of two 7-bit values fits in 8 bits.
fn comma_bytes(word: u64) -> u64 {
    const LOW_7_BITS: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let x = word ^ u64::from_le_bytes([b','; 8]);
    !(((x & LOW_7_BITS) + LOW_7_BITS) | x | LOW_7_BITS)
}

/// Reads a whole file. Pure: bytes in, receipts out (the fuzz target's entry point).
pub fn parse(bytes: &[u8]) -> Result<UkeFile<'_>, UkeError> {
    if bytes.len() > UKE_MAX_BYTES {
        return Err(UkeError::TooLarge(bytes.len()));
    }
    let body = bytes.strip_suffix(b"\x1a").unwrap_or(bytes);
    let text = decode::decode(body).map_err(UkeError::Encoding)?;
    let (text, encoding) = (text.text, text.encoding);
    let ends = text.as_bytes();
    if memchr::memchr(b'\n', ends).is_none() && memchr::memchr(b'\r', ends).is_some() {
        return Err(UkeError::CrLineEnds);
    }
    let mut reader = Reader {
        file: UkeFile {
            text: Cow::Borrowed(""),
            encoding,
            institution: None,
            receipts: Vec::new(),
            public_expenses: Vec::new(),
            go: None,
            lines: 0,
        },
        fields: Fields {
            ranges: std::array::from_fn(|_| 0..0),
            count: 0,
        },
    };
    reader.read(&text)?;
    let mut file = reader.file;
    file.text = text;
    if file.receipts.is_empty() {
        return Err(UkeError::NoReceipts);
    }
    Ok(file)
}

struct Reader<'a> {
    file: UkeFile<'a>,
    fields: Fields,
}

impl Reader<'_> {
    fn read(&mut self, text: &str) -> Result<(), UkeError> {
        let mut at = 0;
        let mut line_no = 0u64;
        let mut ended_with_newline = true;
        while at < text.len() {
            let end = memchr::memchr(b'\n', &text.as_bytes()[at..]).map_or(text.len(), |i| at + i);
            ended_with_newline = end < text.len();
            let raw = &text[at..end];
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            line_no += 1;
            let offset = at;
            at = end + 1;
            if line.trim().is_empty() {
                continue;
            }
            Fields::split(line, offset, &mut self.fields);
            let kind = text[self.fields.get(1)].trim();
            if let Some((go_line, _)) = self.file.go {
                return Err(UkeError::AfterEnd {
                    line: line_no,
                    record: quote_raw(kind),
                    go_line,
                });
            }
            self.record(text, kind, line_no)?;
        }
        self.file.lines = line_no;
        if self.file.go.is_none() {
            // No GO: the file was cut short, and its last receipt may have lost records.
            if let Some(last) = self.file.receipts.last_mut() {
                let why = if ended_with_newline {
                    "the file ends without its GO record: it was cut short, so this receipt may be incomplete"
                } else {
                    "the file ends in the middle of a line, without its GO record: it was cut short"
                };
                mark(last, "GO", 0, line_no, why.to_string());
            }
        }
        Ok(())
    }

    fn record(&mut self, text: &str, kind: &str, line: u64) -> Result<(), UkeError> {
        let f = &self.fields;
        match kind {
            "RE" => {
                let first_ko = u32::try_from(self.file.public_expenses.len()).unwrap_or(u32::MAX);
                let r = receipt_of(text, f, line, first_ko);
                self.file.receipts.push(r);
                return Ok(());
            }
            "GO" => {
                let count = text[f.get(2)].trim().parse::<u64>().ok();
                self.file.go = Some((line, count));
                return Ok(());
            }
            "IR" if self.file.receipts.is_empty() => {
                self.file.institution = institution_of(text, f);
                return Ok(());
            }
            _ => {}
        }
        let Some(receipt) = self.file.receipts.last_mut() else {
            return Err(UkeError::BeforeFirstReceipt {
                line,
                record: quote_raw(kind),
            });
        };
        match kind {
            "HO" => {
                if receipt.insurance.is_some() {
                    mark(
                        receipt,
                        "HO",
                        0,
                        line,
                        "a second HO record: a 医科 receipt has one health insurance".into(),
                    );
                } else {
                    receipt.insurance = Some(Insurance {
                        line,
                        insurer_number: f.get(2),
                        symbol: f.get(3),
                        number: f.get(4),
                        points: f.get(6),
                    });
                }
            }
            "SN" => {
                if text[f.get(2)].trim() == "1" && receipt.branch.is_none() {
                    receipt.branch = Some(f.get(7));
                }
            }
            "KO" => {
                self.file.public_expenses.push(PublicExpenseRecord {
                    line,
                    payer_number: f.get(2),
                    recipient_number: f.get(3),
                    points: f.get(6),
                });
                // A file is at most UKE_MAX_BYTES, far fewer records than u32 counts.
                receipt.public_expenses.end =
                    u32::try_from(self.file.public_expenses.len()).unwrap_or(u32::MAX);
            }
            "SI" => day_columns(text, f, 14, receipt, line, "SI"),
            "IY" => day_columns(text, f, 14, receipt, line, "IY"),
            "TO" => day_columns(text, f, 18, receipt, line, "TO"),
            "IR" => mark(
                receipt,
                "IR",
                0,
                line,
                "an IR record inside a receipt (two files joined?)".into(),
            ),
            other if SKIPPED_RECORDS.contains(&other) => {}
            other => mark(
                receipt,
                "record",
                0,
                line,
                format!("unknown record type {}", quote_raw(other)),
            ),
        }
        Ok(())
    }
}

/// Marks a receipt malformed, keeping the first field found.
fn mark(r: &mut Receipt, record: &'static str, field: u8, line: u64, why: String) {
    if r.malformed.is_none() {
        r.malformed = Some(Malformed {
            record,
            field,
            line,
            why,
        });
    }
}

fn receipt_of(text: &str, f: &Fields, line: u64, first_ko: u32) -> Receipt {
    let mut r = Receipt {
        line,
        number: f.get(2),
        month: Month::parse(text[f.get(4)].trim()),
        sex: f.get(6),
        birthdate: f.get(7),
        kana: f.get(37),
        insurance: None,
        branch: None,
        public_expenses: first_ko..first_ko,
        days: 0,
        malformed: None,
    };
    let number = text[r.number.clone()].trim();
    if number.is_empty() || number.len() > 6 || !number.bytes().all(|b| b.is_ascii_digit()) {
        let why = format!(
            "receipt number must be 1-6 digits, not {}",
            quote_raw(number)
        );
        mark(&mut r, "RE", 2, line, why);
    }
    if r.month.is_none() {
        let why = format!(
            "month of care must be YYYYMM or GYYMM, not {}",
            quote_raw(&text[f.get(4)])
        );
        mark(&mut r, "RE", 4, line, why);
    }
    r
}

/// The 10-digit institution code from `IR` 3 (prefecture), 4 (fee table) and 5 (code).
fn institution_of(text: &str, f: &Fields) -> Option<String> {
    let code: String = [3, 4, 5].iter().map(|&n| text[f.get(n)].trim()).collect();
    (code.len() == 10 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Reads the 31 day columns of an `SI`/`IY`/`TO` record starting at field `first`.
fn day_columns(
    text: &str,
    f: &Fields,
    first: usize,
    r: &mut Receipt,
    line: u64,
    record: &'static str,
) {
    let days_in_month = r.month.map_or(31, |m| m.days);
    for day in 1..=31u8 {
        let n = first + usize::from(day) - 1;
        let cell = text[f.get(n)].trim();
        if cell.is_empty() {
            continue;
        }
        let count = if cell.len() <= 3 && cell.bytes().all(|b| b.is_ascii_digit()) {
            cell.parse::<u16>().unwrap_or(0)
        } else {
            let why = format!(
                "count on day {day} must be a number, not {}",
                quote_raw(cell)
            );
            return mark(r, record, n as u8, line, why);
        };
        if count == 0 {
            continue;
        }
        if day > days_in_month {
            let why = format!("a count on day {day} of a month of {days_in_month} days");
            return mark(r, record, n as u8, line, why);
        }
        r.days |= 1 << (day - 1);
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;
    use proptest::prelude::*;

    fn split(line: &str) -> Vec<&str> {
        let mut f = Fields {
            ranges: std::array::from_fn(|_| 0..0),
            count: 0,
        };
        Fields::split(line, 0, &mut f);
        (1..=f.count.min(UKE_MAX_FIELDS))
            .map(|n| &line[f.get(n)])
            .collect()
    }

    #[test]
    fn fields_split_at_every_comma_in_any_position() {
        for line in [
            "",
            ",",
            "RE",
            "RE,1,,3",
            ",,,,,,,,,,,,,,,,,",
            "SI,,1,2,3,,4,5,6,7,,8,9,10,,",
            "IR,1,13,1,1234567,,ｱｲｳ,山田,202611,,",
        ] {
            assert_eq!(split(line), line.split(',').collect::<Vec<_>>(), "{line:?}");
        }
    }

    proptest! {
        /// Against `str::split` on lines of commas, letters, kana, kanji and bytes from 0x80.
        #[test]
        fn fields_split_as_str_split_does(line in "[,a1 ｱ山\u{80}\u{ff}\u{2c00}]{0,90}") {
            let expected: Vec<&str> = line.split(',').take(UKE_MAX_FIELDS).collect();
            prop_assert_eq!(split(&line), expected);
        }
    }
}
