//! The row rules of docs/delivery.md: one data row becomes a [`Record`] with its warnings, or a reject
//! under the first failing rule (R1..R7 in order).

use super::change::RecordKey;
use super::header::Column;
use super::read::FileContext;
use super::types::{Issue, Rule};
use crate::domain::text::{mask_digit_runs, quote_raw};
use crate::domain::{
    mask_raw, normalize_card_text, text, Branch, CopayRatio, Date, IndividualNumber, InsurerNumber,
    LimitCategory, ReasonOfLoss, Record, Relationship, Sex,
};
use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// The text of one row's fields by column; an absent optional column reads as "".
pub(crate) struct Fields<'r>(pub [&'r str; Column::ALL.len()]);

impl<'r> Fields<'r> {
    fn get(&self, c: Column) -> &'r str {
        self.0[c as usize]
    }
}

/// A failed rule: which rule, which column, and why in plain words.
type Failure = (Rule, Column, String);

/// Validates one row. `Ok` carries the record and its warnings; `Err` the reject.
pub(crate) fn check_row(
    f: &Fields<'_>,
    ctx: &FileContext,
    line: u64,
) -> Result<(Record, Vec<Issue>), Issue> {
    let issue = |failure| issue(ctx, line, failure);
    let record = build_record(f, ctx).map_err(issue)?;
    let warnings = warnings(f, &record, ctx).into_iter().map(issue).collect();
    Ok((record, warnings))
}

/// The key columns of a `lose` or `delete` row, the only ones it needs: R1, R2, R3, and R5
/// without the birthdate (the row may leave it empty). The record it names was checked whole
/// when it was added.
pub(crate) fn check_key(f: &Fields<'_>, ctx: &FileContext, line: u64) -> Result<RecordKey, Issue> {
    key_of(f, ctx).map_err(|failure| issue(ctx, line, failure))
}

fn key_of(f: &Fields<'_>, ctx: &FileContext) -> Result<RecordKey, Failure> {
    let (_, symbol, number, branch) = card(f, ctx)?;
    let qualification_date = date(f.get(Column::QualificationDate), Column::QualificationDate)
        .map_err(|reason| (Rule::R5, Column::QualificationDate, reason))?;
    Ok(RecordKey {
        symbol,
        number,
        branch,
        qualification_date,
    })
}

/// The loss a `lose` row gives its record: R6 (disqualification_date required, after the
/// key's qualification date), then R7 (reason_of_loss).
pub(crate) fn check_loss(
    f: &Fields<'_>,
    ctx: &FileContext,
    line: u64,
    key: &RecordKey,
) -> Result<(Date, Option<ReasonOfLoss>), Issue> {
    let loss = || -> Result<(Date, Option<ReasonOfLoss>), Failure> {
        let raw = f.get(Column::DisqualificationDate);
        let disqualification = disqualification(raw, key.qualification_date)?.ok_or((
            Rule::R6,
            Column::DisqualificationDate,
            "disqualification_date is empty; a lose row requires it".to_owned(),
        ))?;
        let reason = optional_code(
            f.get(Column::ReasonOfLoss),
            Column::ReasonOfLoss,
            "01, 02, 03, 99",
            ReasonOfLoss::parse,
        )?;
        Ok((disqualification, reason))
    };
    loss().map_err(|failure| issue(ctx, line, failure))
}

fn issue(ctx: &FileContext, line: u64, (rule, col, reason): Failure) -> Issue {
    Issue {
        file: ctx.file.clone(),
        line,
        rule,
        field: Cow::Borrowed(col.name()),
        reason,
    }
}

/// Longest name or name_kana a row may have. No person's name comes near it; a longer field
/// is a malformed row (the index also counts these lengths in 16 bits).
pub const MAX_NAME_BYTES: usize = 1024;

/// R0 (field lengths), then R1..R7 in order; the first failure wins and later fields are not
/// examined.
fn build_record(f: &Fields<'_>, ctx: &FileContext) -> Result<Record, Failure> {
    for col in [Column::Name, Column::NameKana] {
        let len = f.get(col).len();
        if len > MAX_NAME_BYTES {
            return Err((
                Rule::R0,
                col,
                format!(
                    "{} is {len} bytes, longer than the {MAX_NAME_BYTES} a record holds",
                    col.name()
                ),
            ));
        }
    }
    let (insurer, symbol, number, branch) = card(f, ctx)?;
    let birthdate = birthdate(f.get(Column::Birthdate), ctx.snapshot_date)?;
    let qualification_date = qualification(f.get(Column::QualificationDate), birthdate)?;
    let disqualification_date =
        disqualification(f.get(Column::DisqualificationDate), qualification_date)?;
    let sex = code(f.get(Column::Sex), Column::Sex, "1, 2, 3", Sex::parse)?;
    let relationship = code(
        f.get(Column::Relationship),
        Column::Relationship,
        "1, 2",
        Relationship::parse,
    )?;
    let reason_of_loss = optional_code(
        f.get(Column::ReasonOfLoss),
        Column::ReasonOfLoss,
        "01, 02, 03, 99",
        ReasonOfLoss::parse,
    )?;
    let copay_ratio = code(
        f.get(Column::CopayRatio),
        Column::CopayRatio,
        "10, 20, 30, 1割, 2割, 3割",
        CopayRatio::parse,
    )?;
    let limit_category = optional_code(
        f.get(Column::LimitCategory),
        Column::LimitCategory,
        "A01–A06, B01–B10",
        LimitCategory::parse,
    )?;
    Ok(Record {
        insurer,
        symbol,
        number,
        branch,
        individual_number: IndividualNumber::parse(f.get(Column::IndividualNumber)).ok(),
        // An individual number typed into a name column would be stored, and answered, in
        // clear: its digits are masked as in every report (docs/api.md#individual-number). W4 flags the kana.
        name: mask_digit_runs(f.get(Column::Name).trim_matches(text::is_space)).into_owned(),
        name_kana: mask_digit_runs(&normalize_kana(f.get(Column::NameKana))).into_owned(),
        sex,
        birthdate,
        relationship,
        qualification_date,
        disqualification_date,
        reason_of_loss,
        copay_ratio,
        limit_category,
    })
}

/// R1, R2 (number, then symbol), R3: the card of a row, as insurer, symbol, number, branch.
fn card(
    f: &Fields<'_>,
    ctx: &FileContext,
) -> Result<(InsurerNumber, String, String, Branch), Failure> {
    let insurer = insurer(f.get(Column::InsurerNumber), ctx.insurer)?;
    let number = card_text(f.get(Column::Number), Column::Number, true)?;
    let symbol = card_text(f.get(Column::Symbol), Column::Symbol, false)?;
    let branch = parse_or(f.get(Column::Branch), Column::Branch, Rule::R3, |s| {
        Branch::parse_exact(s).map_err(|e| e.to_string())
    })?;
    Ok((insurer, symbol, number, branch))
}

/// R1: a valid insurer number, and the one of the file's directory.
fn insurer(raw: &str, expected: InsurerNumber) -> Result<InsurerNumber, Failure> {
    let fail = |reason| (Rule::R1, Column::InsurerNumber, reason);
    let n = InsurerNumber::parse(raw).map_err(|e| fail(format!("{} {e}", quote_raw(raw))))?;
    if n != expected {
        return Err(fail(format!(
            "{} is not the insurer of its directory ({expected})",
            quote_raw(raw)
        )));
    }
    Ok(n)
}

/// R2: number (required) and symbol (optional), normalized per docs/api.md#symbol-number-branch.
fn card_text(raw: &str, col: Column, required: bool) -> Result<String, Failure> {
    let fail = |reason| (Rule::R2, col, reason);
    match normalize_card_text(raw) {
        Ok(s) if s.is_empty() && required => Err(fail(format!("{} is empty", col.name()))),
        Ok(s) => Ok(s),
        Err(e) => Err(fail(format!("{} {e}", quote_raw(raw)))),
    }
}

/// R4: a real date, not after the snapshot date, not before 明治.
fn birthdate(raw: &str, snapshot_date: Date) -> Result<Date, Failure> {
    birthdate_named(raw, Column::Birthdate.name(), snapshot_date)
        .map_err(|reason| (Rule::R4, Column::Birthdate, reason))
}

/// A birthdate of the column `name`: a real date, not after the file's date, not before 明治;
/// its reason otherwise (R4 of a snapshot, K3 of a public-expense register).
pub(super) fn birthdate_named(raw: &str, name: &str, file_date: Date) -> Result<Date, String> {
    let d = date_named(raw, name)?;
    if d > file_date {
        return Err(format!("{d} is after the file's date {file_date}"));
    }
    let meiji = Date::meiji_first();
    if d < meiji {
        return Err(format!("{d} is before 明治 ({meiji})"));
    }
    Ok(d)
}

/// R5: a real date, on or after the birthdate.
fn qualification(raw: &str, birthdate: Date) -> Result<Date, Failure> {
    start_named(raw, Column::QualificationDate.name(), birthdate)
        .map_err(|reason| (Rule::R5, Column::QualificationDate, reason))
}

/// The first day of a record or certificate, of the column `name`: a real date, on or after
/// the birthdate; its reason otherwise (R5, K4).
pub(super) fn start_named(raw: &str, name: &str, birthdate: Date) -> Result<Date, String> {
    let d = date_named(raw, name)?;
    if d < birthdate {
        return Err(format!("{d} is before the birthdate {birthdate}"));
    }
    Ok(d)
}

/// R6: optional; when present a real date strictly after the qualification date (it is
/// exclusive, so equal would mean a record covering no day at all).
fn disqualification(raw: &str, qualification: Date) -> Result<Option<Date>, Failure> {
    let fail = |reason| (Rule::R6, Column::DisqualificationDate, reason);
    if is_blank(raw) {
        return Ok(None);
    }
    let d = date(raw, Column::DisqualificationDate).map_err(fail)?;
    if d <= qualification {
        return Err(fail(format!(
            "{d} is not after the qualification date {qualification}"
        )));
    }
    Ok(Some(d))
}

fn date(raw: &str, col: Column) -> Result<Date, String> {
    date_named(raw, col.name())
}

/// A required date of the column `name`: its reason when empty or not a date.
pub(super) fn date_named(raw: &str, name: &str) -> Result<Date, String> {
    if is_blank(raw) {
        return Err(format!("{name} is empty"));
    }
    Date::parse(raw).map_err(|e| format!("{}: {e}", quote_raw(raw)))
}

/// R7 for a required code.
fn code<T>(
    raw: &str,
    col: Column,
    listed: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, Failure> {
    if is_blank(raw) {
        return Err((
            Rule::R7,
            col,
            format!("{} is empty (listed: {listed})", col.name()),
        ));
    }
    parse(raw).ok_or_else(|| {
        (
            Rule::R7,
            col,
            format!("{} is not a listed code ({listed})", quote_raw(raw)),
        )
    })
}

/// R7 for an optional code: empty means absent.
fn optional_code<T>(
    raw: &str,
    col: Column,
    listed: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, Failure> {
    if is_blank(raw) {
        return Ok(None);
    }
    code(raw, col, listed, parse).map(Some)
}

fn parse_or<T>(
    raw: &str,
    col: Column,
    rule: Rule,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, Failure> {
    parse(raw).map_err(|e| (rule, col, format!("{} {e}", quote_raw(raw))))
}

/// W1..W4 for a kept row, in that order.
fn warnings(f: &Fields<'_>, r: &Record, ctx: &FileContext) -> Vec<Failure> {
    let mut out = Vec::new();
    let raw_individual = f.get(Column::IndividualNumber);
    if r.individual_number.is_none() && !is_blank(raw_individual) {
        // Parse again only on this rare path to name the reason; the value is masked.
        let why = IndividualNumber::parse(raw_individual)
            .err()
            .map_or_else(String::new, |e| e.to_string());
        out.push((
            Rule::W1,
            Column::IndividualNumber,
            format!(
                "{} {why}; the row is kept without it",
                mask_raw(raw_individual)
            ),
        ));
    }
    let age = r.birthdate.age_on(ctx.snapshot_date);
    if !r.copay_ratio.usual_for_age(age) {
        out.push((
            Rule::W2,
            Column::CopayRatio,
            format!(
                "copay ratio {} is unusual at age {age} on {} (usual: {})",
                r.copay_ratio.percent(),
                ctx.snapshot_date,
                usual_ratios(age)
            ),
        ));
    }
    // Only a current record is wrong for a 75-year-old: a record lost at the 75th birthday
    // (the move into 後期高齢者) stays in the old insurer's file as history.
    if age >= 75 && !r.insurer.is_koki() && r.covers(ctx.snapshot_date) {
        out.push((
            Rule::W3,
            Column::Birthdate,
            format!(
                "age {age} on {} but insurer {} is not 後期高齢者 (法別 39)",
                ctx.snapshot_date, r.insurer
            ),
        ));
    }
    if r.name_kana.is_empty() {
        out.push((Rule::W4, Column::NameKana, "name_kana is empty".to_owned()));
    } else if !is_katakana(&r.name_kana) {
        out.push((
            Rule::W4,
            Column::NameKana,
            format!("{} is not katakana", quote_raw(f.get(Column::NameKana))),
        ));
    }
    out
}

fn usual_ratios(age: i32) -> &'static str {
    match age {
        i32::MIN..=5 => "20",
        6..=69 => "30",
        70..=74 => "20 or 30",
        _ => "10, 20 or 30",
    }
}

/// NFKC and trimmed. Kana already in full-width katakana (nearly every row) skips NFKC, which
/// would leave it unchanged anyway except for the ideographic space.
pub(crate) fn normalize_kana(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim_matches(text::is_space);
    if trimmed.chars().all(|c| c == ' ' || is_katakana_char(c)) {
        return Cow::Borrowed(trimmed);
    }
    let folded: String = trimmed.nfkc().collect();
    let t = folded.trim_matches(text::is_space);
    Cow::Owned(if t.len() == folded.len() {
        folded
    } else {
        t.to_owned()
    })
}

/// Katakana letters U+30A1–U+30FA, ・ U+30FB, ー U+30FC, ヽ ヾ U+30FD–U+30FE: all stable
/// under NFKC.
fn is_katakana_char(c: char) -> bool {
    ('\u{30A1}'..='\u{30FE}').contains(&c)
}

/// W4's test on normalized kana: katakana and white space only.
pub(crate) fn is_katakana(normalized: &str) -> bool {
    normalized
        .chars()
        .all(|c| is_katakana_char(c) || text::is_space(c))
}

pub(super) fn is_blank(raw: &str) -> bool {
    raw.chars().all(text::is_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kana() {
        let check = |raw: &str, normalized: &str, katakana: bool| {
            let n = normalize_kana(raw);
            assert_eq!((&*n, is_katakana(&n)), (normalized, katakana), "{raw:?}");
        };
        check("ヤマダ タロウ", "ヤマダ タロウ", true);
        check("ヤマダ\u{3000}タロウ ", "ヤマダ タロウ", true);
        check("ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダ タロウ", true);
        check("ヴァン・ローー", "ヴァン・ローー", true);
        check("やまだ", "やまだ", false);
        check("YAMADA", "YAMADA", false);
        check("山田", "山田", false);
        check("  ", "", true);
    }
}
