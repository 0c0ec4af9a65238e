//! What reading a snapshot produces: row outcomes, issues with their rule codes, and per-file
//! counts.

use crate::domain::{Date, InsurerNumber, Record};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::decode::Encoding;

/// Every rule code a snapshot row or file can be reported under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// Malformed row: the number of fields differs from the header's.
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    /// Unknown column, ignored (warning, once per file).
    W0,
    W1,
    W2,
    W3,
    W4,
    /// File neither UTF-8 nor CP932, or mixing the two.
    F1,
    /// File header unusable: missing required column, duplicate column, no header.
    F2,
    /// File unreadable (I/O error).
    F3,
    /// Snapshot of an insurer not listed in `insurers.csv`.
    F4,
    /// Change file: `update`, `lose` or `delete` of a key that does not exist.
    C1,
    /// Change file: `add` of a key that exists.
    C2,
    /// Change file: `change` missing or not `add`, `update`, `lose`, `delete`.
    C3,
    /// Change file: a key already changed earlier in the same file.
    C4,
    /// Public-expense register: payer number bad or not the payer of its directory.
    K1,
    /// Public-expense register: recipient number bad.
    K2,
    /// Public-expense register: birthdate invalid, in the future, or before Meiji.
    K3,
    /// Public-expense register: valid_from invalid or before the birthdate.
    K4,
    /// Public-expense register: valid_to invalid or before valid_from.
    K5,
    /// Public-expense register: a malformed institution code, copay limit or sex code.
    K6,
}

impl Rule {
    pub const ALL: [Rule; 27] = [
        Rule::R0,
        Rule::R1,
        Rule::R2,
        Rule::R3,
        Rule::R4,
        Rule::R5,
        Rule::R6,
        Rule::R7,
        Rule::W0,
        Rule::W1,
        Rule::W2,
        Rule::W3,
        Rule::W4,
        Rule::F1,
        Rule::F2,
        Rule::F3,
        Rule::F4,
        Rule::C1,
        Rule::C2,
        Rule::C3,
        Rule::C4,
        Rule::K1,
        Rule::K2,
        Rule::K3,
        Rule::K4,
        Rule::K5,
        Rule::K6,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::R0 => "R0",
            Rule::R1 => "R1",
            Rule::R2 => "R2",
            Rule::R3 => "R3",
            Rule::R4 => "R4",
            Rule::R5 => "R5",
            Rule::R6 => "R6",
            Rule::R7 => "R7",
            Rule::W0 => "W0",
            Rule::W1 => "W1",
            Rule::W2 => "W2",
            Rule::W3 => "W3",
            Rule::W4 => "W4",
            Rule::F1 => "F1",
            Rule::F2 => "F2",
            Rule::F3 => "F3",
            Rule::F4 => "F4",
            Rule::C1 => "C1",
            Rule::C2 => "C2",
            Rule::C3 => "C3",
            Rule::C4 => "C4",
            Rule::K1 => "K1",
            Rule::K2 => "K2",
            Rule::K3 => "K3",
            Rule::K4 => "K4",
            Rule::K5 => "K5",
            Rule::K6 => "K6",
        }
    }

    /// One line for the report's legend.
    pub fn description(self) -> &'static str {
        match self {
            Rule::R0 => "malformed row (number of fields differs from the header)",
            Rule::R1 => "insurer number with a bad check digit or not the insurer of its directory",
            Rule::R2 => "number empty or too long; symbol too long or with a bad character",
            Rule::R3 => "branch not 2 digits",
            Rule::R4 => "birthdate invalid, in the future, or before Meiji",
            Rule::R5 => "qualification_date invalid or before the birthdate",
            Rule::R6 => "disqualification_date invalid or not after qualification_date",
            Rule::R7 => {
                "sex, relationship, reason_of_loss, copay_ratio or limit_category not a listed code"
            }
            Rule::W0 => "unknown column ignored",
            Rule::W1 => "individual number unusable (bad check digit or malformed); dropped",
            Rule::W2 => "copay ratio unusual for the age on the snapshot date",
            Rule::W3 => "75 or over and not in a 後期高齢者 (39) insurer",
            Rule::W4 => "name_kana empty or not katakana",
            Rule::F1 => "file neither UTF-8 nor CP932, or mixing both: rejected whole",
            Rule::F2 => "file header unusable (missing or duplicate column): rejected whole",
            Rule::F3 => "file not readable as CSV: rejected whole",
            Rule::F4 => "snapshot of an insurer not listed in insurers.csv: rejected whole",
            Rule::C1 => "change file: update, lose or delete of a key that does not exist",
            Rule::C2 => "change file: add of a key that exists",
            Rule::C3 => "change file: change missing or not add, update, lose, delete",
            Rule::C4 => "change file: key already changed earlier in the same file",
            Rule::K1 => "public expense: payer number with a bad check digit or not the payer of its directory",
            Rule::K2 => "public expense: recipient number bad (check digit for 法別 10–79, 1–20 characters for 80–99)",
            Rule::K3 => "public expense: birthdate invalid, in the future, or before Meiji",
            Rule::K4 => "public expense: valid_from invalid or before the birthdate",
            Rule::K5 => "public expense: valid_to invalid or before valid_from",
            Rule::K6 => "public expense: institution code, copay limit or sex malformed",
        }
    }

    /// W codes keep the row; R and F codes reject it.
    pub fn is_warning(self) -> bool {
        matches!(self, Rule::W0 | Rule::W1 | Rule::W2 | Rule::W3 | Rule::W4)
    }

    /// Whole-file rejections.
    pub fn is_file_level(self) -> bool {
        matches!(self, Rule::F1 | Rule::F2 | Rule::F3 | Rule::F4)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One line of `rejects.csv` (`file,line,rule,field,reason`): a reject or a warning.
/// `reason` never holds an individual number in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Path relative to the snapshots directory, `/`-separated.
    pub file: Arc<str>,
    /// Physical 1-based line where the row starts (the header is line 1); 0 for a whole file.
    pub line: u64,
    pub rule: Rule,
    /// Column name (a header name for W0; empty for R0 and file-level rules without one).
    pub field: Cow<'static, str>,
    pub reason: String,
}

/// What became of one data row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// Valid: index it. `warnings` is empty for most rows (and then does not allocate).
    Indexed {
        record: Record,
        line: u64,
        warnings: Vec<Issue>,
    },
    /// Not indexed; list it in the report.
    Rejected(Issue),
}

/// Counts per rule. Rejects count rows; warnings count occurrences (a row can carry several).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleCounts([u64; Rule::ALL.len()]);

impl RuleCounts {
    pub fn add(&mut self, rule: Rule, n: u64) {
        self.0[rule.index()] += n;
    }

    pub fn get(&self, rule: Rule) -> u64 {
        self.0[rule.index()]
    }

    /// Non-zero counts in rule order.
    pub fn iter(&self) -> impl Iterator<Item = (Rule, u64)> + '_ {
        Rule::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }

    pub fn merge(&mut self, other: &RuleCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

/// The accounting of one file: `rows_read == indexed + rejected` always.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub file: Arc<str>,
    pub insurer: Option<InsurerNumber>,
    pub snapshot_date: Date,
    /// `None` when the file was not decoded (F1, F3, F4).
    pub encoding: Option<Encoding>,
    pub rows_read: u64,
    pub indexed: u64,
    pub rejected: u64,
    pub by_rule: RuleCounts,
    /// W0 unknown-column warnings (row warnings travel with their rows).
    pub file_warnings: Vec<Issue>,
    /// Set when the whole file was rejected: the one report line for it.
    pub file_reject: Option<Issue>,
}

impl FileSummary {
    /// The summary of a decoded file before its first row: its W0 warnings counted.
    pub(crate) fn start(
        file: Arc<str>,
        insurer: Option<InsurerNumber>,
        snapshot_date: Date,
        encoding: Encoding,
        file_warnings: Vec<Issue>,
    ) -> FileSummary {
        let mut by_rule = RuleCounts::default();
        by_rule.add(Rule::W0, file_warnings.len() as u64);
        FileSummary {
            file,
            insurer,
            snapshot_date,
            encoding: Some(encoding),
            rows_read: 0,
            indexed: 0,
            rejected: 0,
            by_rule,
            file_warnings,
            file_reject: None,
        }
    }
}
