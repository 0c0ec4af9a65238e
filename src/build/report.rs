//! The build report: `report.json` (counts per insurer and in total, by rule) and
//! `rejects.csv` (`file,line,rule,field,reason`: every rejected row, warning and cross-check
//! finding). Reasons never hold an individual number in clear.

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// One line of `rejects.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportLine {
    pub file: String,
    /// 1-based line in the file (the header is line 1); 0 for a whole file.
    pub line: u64,
    pub rule: &'static str,
    pub field: String,
    pub reason: String,
}

/// Row accounting: rows_read = rows_indexed + rows_rejected + rows_deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub rows_read: u64,
    pub rows_indexed: u64,
    pub rows_rejected: u64,
    pub rows_deduplicated: u64,
    /// Members covered on the build date (records).
    pub covered_today: u64,
    /// Findings by rule code (R*, F*, W*, X*).
    pub by_rule: BTreeMap<String, u64>,
}

impl Counts {
    pub fn balanced(&self) -> bool {
        self.rows_read == self.rows_indexed + self.rows_rejected + self.rows_deduplicated
    }

    pub fn add(&mut self, other: &Counts) {
        self.rows_read += other.rows_read;
        self.rows_indexed += other.rows_indexed;
        self.rows_rejected += other.rows_rejected;
        self.rows_deduplicated += other.rows_deduplicated;
        self.covered_today += other.covered_today;
        for (rule, n) in &other.by_rule {
            *self.by_rule.entry(rule.clone()).or_default() += n;
        }
    }

    pub fn count_rule(&mut self, rule: &str) {
        *self.by_rule.entry(rule.to_owned()).or_default() += 1;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InsurerReport {
    pub insurer_number: String,
    pub insurer_name: String,
    /// The snapshot file used, relative to the snapshots directory.
    pub file: Option<String>,
    pub snapshot_date: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generation: String,
    pub built_on: String,
    pub published: bool,
    /// Why the build did not publish, when it did not.
    pub refused: Vec<String>,
    pub totals: Counts,
    pub insurers: Vec<InsurerReport>,
    /// Findings not tied to one insurer's rows (unlisted directories, bad file names).
    pub notes: Vec<String>,
    pub elapsed_ms: u64,
    pub index_bytes: u64,
}

/// Writes `rejects.csv`.
pub fn write_rejects<W: Write>(w: W, findings: &[ReportLine]) -> csv::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(["file", "line", "rule", "field", "reason"])?;
    for f in findings {
        out.write_record([
            f.file.as_str(),
            &f.line.to_string(),
            f.rule,
            f.field.as_str(),
            &f.reason,
        ])?;
    }
    out.flush()?;
    Ok(())
}
