//! Verifying what one query reads before answering it from files nobody has verified
//! (`shikaku query` without `--verify`): the main file whole (its person sections lead a query
//! to any insurer), then only the segment files the query can read. A card query reads its
//! insurer's segment, and, when its card is no longer covered, the segments of the card's
//! persons' other records; a person query reads the segments of the person's records. The
//! card's segment is verified before its records are read to find those persons, so nothing
//! is read from a segment before its checksum and structure are checked.

use super::{CardQuery, PersonQuery};
use crate::format::FormatError;
use crate::index::Index;
use std::collections::BTreeSet;

/// Verifies the main file and every segment `q` can read; returns how many segments.
pub fn verify_for_card<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &CardQuery,
) -> Result<usize, FormatError> {
    index.verify_main()?;
    let Some(card_insurer) = index.insurer_position(&q.insurer) else {
        return Ok(0);
    };
    index.verify_segment(card_insurer)?;
    let mut segments = BTreeSet::from([card_insurer]);
    let persons: Vec<_> = index
        .card_records(&q.insurer, &q.symbol, &q.number)
        .filter_map(|r| r.person())
        .collect();
    for hash in persons {
        if let Some(p) = index.person_entry(&hash) {
            segments.extend(index.person_refs(&p).map(|(i, _)| i as usize));
        }
    }
    verify_segments(index, segments)
}

/// Verifies the main file and the segments of the person `q` names; returns how many.
pub fn verify_for_person<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &PersonQuery,
) -> Result<usize, FormatError> {
    index.verify_main()?;
    let hash = index.person_hash(&q.individual_number);
    let segments = index
        .person_entry(&hash)
        .map(|p| index.person_refs(&p).map(|(i, _)| i as usize).collect())
        .unwrap_or_default();
    verify_segments(index, segments)
}

fn verify_segments<B: AsRef<[u8]>>(
    index: &Index<B>,
    segments: BTreeSet<usize>,
) -> Result<usize, FormatError> {
    // `verify_main` checked every person ref names an insurer of the table.
    for &i in &segments {
        index.verify_segment(i)?;
    }
    Ok(segments.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{build_in_memory, InsurerRows};
    use crate::domain::*;
    use crate::index::IndexFiles;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    /// Two insurers; person 1's card in the first (lost) and a newer one in the second.
    fn files() -> IndexFiles<Vec<u8>> {
        let rec = |insurer: &str, number: &str, disq: Option<&str>| Record {
            insurer: InsurerNumber::parse(insurer).unwrap(),
            symbol: "12".into(),
            number: number.into(),
            branch: Branch::new(0).unwrap(),
            individual_number: Some(IndividualNumber::from_first11(12345678901)),
            name: "山田 太郎".into(),
            name_kana: "ヤマダ タロウ".into(),
            sex: Sex::Male,
            birthdate: d("1980-01-23"),
            relationship: Relationship::Insured,
            qualification_date: d("2015-04-01"),
            disqualification_date: disq.map(d),
            reason_of_loss: disq.map(|_| ReasonOfLoss::OtherInsurance),
            copay_ratio: CopayRatio::new(30).unwrap(),
            limit_category: None,
        };
        let insurer = |number: &str, r: Record| InsurerRows {
            number: InsurerNumber::parse(number).unwrap(),
            name: "保険者".into(),
            kind: InsurerKind::Kyosai,
            snapshot_date: d("2026-11-01"),
            file: format!("{number}/20261101.csv"),
            rows: vec![(r, 2)],
        };
        let insurers = vec![
            insurer("01130012", rec("01130012", "1", None)),
            insurer("33120015", rec("33120015", "2", Some("2020-01-01"))),
        ];
        build_in_memory(insurers, &PersonKey::demo(), d("2026-11-24"), "g-q").unwrap()
    }

    fn card(insurer: &str, number: &str) -> CardQuery {
        CardQuery {
            insurer: InsurerNumber::parse(insurer).unwrap(),
            symbol: "12".into(),
            number: number.into(),
            branch: None,
            birthdate: d("1980-01-23"),
            date: None,
            limit_consent: false,
        }
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
