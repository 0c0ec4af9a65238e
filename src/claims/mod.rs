//! The claims pre-check (レセプト返戻 prevention): a clinic's monthly claims file (UKE, 医科)
//! checked against the index before it is sent, so that no claim comes back for a
//! qualification error. `uke` reads the file, `check` decides each receipt with the card-query
//! rules on each day of service, `kohi` joins the verdicts of its `KO` records (the
//! public-expense query on each day of service), `output` writes one row per receipt (CSV or
//! JSON) and the summary. The rules are in the README ("Claims pre-check").

pub mod check;
pub mod files;
pub mod kohi;
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
    /// Nothing shikaku can check: no health insurance, and no public expense whose list the
    /// index holds.
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
    /// A `KO` record's public-expense query: validity 4 on some day.
    KohiNotFound,
    /// Validity 5: the recipient number and birthdate name more than one person.
    KohiMultiple,
    /// Validity 2: the certificate ended before the day.
    KohiExpired,
    /// Validity 2: every certificate begins after the day.
    KohiNotYet,
    /// Validity 2: valid on the day, but for designated institutions other than the file's.
    KohiOtherInstitution,
    PartialMonth,
    SexDiffers,
    KanaDiffers,
    /// No `HO` and no `KO` (nothing to check).
    NoInsurance,
    /// No `HO`, and every `KO` names a payer whose list the index does not hold.
    KohiNotHeld,
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
            Reason::KohiNotFound => "kohi_not_found",
            Reason::KohiMultiple => "kohi_multiple",
            Reason::KohiExpired => "kohi_expired",
            Reason::KohiNotYet => "kohi_not_yet",
            Reason::KohiOtherInstitution => "kohi_other_institution",
            Reason::PartialMonth => "partial_month",
            Reason::SexDiffers => "sex_differs",
            Reason::KanaDiffers => "kana_differs",
            Reason::NoInsurance => "no_insurance",
            Reason::KohiNotHeld => "kohi_not_held",
            Reason::Malformed(field) => return Cow::Owned(format!("malformed: {field}")),
        })
    }
}

use std::borrow::Cow;

#[cfg(test)]
mod kohi_tests;
#[cfg(test)]
mod tests;
