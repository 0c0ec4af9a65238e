//! 一括照会 (docs/api.md#batch), protocol-independent: parse a JSON or CSV batch into queries (a
//! malformed query keeps its slot, with its error), answer every query from one index, and
//! render the answers as JSON or CSV in the input order (`json.rs`, `csv.rs`); each query is
//! answered by the answer path (`query::answer`).
//!
//! JSON form: an array of objects, each with `"kind": "card" | "person" | "kohi"` and the
//! inputs of docs/api.md as strings (`limit_consent` a boolean). The answer is an array of answers
//! (docs/api.md#answer); a malformed query's slot holds `{"error": "<field>: <reason>", "field": ...}`.
//!
//! CSV form (UTF-8, BOM optional): a header naming some of the columns
//! `kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent`
//! and `payer_number,recipient_number,institution_code` (kind `kohi`) in any order
//! (`limit_consent` 1 or empty). The answer CSV has the nine card and person input columns as
//! given, then `validity,validity_name,error,answer_date,generation`, then the qualification
//! fields prefixed `q_` (`q_insurer_number … q_limit_category`; the prefix keeps them apart
//! from the input columns of the same name), then the three public-expense input columns,
//! `reason` and the certificate's fields prefixed `k_`. A person query with validity 5 has several
//! qualifications, which one CSV row cannot hold: its `q_` fields are empty (the JSON form
//! lists them all).

mod csv;
mod json;
mod unique;

pub use self::csv::{parse_csv, write_csv_answers, CsvRow, CSV_INPUT_COLUMNS};
pub use json::{parse_json, parse_single, write_json_answers, JsonItem, QueryInput, KOHI_FIELDS};

use super::{Query, QueryError, QueryKind};
use crate::domain::text::quote_raw;
use crate::domain::Validity;
use thiserror::Error;

/// Most queries in one batch (docs/api.md#batch).
pub const MAX_BATCH_QUERIES: usize = 10_000;

/// The whole batch is unusable (as opposed to one malformed query, which keeps its slot).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("the batch holds {0} queries; at most {MAX_BATCH_QUERIES} are allowed")]
    TooMany(usize),
    #[error("malformed batch: {0}")]
    Malformed(String),
}

/// What one slot of a batch came to.
#[derive(Debug, Clone, Copy)]
pub enum Slot<'q> {
    Answered(&'q Query, Validity),
    /// Answered with an error; the kind it names, if it names one.
    Malformed(Option<QueryKind>),
}

/// Told what each slot of a batch came to, in order.
pub type Observe<'o> = &'o mut dyn FnMut(Slot<'_>);

/// The kind a JSON `kind` field or CSV `kind` cell names.
fn parse_kind(kind: Option<&str>) -> Result<QueryKind, QueryError> {
    match kind.map(str::trim) {
        Some("card") => Ok(QueryKind::Card),
        Some("person") => Ok(QueryKind::Person),
        Some("kohi") => Ok(QueryKind::Kohi),
        None | Some("") => Err(QueryError::new(
            "kind",
            "is required (card, person or kohi)",
        )),
        Some(other) => Err(QueryError::new(
            "kind",
            format!("must be card, person or kohi, not {}", quote_raw(other)),
        )),
    }
}
