//! The check of one receipt: each day of service is a card query on that day, decided by the
//! same rules, and the same code, as every card query the server answers. The card is looked
//! up once per receipt (the index's staged lookup finds its records); each day then runs the
//! card-query decision over those records.
//!
//! Receipts are checked in groups of [`GROUP_RECEIPTS`], their lookups driven in lockstep as
//! the server answers a pipelined group of card queries (`index::run_group`): a lookup in a
//! large index is mostly waiting on memory (the card's directory slot, its records, their
//! text), so each step first asks for the next one's memory and the cache misses of the
//! group overlap instead of following one another.

use super::kohi::KohiChecker;
use super::uke::{Insurance, Receipt, UkeFile};
use super::{Reason, Verdict};
use crate::domain::{text, Date};
use crate::index::{run_group, CardRecords, Index, RecordView, Staged, Target};
use crate::query::answer::GROUP_QUERIES;
use crate::query::{CardFields, CardQuery, Lookup, Outcome, QueryError};
use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// The result of one receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub verdict: Verdict,
    pub reason: Reason,
    /// The days that decided a `return` (a day set of the month: bit `d - 1` for day `d`).
    pub days: u32,
    /// Total points (`HO` 6), when readable.
    pub points: Option<u64>,
    /// The line and explanation of a malformed field (for the summary and JSON rows).
    pub detail: Option<(u64, String)>,
}

/// Receipts checked together (as many as the server's pipelined group of card queries).
pub const GROUP_RECEIPTS: usize = GROUP_QUERIES;

/// What one checker reuses from group to group: each slot's card query, whose normalized
/// symbol and number buffers are refilled for each receipt rather than allocated.
#[derive(Default)]
pub struct Checker {
    slots: Vec<Slot>,
    spare: Vec<(String, String)>,
    kohi: KohiChecker,
}

/// One receipt of a group: decided before any lookup (no card to look up), or its card query.
enum Slot {
    Decided(Checked),
    Card { q: CardQuery, points: Option<u64> },
}

/// The card-query decision for one day over a card's records found once for the receipt.
fn decide_day<'a, B: AsRef<[u8]>>(
    index: &'a Index<B>,
    q: &CardQuery,
    card: &CardRecords<'a, B>,
) -> Outcome<RecordView<'a>> {
    let day = q.date.expect("a day of service is set");
    index.card_in(q, card.clone(), day)
}

impl Checker {
    /// Checks `receipts` of `file` against `index` (at most [`GROUP_RECEIPTS`]), calling
    /// `each` with each receipt in order, its result and its card query, normalized (`None`
    /// when the receipt has no readable card).
    pub fn check_group<B: AsRef<[u8]>>(
        &mut self,
        index: &Index<B>,
        file: &UkeFile<'_>,
        receipts: &[Receipt],
        mut each: impl FnMut(&Receipt, &Checked, Option<&CardQuery>),
    ) {
        assert!(receipts.len() <= GROUP_RECEIPTS, "at most GROUP_RECEIPTS");
        for slot in self.slots.drain(..) {
            if let Slot::Card { q, .. } = slot {
                self.spare.push((q.symbol, q.number));
            }
        }
        for r in receipts {
            let spare = self.spare.pop().unwrap_or_default();
            self.slots.push(prepare(file, r, spare));
        }
        // The cards' records, looked up in lockstep (claims decide the days themselves: no
        // lost record's person is looked for ahead).
        let mut group: Vec<_> = self
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Card { q, .. } => Some(Staged::new(
                    index,
                    Target::Card {
                        insurer: &q.insurer,
                        symbol: &q.symbol,
                        number: &q.number,
                        lost_on: None,
                    },
                )),
                Slot::Decided(_) => None,
            })
            .collect();
        run_group(&mut group);
        let cards: Vec<CardRecords<'_, B>> = group.into_iter().map(|s| s.found().card).collect();
        let mut cards = cards.into_iter();
        // Each day of service decided, in order, and the public expenses joined.
        for (r, slot) in receipts.iter().zip(&mut self.slots) {
            let (checked, q) = match slot {
                Slot::Decided(checked) => (checked.clone(), None),
                Slot::Card { q, points } => {
                    let card = cards.next().expect("a lookup for every card slot");
                    (decide(index, file, r, q, card, *points), Some(&*q))
                }
            };
            let checked = self.kohi.join(index, file, r, checked);
            each(r, &checked, q);
        }
    }
}

/// Reads receipt `r` up to its card lookup: a receipt that cannot get one is decided here.
/// `spare` holds buffers for the card query's symbol and number.
fn prepare(file: &UkeFile<'_>, r: &Receipt, spare: (String, String)) -> Slot {
    let (points, points_error) = match &r.insurance {
        Some(ins) => match read_points(file.text(&ins.points)) {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some((ins.line, why))),
        },
        None => (None, None),
    };
    let error = |reason: String, detail: (u64, String)| {
        Slot::Decided(Checked {
            verdict: Verdict::Error,
            reason: Reason::Malformed(reason),
            days: 0,
            points,
            detail: Some(detail),
        })
    };
    if let Some(m) = &r.malformed {
        return error(m.field_name(), (m.line, m.why.clone()));
    }
    let (Some(ins), Some(_)) = (&r.insurance, r.month) else {
        return Slot::Decided(Checked {
            verdict: Verdict::Unchecked,
            reason: Reason::NoInsurance,
            days: 0,
            points,
            detail: None,
        });
    };
    if let Some(detail) = points_error {
        return error("HO 6".into(), detail);
    }
    let sex = file.text(&r.sex).trim();
    if !matches!(sex, "1" | "2") {
        let why = format!("sex must be 1 or 2, not {}", text::quote_raw(sex));
        return error("RE 6".into(), (r.line, why));
    }
    match CardQuery::parse_reusing(&card_fields(file, r, ins), spare.0, spare.1) {
        Ok(q) => Slot::Card { q, points },
        Err(e) => {
            let (field, line) = uke_field(&e, r.line, ins.line);
            error(field.into(), (line, e.to_string()))
        }
    }
}

/// The card query receipt `r` names (its date unset), when it names one: what its check looks
/// up, if the rest of the receipt can be read. `None` for a receipt without health insurance
/// or month of care, with a malformed field, or whose card fields do not make a query.
pub fn card_query(file: &UkeFile<'_>, r: &Receipt) -> Option<CardQuery> {
    let ins = r.insurance.as_ref()?;
    if r.malformed.is_some() || r.month.is_none() {
        return None;
    }
    CardQuery::parse_reusing(&card_fields(file, r, ins), String::new(), String::new()).ok()
}

fn card_fields<'f>(file: &'f UkeFile<'_>, r: &'f Receipt, ins: &'f Insurance) -> CardFields<'f> {
    CardFields {
        insurer_number: Some(file.text(&ins.insurer_number)),
        symbol: Some(file.text(&ins.symbol)),
        number: Some(file.text(&ins.number)),
        branch: r.branch.as_ref().map(|b| file.text(b)),
        birthdate: Some(file.text(&r.birthdate)),
        date: None,
        limit_consent: false,
    }
}

/// Each day of service of receipt `r` decided over its card's records, and the verdict.
fn decide<'a, B: AsRef<[u8]>>(
    index: &'a Index<B>,
    file: &UkeFile<'_>,
    r: &Receipt,
    q: &mut CardQuery,
    card: CardRecords<'a, B>,
    points: Option<u64>,
) -> Checked {
    let month = r.month.expect("a receipt with a card query has its month");
    let sex = file.text(&r.sex).trim();
    let (days, every_day) = match r.days {
        0 => (month.all_days(), true),
        d => (d, false),
    };
    let mut by = DaysBy::default();
    let kana = file.text(&r.kana);
    // The record whose reading was last compared: a receipt's days are mostly covered by
    // the same record, whose reading need not be compared again.
    let mut kana_compared: Option<RecordView<'_>> = None;
    for d in 1..=month.days {
        if days & (1 << (d - 1)) == 0 {
            continue;
        }
        let day = month.day(d);
        q.date = Some(day);
        let bit = 1u32 << (d - 1);
        match decide_day(index, q, &card) {
            Outcome::Eligible(rec) => {
                by.covered |= bit;
                if !same_sex(sex, &rec) {
                    by.sex_differs = true;
                }
                if !by.kana_differs && kana_compared.as_ref() != Some(&rec) {
                    by.kana_differs = !same_kana(kana, rec.name_kana_utf8());
                    kana_compared = Some(rec);
                }
            }
            Outcome::Invalid(rec) => {
                if rec.disqualification_date().is_some_and(|end| day >= end) {
                    by.lost |= bit;
                } else {
                    by.not_yet |= bit;
                }
            }
            Outcome::InvalidNewerQualification => by.other |= bit,
            Outcome::NotFound => by.not_found |= bit,
            Outcome::MultipleCard | Outcome::MultiplePerson(_) => by.multiple |= bit,
        }
    }
    q.date = None;
    let (verdict, reason, days) = by.verdict(days, every_day);
    Checked {
        verdict,
        reason,
        days,
        points,
        detail: None,
    }
}

/// The days of a receipt by what their card query answered.
#[derive(Default)]
struct DaysBy {
    covered: u32,
    not_found: u32,
    multiple: u32,
    other: u32,
    lost: u32,
    not_yet: u32,
    sex_differs: bool,
    kana_differs: bool,
}

impl DaysBy {
    /// The receipt's verdict, most severe first, and the days that decided it.
    fn verdict(&self, days: u32, every_day: bool) -> (Verdict, Reason, u32) {
        if every_day && self.covered != 0 && self.covered != days {
            // No day counts: its visits may all fall on the covered days.
            return (Verdict::Check, Reason::PartialMonth, 0);
        }
        let returns = [
            (self.not_found, Reason::NotFound),
            (self.multiple, Reason::Multiple),
            (self.other, Reason::OtherQualification),
            (self.lost, Reason::Lost),
            (self.not_yet, Reason::NotYet),
        ];
        if let Some((d, reason)) = returns.into_iter().find(|(d, _)| *d != 0) {
            return (Verdict::Return, reason, d);
        }
        if self.sex_differs {
            return (Verdict::Check, Reason::SexDiffers, 0);
        }
        if self.kana_differs {
            return (Verdict::Check, Reason::KanaDiffers, 0);
        }
        (Verdict::Ok, Reason::None, 0)
    }
}

/// The UKE field (and its line) a card-query field came from.
fn uke_field(e: &QueryError, re_line: u64, ho_line: u64) -> (&'static str, u64) {
    match e.field {
        "insurer_number" => ("HO 2", ho_line),
        "symbol" => ("HO 3", ho_line),
        "number" => ("HO 4", ho_line),
        "branch" => ("SN 7", ho_line),
        _ => ("RE 7", re_line),
    }
}

/// Total points: digits, at most ten of them.
pub(super) fn read_points(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() || t.len() > 10 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "total points must be a number, not {}",
            text::quote_raw(t)
        ));
    }
    t.parse()
        .map_err(|_| format!("total points {} out of range", text::quote_raw(t)))
}

/// The record's sex against `RE` 6; a record of unspecified sex (3) differs from neither.
fn same_sex(re: &str, rec: &RecordView<'_>) -> bool {
    let s = rec.sex();
    s == 3 || re.as_bytes() == [b'0' + s]
}

/// The katakana name of `RE` 37 against the record's reading, both NFKC with white space
/// removed (half-width kana, an ideographic space between the names). An absent name is not
/// compared.
fn same_kana(re: &str, record: &[u8]) -> bool {
    if re.trim().is_empty() || re.as_bytes() == record {
        return true;
    }
    // Bytes first: most readings match to the byte, without validating the record's text.
    let Ok(record) = std::str::from_utf8(record) else {
        return false;
    };
    fn folded(s: &str) -> Cow<'_, str> {
        if s.is_ascii() {
            Cow::Owned(s.chars().filter(|c| !c.is_whitespace()).collect())
        } else {
            Cow::Owned(s.nfkc().filter(|&c| !text::is_space(c)).collect())
        }
    }
    folded(re) == folded(record)
}

/// Day `d` of a day set as a date of `month`'s first day.
pub fn days_of(first: Date, days: u32) -> impl Iterator<Item = Date> {
    (0..32)
        .filter(move |i| days & (1 << i) != 0)
        .map(move |i| first.add_days(i))
}
