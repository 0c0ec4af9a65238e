//! The claims pre-check (レセプト返戻 prevention): a clinic's monthly claims file (UKE, 医科)
//! checked against the index before it is sent, so that no claim comes back for a
//! qualification error. `uke` reads the file, `check` decides each receipt with the card-query
//! rules on each day of service, `output` writes one row per receipt (CSV or JSON) and the
//! summary. The rules are in the README ("Claims pre-check").

pub mod check;
pub mod files;
pub mod limits;
pub mod memory;
pub mod output;
pub mod uke;

pub use check::{Checked, Checker};
pub use output::{check_file, Format, Summary};
pub use uke::{parse, Receipt, UkeError, UkeFile};

/// A receipt's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Will come back: not eligible on some day of service.
    Return,
    /// Eligible, but something a person should look at before sending.
    Check,
    /// Eligible on every day of service.
    Ok,
    /// No health insurance on the receipt (public expense only): nothing to check.
    Unchecked,
    /// A field of the receipt cannot be read.
    Error,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Return,
        Verdict::Check,
        Verdict::Ok,
        Verdict::Unchecked,
        Verdict::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Return => "return",
            Verdict::Check => "check",
            Verdict::Ok => "ok",
            Verdict::Unchecked => "unchecked",
            Verdict::Error => "error",
        }
    }
}

/// Why a receipt got its verdict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// `ok` has none.
    None,
    NotFound,
    Multiple,
    OtherQualification,
    Lost,
    NotYet,
    PartialMonth,
    SexDiffers,
    KanaDiffers,
    NoInsurance,
    /// The field that cannot be read, e.g. `HO 2`.
    Malformed(String),
}

impl Reason {
    pub fn as_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            Reason::None => "",
            Reason::NotFound => "not_found",
            Reason::Multiple => "multiple",
            Reason::OtherQualification => "other_qualification",
            Reason::Lost => "lost",
            Reason::NotYet => "not_yet",
            Reason::PartialMonth => "partial_month",
            Reason::SexDiffers => "sex_differs",
            Reason::KanaDiffers => "kana_differs",
            Reason::NoInsurance => "no_insurance",
            Reason::Malformed(field) => return Cow::Owned(format!("malformed: {field}")),
        })
    }
}

use std::borrow::Cow;

#[cfg(test)]
mod tests;
