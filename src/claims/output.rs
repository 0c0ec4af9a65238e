//! One row per receipt, in file order, as CSV or JSON, and the summary: receipts by verdict
//! and reason, and the points at risk.
//!
//! CSV header: `receipt,line,verdict,reason,days,insurer_number,symbol,number,branch,points`
//! (with a last column `file` when several files are checked together). `days` lists the
//! days that decided a `return` (`YYYY-MM-DD`, `;`-separated); the card fields are as
//! normalized for the card query, empty where the receipt has none that could be read.
//! JSON: an array of objects with the same fields (`days` an array, absent values `null`),
//! and for an `error` row a `detail` naming the line and what is wrong.

use super::check::{days_of, Checked, Checker, GROUP_RECEIPTS};
use super::limits::SUMMARY_DETAILS_MAX;
use super::uke::{Receipt, UkeFile};
use super::{Reason, Verdict};
use crate::domain::text::mask_digit_runs;
use crate::index::Index;
use crate::query::{write_json_str, CardQuery};
use std::collections::BTreeMap;

pub const CSV_HEADER: &str =
    "receipt,line,verdict,reason,days,insurer_number,symbol,number,branch,points";

/// The output form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// Writes the rows of one or more files into one output.
pub struct RowWriter {
    format: Format,
    /// Name each row's file (several files checked together).
    file_column: bool,
    rows: u64,
}

impl RowWriter {
    /// A writer; `file_column` when rows of several files share the output.
    pub fn new(format: Format, file_column: FileColumn) -> RowWriter {
        RowWriter {
            format,
            file_column: file_column == FileColumn::Named,
            rows: 0,
        }
    }

    /// The CSV header, or the JSON array's opening.
    pub fn begin(&self, out: &mut Vec<u8>) {
        match self.format {
            Format::Csv => {
                out.extend_from_slice(CSV_HEADER.as_bytes());
                if self.file_column {
                    out.extend_from_slice(b",file");
                }
                out.extend_from_slice(b"\r\n");
            }
            Format::Json => out.push(b'['),
        }
    }

    /// The JSON array's end.
    pub fn end(&self, out: &mut Vec<u8>) {
        if self.format == Format::Json {
            out.extend_from_slice(b"]\n");
        }
    }

    /// Rows written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn row(&mut self, out: &mut Vec<u8>, row: &Row<'_>) {
        self.rows += 1;
        match self.format {
            Format::Csv => row.csv(out, self.file_column),
            Format::Json => {
                if self.rows > 1 {
                    out.push(b',');
                }
                row.json(out, self.file_column);
            }
        }
    }
}

/// Whether rows name their file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileColumn {
    Unnamed,
    Named,
}

/// What one row shows.
struct Row<'a> {
    file_name: &'a str,
    receipt: &'a str,
    line: u64,
    checked: &'a Checked,
    first_day: Option<crate::domain::Date>,
    card: Option<&'a CardQuery>,
}

impl Row<'_> {
    fn csv(&self, out: &mut Vec<u8>, file_column: bool) {
        csv_cell(out, self.receipt);
        out.push(b',');
        write_u64(out, self.line);
        out.push(b',');
        out.extend_from_slice(self.checked.verdict.as_str().as_bytes());
        out.push(b',');
        csv_cell(out, &self.checked.reason.as_str());
        out.push(b',');
        if let Some(first) = self.first_day {
            for (i, d) in days_of(first, self.checked.days).enumerate() {
                if i > 0 {
                    out.push(b';');
                }
                d.write_iso(out);
            }
        }
        out.push(b',');
        if let Some(q) = self.card {
            out.extend_from_slice(q.insurer.as_str().as_bytes());
            out.push(b',');
            // Masked as every quoted input is: an individual number typed into the symbol or
            // number of a receipt is not written back in clear.
            csv_cell(out, &mask_digit_runs(&q.symbol));
            out.push(b',');
            csv_cell(out, &mask_digit_runs(&q.number));
            out.push(b',');
            if let Some(b) = q.branch {
                out.extend_from_slice(&b.as_bytes());
            }
        } else {
            out.extend_from_slice(b",,,");
        }
        out.push(b',');
        if let Some(p) = self.checked.points {
            write_u64(out, p);
        }
        if file_column {
            out.push(b',');
            csv_cell(out, self.file_name);
        }
        out.extend_from_slice(b"\r\n");
    }

    fn json(&self, out: &mut Vec<u8>, file_column: bool) {
        out.extend_from_slice(b"{\"receipt\":");
        write_json_str(out, self.receipt);
        out.extend_from_slice(b",\"line\":");
        write_u64(out, self.line);
        out.extend_from_slice(b",\"verdict\":\"");
        out.extend_from_slice(self.checked.verdict.as_str().as_bytes());
        out.extend_from_slice(b"\",\"reason\":");
        match &self.checked.reason {
            Reason::None => out.extend_from_slice(b"null"),
            r => write_json_str(out, &r.as_str()),
        }
        out.extend_from_slice(b",\"days\":[");
        if let Some(first) = self.first_day {
            for (i, d) in days_of(first, self.checked.days).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                d.write_iso(out);
                out.push(b'"');
            }
        }
        out.push(b']');
        let text = |out: &mut Vec<u8>, name: &str, v: Option<&str>| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            match v.filter(|s| !s.is_empty()) {
                Some(s) => write_json_str(out, s),
                None => out.extend_from_slice(b"null"),
            }
        };
        let q = self.card;
        text(out, "insurer_number", q.map(|q| q.insurer.as_str()));
        let symbol = q.map(|q| mask_digit_runs(&q.symbol));
        let number = q.map(|q| mask_digit_runs(&q.number));
        text(out, "symbol", symbol.as_deref());
        text(out, "number", number.as_deref());
        let branch = q.and_then(|q| q.branch).map(|b| b.as_bytes());
        text(
            out,
            "branch",
            branch.as_ref().and_then(|b| std::str::from_utf8(b).ok()),
        );
        out.extend_from_slice(b",\"points\":");
        match self.checked.points {
            Some(p) => write_u64(out, p),
            None => out.extend_from_slice(b"null"),
        }
        if let Some((line, why)) = &self.checked.detail {
            out.extend_from_slice(b",\"detail\":");
            write_json_str(out, &format!("line {line}: {why}"));
        }
        if file_column {
            text(out, "file", Some(self.file_name));
        }
        out.push(b'}');
    }
}

fn csv_cell(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

fn write_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Receipts by verdict and reason, and points, over every file checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub receipts: u64,
    pub rows: u64,
    /// Receipts by verdict and reason (counted without a string per receipt).
    pub counts: BTreeMap<(Verdict, Reason), u64>,
    /// Their points, by verdict and reason (what each reason puts at risk).
    pub points: BTreeMap<(Verdict, Reason), u64>,
    /// Points of the receipts that would come back (`return`).
    pub points_at_risk: u64,
    /// Points of the receipts to look at (`check`) and of those not checked (`error`,
    /// `unchecked`).
    pub points_to_check: u64,
    pub points_unchecked: u64,
    /// The first malformed receipts: file, receipt, line and what is wrong.
    pub errors: Vec<String>,
    /// Files whose `GO` record counts other receipts than the file holds.
    pub warnings: Vec<String>,
}

impl Summary {
    fn add(&mut self, file_name: &str, receipt: &str, c: &Checked) {
        self.receipts += 1;
        let points = c.points.unwrap_or(0);
        match self.counts.get_mut(&(c.verdict, c.reason.clone())) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert((c.verdict, c.reason.clone()), 1);
            }
        }
        match self.points.get_mut(&(c.verdict, c.reason.clone())) {
            Some(p) => *p += points,
            None => {
                self.points.insert((c.verdict, c.reason.clone()), points);
            }
        }
        match c.verdict {
            Verdict::Return => self.points_at_risk += points,
            Verdict::Check => self.points_to_check += points,
            Verdict::Error | Verdict::Unchecked => self.points_unchecked += points,
            Verdict::Ok => {}
        }
        if let (Some((line, why)), true) = (&c.detail, self.errors.len() < SUMMARY_DETAILS_MAX) {
            self.errors.push(format!(
                "{file_name}: receipt {receipt} (line {line}): {}",
                mask_digit_runs(why)
            ));
        }
    }

    /// Receipts of `verdict`.
    pub fn of_verdict(&self, verdict: Verdict) -> u64 {
        self.counts
            .iter()
            .filter(|((v, _), _)| *v == verdict)
            .map(|(_, n)| n)
            .sum()
    }

    /// Receipts by `verdict reason` (`ok` alone).
    pub fn by_reason(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|((v, r), n)| {
                let key = match r {
                    Reason::None => v.as_str().to_string(),
                    r => format!("{} {}", v.as_str(), r.as_str()),
                };
                (key, *n)
            })
            .collect()
    }

    /// The summary as printed on stderr.
    pub fn render(&self) -> String {
        let mut s = format!(
            "claims: {} receipts in {} file(s), {} rows written\n",
            self.receipts, self.files, self.rows
        );
        for v in Verdict::ALL {
            s.push_str(&format!("  {:<10}{:>9}\n", v.as_str(), self.of_verdict(v)));
            let reasons = self
                .counts
                .iter()
                .filter(|((rv, r), _)| *rv == v && *r != Reason::None);
            for (key, n) in reasons {
                let points = self.points.get(key).copied().unwrap_or(0);
                let reason = key.1.as_str();
                s.push_str(&format!("    {reason:<24}{n:>9}  points {points}\n"));
            }
        }
        s.push_str(&format!(
            "points at risk (return): {}; to check: {}; not checked (error, unchecked): {}\n",
            self.points_at_risk, self.points_to_check, self.points_unchecked
        ));
        for e in &self.errors {
            s.push_str(&format!("  error: {e}\n"));
        }
        let shown = self.errors.len() as u64;
        let errors = self.of_verdict(Verdict::Error);
        if errors > shown {
            s.push_str(&format!("  … and {} more error rows\n", errors - shown));
        }
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        s
    }
}

/// Checks every receipt of `file`, writing its rows into `out` and counting them in
/// `summary`; `each` sees every receipt with its result and card query (the server's audit
/// log).
pub fn check_file<B: AsRef<[u8]>>(
    index: &Index<B>,
    file_name: &str,
    file: &UkeFile<'_>,
    writer: &mut RowWriter,
    out: &mut Vec<u8>,
    summary: &mut Summary,
    mut each: impl FnMut(&Receipt, &Checked, Option<&CardQuery>),
) {
    let mut checker = Checker::default();
    summary.files += 1;
    for group in file.receipts.chunks(GROUP_RECEIPTS) {
        checker.check_group(index, file, group, |r, checked, card| {
            // A valid receipt number has 1-6 digits; a malformed one is shown, in its row and
            // in the summary, with any run of 12 digits masked, as every quoted input is.
            let receipt = mask_digit_runs(file.text(&r.number).trim());
            let receipt = receipt.as_ref();
            writer.row(
                out,
                &Row {
                    file_name,
                    receipt,
                    line: r.line,
                    checked,
                    first_day: r.month.map(|m| m.first),
                    card,
                },
            );
            summary.add(file_name, receipt, checked);
            each(r, checked, card);
        });
    }
    summary.rows = writer.rows();
    if let Some((line, Some(count))) = file.go {
        if count != file.receipts.len() as u64 {
            summary.warnings.push(format!(
                "{file_name}: the GO record (line {line}) counts {} receipts; the file holds {}",
                // Masked as every quoted input is: a count of 12 digits reads as a number.
                mask_digit_runs(&count.to_string()),
                file.receipts.len()
            ));
        }
    }
}
