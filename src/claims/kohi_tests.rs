//! The `KO` records of a claims file against a small index of public-expense certificates:
//! each reason and its boundaries, several `KO` records, `KO` with and without `HO`, a payer
//! the index does not hold, and the fields that cannot be read. Each case is a receipt's
//! records and the row it must give (`verdict reason days`).

use super::tests::{
    between_good_receipts, check as check_with, file, ho, re, receipt, rows_in, si, IR,
};
use super::*;
use crate::domain::text::luhn_check_digit;
use crate::domain::{Certificate, Date, InstitutionCode, PayerNumber, PersonKey, Sex};
use crate::index::Index;
use crate::testing::build_with_kohi;

/// The clinic of [`IR`].
const CLINIC: &str = "1311234569";

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

/// A payer number from its first seven digits.
fn payer(body: &str) -> PayerNumber {
    PayerNumber::from_body(body).unwrap()
}

/// A national recipient number from its first six digits.
fn recipient(body: &str) -> String {
    format!("{body}{}", luhn_check_digit(body.as_bytes()))
}

/// An institution code from its first nine digits.
fn institution(first9: &str) -> InstitutionCode {
    let check = luhn_check_digit(first9.as_bytes());
    InstitutionCode::parse(&format!("{first9}{check}")).unwrap()
}

/// 難病 (54), held.
const NANBYO: &str = "5413601";
/// 医療扶助 (12), held.
const FUJO: &str = "1213601";
/// A local program (88), held.
const LOCAL: &str = "8813001";
/// 精神通院 (21): valid, but the index does not hold its list.
const NOT_HELD: &str = "2113601";

/// Certificates, all born 1980-01-23 (the receipts' RE 7), month of care 2026-10:
/// 難病 100001 covering the year; 100002 valid to 2026-10-15 (inclusive); 100003 from
/// 2026-10-10; 100004 held by two people (twins, one birthdate); 医療扶助 100005 for another
/// institution only, 100006 for [`CLINIC`] only; local program `A-12` covering.
fn index() -> Index<Vec<u8>> {
    let cert = |p: &str, r: String, kana: &str, from: &str, to: Option<&str>| Certificate {
        payer: payer(p),
        recipient: r,
        individual_number: None,
        name: "公費 花子".into(),
        name_kana: kana.into(),
        sex: Some(Sex::Female),
        birthdate: d("1980-01-23"),
        valid_from: d(from),
        valid_to: to.map(d),
        copay_limit_yen: Some(5_000),
        institutions: Vec::new(),
    };
    let mut elsewhere = cert(FUJO, recipient("100005"), "ア", "2026-04-01", None);
    elsewhere.institutions = vec![institution("011011371")];
    let mut here = cert(FUJO, recipient("100006"), "イ", "2026-04-01", None);
    here.institutions = vec![institution("011011371"), institution(&CLINIC[..9])];
    let year = Some("2027-03-31");
    let certs = [
        cert(NANBYO, recipient("100001"), "ア", "2026-04-01", year),
        cert(
            NANBYO,
            recipient("100002"),
            "イ",
            "2025-10-01",
            Some("2026-10-15"),
        ),
        cert(NANBYO, recipient("100003"), "ウ", "2026-10-10", year),
        cert(NANBYO, recipient("100004"), "エ", "2026-04-01", year),
        cert(NANBYO, recipient("100004"), "オ", "2026-04-01", year),
        elsewhere,
        here,
        cert(LOCAL, "A-12".into(), "カ", "2020-04-01", None),
    ];
    let payers = [
        (payer(NANBYO), "東京都 難病"),
        (payer(FUJO), "東京都 医療扶助"),
        (payer(LOCAL), "子ども医療費助成"),
    ];
    let files = build_with_kohi(
        super::tests::insurers(),
        &payers,
        &certs,
        "2026-11-24",
        "g-kohi",
    );
    Index::open(files, PersonKey::demo()).unwrap()
}

/// A `KO` record of payer `p` (its first seven digits) and recipient `r`, 12 points.
fn ko(p: &str, r: &str) -> String {
    format!("KO,{},{r},,1,12,,,,", payer(p))
}

/// Receipt 1 of card 100 (covered all month) on `days`, with `kos` after its `HO`.
fn with_ho(kos: &[String], days: &[u8]) -> Vec<String> {
    let mut r = receipt(1, "100", days);
    r.splice(2..2, kos.iter().cloned());
    r
}

/// Receipt 1 without `HO`: `RE`, `kos`, and an `SI` on `days` (none: no `SI`).
fn without_ho(kos: &[String], days: &[u8]) -> Vec<String> {
    let mut r = vec![re(1, "202610", "1", "19800123", "")];
    r.extend(kos.iter().cloned());
    if !days.is_empty() {
        r.push(si(days));
    }
    r
}

/// The rows of one file of `receipts` against [`index`].
fn check(receipts: &[Vec<String>], expected: &[&str]) {
    let all: Vec<String> = receipts.iter().flatten().cloned().collect();
    check_bytes(&file(&all), expected);
}

fn check_bytes(bytes: &[u8], expected: &[&str]) {
    let (rows, _) = rows_in(&index(), bytes).unwrap();
    assert_eq!(rows, expected, "{}", String::from_utf8_lossy(bytes));
}

#[test]
fn each_reason_of_a_public_expense() {
    let r = recipient;
    // Covered: the receipt is its HO's.
    check(&[with_ho(&[ko(NANBYO, &r("100001"))], &[1, 31])], &["ok"]);
    // valid_to is inclusive: 15 October covered, 16 not.
    check(
        &[with_ho(&[ko(NANBYO, &r("100002"))], &[15, 16, 20])],
        &["return kohi_expired 16;20"],
    );
    check(
        &[with_ho(&[ko(NANBYO, &r("100003"))], &[3, 9, 10])],
        &["return kohi_not_yet 3;9"],
    );
    check(
        &[with_ho(&[ko(NANBYO, &r("100009"))], &[3])],
        &["return kohi_not_found 3"],
    );
    check(
        &[with_ho(&[ko(NANBYO, &r("100004"))], &[3, 4])],
        &["return kohi_multiple 3;4"],
    );
    // Designated institutions: another one's, then a list that holds the file's.
    check(
        &[with_ho(&[ko(FUJO, &r("100005"))], &[3])],
        &["return kohi_other_institution 3"],
    );
    check(&[with_ho(&[ko(FUJO, &r("100006"))], &[3])], &["ok"]);
    // A local program's recipient number: no check digit, normalized (full-width).
    check(&[with_ho(&[ko(LOCAL, "Ａ－１２")], &[3])], &["ok"]);
    check(
        &[with_ho(&[ko(LOCAL, "A-13")], &[3])],
        &["return kohi_not_found 3"],
    );
    // Another birthdate is an unknown certificate.
    let mut born = with_ho(&[ko(NANBYO, &r("100001"))], &[3]);
    born[0] = re(1, "202610", "1", "19800124", "");
    born[1] = ho("999", "450");
    check(&[born.clone()], &["return not_found 3"]);
    born.remove(1);
    check(&[born], &["return kohi_not_found 3"]);
}

#[test]
fn health_insurance_returns_first_then_public_expense_then_checks() {
    let r = recipient;
    // HO lost from the 16th, KO unknown: the HO return, its days.
    let mut lost = receipt(1, "200", &[3, 16, 20]);
    lost.insert(2, ko(NANBYO, &r("100009")));
    check(&[lost], &["return lost 16;20"]);
    // HO kana differs (a check), KO expired: the KO return.
    let mut kana = with_ho(&[ko(NANBYO, &r("100002"))], &[14, 17]);
    kana[0] = re(1, "202610", "1", "19800123", "ヤマダ ハナコ");
    check(&[kana.clone()], &["return kohi_expired 17"]);
    kana[2] = ko(NANBYO, &r("100001"));
    check(&[kana], &["check kana_differs"]);
    // Several KO records: the most severe reason of them all, with its days from each.
    check(
        &[with_ho(
            &[
                ko(NANBYO, &r("100002")),
                ko(FUJO, &r("100005")),
                ko(NANBYO, &r("100003")),
            ],
            &[3, 20],
        )],
        &["return kohi_expired 20"],
    );
    check(
        &[with_ho(
            &[ko(NANBYO, &r("100002")), ko(NANBYO, &r("100003"))],
            &[3, 20],
        )],
        &["return kohi_expired 20"],
    );
    check(
        &[with_ho(
            &[
                ko(NANBYO, &r("100003")),
                ko(LOCAL, "A-12"),
                ko(FUJO, &r("100005")),
            ],
            &[3, 12],
        )],
        &["return kohi_not_yet 3"],
    );
    check(
        &[with_ho(
            &[ko(FUJO, &r("100005")), ko(NANBYO, &r("100009"))],
            &[3],
        )],
        &["return kohi_not_found 3"],
    );
}

#[test]
fn a_payer_the_index_does_not_hold_is_not_judged() {
    let r = recipient;
    let not_held = ko(NOT_HELD, &r("100001"));
    check(&[with_ho(std::slice::from_ref(&not_held), &[3])], &["ok"]);
    check(
        &[without_ho(std::slice::from_ref(&not_held), &[3])],
        &["unchecked kohi_not_held"],
    );
    check(
        &[without_ho(&[not_held.clone(), not_held.clone()], &[3])],
        &["unchecked kohi_not_held"],
    );
    // Beside one the index holds, that one decides.
    check(
        &[without_ho(
            &[not_held.clone(), ko(NANBYO, &r("100001"))],
            &[3],
        )],
        &["ok"],
    );
    check(
        &[without_ho(&[ko(NANBYO, &r("100002")), not_held], &[20])],
        &["return kohi_expired 20"],
    );
    // Neither HO nor KO.
    check(&[without_ho(&[], &[3])], &["unchecked no_insurance"]);
}

#[test]
fn a_receipt_without_day_counts_is_checked_on_every_day() {
    let r = recipient;
    // Expired on the 15th: covered on some days only.
    check(
        &[without_ho(&[ko(NANBYO, &r("100002"))], &[])],
        &["check partial_month"],
    );
    check(
        &[with_ho(&[ko(NANBYO, &r("100003"))], &[])
            .into_iter()
            .filter(|l| !l.starts_with("SI"))
            .collect()],
        &["check partial_month"],
    );
    // Covered on none: the days decide.
    let all: Vec<String> = (1..=31).map(|d| d.to_string()).collect();
    let expected = format!("return kohi_not_found {}", all.join(";"));
    check(
        &[without_ho(&[ko(NANBYO, &r("100009"))], &[])],
        &[expected.as_str()],
    );
    check(&[without_ho(&[ko(LOCAL, "A-12")], &[])], &["ok"]);
}

#[test]
fn unreadable_public_expense_fields_are_error_rows() {
    let r = recipient;
    let bad_payer = format!("KO,{}1,{},,1,12", &payer(NANBYO).as_str()[..7], r("100001"));
    let long_local = format!("KO,{},{},,1,12", payer(LOCAL), "A".repeat(30));
    // A payer number where the recipient number goes (8 digits for a 7-digit field).
    let payer_as_recipient = format!("KO,{},{},,1,12", payer(NANBYO), payer(NANBYO));
    let bad_recipient = format!("KO,{},1000010,,1,12", payer(NANBYO));
    let not_held_bad = format!("KO,{},1000010,,1,12", payer(NOT_HELD));
    let bad_points = format!("KO,{},{},,1,1x", payer(NANBYO), r("100001"));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (without_ho(&["KO,13".into()], &[3]), "error malformed: KO 2"),
        (without_ho(&[bad_payer], &[3]), "error malformed: KO 2"),
        (with_ho(&[bad_recipient], &[3]), "error malformed: KO 3"),
        (without_ho(&[not_held_bad], &[3]), "error malformed: KO 3"),
        (without_ho(&[long_local], &[3]), "error malformed: KO 3"),
        (
            without_ho(&[payer_as_recipient], &[3]),
            "error malformed: KO 3",
        ),
        (
            without_ho(&[format!("KO,{},,,1,12", payer(NANBYO))], &[3]),
            "error malformed: KO 3",
        ),
        (
            without_ho(std::slice::from_ref(&bad_points), &[3]),
            "error malformed: KO 6",
        ),
        (
            {
                let mut r = without_ho(&[ko(NANBYO, &recipient("100001"))], &[3]);
                r[0] = re(1, "202610", "1", "1980013", "");
                r
            },
            "error malformed: RE 7",
        ),
    ];
    for (records, expected) in cases {
        between_good_receipts(check, records, expected);
    }
    // With HO, the points are HO 6's: KO 6 is not read.
    check(&[with_ho(&[bad_points], &[3])], &["ok"]);
    // A file whose IR does not hold a valid institution code: a KO record the index holds
    // cannot be checked; one it does not hold, and HO, still can.
    let records: Vec<String> = [
        with_ho(&[ko(NANBYO, &r("100001"))], &[3]),
        without_ho(&[ko(NOT_HELD, &r("100001"))], &[3]),
        receipt(3, "100", &[2]),
    ]
    .concat();
    let bytes = String::from_utf8(file(&records))
        .unwrap()
        .replace(IR, "IR,1,13,1,1234567,,テスト医院,202611,00,0312345678");
    check_bytes(
        bytes.as_bytes(),
        &["error malformed: IR 5", "unchecked kohi_not_held", "ok"],
    );
}

#[test]
fn the_summary_counts_each_reason_and_its_points() {
    let r = recipient;
    let all: Vec<String> = [
        with_ho(&[ko(NANBYO, &r("100002"))], &[20]),
        without_ho(&[ko(NANBYO, &r("100002"))], &[20]),
        without_ho(&[ko(NANBYO, &r("100009"))], &[20]),
        without_ho(&[ko(NOT_HELD, &r("100009"))], &[20]),
        with_ho(&[ko(FUJO, &r("100005"))], &[20]),
    ]
    .concat();
    let (rows, s) = rows_in(&index(), &file(&all)).unwrap();
    assert_eq!(
        rows,
        [
            "return kohi_expired 20",
            "return kohi_expired 20",
            "return kohi_not_found 20",
            "unchecked kohi_not_held",
            "return kohi_other_institution 20",
        ]
    );
    let by = s.by_reason();
    assert_eq!(by.get("return kohi_expired"), Some(&2));
    assert_eq!(by.get("unchecked kohi_not_held"), Some(&1));
    // HO 6 (450) with HO, KO 6 (12) without.
    let points = |reason| s.points[&(Verdict::Return, reason)];
    assert_eq!(points(Reason::KohiExpired), 450 + 12);
    assert_eq!(points(Reason::KohiNotFound), 12);
    assert_eq!(s.points_at_risk, 450 + 12 + 12 + 450);
    let text = s.render();
    assert!(text.contains("kohi_expired"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("kohi_expired") && l.ends_with("points 462")),
        "{text}"
    );
}

#[test]
fn the_demo_style_csv_row_of_a_public_expense_return() {
    let bytes = file(&with_ho(&[ko(NANBYO, &recipient("100002"))], &[16]));
    let f = parse(&bytes).unwrap();
    let mut w = output::RowWriter::new(Format::Csv, output::FileColumn::Unnamed);
    let mut out = Vec::new();
    check_file(
        &index(),
        "x",
        &f,
        &mut w,
        &mut out,
        &mut Summary::default(),
        |_, _, _| {},
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "1,2,return,kohi_expired,2026-10-16,33120015,12,100,,450\r\n"
    );
}

/// `check_with` is the health-insurance tests' `check`: the index without certificates holds
/// no payer, so every KO record there is not judged.
#[test]
fn an_index_without_public_expenses_judges_no_ko_record() {
    let r = recipient;
    check_with(&[with_ho(&[ko(NANBYO, &r("100009"))], &[3])], &["ok"]);
    check_with(
        &[without_ho(&[ko(NANBYO, &r("100009"))], &[3])],
        &["unchecked kohi_not_held"],
    );
}

mod model {
    //! The claims check of `KO` records against a naive model: the certificates as a plain
    //! list, each `KO` record's candidates found by filtering it, each day decided by
    //! `query::kohi::decide` over them, and the receipt's verdict by the order of the rules.
    use super::*;
    use crate::domain::{PersonHash, Validity};
    use crate::query::kohi::{decide, KohiReason, PublicExpense};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Model(Certificate);

    impl PublicExpense for Model {
        fn birthdate(&self) -> Date {
            self.0.birthdate
        }
        fn valid_from(&self) -> Date {
            self.0.valid_from
        }
        fn valid_to(&self) -> Option<Date> {
            self.0.valid_to
        }
        fn admits(&self, institution: InstitutionCode) -> bool {
            self.0.admits(institution)
        }
        fn person(&self) -> Option<PersonHash> {
            None
        }
        fn name_kana(&self) -> &str {
            &self.0.name_kana
        }
    }

    const PAYERS: [&str; 3] = [NANBYO, FUJO, NOT_HELD];
    const RECIPIENTS: [&str; 2] = ["100001", "100002"];
    const BIRTHS: [&str; 2] = ["1980-01-23", "1990-05-05"];

    /// (payer, recipient, birth, kana, from day, days valid or open, institutions) → certificate.
    fn certificate(
        (p, r, b, k, from, len, inst): (usize, usize, usize, usize, i32, Option<i32>, usize),
    ) -> Certificate {
        let from = d("2026-09-20").add_days(from);
        Certificate {
            payer: payer(PAYERS[p]),
            recipient: recipient(RECIPIENTS[r]),
            individual_number: None,
            name: "公費 花子".into(),
            name_kana: ["ア", "イ"][k].into(),
            sex: Some(Sex::Female),
            birthdate: d(BIRTHS[b]),
            valid_from: from,
            valid_to: len.map(|n| from.add_days(n)),
            copay_limit_yen: None,
            institutions: match inst {
                0 => Vec::new(),
                1 => vec![institution(&CLINIC[..9])],
                _ => vec![institution("011011371")],
            },
        }
    }

    /// The row the model gives a receipt of card 100 (covered all month) or without `HO`.
    fn naive(
        certs: &[Certificate],
        kos: &[(usize, usize)],
        birth: Date,
        days: u32,
        with_ho: bool,
    ) -> String {
        let clinic = InstitutionCode::parse(CLINIC).unwrap();
        let (days, every_day) = if days == 0 {
            ((1u32 << 31) - 1, true)
        } else {
            (days, false)
        };
        let mut by = [0u32; 5];
        let (mut judged, mut partial) = (false, false);
        for &(p, r) in kos {
            if p == 2 {
                continue;
            }
            judged = true;
            let mine: Vec<Model> = certs
                .iter()
                .filter(|c| c.payer == payer(PAYERS[p]) && c.recipient == recipient(RECIPIENTS[r]))
                .cloned()
                .map(Model)
                .collect();
            let mut one = [0u32; 5];
            let mut covered = 0;
            for day in (1..=31).filter(|d| days & (1 << (d - 1)) != 0) {
                let date = d("2026-10-01").add_days(day - 1);
                let out = decide(mine.iter().cloned(), birth, date, Some(clinic));
                let slot = match (out.validity(), &out) {
                    (Validity::Eligible, _) => None,
                    (Validity::NotFound, _) => Some(0),
                    (Validity::Multiple, _) => Some(1),
                    (_, crate::query::KohiOutcome::Invalid(_, KohiReason::Expired)) => Some(2),
                    (_, crate::query::KohiOutcome::Invalid(_, KohiReason::NotYet)) => Some(3),
                    _ => Some(4),
                };
                match slot {
                    None => covered |= 1 << (day - 1),
                    Some(s) => one[s] |= 1 << (day - 1),
                }
            }
            if every_day && covered != 0 && covered != days {
                partial = true;
            } else {
                by.iter_mut().zip(one).for_each(|(a, b)| *a |= b);
            }
        }
        let names = [
            "kohi_not_found",
            "kohi_multiple",
            "kohi_expired",
            "kohi_not_yet",
            "kohi_other_institution",
        ];
        if let Some(i) = (0..5).find(|&i| by[i] != 0) {
            let list: Vec<String> = (1..=31)
                .filter(|d| by[i] & (1 << (d - 1)) != 0)
                .map(|d: u32| d.to_string())
                .collect();
            return format!("return {} {}", names[i], list.join(";"));
        }
        match (partial, with_ho, judged, kos.is_empty()) {
            (true, ..) => "check partial_month".into(),
            (_, true, ..) | (_, false, true, _) => "ok".into(),
            (_, false, false, false) => "unchecked kohi_not_held".into(),
            (_, false, false, true) => "unchecked no_insurance".into(),
        }
    }

    fn cert_spec() -> impl Strategy<Value = (usize, usize, usize, usize, i32, Option<i32>, usize)> {
        (
            0..2usize,
            0..2usize,
            0..2usize,
            0..2usize,
            0..40i32,
            prop::option::of(0..40i32),
            0..3usize,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn ko_records_are_checked_as_the_model_says(
            specs in prop::collection::vec(cert_spec(), 0..6),
            kos in prop::collection::vec((0..3usize, 0..2usize), 0..4),
            birth in 0..2usize,
            days in prop_oneof![Just(0u32), 1u32..(1 << 31)],
            with_ho in any::<bool>(),
        ) {
            let certs: Vec<Certificate> = specs.into_iter().map(certificate).collect();
            let payers = [(payer(NANBYO), "難病"), (payer(FUJO), "医療扶助")];
            let files = build_with_kohi(super::super::tests::insurers(), &payers, &certs, "2026-11-24", "g-model");
            let index = Index::open(files, PersonKey::demo()).unwrap();
            let birth_day = d(BIRTHS[birth]);
            let compact = birth_day.to_compact();
            let mut records = vec![re(1, "202610", "1", &compact, "")];
            if with_ho {
                // Card 100's person is born 1980-01-23: another birthdate is an HO not_found.
                records.push(ho("100", "450"));
            }
            records.extend(kos.iter().map(|&(p, r)| ko(PAYERS[p], &recipient(RECIPIENTS[r]))));
            let day_list: Vec<u8> = (1..=31u8).filter(|d| days & (1 << (d - 1)) != 0).collect();
            if !day_list.is_empty() {
                records.push(si(&day_list));
            }
            let (rows, _) = rows_in(&index, &file(&records)).unwrap();
            let expected = if with_ho && birth != 0 {
                let list: Vec<String> = if days == 0 { (1..=31).collect::<Vec<u32>>() } else { day_list.iter().map(|&d| u32::from(d)).collect() }
                    .iter().map(u32::to_string).collect();
                format!("return not_found {}", list.join(";"))
            } else {
                naive(&certs, &kos, birth_day, days, with_ho)
            };
            prop_assert_eq!(&rows[0], &expected, "{:?} {:?}", certs, kos);
        }
    }
}
