//! The row rules of a public-expense register: one data row becomes a [`Certificate`] with its
//! warnings, or a reject under the first failing rule (R0, then K1..K6 in order).

use super::super::row::{
    birthdate_named, date_named, is_blank, normalize_kana, start_named, MAX_NAME_BYTES,
};
use super::super::types::{Issue, Rule};
use super::change::CertificateKey;
use super::columns::KohiColumn;
use super::read::RegisterContext;
use crate::domain::text::{self, mask_digit_runs, quote_raw};
use crate::domain::{
    mask_raw, normalize_recipient, Certificate, Date, IndividualNumber, InstitutionCode,
    PayerNumber, Sex, MAX_INSTITUTIONS,
};
use std::borrow::Cow;

/// The text of one row's cells by column; an absent optional column reads as "".
pub(crate) struct KohiFields<'r>(pub [&'r str; KohiColumn::ALL.len()]);

impl<'r> KohiFields<'r> {
    fn get(&self, c: KohiColumn) -> &'r str {
        self.0[c as usize]
    }
}

/// A failed rule: which rule, which column, and why in plain words.
type Failure = (Rule, KohiColumn, String);

/// Highest monthly copay limit read, in yen: far above any program's (難病's highest is
/// 30,000), low enough that a typo of several digits is caught.
pub const MAX_COPAY_LIMIT_YEN: u32 = 10_000_000;

/// Validates one row. `Ok` carries the certificate and its warnings (W1 only); `Err` the
/// reject.
pub(crate) fn check_certificate(
    f: &KohiFields<'_>,
    ctx: &RegisterContext,
    line: u64,
) -> Result<(Certificate, Vec<Issue>), Issue> {
    let issue = |failure| failed(ctx, line, failure);
    let certificate = build(f, ctx).map_err(issue)?;
    let warnings = individual_number_warning(f, &certificate)
        .into_iter()
        .map(issue)
        .collect();
    Ok((certificate, warnings))
}

fn build(f: &KohiFields<'_>, ctx: &RegisterContext) -> Result<Certificate, Failure> {
    for col in [KohiColumn::Name, KohiColumn::NameKana] {
        let len = f.get(col).len();
        if len > MAX_NAME_BYTES {
            return Err((
                Rule::R0,
                col,
                format!(
                    "{} is {len} bytes, longer than the {MAX_NAME_BYTES} a certificate holds",
                    col.name()
                ),
            ));
        }
    }
    let payer = payer(f.get(KohiColumn::PayerNumber), ctx.payer)?;
    let recipient = recipient(f.get(KohiColumn::RecipientNumber), payer)?;
    let birthdate = birthdate(f.get(KohiColumn::Birthdate), ctx.snapshot_date)?;
    let valid_from = valid_from(f.get(KohiColumn::ValidFrom), birthdate)?;
    let valid_to = valid_to(f.get(KohiColumn::ValidTo), valid_from)?;
    let institutions = institutions(f.get(KohiColumn::Institutions))?;
    let copay_limit_yen = copay_limit(f.get(KohiColumn::CopayLimitYen))?;
    let sex = sex(f.get(KohiColumn::Sex))?;
    Ok(Certificate {
        payer,
        recipient,
        individual_number: IndividualNumber::parse(f.get(KohiColumn::IndividualNumber)).ok(),
        // An individual number typed into a name column would be answered in clear.
        name: mask_digit_runs(f.get(KohiColumn::Name).trim_matches(text::is_space)).into_owned(),
        name_kana: mask_digit_runs(&normalize_kana(f.get(KohiColumn::NameKana))).into_owned(),
        sex,
        birthdate,
        valid_from,
        valid_to,
        copay_limit_yen,
        institutions,
    })
}

/// K1: a valid payer number, and the one of the file's directory.
fn payer(raw: &str, expected: PayerNumber) -> Result<PayerNumber, Failure> {
    let fail = |reason| (Rule::K1, KohiColumn::PayerNumber, reason);
    let n = PayerNumber::parse(raw).map_err(|e| fail(format!("{} {e}", quote_raw(raw))))?;
    if n != expected {
        return Err(fail(format!(
            "{} is not the payer of its directory ({expected})",
            quote_raw(raw)
        )));
    }
    Ok(n)
}

/// K2: a recipient number valid for the payer's program, normalized.
fn recipient(raw: &str, payer: PayerNumber) -> Result<String, Failure> {
    normalize_recipient(raw, payer).map_err(|e| {
        (
            Rule::K2,
            KohiColumn::RecipientNumber,
            format!("{} {e}", quote_raw(raw)),
        )
    })
}

/// K3: a real date, not after the register's date, not before 明治.
fn birthdate(raw: &str, snapshot_date: Date) -> Result<Date, Failure> {
    birthdate_named(raw, KohiColumn::Birthdate.name(), snapshot_date)
        .map_err(|reason| (Rule::K3, KohiColumn::Birthdate, reason))
}

/// K4: a real date, on or after the birthdate.
fn valid_from(raw: &str, birthdate: Date) -> Result<Date, Failure> {
    start_named(raw, KohiColumn::ValidFrom.name(), birthdate)
        .map_err(|reason| (Rule::K4, KohiColumn::ValidFrom, reason))
}

/// K5: optional; when present a real date on or after valid_from (it is inclusive: equal is
/// a certificate of one day).
fn valid_to(raw: &str, valid_from: Date) -> Result<Option<Date>, Failure> {
    let fail = |reason| (Rule::K5, KohiColumn::ValidTo, reason);
    if is_blank(raw) {
        return Ok(None);
    }
    let d = date_named(raw, KohiColumn::ValidTo.name()).map_err(fail)?;
    if d < valid_from {
        return Err(fail(format!("{d} is before valid_from {valid_from}")));
    }
    Ok(Some(d))
}

/// K6: `;`-separated institution codes, each valid (empty pieces, as a trailing `;` leaves,
/// are skipped; a code named twice is kept once).
fn institutions(raw: &str) -> Result<Vec<InstitutionCode>, Failure> {
    let fail = |reason| (Rule::K6, KohiColumn::Institutions, reason);
    let mut out: Vec<InstitutionCode> = Vec::new();
    for piece in raw.split([';', '；']).filter(|p| !is_blank(p)) {
        let code =
            InstitutionCode::parse(piece).map_err(|e| fail(format!("{} {e}", quote_raw(piece))))?;
        if !out.contains(&code) {
            out.push(code);
        }
    }
    if out.len() > MAX_INSTITUTIONS {
        return Err(fail(format!(
            "{} institutions, more than the {MAX_INSTITUTIONS} a certificate may name",
            out.len()
        )));
    }
    Ok(out)
}

/// K6: optional whole yen, digits only (full-width folded), at most [`MAX_COPAY_LIMIT_YEN`].
fn copay_limit(raw: &str) -> Result<Option<u32>, Failure> {
    if is_blank(raw) {
        return Ok(None);
    }
    text::digits(raw)
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|&yen| yen <= MAX_COPAY_LIMIT_YEN)
        .map(Some)
        .ok_or_else(|| {
            (
                Rule::K6,
                KohiColumn::CopayLimitYen,
                format!(
                    "{} is not a whole number of yen from 0 to {MAX_COPAY_LIMIT_YEN}",
                    quote_raw(raw)
                ),
            )
        })
}

/// K6: optional; 1, 2 or 3 when given.
fn sex(raw: &str) -> Result<Option<Sex>, Failure> {
    if is_blank(raw) {
        return Ok(None);
    }
    Sex::parse(raw).map(Some).ok_or_else(|| {
        (
            Rule::K6,
            KohiColumn::Sex,
            format!("{} is not a listed code (1, 2, 3)", quote_raw(raw)),
        )
    })
}

/// W1: an unusable individual number is dropped, the certificate kept.
fn individual_number_warning(f: &KohiFields<'_>, c: &Certificate) -> Option<Failure> {
    let raw = f.get(KohiColumn::IndividualNumber);
    if c.individual_number.is_some() || is_blank(raw) {
        return None;
    }
    let why = IndividualNumber::parse(raw)
        .err()
        .map_or_else(String::new, |e| e.to_string());
    Some((
        Rule::W1,
        KohiColumn::IndividualNumber,
        format!(
            "{} {why}; the certificate is kept without it",
            mask_raw(raw)
        ),
    ))
}

/// The key a change row's `lose` or `delete` names: payer (K1), recipient number (K2) and
/// valid_from (K4: a real date; the birthdate may be left empty on such a row).
pub(crate) fn check_certificate_key(
    f: &KohiFields<'_>,
    ctx: &RegisterContext,
    line: u64,
) -> Result<CertificateKey, Issue> {
    key(f, ctx).map_err(|failure| failed(ctx, line, failure))
}

fn key(f: &KohiFields<'_>, ctx: &RegisterContext) -> Result<CertificateKey, Failure> {
    let payer = payer(f.get(KohiColumn::PayerNumber), ctx.payer)?;
    let recipient = recipient(f.get(KohiColumn::RecipientNumber), payer)?;
    let valid_from = date_named(f.get(KohiColumn::ValidFrom), KohiColumn::ValidFrom.name())
        .map_err(|reason| (Rule::K4, KohiColumn::ValidFrom, reason))?;
    Ok(CertificateKey {
        payer,
        recipient,
        valid_from,
    })
}

/// K5 on a `lose` row: the certificate's new valid_to, required (ending it is what the row
/// is for), on or after the key's valid_from.
pub(crate) fn check_certificate_loss(
    f: &KohiFields<'_>,
    ctx: &RegisterContext,
    line: u64,
    key: &CertificateKey,
) -> Result<Date, Issue> {
    let raw = f.get(KohiColumn::ValidTo);
    let ends = valid_to(raw, key.valid_from).and_then(|d| {
        d.ok_or_else(|| {
            let why = "is empty; a lose row gives the certificate's last day".to_owned();
            (Rule::K5, KohiColumn::ValidTo, why)
        })
    });
    ends.map_err(|failure| failed(ctx, line, failure))
}

fn failed(ctx: &RegisterContext, line: u64, (rule, col, reason): Failure) -> Issue {
    Issue {
        file: ctx.file.clone(),
        line,
        rule,
        field: Cow::Borrowed(col.name()),
        reason,
    }
}
