//! The eligibility decisions for a card query and a person query, on top of the index's
//! lookup steps: the index finds records and reads them; this says what they mean for a query.

use super::{CardQuery, Outcome, PersonQuery, Qualification};
use crate::domain::{Branch, Date};
use crate::format::PersonEntry;
use crate::index::{CardRecords, Index, RecordView, Staged, Target};

/// A card or person query answered from an index, whole ([`Lookup::card`],
/// [`Lookup::person`]: the index's staged lookup of one query) or from records a staged
/// lookup found ([`Lookup::card_in`], [`Lookup::person_in`], as `answer_group` does).
pub trait Lookup<B> {
    /// A card query: among the card's records of the query's birthdate (and branch, if given),
    /// the one covering the date; several branches or several covering records are a
    /// multiple; else a newer qualification of the same person elsewhere, or the record
    /// nearest before the date. `today` is used when the query gives no date.
    fn card(&self, q: &CardQuery, today: Date) -> Outcome<RecordView<'_>>;
    /// [`Lookup::card`] over the records of the query's card, found by the index's staged
    /// lookup ([`crate::index::Staged`], [`Index::card_records`]).
    fn card_in<'a>(
        &'a self,
        q: &CardQuery,
        card: CardRecords<'a, B>,
        today: Date,
    ) -> Outcome<RecordView<'a>>;
    /// A person query: the person's record covering the date (all of them when several do),
    /// else the record nearest before it; a person whose identity is unverified is not found.
    fn person(&self, q: &PersonQuery, today: Date) -> Outcome<RecordView<'_>>;
    /// [`Lookup::person`] for a person a staged lookup found (`None`: no such person).
    fn person_in(
        &self,
        q: &PersonQuery,
        entry: Option<PersonEntry>,
        today: Date,
    ) -> Outcome<RecordView<'_>>;
}

impl<B: AsRef<[u8]>> Lookup<B> for Index<B> {
    fn card(&self, q: &CardQuery, today: Date) -> Outcome<RecordView<'_>> {
        self.card_in(
            q,
            self.card_records(&q.insurer, &q.symbol, &q.number),
            today,
        )
    }

    fn card_in<'a>(
        &'a self,
        q: &CardQuery,
        card: CardRecords<'a, B>,
        today: Date,
    ) -> Outcome<RecordView<'a>> {
        let date = q.date.unwrap_or(today);
        let candidates = || {
            card.clone().filter(move |r| {
                r.birthdate() == q.birthdate && q.branch.is_none_or(|b| r.branch() == b)
            })
        };
        // The match, the branch check and the covering count in one pass over the candidates
        // (a card has one to a few records; each pass rebuilds their views).
        let mut first: Option<RecordView<'a>> = None;
        let mut covering: Option<RecordView<'a>> = None;
        let (mut branches_differ, mut covering_count) = (false, 0u32);
        for r in candidates() {
            match &first {
                None => first = Some(r),
                Some(f) => branches_differ |= r.branch() != f.branch(),
            }
            if r.covers(date) {
                covering_count += 1;
                covering.get_or_insert(r);
            }
        }
        if first.is_none() {
            return Outcome::NotFound;
        }
        if branches_differ {
            return Outcome::MultipleCard;
        }
        match (covering, covering_count) {
            (Some(r), 1) => return Outcome::Eligible(r),
            (Some(_), _) => return Outcome::MultipleCard,
            (None, _) => {}
        }
        let newer_elsewhere = candidates().filter_map(|r| r.person()).any(|h| {
            self.find_person(h).is_some_and(|p| {
                p.identity_verified() && self.person_records(&p).any(|r| r.covers(date))
            })
        });
        if newer_elsewhere {
            return Outcome::InvalidNewerQualification;
        }
        Outcome::Invalid(nearest_before(candidates(), date).expect("at least one candidate"))
    }

    fn person(&self, q: &PersonQuery, today: Date) -> Outcome<RecordView<'_>> {
        let found = Staged::new(self, Target::Person(&q.individual_number)).run();
        self.person_in(q, found.person.and_then(|(_, e)| e), today)
    }

    fn person_in(
        &self,
        q: &PersonQuery,
        entry: Option<PersonEntry>,
        today: Date,
    ) -> Outcome<RecordView<'_>> {
        let date = q.date.unwrap_or(today);
        let Some(p) = entry else {
            return Outcome::NotFound;
        };
        if !p.identity_verified() {
            return Outcome::NotFound;
        }
        let mut covering = self.person_records(&p).filter(|r| r.covers(date));
        match (covering.next(), covering.next()) {
            (Some(r), None) => Outcome::Eligible(r),
            (Some(a), Some(b)) => {
                let mut all = vec![a, b];
                all.extend(covering);
                Outcome::MultiplePerson(all)
            }
            (None, _) => match nearest_before(self.person_records(&p), date) {
                Some(r) => Outcome::Invalid(r),
                None => Outcome::NotFound,
            },
        }
    }
}

/// The record nearest before `date`, which a query without a covering record answers with:
/// among records that began on or before it, the one that ended last; if `date` is before
/// every record, the earliest.
fn nearest_before<R: Qualification>(records: impl Iterator<Item = R>, date: Date) -> Option<R> {
    let mut before: Option<R> = None;
    let mut earliest: Option<R> = None;
    for r in records {
        if r.qualification_date() <= date {
            let end = |x: &R| {
                (
                    x.disqualification_date().unwrap_or(Date::MAX),
                    x.qualification_date(),
                )
            };
            if before.as_ref().is_none_or(|b| end(&r) > end(b)) {
                before = Some(r);
            }
        } else if earliest
            .as_ref()
            .is_none_or(|e| r.qualification_date() < e.qualification_date())
        {
            earliest = Some(r);
        }
    }
    before.or(earliest)
}

impl Qualification for RecordView<'_> {
    fn insurer_number(&self) -> &str {
        RecordView::insurer_number(self)
    }
    fn insurer_name(&self) -> &str {
        RecordView::insurer_name(self)
    }
    fn symbol(&self) -> &str {
        RecordView::symbol(self)
    }
    fn number(&self) -> &str {
        RecordView::number(self)
    }
    fn branch(&self) -> Branch {
        RecordView::branch(self)
    }
    fn relationship(&self) -> u8 {
        RecordView::relationship(self)
    }
    fn name(&self) -> &str {
        RecordView::name(self)
    }
    fn name_kana(&self) -> &str {
        RecordView::name_kana(self)
    }
    fn symbol_utf8(&self) -> &[u8] {
        RecordView::symbol_utf8(self)
    }
    fn number_utf8(&self) -> &[u8] {
        RecordView::number_utf8(self)
    }
    fn name_utf8(&self) -> &[u8] {
        RecordView::name_utf8(self)
    }
    fn name_kana_utf8(&self) -> &[u8] {
        RecordView::name_kana_utf8(self)
    }
    fn sex(&self) -> u8 {
        RecordView::sex(self)
    }
    fn birthdate(&self) -> Date {
        RecordView::birthdate(self)
    }
    fn qualification_date(&self) -> Date {
        RecordView::qualification_date(self)
    }
    fn disqualification_date(&self) -> Option<Date> {
        RecordView::disqualification_date(self)
    }
    fn reason_of_loss(&self) -> Option<&'static str> {
        RecordView::reason_of_loss(self)
    }
    fn copay_ratio(&self) -> u8 {
        RecordView::copay_ratio(self)
    }
    fn limit_category(&self) -> Option<&'static str> {
        RecordView::limit_category(self)
    }
}
