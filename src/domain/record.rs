//! A member record as a snapshot row means it, after normalization and validation.

use super::codes::{CopayRatio, LimitCategory, ReasonOfLoss, Relationship, Sex};
use super::date::Date;
use super::ids::{Branch, IndividualNumber, InsurerNumber};

/// One validated row of an insurer snapshot (docs/delivery.md). Symbol and number are already
/// normalized (docs/api.md#symbol-number-branch): equal cards have equal strings.
/// The derived order sorts by card key (insurer, symbol, number, branch) first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    pub insurer: InsurerNumber,
    /// Normalized 記号; empty when the card has none (後期高齢者).
    pub symbol: String,
    /// Normalized 番号; never empty.
    pub number: String,
    pub branch: Branch,
    pub individual_number: Option<IndividualNumber>,
    pub name: String,
    pub name_kana: String,
    pub sex: Sex,
    pub birthdate: Date,
    pub relationship: Relationship,
    pub qualification_date: Date,
    /// Exclusive: the first day not covered.
    pub disqualification_date: Option<Date>,
    pub reason_of_loss: Option<ReasonOfLoss>,
    pub copay_ratio: CopayRatio,
    pub limit_category: Option<LimitCategory>,
}

impl Record {
    /// Covered on `day` ⇔ qualification_date ≤ day < disqualification_date.
    pub fn covers(&self, day: Date) -> bool {
        covers(self.qualification_date, self.disqualification_date, day)
    }
}

/// The coverage rule of docs/delivery.md, shared by the build, the index and the naive model.
pub fn covers(qualification: Date, disqualification: Option<Date>, day: Date) -> bool {
    qualification <= day && disqualification.is_none_or(|d| day < d)
}
