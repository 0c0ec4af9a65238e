//! A truncated, bit-flipped or wrong-version index gives a typed error, never a panic, and
//! never a different answer.

use shikaku::build::{build_in_memory, InsurerRows};
use shikaku::domain::*;
use shikaku::format::{FormatError, HEADER_BYTES};
use shikaku::index::Index;
use shikaku::query::{write_answer, CardQuery, PersonQuery};

fn sample_index() -> Vec<u8> {
    let d = |s: &str| Date::parse(s).unwrap();
    let rec = |number: &str, branch: u8, person: u64, qual: &str, disq: Option<&str>| Record {
        insurer: InsurerNumber::parse("33120015").unwrap(),
        symbol: "12".into(),
        number: number.into(),
        branch: Branch::new(branch).unwrap(),
        individual_number: Some(IndividualNumber::from_first11(person)),
        name: "山田 太郎".into(),
        name_kana: "ヤマダ タロウ".into(),
        sex: Sex::Male,
        birthdate: d("1980-01-23"),
        relationship: Relationship::Insured,
        qualification_date: d(qual),
        disqualification_date: disq.map(d),
        reason_of_loss: disq.map(|_| ReasonOfLoss::OtherInsurance),
        copay_ratio: CopayRatio::new(30).unwrap(),
        limit_category: None,
    };
    let rows = vec![
        (rec("3456", 0, 12345678901, "2015-04-01", None), 2),
        (
            rec("3457", 1, 22345678901, "2010-04-01", Some("2016-01-01")),
            3,
        ),
        (rec("3458", 0, 22345678901, "2016-01-01", None), 4),
    ];
    let insurer = InsurerRows {
        number: InsurerNumber::parse("33120015").unwrap(),
        name: "地方職員共済組合".into(),
        kind: InsurerKind::Kyosai,
        snapshot_date: d("2026-11-01"),
        file: "33120015/20261101.csv".into(),
        rows,
    };
    build_in_memory(vec![insurer], &PersonKey::demo(), d("2026-11-24"), "g-test").unwrap()
}

/// Every answer the sample index gives, as JSON lines.
fn answers<B: AsRef<[u8]>>(index: &Index<B>) -> String {
    let d = |s: &str| Date::parse(s).unwrap();
    let mut out = Vec::new();
    for number in ["3456", "3457", "3458", "9999"] {
        let q = CardQuery {
            insurer: InsurerNumber::parse("33120015").unwrap(),
            symbol: "12".into(),
            number: number.into(),
            branch: None,
            birthdate: d("1980-01-23"),
            date: Some(d("2026-11-24")),
            limit_consent: false,
        };
        write_answer(
            &mut out,
            &index.card(&q, d("2026-11-24")),
            d("2026-11-24"),
            "g",
            false,
        );
        out.push(b'\n');
    }
    for p in [12345678901, 22345678901, 32345678901] {
        let q = PersonQuery {
            individual_number: IndividualNumber::from_first11(p),
            date: None,
            limit_consent: false,
        };
        write_answer(
            &mut out,
            &index.person(&q, d("2026-11-24")),
            d("2026-11-24"),
            "g",
            false,
        );
        out.push(b'\n');
    }
    String::from_utf8(out).unwrap()
}

fn open_and_verify(bytes: Vec<u8>) -> Result<Index<Vec<u8>>, FormatError> {
    let index = Index::open(bytes, PersonKey::demo())?;
    index.verify()?;
    Ok(index)
}

#[test]
fn truncated_index_is_refused() {
    let bytes = sample_index();
    for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let got = open_and_verify(bytes[..len].to_vec());
        assert!(got.is_err(), "truncated to {len} bytes was accepted");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        open_and_verify(longer),
        Err(FormatError::Length { .. })
    ));
}

#[test]
fn every_bit_flip_is_refused_or_harmless() {
    let bytes = sample_index();
    let expected = answers(&open_and_verify(bytes.clone()).unwrap());
    for at in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 1 << bit;
            if let Ok(index) = open_and_verify(flipped) {
                // Only alignment padding outside every checksum may flip unnoticed.
                assert_eq!(
                    answers(&index),
                    expected,
                    "flip at byte {at} bit {bit} changed an answer"
                );
            }
        }
    }
}

#[test]
fn wrong_version_names_the_fix() {
    let mut bytes = sample_index();
    bytes[8] = 9;
    let err = open_and_verify(bytes).err().unwrap();
    assert!(matches!(
        err,
        FormatError::UnsupportedVersion {
            found: 9,
            expected: 2
        }
    ));
    assert!(err.to_string().contains("rebuild"), "{err}");
}

#[test]
fn wrong_person_key_is_refused() {
    let err = Index::open(sample_index(), PersonKey::from_bytes([1; 32]))
        .err()
        .unwrap();
    assert!(
        matches!(err, FormatError::PersonKeyMismatch { .. }),
        "{err}"
    );
}

#[test]
fn no_individual_number_in_clear() {
    let bytes = sample_index();
    for p in [12345678901u64, 22345678901] {
        let n = IndividualNumber::from_first11(p);
        let digits = n.expose_digits();
        assert!(
            !bytes.windows(12).any(|w| w == digits),
            "individual number in clear"
        );
        assert!(
            !bytes.windows(11).any(|w| w == &digits[..11]),
            "individual number prefix in clear"
        );
    }
    assert!(bytes.len() > HEADER_BYTES);
}
