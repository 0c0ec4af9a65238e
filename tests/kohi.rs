//! Public expense (公費) end to end: registers read by `shikaku build`, counted and reported.

use shikaku::domain::{Date, PayerNumber, PersonKey};
use shikaku::generations::{REJECTS_FILE, REPORT_FILE};
use shikaku::nightly::run::{run, BuildConfig, Reuse};
use std::fs;
use std::path::Path;

const INSURER_HEADER: &str = "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category";
const KOHI_HEADER: &str = "payer_number,recipient_number,individual_number,name,name_kana,sex,birthdate,valid_from,valid_to,copay_limit_yen,institutions";

// Valid check digits (IndividualNumber::from_first11).
const PERSON_A: &str = "123456789018";

fn payer(body: &str) -> String {
    PayerNumber::from_body(body).unwrap().to_string()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn config(snapshots: &Path, data: &Path) -> BuildConfig {
    BuildConfig {
        snapshots: snapshots.to_owned(),
        data: data.to_owned(),
        key: PersonKey::demo(),
        built_on: Date::parse("2026-11-24").unwrap(),
        max_drop_percent: 10.0,
        accept: Vec::new(),
        reuse: Reuse::UnchangedInsurers,
        progress: false,
        signing: None,
    }
}

/// A delivery of one insurer and two payers (難病 54, a local program 88), with a row for
/// each rule, a duplicate, an X1 pair, an unlisted payer directory and a change file.
fn delivery(snap: &Path) -> (String, String) {
    write(
        &snap.join("insurers.csv"),
        "insurer_number,insurer_name,kind\n06139992,組合,kumiai\n",
    );
    write(
        &snap.join("06139992/20261101.csv"),
        &format!("{INSURER_HEADER}\n06139992,12,1,00,{PERSON_A},山田 太郎,ヤマダ タロウ,1,1980-01-23,1,2015-04-01,,,30,\n"),
    );
    let (nanbyo, local) = (payer("5413601"), payer("8813001"));
    write(
        &snap.join("kohi/payers.csv"),
        &format!("payer_number,payer_name\n{nanbyo},東京都 難病\n{local},子ども医療費助成\n"),
    );
    let rows = [
        format!("{nanbyo},0123455,{PERSON_A},山田 太郎,ヤマダ タロウ,1,1980-01-23,2026-04-01,2027-03-31,10000,0110113719"),
        format!("{nanbyo},0123455,{PERSON_A},山田 太郎,ヤマダ タロウ,1,1980-01-23,2026-04-01,2027-03-31,10000,0110113719"),
        format!("{nanbyo},0123456,,山田 次郎,ヤマダ ジロウ,1,1980-01-23,2026-04-01,,,"),
        format!("{nanbyo},0000000,,山田 三郎,ヤマダ サブロウ,1,1980-01-23,2026-04-01,2026-03-01,,"),
    ];
    write(
        &snap.join(format!("kohi/{nanbyo}/20261101.csv")),
        &format!("{KOHI_HEADER}\n{}\n", rows.join("\n")),
    );
    // The same individual number with another birthdate: X1 on both certificates.
    write(
        &snap.join(format!("kohi/{local}/20261110.csv")),
        &format!("{KOHI_HEADER}\n{local},007,{PERSON_A},山田 太郎,ヤマダ タロウ,1,1980-01-24,2026-04-01,,0,\n"),
    );
    write(
        &snap.join(format!("kohi/{local}/changes/20261111-090000.csv")),
        "change\n",
    );
    write(
        &snap.join("kohi/21136010/20261101.csv"),
        &format!("{KOHI_HEADER}\nx\ny\n"),
    );
    (nanbyo, local)
}

#[test]
fn registers_are_read_counted_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let (nanbyo, local) = delivery(&snap);
    let out = run(&config(&snap, &data)).unwrap();
    let kohi = out.report.kohi.as_ref().expect("a kohi report");
    let t = &kohi.totals;
    assert_eq!(
        (
            t.rows_read,
            t.rows_indexed,
            t.rows_rejected,
            t.rows_deduplicated
        ),
        (7, 2, 4, 1),
        "{t:?}"
    );
    assert!(t.balanced());
    for (rule, n) in [("K2", 1), ("K5", 1), ("F4", 2), ("DUP", 1), ("X1", 2)] {
        assert_eq!(
            t.by_rule.get(rule).copied(),
            Some(n),
            "{rule}: {:?}",
            t.by_rule
        );
    }
    assert_eq!(
        kohi.payers.len(),
        3,
        "two payers and the unlisted directory"
    );
    assert_eq!(kohi.payers[0].payer_number, nanbyo);
    assert_eq!(kohi.payers[0].counts.covered_today, 1);
    // The insurers' totals are the index's records, untouched by the registers.
    assert_eq!(out.report.totals.rows_indexed, 1);
    let lines = fs::read_to_string(out.generation_dir.join(REJECTS_FILE)).unwrap();
    for needle in [
        format!("kohi/{nanbyo}/20261101.csv,3,DUP,"),
        format!("kohi/{nanbyo}/20261101.csv,4,K2,recipient_number,"),
        format!("kohi/{nanbyo}/20261101.csv,5,K5,valid_to,"),
        // The local payer's state (its register, then a change file rejected whole) names the
        // materialized register's lines.
        format!("kohi/{local}/20261111.csv,2,X1,individual_number,"),
        format!("kohi/{local}/changes/20261111-090000.csv,0,F2,"),
        "kohi/21136010/20261101.csv,0,F4,payer_number,".to_owned(),
    ] {
        assert!(lines.contains(&needle), "{needle} missing:\n{lines}");
    }
    let local_changes = &kohi.payers[1].changes;
    assert_eq!(local_changes.len(), 1, "{local_changes:?}");
    assert_eq!(local_changes[0].rows_read, 0);
    let html = fs::read_to_string(out.generation_dir.join("report.html")).unwrap();
    assert!(html.contains("Public-expense registers"));
    for name in [REPORT_FILE, REJECTS_FILE, "report.html"] {
        let bytes = fs::read(out.generation_dir.join(name)).unwrap();
        assert!(
            !bytes.windows(12).any(|w| w == PERSON_A.as_bytes()),
            "individual number in clear in {name}"
        );
    }
}

#[test]
fn a_delivery_without_registers_has_no_kohi_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    delivery(&snap);
    fs::remove_dir_all(snap.join("kohi")).unwrap();
    let out = run(&config(&snap, &data)).unwrap();
    assert!(out.report.kohi.is_none());
    // A `kohi/` directory without its payers.csv stops the build, naming the file.
    write(&snap.join("kohi/x"), "");
    let err = run(&config(&snap, &tmp.path().join("d2"))).unwrap_err();
    assert!(err.to_string().contains("payers.csv"), "{err}");
}

#[test]
fn the_index_holds_the_certificates_by_recipient_and_by_person() {
    use shikaku::domain::{IndividualNumber, InstitutionCode};
    use shikaku::index::MappedIndex;
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let (nanbyo, local) = delivery(&snap);
    let out = run(&config(&snap, &data)).unwrap();
    let index = MappedIndex::open_file(
        &out.generation_dir.join(shikaku::generations::INDEX_FILE),
        PersonKey::demo(),
    )
    .unwrap();
    index.verify().unwrap();
    assert_eq!(index.header().certificate_count, 2);
    assert_eq!(
        index.payers().len(),
        2,
        "the listed payers, not the unlisted directory"
    );
    let p = index.payer(PayerNumber::parse(&nanbyo).unwrap()).unwrap();
    assert_eq!(p.name, "東京都 難病");
    let found: Vec<_> = index.certificates_of(p, "0123455").collect();
    assert_eq!(found.len(), 1);
    let c = found[0];
    assert_eq!(
        (c.recipient(), c.name(), c.name_kana()),
        ("0123455", "山田 太郎", "ヤマダ タロウ")
    );
    assert_eq!(c.valid_to(), Some(Date::parse("2027-03-31").unwrap()));
    assert!(c.covers(Date::parse("2027-03-31").unwrap()));
    assert_eq!(c.copay_limit_yen(), Some(10_000));
    assert_eq!(c.institutions().collect::<Vec<_>>(), ["0110113719"]);
    assert!(c.admits(InstitutionCode::parse("0110113719").unwrap()));
    assert!(!c.admits(
        InstitutionCode::parse("0130113715")
            .unwrap_or_else(|_| { InstitutionCode::parse("0110113727").unwrap() })
    ));
    assert!(
        c.identity_unverified(),
        "X1 with the local program's certificate"
    );
    assert_eq!(index.certificates_of(p, "0123463").count(), 0);
    assert_eq!(
        index.certificates_of(p, "123455").count(),
        0,
        "leading zeros count"
    );
    let local = index.payer(PayerNumber::parse(&local).unwrap()).unwrap();
    assert_eq!(index.certificates_of(local, "007").count(), 1);
    let hash = PersonKey::demo().hash(&IndividualNumber::parse(PERSON_A).unwrap());
    assert_eq!(index.person_certificates(hash).count(), 2);
}

mod query {
    use shikaku::domain::*;
    use shikaku::index::Index;
    use shikaku::query::answer::answer;
    use shikaku::query::{KohiFields, KohiQuery, Query};

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    pub(super) fn payer(body: &str) -> PayerNumber {
        PayerNumber::from_body(body).unwrap()
    }

    /// An institution code with a valid check digit from its first nine digits.
    fn institution(first9: &str) -> String {
        (0..10)
            .map(|c| format!("{first9}{c}"))
            .find(|s| InstitutionCode::parse(s).is_ok())
            .unwrap()
    }

    fn cert(p: &str, recipient: &str, kana: &str, from: &str, to: Option<&str>) -> Certificate {
        Certificate {
            payer: payer(p),
            recipient: recipient.into(),
            individual_number: None,
            name: "難病 花子".into(),
            name_kana: kana.into(),
            sex: Some(Sex::Female),
            birthdate: d("1980-01-23"),
            valid_from: d(from),
            valid_to: to.map(d),
            copay_limit_yen: Some(10_000),
            institutions: Vec::new(),
        }
    }

    /// 難病 (54): recipient 0123455 renewed yearly; 0000000 for designated institutions only,
    /// 1111111 held by two people of one birthdate; a local program (88) with recipient 007.
    fn index() -> Index<Vec<u8>> {
        let mut designated = cert("5413601", "0000000", "ア", "2026-04-01", Some("2027-03-31"));
        designated.institutions = vec![InstitutionCode::parse(&institution("011011371")).unwrap()];
        let certs = [
            cert(
                "5413601",
                "0123455",
                "ナンビョウ ハナコ",
                "2025-04-01",
                Some("2026-03-31"),
            ),
            cert(
                "5413601",
                "0123455",
                "ナンビョウ ハナコ",
                "2026-04-01",
                Some("2027-03-31"),
            ),
            designated,
            cert("5413601", "1111111", "イチ", "2026-04-01", None),
            cert("5413601", "1111111", "ニ", "2026-04-01", None),
            cert("8813001", "007", "コ", "2020-04-01", None),
        ];
        let payers = [
            (payer("5413601"), "東京都 難病"),
            (payer("8813001"), "子ども医療費助成"),
        ];
        let files =
            shikaku::testing::build_with_kohi(Vec::new(), &payers, &certs, "2026-11-24", "g");
        Index::open(files, PersonKey::demo()).unwrap()
    }

    /// Answers (payer body, recipient, birthdate, date, institution) and returns the answer's
    /// validity, reason and the certificate's valid_from, or the query error's field.
    fn check(
        input: (&str, &str, &str, &str, Option<&str>),
        expected: Result<(u8, &str, &str), &str>,
    ) {
        let index = index();
        let p = payer(input.0).to_string();
        let q = KohiQuery::parse(&KohiFields {
            payer_number: Some(&p),
            recipient_number: Some(input.1),
            birthdate: Some(input.2),
            date: Some(input.3),
            institution_code: input.4,
        });
        let got = q.map_err(|e| e.field).map(|q| {
            let mut out = Vec::new();
            answer(&index, &Query::Kohi(q), d("2026-11-24"), &mut out);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            (
                v["validity"].as_u64().unwrap() as u8,
                v["reason"].as_str().unwrap_or("null").to_owned(),
                v["public_expense"]["valid_from"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        });
        let expected = expected.map(|(v, r, f)| (v, r.to_owned(), f.to_owned()));
        assert_eq!(got, expected, "{input:?}");
    }

    #[test]
    fn each_clause_of_the_public_expense_query() {
        let here = institution("011011371");
        let elsewhere = institution("011011372");
        // Covering the date → 1, valid_to inclusive.
        check(
            ("5413601", "0123455", "1980-01-23", "2026-11-24", None),
            Ok((1, "null", "2026-04-01")),
        );
        check(
            ("5413601", "0123455", "1980-01-23", "2027-03-31", None),
            Ok((1, "null", "2026-04-01")),
        );
        check(
            ("5413601", "０１２３４５５", "S55.1.23", "2026-03-31", None),
            Ok((1, "null", "2025-04-01")),
        );
        // None covering: the nearest before → expired; before every one → not_yet.
        check(
            ("5413601", "0123455", "1980-01-23", "2027-04-01", None),
            Ok((2, "expired", "2026-04-01")),
        );
        check(
            ("5413601", "0123455", "1980-01-23", "2025-03-31", None),
            Ok((2, "not_yet", "2025-04-01")),
        );
        // Designated institutions: the asking institution must be one; none known → not applied.
        check(
            (
                "5413601",
                "0000000",
                "1980-01-23",
                "2026-11-24",
                Some(&here),
            ),
            Ok((1, "null", "2026-04-01")),
        );
        check(
            (
                "5413601",
                "0000000",
                "1980-01-23",
                "2026-11-24",
                Some(&elsewhere),
            ),
            Ok((2, "other_institution", "2026-04-01")),
        );
        check(
            ("5413601", "0000000", "1980-01-23", "2026-11-24", None),
            Ok((1, "null", "2026-04-01")),
        );
        // Any institution when the certificate names none.
        check(
            (
                "5413601",
                "0123455",
                "1980-01-23",
                "2026-11-24",
                Some(&elsewhere),
            ),
            Ok((1, "null", "2026-04-01")),
        );
        // Several people → 5 without details; a wrong birthdate, an unknown recipient or
        // payer → 4.
        check(
            ("5413601", "1111111", "1980-01-23", "2026-11-24", None),
            Ok((5, "null", "")),
        );
        check(
            ("5413601", "0123455", "1980-01-24", "2026-11-24", None),
            Ok((4, "null", "")),
        );
        check(
            ("5413601", "0123463", "1980-01-23", "2026-11-24", None),
            Ok((4, "null", "")),
        );
        check(
            ("2113601", "0123455", "1980-01-23", "2026-11-24", None),
            Ok((4, "null", "")),
        );
        // Local programs: leading zeros significant.
        check(
            ("8813001", "007", "1980-01-23", "2026-11-24", None),
            Ok((1, "null", "2020-04-01")),
        );
        check(
            ("8813001", "7", "1980-01-23", "2026-11-24", None),
            Ok((4, "null", "")),
        );
        // Malformed queries name the field.
        check(
            ("5413601", "0123456", "1980-01-23", "2026-11-24", None),
            Err("recipient_number"),
        );
        check(
            ("5413601", "0123455", "1980-02-30", "2026-11-24", None),
            Err("birthdate"),
        );
        check(
            (
                "5413601",
                "0123455",
                "1980-01-23",
                "2026-11-24",
                Some("0110113710"),
            ),
            Err("institution_code"),
        );
    }

    #[test]
    fn the_answer_is_the_documented_json() {
        let index = index();
        let q = KohiQuery::parse(&KohiFields {
            payer_number: Some(&payer("5413601").to_string()),
            recipient_number: Some("0123455"),
            birthdate: Some("1980-01-23"),
            date: Some("2026-11-24"),
            institution_code: None,
        })
        .unwrap();
        let mut out = Vec::new();
        answer(&index, &Query::Kohi(q), d("2026-11-24"), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                r#"{{"validity":1,"validity_name":"eligible","date":"2026-11-24","generation":"g","reason":null,"public_expense":{{"payer_number":"{}","payer_name":"東京都 難病","program":"54","recipient_number":"0123455","name":"難病 花子","name_kana":"ナンビョウ ハナコ","sex":2,"birthdate":"1980-01-23","valid_from":"2026-04-01","valid_to":"2027-03-31","copay_limit_yen":10000,"institutions":[]}}}}"#,
                payer("5413601")
            )
        );
    }
}

/// The index's public-expense decision against a naive one written from docs/api.md over
/// the certificates as a list.
mod model {
    use proptest::prelude::*;
    use shikaku::domain::*;
    use shikaku::format::{encode_kohi, CertificateInput};
    use shikaku::index::Index;
    use shikaku::nightly::build_in_memory_with_kohi;
    use shikaku::query::kohi::lookup_kohi;
    use shikaku::query::{KohiOutcome, KohiQuery, KohiReason};

    const RECIPIENTS: [&str; 3] = ["0000000", "0123455", "1111111"];

    fn day(n: i32) -> Date {
        Date::from_days(20_000 + n)
    }

    fn institution(i: u8) -> InstitutionCode {
        (0..10)
            .map(|c| format!("01101137{i}{c}"))
            .find_map(|s| InstitutionCode::parse(&s).ok())
            .unwrap()
    }

    /// (recipient, birthdate, person, from, length or open, designated institution)
    type Spec = (usize, u8, u8, i32, Option<i32>, Option<u8>);

    fn certificate(payer: PayerNumber, s: &Spec) -> Certificate {
        Certificate {
            payer,
            recipient: RECIPIENTS[s.0].into(),
            individual_number: Some(IndividualNumber::from_first11(
                10_000_000_000 + u64::from(s.2),
            )),
            name: "名".into(),
            name_kana: "カナ".into(),
            sex: None,
            birthdate: Date::from_days(i32::from(s.1)),
            valid_from: day(s.3),
            valid_to: s.4.map(|len| day(s.3 + len)),
            copay_limit_yen: None,
            institutions: s.5.map(institution).into_iter().collect(),
        }
    }

    /// docs/api.md#public-expense-query, literally: (validity, reason, valid_from).
    fn naive(
        certs: &[Certificate],
        recipient: &str,
        birthdate: Date,
        date: Date,
        asking: Option<InstitutionCode>,
    ) -> (u8, Option<&'static str>, Option<Date>) {
        let candidates: Vec<&Certificate> = certs
            .iter()
            .filter(|c| c.recipient == recipient && c.birthdate == birthdate)
            .collect();
        if candidates.is_empty() {
            return (4, None, None);
        }
        let people: std::collections::BTreeSet<_> =
            candidates.iter().map(|c| c.individual_number).collect();
        if people.len() > 1 {
            return (5, None, None);
        }
        let covering: Vec<&&Certificate> = candidates.iter().filter(|c| c.covers(date)).collect();
        if !covering.is_empty() {
            let usable = covering
                .iter()
                .filter(|c| asking.is_none_or(|i| c.admits(i)))
                .max_by_key(|c| c.valid_from);
            return match usable {
                Some(c) => (1, None, Some(c.valid_from)),
                None => {
                    let c = covering.iter().max_by_key(|c| c.valid_from).unwrap();
                    (2, Some("other_institution"), Some(c.valid_from))
                }
            };
        }
        match candidates
            .iter()
            .filter(|c| c.valid_from <= date)
            .max_by_key(|c| (c.valid_to, c.valid_from))
        {
            Some(c) => (2, Some("expired"), Some(c.valid_from)),
            None => {
                let c = candidates.iter().min_by_key(|c| c.valid_from).unwrap();
                (2, Some("not_yet"), Some(c.valid_from))
            }
        }
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0usize..3,
            0u8..2,
            0u8..2,
            0i32..40,
            prop::option::of(0i32..20),
            prop::option::of(0u8..2),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn the_index_decides_as_the_naive_model(
            specs in prop::collection::vec(spec(), 0..8),
            queries in prop::collection::vec((0usize..3, 0u8..2, -2i32..45, prop::option::of(0u8..3)), 1..10),
        ) {
            let payer = PayerNumber::from_body("5413601").unwrap();
            let certs: Vec<Certificate> = specs.iter().map(|s| certificate(payer, s)).collect();
            let key = PersonKey::demo();
            let inputs: Vec<CertificateInput<'_>> = certs.iter().map(|c| CertificateInput {
                certificate: c,
                person: c.individual_number.map(|n| key.hash(&n)),
                identity_unverified: false,
            }).collect();
            let kohi = encode_kohi(&[(payer, "難病")], &inputs).unwrap();
            let files = build_in_memory_with_kohi(Vec::new(), &kohi, &key, day(0), "g").unwrap();
            let index = Index::open(files, key).unwrap();
            index.verify().unwrap();
            for (r, b, at, asking) in queries {
                let q = KohiQuery {
                    payer,
                    recipient: RECIPIENTS[r].into(),
                    birthdate: Date::from_days(i32::from(b)),
                    date: Some(day(at)),
                    institution: asking.map(institution),
                };
                let got = match lookup_kohi(&index, &q, day(0)) {
                    KohiOutcome::Eligible(c) => (1, None, Some(c.valid_from())),
                    KohiOutcome::Invalid(c, reason) => (2, Some(reason.as_str()), Some(c.valid_from())),
                    KohiOutcome::NotFound => (4, None, None),
                    KohiOutcome::Multiple => (5, None, None),
                };
                let want = naive(&certs, RECIPIENTS[r], q.birthdate, day(at), q.institution);
                prop_assert_eq!(got, want, "{:?} {:?}", q, specs);
                let _ = KohiReason::Expired;
            }
        }
    }
}

#[test]
fn a_person_answer_lists_the_certificates_covering_the_day() {
    use shikaku::index::MappedIndex;
    use shikaku::query::answer::answer;
    use shikaku::query::{PersonFields, PersonQuery, Query};
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let (_, local) = delivery(&snap);
    // The local program's certificate without the individual number: no X1 now.
    write(
        &snap.join(format!("kohi/{local}/20261110.csv")),
        &format!(
            "{KOHI_HEADER}\n{local},007,,山田 太郎,ヤマダ タロウ,1,1980-01-24,2026-04-01,,0,\n"
        ),
    );
    let out = run(&config(&snap, &data)).unwrap();
    let index = MappedIndex::open_file(
        &out.generation_dir.join(shikaku::generations::INDEX_FILE),
        PersonKey::demo(),
    )
    .unwrap();
    let ask = |date: &str| {
        let q = PersonQuery::parse(&PersonFields {
            individual_number: Some(PERSON_A),
            date: Some(date),
            limit_consent: false,
        })
        .unwrap();
        let mut json = Vec::new();
        answer(
            &index,
            &Query::Person(q),
            Date::parse("2026-11-24").unwrap(),
            &mut json,
        );
        serde_json::from_slice::<serde_json::Value>(&json).unwrap()
    };
    let now = ask("2026-11-24");
    assert_eq!(now["validity"], 1);
    let list = now["public_expenses"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{now}");
    assert_eq!(list[0]["recipient_number"], "0123455");
    assert_eq!(list[0]["valid_to"], "2027-03-31");
    // After valid_to: none, whatever the insurance says.
    let later = ask("2027-04-01");
    assert_eq!(later["public_expenses"], serde_json::json!([]));
}
