//! Verifying what one query reads before answering it from files nobody has verified
//! (`shikaku query` without `--verify`): the main file whole (its person sections lead a query
//! to any insurer), then only the segment files the query can read. A card query reads its
//! insurer's segment, and, when its card is no longer covered, the segments of the card's
//! persons' other records; a person query reads the segments of the person's records. The
//! card's segment is verified before its records are read to find those persons, so nothing
//! is read from a segment before its checksum and structure are checked.

use super::{CardQuery, PersonQuery, Query};
use crate::domain::PersonHash;
use crate::format::FormatError;
use crate::index::Index;

/// Verifies the main file and every segment `q` can read; returns how many segments.
pub fn verify_for<B: AsRef<[u8]>>(index: &Index<B>, q: &Query) -> Result<usize, FormatError> {
    match q {
        Query::Card(c) => verify_for_card(index, c),
        Query::Person(p) => verify_for_person(index, p),
        // A public-expense query reads the main file only.
        Query::Kohi(_) => index.verify_main().map(|()| 0),
    }
}

/// Verifies the main file and every segment `q` can read; returns how many segments.
pub fn verify_for_card<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &CardQuery,
) -> Result<usize, FormatError> {
    let mut verified = VerifiedSoFar::new(index);
    verified.card(index, q)?;
    Ok(verified.segments())
}

/// What a run of many card queries over one generation has verified so far (`shikaku
/// claims`): the main file before the first query, and each segment the first time a query
/// can read it. A run then verifies what its queries reach, each part once: a clinic's file of
/// a thousand receipts reaches a few hundred insurers' segments, not every one of them (at
/// national scale, 18 GB).
pub struct VerifiedSoFar {
    main: bool,
    segments: Vec<bool>,
    left: usize,
    left_bytes: u64,
}

impl VerifiedSoFar {
    /// Nothing verified yet of `index`.
    pub fn new<B: AsRef<[u8]>>(index: &Index<B>) -> VerifiedSoFar {
        // The base's segments and the layers' delta segments, in the global numbering.
        let segments = index.segment_count();
        VerifiedSoFar {
            main: false,
            segments: vec![false; segments],
            left: segments,
            left_bytes: (0..segments)
                .map(|i| index.segment_check(i).1.len() as u64)
                .sum(),
        }
    }

    /// Verifies what `q` can read and was not verified before: the main file, the card's
    /// segment, then the segments of the card's persons' other records. The card's segment
    /// is verified before its records are read to find those persons.
    pub fn card<B: AsRef<[u8]>>(
        &mut self,
        index: &Index<B>,
        q: &CardQuery,
    ) -> Result<(), FormatError> {
        self.main_file(index)?;
        if self.left == 0 {
            return Ok(());
        }
        let Some(card_insurer) = index.insurer_position(&q.insurer) else {
            return Ok(());
        };
        self.segment(index, card_insurer)?;
        let card = index.card_records(&q.insurer, &q.symbol, &q.number);
        let (segment, start, end) = card.location();
        if end > start {
            // A card a layer holds is in a delta segment.
            self.segment(index, segment)?;
        }
        card.filter_map(|r| r.person())
            .try_for_each(|hash| self.person_segments(index, &hash))
    }

    /// Verifies what person query `q` can read: the main file, then the segments of the
    /// person's records.
    pub fn person<B: AsRef<[u8]>>(
        &mut self,
        index: &Index<B>,
        q: &PersonQuery,
    ) -> Result<(), FormatError> {
        self.main_file(index)?;
        self.person_segments(index, &index.person_hash(&q.individual_number))
    }

    /// Verifies everything not verified yet: the main file and every segment.
    pub fn everything<B: AsRef<[u8]>>(&mut self, index: &Index<B>) -> Result<(), FormatError> {
        self.main_file(index)?;
        for i in 0..self.segments.len() {
            self.segment(index, i)?;
        }
        Ok(())
    }

    /// The bytes of the segments not verified yet.
    pub fn unverified_segment_bytes(&self) -> u64 {
        self.left_bytes
    }

    /// Whether every segment is verified (and so the main file): nothing is left to do.
    pub fn all_segments(&self) -> bool {
        self.main && self.left == 0
    }

    /// How many segments are verified.
    pub fn segments(&self) -> usize {
        self.segments.len() - self.left
    }

    fn main_file<B: AsRef<[u8]>>(&mut self, index: &Index<B>) -> Result<(), FormatError> {
        if !self.main {
            index.verify_main()?;
            self.main = true;
        }
        Ok(())
    }

    /// The segments of the records of person `hash`, if the index holds the person.
    fn person_segments<B: AsRef<[u8]>>(
        &mut self,
        index: &Index<B>,
        hash: &PersonHash,
    ) -> Result<(), FormatError> {
        if let Some(p) = index.find_person(*hash) {
            for (i, _) in index.person_refs(&p) {
                self.segment(index, i as usize)?;
            }
        }
        Ok(())
    }

    fn segment<B: AsRef<[u8]>>(&mut self, index: &Index<B>, i: usize) -> Result<(), FormatError> {
        // `verify_main` checked that every person ref names an insurer of the table.
        let Some(done) = self.segments.get_mut(i) else {
            return Err(FormatError::Malformed(format!(
                "a person ref names segment {i}, beyond the insurer table"
            )));
        };
        if !*done {
            index.verify_segment(i)?;
            *done = true;
            self.left -= 1;
            self.left_bytes -= index.segment_check(i).1.len() as u64;
        }
        Ok(())
    }
}

/// Verifies the main file and the segments of the person `q` names; returns how many.
pub fn verify_for_person<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &PersonQuery,
) -> Result<usize, FormatError> {
    let mut verified = VerifiedSoFar::new(index);
    verified.person(index, q)?;
    Ok(verified.segments())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;
    use crate::index::IndexFiles;
    use crate::testing::{build, insurer, Member};

    /// Two insurers; person 1's card in the second (lost) and a newer one in the first.
    fn files() -> IndexFiles<Vec<u8>> {
        let one = |number: &str, member: Member<'_>| {
            insurer(
                number,
                "保険者",
                InsurerKind::Kyosai,
                "2026-11-01",
                &[member],
            )
        };
        let member = |insurer, number, disq| Member {
            insurer,
            number,
            person: Some(12345678901),
            disq,
            ..Member::default()
        };
        let insurers = vec![
            one("01130012", member("01130012", "1", None)),
            one("33120015", member("33120015", "2", Some("2020-01-01"))),
        ];
        build(insurers, "2026-11-24", "g-q")
    }

    fn card(insurer: &str, number: &str) -> CardQuery {
        CardQuery {
            insurer: InsurerNumber::parse(insurer).unwrap(),
            symbol: "12".into(),
            number: number.into(),
            branch: None,
            birthdate: crate::testing::day("1980-01-23"),
            date: None,
            limit_consent: false,
        }
    }

    /// A run verifies each segment once, as its queries first reach it, and stops at a
    /// damaged one only when a query reaches it.
    #[test]
    fn a_run_verifies_what_its_queries_reach_once() {
        let mut damaged = files();
        let last = damaged.segments[0].len() - 30;
        damaged.segments[0][last] ^= 1;
        let index = Index::open(damaged, PersonKey::demo()).unwrap();
        let mut verified = VerifiedSoFar::new(&index);
        // (query, Ok(segments verified after it) or the error)
        let cases = [
            (card("06130017", "2"), Ok(0)),
            (card("33120015", "9"), Ok(1)),
            (card("33120015", "9"), Ok(1)),
            (card("33120015", "2"), Err(())),
        ];
        for (q, expected) in cases {
            let got = verified.card(&index, &q).map(|()| verified.segments());
            assert_eq!(got.map_err(|_| ()), expected, "{q:?}");
        }
        assert!(!verified.all_segments());
        let index = Index::open(files(), PersonKey::demo()).unwrap();
        let mut verified = VerifiedSoFar::new(&index);
        verified.card(&index, &card("33120015", "2")).unwrap();
        assert!(verified.all_segments());
    }

    #[test]
    fn a_query_verifies_the_segments_it_reads_and_no_others() {
        let files = files();
        let index = Index::open(files.clone(), PersonKey::demo()).unwrap();
        let person = PersonQuery {
            individual_number: IndividualNumber::from_first11(12345678901),
            date: None,
            limit_consent: false,
        };
        // (query, segments it reads): the lost card leads to the person's other insurer.
        assert_eq!(verify_for_card(&index, &card("33120015", "2")), Ok(2));
        assert_eq!(verify_for_card(&index, &card("33120015", "9")), Ok(1));
        assert_eq!(verify_for_card(&index, &card("06130017", "2")), Ok(0));
        assert_eq!(verify_for_person(&index, &person), Ok(2));

        // A damaged segment of the other insurer fails the queries that read it only.
        let mut damaged = files;
        let last = damaged.segments[0].len() - 30;
        damaged.segments[0][last] ^= 1;
        let index = Index::open(damaged, PersonKey::demo()).unwrap();
        assert!(matches!(
            verify_for_card(&index, &card("33120015", "2")),
            Err(FormatError::Checksum { .. })
        ));
        assert!(verify_for_person(&index, &person).is_err());
        assert_eq!(verify_for_card(&index, &card("33120015", "9")), Ok(1));
    }
}
