//! The public-expense (公費) part of a receipt: each `KO` record is a public-expense query on
//! each day of service, with the receipt's birthdate (`RE` 7) and the file's institution code
//! (`IR` 3, 4 and 5), decided by `query::kohi::decide`, the decision every public-expense
//! query the server answers takes. Its verdicts join those of the receipt's health insurance
//! (`HO`): the `HO` returns first, then the public-expense returns, then the checks. A payer
//! whose list the index does not hold is not judged.

use super::check::{read_points, Checked};
use super::uke::{PublicExpenseRecord, Receipt, UkeFile};
use super::{Reason, Verdict};
use crate::domain::{normalize_recipient_into, text, Date, InstitutionCode, PayerNumber};
use crate::index::Index;
use crate::query::kohi::{decide, KohiOutcome, KohiReason};

/// What a checker reuses from receipt to receipt: the normalized recipient number's buffer,
/// so that a `KO` record's query allocates nothing.
#[derive(Default)]
pub struct KohiChecker {
    recipient: String,
}

/// A field that cannot be read: its name (`KO 3`), line and what is wrong.
struct Unreadable {
    field: &'static str,
    line: u64,
    why: String,
}

/// The days of service of one receipt by what its public-expense queries answered (day sets:
/// bit `d - 1` for day `d`), over every `KO` record judged.
#[derive(Debug, Default, PartialEq, Eq)]
struct KohiDays {
    not_found: u32,
    multiple: u32,
    expired: u32,
    not_yet: u32,
    other_institution: u32,
    /// Some `KO` record names a payer whose list the index holds.
    judged: bool,
    /// A record covered some days but not all of a receipt without day counts: its visits
    /// may all fall on the covered days.
    partial_month: bool,
}

impl KohiChecker {
    /// Receipt `r`'s verdict: `checked`, the verdict of its `HO` part (`unchecked`
    /// `no_insurance` when it has none), joined with those of its `KO` records.
    pub fn join<B: AsRef<[u8]>>(
        &mut self,
        index: &Index<B>,
        file: &UkeFile<'_>,
        r: &Receipt,
        checked: Checked,
    ) -> Checked {
        let records = file.public_expenses_of(r);
        if records.is_empty() || checked.verdict == Verdict::Error {
            return checked;
        }
        let outcome = own_points(file, r, records, checked.points)
            .and_then(|points| Ok((points, self.days_by(index, file, r, records)?)));
        match outcome {
            Ok((points, days)) => days.verdict(Checked { points, ..checked }),
            Err(u) => Checked {
                verdict: Verdict::Error,
                reason: Reason::Malformed(u.field.to_string()),
                days: 0,
                points: checked.points,
                detail: Some((u.line, u.why)),
            },
        }
    }

    /// Every `KO` record of `r` read, and those of a payer the index holds queried on each
    /// day of service.
    fn days_by<B: AsRef<[u8]>>(
        &mut self,
        index: &Index<B>,
        file: &UkeFile<'_>,
        r: &Receipt,
        records: &[PublicExpenseRecord],
    ) -> Result<KohiDays, Unreadable> {
        let mut by = KohiDays::default();
        let Some(month) = r.month else {
            // Unreachable: a receipt without its month of care is malformed (RE 4).
            return Ok(by);
        };
        let (days, every_day) = match r.days {
            0 => (month.all_days(), true),
            d => (d, false),
        };
        let mut birthdate = None;
        for ko in records {
            let payer = self.read(file, ko)?;
            let Some(info) = index.payer(payer) else {
                continue;
            };
            let birth = match birthdate {
                Some(b) => b,
                None => *birthdate.insert(read_birthdate(file, r)?),
            };
            let institution = read_institution(file, ko)?;
            by.judged = true;
            let certificates = index.certificates_of(info, &self.recipient);
            let mut one = KohiDays::default();
            let mut covered = 0u32;
            for d in 1..=month.days {
                let bit = 1u32 << (d - 1);
                if days & bit == 0 {
                    continue;
                }
                let day = month.day(d);
                match decide(certificates.clone(), birth, day, Some(institution)) {
                    KohiOutcome::Eligible(_) => covered |= bit,
                    KohiOutcome::Invalid(_, KohiReason::Expired) => one.expired |= bit,
                    KohiOutcome::Invalid(_, KohiReason::NotYet) => one.not_yet |= bit,
                    KohiOutcome::Invalid(_, KohiReason::OtherInstitution) => {
                        one.other_institution |= bit
                    }
                    KohiOutcome::NotFound => one.not_found |= bit,
                    KohiOutcome::Multiple => one.multiple |= bit,
                }
            }
            if every_day && covered != 0 && covered != days {
                by.partial_month = true;
            } else {
                by.add(&one);
            }
        }
        Ok(by)
    }

    /// A `KO` record's payer number, and its recipient number normalized into the buffer.
    fn read(
        &mut self,
        file: &UkeFile<'_>,
        ko: &PublicExpenseRecord,
    ) -> Result<PayerNumber, Unreadable> {
        let raw = file.text(&ko.payer_number);
        let payer = PayerNumber::parse(raw).map_err(|e| Unreadable {
            field: "KO 2",
            line: ko.line,
            why: format!("payer number {e}: {}", text::quote_raw(raw)),
        })?;
        let raw = file.text(&ko.recipient_number);
        normalize_recipient_into(raw, payer, &mut self.recipient).map_err(|e| Unreadable {
            field: "KO 3",
            line: ko.line,
            why: format!("recipient number {e}: {}", text::quote_raw(raw)),
        })?;
        Ok(payer)
    }
}

impl KohiDays {
    fn add(&mut self, o: &KohiDays) {
        self.not_found |= o.not_found;
        self.multiple |= o.multiple;
        self.expired |= o.expired;
        self.not_yet |= o.not_yet;
        self.other_institution |= o.other_institution;
    }

    /// The receipt's verdict, most severe first: the `HO` returns of `checked`, then the
    /// public-expense returns, then the checks (a public expense covering only some days of a
    /// receipt without day counts is `partial_month`).
    fn verdict(&self, checked: Checked) -> Checked {
        if checked.verdict == Verdict::Return {
            return checked;
        }
        let returns = [
            (self.not_found, Reason::KohiNotFound),
            (self.multiple, Reason::KohiMultiple),
            (self.expired, Reason::KohiExpired),
            (self.not_yet, Reason::KohiNotYet),
            (self.other_institution, Reason::KohiOtherInstitution),
        ];
        let decided = |verdict, reason, days| Checked {
            verdict,
            reason,
            days,
            ..checked.clone()
        };
        if let Some((days, reason)) = returns.into_iter().find(|(d, _)| *d != 0) {
            return decided(Verdict::Return, reason, days);
        }
        let no_insurance = checked.verdict == Verdict::Unchecked;
        if self.partial_month {
            return decided(Verdict::Check, Reason::PartialMonth, 0);
        }
        match (no_insurance, self.judged) {
            (true, true) => decided(Verdict::Ok, Reason::None, 0),
            (true, false) => decided(Verdict::Unchecked, Reason::KohiNotHeld, 0),
            (false, _) => checked,
        }
    }
}

/// The receipt's points: `HO` 6 (already read), or for a receipt without `HO`, its first
/// `KO` record's total points (field 6), when given.
fn own_points(
    file: &UkeFile<'_>,
    r: &Receipt,
    records: &[PublicExpenseRecord],
    points: Option<u64>,
) -> Result<Option<u64>, Unreadable> {
    let Some(first) = records.first().filter(|_| r.insurance.is_none()) else {
        return Ok(points);
    };
    let raw = file.text(&first.points);
    if raw.trim().is_empty() {
        return Ok(None);
    }
    read_points(raw).map(Some).map_err(|why| Unreadable {
        field: "KO 6",
        line: first.line,
        why,
    })
}

fn read_birthdate(file: &UkeFile<'_>, r: &Receipt) -> Result<Date, Unreadable> {
    let raw = file.text(&r.birthdate);
    Date::parse(raw.trim()).map_err(|e| Unreadable {
        field: "RE 7",
        line: r.line,
        why: format!("birthdate {e}: {}", text::quote_raw(raw)),
    })
}

/// The file's institution code, which a public-expense query with designated institutions
/// needs: a file whose `IR` record does not hold a valid one cannot have its `KO` records
/// checked.
fn read_institution(
    file: &UkeFile<'_>,
    ko: &PublicExpenseRecord,
) -> Result<InstitutionCode, Unreadable> {
    file.institution
        .as_deref()
        .and_then(|code| InstitutionCode::parse(code).ok())
        .ok_or_else(|| Unreadable {
            field: "IR 5",
            line: ko.line,
            why: "the file's institution code (IR 3, 4 and 5) is not a valid 10-digit 医療機関コード, and checking a public expense needs it".to_string(),
        })
}
