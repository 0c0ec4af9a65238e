//! The staged lookup: the one place that knows the order of a lookup's steps. A card: the
//! insurer's slot and the card's key (and its hash in the layers), then the layers' slot or
//! the card's directory slot or FST, then its records, then their text (and, when the first
//! record does not cover the day asked about, its person's bucket, entry, references and
//! records: a card query then looks for a newer qualification). A person: the keyed hash,
//! then the bucket, the entry (the layers' first), the references, the records, their text.
//! Public-expense certificates: a binary search in the payer's run, two dependent reads a
//! probe.
//!
//! A lookup is a small state machine ([`Staged`]): [`Staged::advance`] takes one step, which
//! reads what the step before asked the CPU to load, and asks for what the next step reads.
//! Callers drive a group of lookups in lockstep ([`run_group`]), so the cache misses of
//! sixteen queries overlap instead of following one another; a single query is a group of
//! one ([`Staged::run`]). Callers never take the steps themselves: a new kind of record, or a
//! rule of the layers, is added here and every path (RESP, HTTP, batch, claims, `query`)
//! sees it.

use super::kohi::{CertificateSearch, PayerInfo};
use super::steps::{CardProbe, CardRecords};
use super::Index;
use crate::domain::{Date, IndividualNumber, InsurerNumber, PayerNumber, PersonHash};
use crate::format::PersonEntry;

/// What one lookup finds.
#[derive(Debug, Clone, Copy)]
pub enum Target<'q> {
    /// A card's records. With `lost_on`, also the person of the card's first record when that
    /// record does not cover the day (a card query's check for a newer qualification reads
    /// them next); claims, which decide many days over the same records, give none.
    Card {
        insurer: &'q InsurerNumber,
        symbol: &'q str,
        number: &'q str,
        lost_on: Option<Date>,
    },
    /// A person's entry, by individual number.
    Person(&'q IndividualNumber),
    /// A person's entry, by keyed hash (a card's record names its person so).
    PersonHash(PersonHash),
    /// A payer's certificates: the first one not before the recipient number.
    Certificates {
        payer: PayerNumber,
        recipient: &'q str,
    },
}

/// The step a lookup takes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing read yet.
    Start,
    /// The card's layer slot and directory slot (or FST) are asked for.
    CardRecords,
    /// The card's records are asked for.
    CardText,
    /// A person's bucket is asked for.
    PersonEntry,
    /// A person's table entry is asked for.
    PersonRefs,
    /// A person's references are asked for.
    PersonRecords,
    /// A person's records are asked for.
    PersonText,
    /// A certificate search's middle entry is asked for.
    CertificateRecipient,
    /// The middle entry's recipient bytes are asked for.
    CertificateNarrow,
    /// Found (or known absent).
    Done,
}

/// One lookup under way: its target, the step it takes next, and what it found so far.
pub struct Staged<'a, 'q, B> {
    index: &'a Index<B>,
    target: Target<'q>,
    step: Step,
    probe: Option<CardProbe>,
    card: CardRecords<'a, B>,
    hash: Option<PersonHash>,
    entry: Option<PersonEntry>,
    payer: Option<&'a PayerInfo>,
    search: CertificateSearch<'q>,
}

/// What a finished lookup found.
pub struct Found<'a, B> {
    /// A card's records (none for a lookup of another kind).
    pub card: CardRecords<'a, B>,
    /// The person's keyed hash and entry (`None`: no such person); for a card, its lost first
    /// record's person, when the lookup looked for them.
    pub person: Option<(PersonHash, Option<PersonEntry>)>,
    /// The payer, when the index holds its list, and the first certificate not before the
    /// recipient.
    pub certificates: Option<(&'a PayerInfo, usize)>,
}

impl<'a, 'q, B: AsRef<[u8]>> Staged<'a, 'q, B> {
    pub fn new(index: &'a Index<B>, target: Target<'q>) -> Staged<'a, 'q, B> {
        Staged {
            index,
            target,
            step: Step::Start,
            probe: None,
            card: CardRecords::none(index),
            hash: None,
            entry: None,
            payer: None,
            search: CertificateSearch::none(),
        }
    }

    /// The step this lookup takes next.
    pub fn step(&self) -> Step {
        self.step
    }

    fn kind(&self) -> Kind {
        match self.target {
            Target::Card { .. } => Kind::Card,
            Target::Person(_) | Target::PersonHash(_) => Kind::Person,
            Target::Certificates { .. } => Kind::Certificates,
        }
    }

    /// Takes one step: reads what the previous step asked for, and asks for the memory of
    /// the next. Returns whether there are steps left.
    #[inline]
    pub fn advance(&mut self) -> bool {
        let ix = self.index;
        self.step = match (self.step, self.target) {
            (
                Step::Start,
                Target::Card {
                    insurer,
                    symbol,
                    number,
                    ..
                },
            ) => {
                self.probe = ix.card_probe(insurer, symbol, number);
                match &self.probe {
                    Some(p) => {
                        ix.prefetch_probe(p);
                        Step::CardRecords
                    }
                    None => Step::Done,
                }
            }
            (Step::Start, Target::Person(n)) => self.person_bucket(ix.person_hash(n)),
            (Step::Start, Target::PersonHash(h)) => self.person_bucket(h),
            (Step::Start, Target::Certificates { payer, recipient }) => {
                self.payer = ix.payer(payer);
                match self.payer {
                    Some(p) => {
                        self.search = CertificateSearch::new(p, recipient);
                        ix.prefetch_search_entry(&self.search);
                        Step::CertificateRecipient
                    }
                    None => Step::Done,
                }
            }
            (Step::CardRecords, _) => {
                self.card = ix.probed_records(self.probe.as_ref());
                self.card.prefetch();
                Step::CardText
            }
            (Step::CardText, target) => {
                self.card.prefetch_text();
                let lost_on = match target {
                    Target::Card { lost_on, .. } => lost_on,
                    _ => None,
                };
                match lost_on.and_then(|day| self.card.lost_person(day)) {
                    Some(h) => self.person_bucket(h),
                    None => Step::Done,
                }
            }
            (Step::PersonEntry, _) => {
                if let Some(h) = &self.hash {
                    ix.prefetch_person_entry(h);
                }
                Step::PersonRefs
            }
            (Step::PersonRefs, _) => {
                self.entry = self.hash.as_ref().and_then(|h| ix.person_entry(h));
                match &self.entry {
                    Some(e) => {
                        ix.prefetch_person_refs(e);
                        Step::PersonRecords
                    }
                    None => Step::Done,
                }
            }
            (Step::PersonRecords, target) => {
                if let Some(e) = &self.entry {
                    ix.prefetch_person_records(e);
                }
                match target {
                    // Only a person query's answer shows their text: a card query's check
                    // for a newer record, and a lookup by hash, read only dates and places.
                    Target::Person(_) => Step::PersonText,
                    _ => Step::Done,
                }
            }
            (Step::PersonText, _) => {
                if let Some(e) = &self.entry {
                    ix.prefetch_person_text(e);
                }
                Step::Done
            }
            (Step::CertificateRecipient, _) => {
                ix.prefetch_search_recipient(&self.search);
                Step::CertificateNarrow
            }
            (Step::CertificateNarrow, _) => {
                ix.narrow_search(&mut self.search);
                ix.prefetch_search_entry(&self.search);
                if self.search.is_open() {
                    Step::CertificateRecipient
                } else {
                    Step::Done
                }
            }
            (Step::Done, _) => Step::Done,
        };
        self.step != Step::Done
    }

    /// Starts a person's steps: their bucket is asked for.
    fn person_bucket(&mut self, hash: PersonHash) -> Step {
        self.index.prefetch_person_bucket(&hash);
        self.hash = Some(hash);
        Step::PersonEntry
    }

    /// Takes every step left (a group of one).
    pub fn run(mut self) -> Found<'a, B> {
        while self.advance() {}
        self.found()
    }

    /// What the lookup found; call once it is done ([`run_group`], [`Self::run`]).
    pub fn found(self) -> Found<'a, B> {
        debug_assert_eq!(self.step, Step::Done, "a lookup is read once done");
        Found {
            card: self.card,
            person: self.hash.map(|h| (h, self.entry)),
            certificates: self.payer.map(|p| (p, self.search.first())),
        }
    }
}

/// Takes every lookup of `group` to its end in lockstep: each round, every lookup not done
/// takes one step, so the memory each asked for arrives while the others take theirs. A
/// round goes kind by kind (cards, then persons, then certificates): the lookups of one kind
/// mostly take the same step, so the branch to it is predicted, as a group mixes kinds.
pub fn run_group<B: AsRef<[u8]>>(group: &mut [Staged<'_, '_, B>]) {
    loop {
        let mut open = false;
        for kind in [Kind::Card, Kind::Person, Kind::Certificates] {
            for s in group.iter_mut().filter(|s| s.kind() == kind) {
                open |= s.advance();
            }
        }
        if !open {
            return;
        }
    }
}

/// The kinds of lookup, as [`run_group`] orders a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Card,
    Person,
    Certificates,
}

impl<B: AsRef<[u8]>> Index<B> {
    /// All records of one card (insurer, symbol, number), in branch then date order: the
    /// staged lookup of one card.
    pub fn card_records(
        &self,
        insurer: &InsurerNumber,
        symbol: &str,
        number: &str,
    ) -> CardRecords<'_, B> {
        let target = Target::Card {
            insurer,
            symbol,
            number,
            lost_on: None,
        };
        Staged::new(self, target).run().card
    }

    /// The entry of the person of keyed hash `hash`, the layers' first: the staged lookup
    /// of one person.
    pub fn find_person(&self, hash: PersonHash) -> Option<PersonEntry> {
        Staged::new(self, Target::PersonHash(hash))
            .run()
            .person
            .and_then(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Certificate, IndividualNumber, PersonKey};
    use crate::testing::{build_with_kohi, day, three_cards_rows};
    use proptest::prelude::*;

    /// What a lookup found, comparable: the card's place, the person's hash and entry, the
    /// certificates' payer and first position.
    type Summary = (
        (usize, usize, usize),
        Option<(PersonHash, Option<PersonEntry>)>,
        Option<(PayerNumber, usize)>,
    );

    fn summary<B: AsRef<[u8]>>(f: Found<'_, B>) -> Summary {
        (
            f.card.location(),
            f.person,
            f.certificates.map(|(p, first)| (p.number, first)),
        )
    }

    /// The steps taken one after another in the order the callers wrote out by hand before
    /// the staged lookup: the model the staged lookup must agree with.
    fn by_hand<B: AsRef<[u8]>>(index: &Index<B>, t: Target<'_>) -> Summary {
        let person = |h: PersonHash| Some((h, index.person_entry(&h)));
        match t {
            Target::Card {
                insurer,
                symbol,
                number,
                lost_on,
            } => {
                let card = index.probed_records(index.card_probe(insurer, symbol, number).as_ref());
                let lost = lost_on.and_then(|d| card.lost_person(d));
                (card.location(), lost.and_then(person), None)
            }
            Target::Person(n) => ((0, 0, 0), person(index.person_hash(n)), None),
            Target::PersonHash(h) => ((0, 0, 0), person(h), None),
            Target::Certificates { payer, recipient } => {
                let first = index.payer(payer).map(|p| {
                    let at = p.certificates.clone().find(|&i| {
                        index.certificate(i).expect("in the table").recipient() >= recipient
                    });
                    (p.number, at.unwrap_or(p.certificates.end))
                });
                ((0, 0, 0), None, first)
            }
        }
    }

    fn certificate(payer: PayerNumber, recipient: &str) -> Certificate {
        Certificate {
            payer,
            recipient: recipient.into(),
            individual_number: None,
            name: "難病 花子".into(),
            name_kana: "ナンビョウ ハナコ".into(),
            sex: None,
            birthdate: day("1980-01-23"),
            valid_from: day("2026-04-01"),
            valid_to: None,
            copay_limit_yen: None,
            institutions: Vec::new(),
        }
    }

    /// Any group of lookups (cards found, lost, absent, of unknown insurers, with keys too
    /// long for the directory; persons found and unknown, by number and by hash; certificates
    /// of payers with runs of several lengths, recipients before, in and after them, and of
    /// an unknown payer), run in lockstep, finds what each finds alone and what the steps
    /// taken by hand find.
    #[test]
    fn a_group_finds_what_each_lookup_finds_alone() {
        let payer = PayerNumber::from_body("5413601").unwrap();
        let other = PayerNumber::from_body("5413700").unwrap();
        let unknown = PayerNumber::from_body("5413809").unwrap();
        let recipients: Vec<String> = (0..37).map(|i| format!("{:07}", i * 3 + 10)).collect();
        let mut certs: Vec<Certificate> =
            recipients.iter().map(|r| certificate(payer, r)).collect();
        certs.push(certificate(other, "0000500"));
        let files = build_with_kohi(
            three_cards_rows("12"),
            &[(payer, "東京都 難病"), (other, "大阪府")],
            &certs,
            "2026-11-24",
            "g-test",
        );
        let index = Index::open(files, PersonKey::demo()).unwrap();
        let insurer = InsurerNumber::parse("33120015").unwrap();
        let stranger = InsurerNumber::parse("06460026").unwrap();
        let long = "1".repeat(20);
        let numbers =
            [12345678901u64, 22345678901, 32345678901].map(IndividualNumber::from_first11);
        let today = Some(day("2026-11-24"));
        let card = |insurer, number, lost_on| Target::Card {
            insurer,
            symbol: "12",
            number,
            lost_on,
        };
        let mut pool = vec![
            card(&insurer, "3456", today),
            card(&insurer, "3457", today),
            card(&insurer, "3457", None),
            card(&insurer, "3458", Some(day("2012-01-01"))),
            card(&insurer, "9999", today),
            card(&stranger, "3456", today),
            Target::Card {
                insurer: &insurer,
                symbol: &long,
                number: &long,
                lost_on: today,
            },
            Target::PersonHash(PersonHash([7; 16])),
            Target::Certificates {
                payer: unknown,
                recipient: "0000010",
            },
            Target::Certificates {
                payer: other,
                recipient: "0000500",
            },
        ];
        pool.extend(numbers.iter().map(Target::Person));
        pool.extend(
            numbers
                .iter()
                .map(|n| Target::PersonHash(index.person_hash(n))),
        );
        for r in [
            "0000000", "0000010", "0000011", "0000064", "0000118", "0000121", "9",
        ] {
            pool.push(Target::Certificates {
                payer,
                recipient: r,
            });
        }
        let alone: Vec<Summary> = pool
            .iter()
            .map(|&t| summary(Staged::new(&index, t).run()))
            .collect();
        for (i, &t) in pool.iter().enumerate() {
            assert_eq!(alone[i], by_hand(&index, t), "{t:?}");
        }
        // The pool reaches every step: a lost card's person found, a card's records, a
        // search ending inside a run of several.
        let lost_found = |s: &Summary| s.0 .2 > s.0 .1 && matches!(s.1, Some((_, Some(_))));
        assert!(alone.iter().any(lost_found));
        assert!(alone.iter().any(|s| s.1.is_none() && s.0 .2 > s.0 .1));
        assert!(alone
            .iter()
            .any(|s| matches!(s.2, Some((p, at)) if p == payer && at > 0 && at < 37)));
        proptest!(ProptestConfig::with_cases(200), |(picks in prop::collection::vec(0..pool.len(), 1..=16))| {
            let mut group: Vec<_> = picks.iter().map(|&i| Staged::new(&index, pool[i])).collect();
            run_group(&mut group);
            let got: Vec<Summary> = group.into_iter().map(|s| summary(s.found())).collect();
            let want: Vec<Summary> = picks.iter().map(|&i| alone[i]).collect();
            prop_assert_eq!(got, want);
        });
    }
}
