//! Change files of public-expense registers (`kohi/<payer>/changes/YYYYMMDD-hhmmss.csv`):
//! applied by `shikaku build` under C1–C4 and the K rules, each file accounted for and named
//! in the report, and the equivalence insurers' change files hold: every public-expense and
//! person answer is a full build's over `shikaku materialize`'s output.

use shikaku::domain::text::luhn_check_digit;
use shikaku::domain::{Date, PayerNumber, PersonKey};
use shikaku::generations::{Store, INDEX_FILE, REJECTS_FILE};
use shikaku::index::MappedIndex;
use shikaku::nightly::run::{run, BuildConfig, Reuse};
use shikaku::query::answer::answer;
use shikaku::query::{KohiFields, KohiQuery, PersonFields, PersonQuery, Query};
use shikaku::snapshot::materialize::materialize_delivery;
use shikaku::snapshot::ChangeTime;
use std::fs;
use std::path::Path;

const KOHI_HEADER: &str = "payer_number,recipient_number,individual_number,name,name_kana,sex,birthdate,valid_from,valid_to,copay_limit_yen,institutions";
const BUILT_ON: &str = "2026-11-24";

fn payer(body: &str) -> String {
    PayerNumber::from_body(body).unwrap().to_string()
}

/// A 7-digit recipient number of a national program: six digits and their check digit.
fn recipient(body: &str) -> String {
    format!("{body}{}", luhn_check_digit(body.as_bytes()))
}

/// An individual number with its check digit (docs/api.md): eleven digits of `n`.
fn person(n: u32) -> String {
    let n = shikaku::domain::IndividualNumber::from_first11(40_000_000_000 + u64::from(n));
    String::from_utf8(n.expose_digits().to_vec()).unwrap()
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
        built_on: Date::parse(BUILT_ON).unwrap(),
        max_drop_percent: 100.0,
        accept: Vec::new(),
        reuse: Reuse::UnchangedInsurers,
        progress: false,
        signing: None,
    }
}

/// A delivery of one insurer with no members (the build needs one) and `payers` listed.
fn write_payers(snap: &Path, payers: &[&str]) {
    write(
        &snap.join("insurers.csv"),
        "insurer_number,insurer_name,kind\n06139992,組合,kumiai\n",
    );
    write(
        &snap.join("06139992/20261101.csv"),
        "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category\n",
    );
    let lines: Vec<String> = payers.iter().map(|p| format!("{p},公費 {p}")).collect();
    write(
        &snap.join("kohi/payers.csv"),
        &format!("payer_number,payer_name\n{}\n", lines.join("\n")),
    );
}

fn index_of(data: &Path) -> MappedIndex {
    let store = Store::new(data);
    let dir = store.generation_dir(&store.live().unwrap());
    MappedIndex::open_file(&dir.join(INDEX_FILE), PersonKey::demo()).unwrap()
}

/// The public-expense answer's JSON, `generation` taken out.
fn kohi(
    index: &MappedIndex,
    payer: &str,
    recipient: &str,
    birthdate: &str,
    date: &str,
) -> serde_json::Value {
    let q = KohiQuery::parse(&KohiFields {
        payer_number: Some(payer),
        recipient_number: Some(recipient),
        birthdate: Some(birthdate),
        date: Some(date),
        institution_code: None,
    })
    .unwrap();
    ask(index, &Query::Kohi(q))
}

fn person_query(index: &MappedIndex, n: &str, date: &str) -> serde_json::Value {
    let q = PersonQuery::parse(&PersonFields {
        individual_number: Some(n),
        date: Some(date),
        limit_consent: false,
    })
    .unwrap();
    ask(index, &Query::Person(q))
}

fn ask(index: &MappedIndex, q: &Query) -> serde_json::Value {
    let mut json = Vec::new();
    answer(index, q, Date::parse(BUILT_ON).unwrap(), &mut json);
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v.as_object_mut().unwrap().remove("generation");
    v
}

#[test]
fn change_files_of_a_register_are_applied_counted_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let p = payer("5413601");
    write_payers(&snap, &[&p]);
    let (a, b, c, d, e) = (
        recipient("012345"),
        recipient("012346"),
        recipient("012347"),
        recipient("012348"),
        recipient("012349"),
    );
    let cert = |r: &str, to: &str, copay: &str| {
        format!("{p},{r},,山田 太郎,ヤマダ タロウ,1,1980-01-23,2026-04-01,{to},{copay},")
    };
    write(
        &snap.join(format!("kohi/{p}/20261101.csv")),
        &format!(
            "{KOHI_HEADER}\n{}\n{}\n{}\n",
            cert(&a, "2027-03-31", "10000"),
            cert(&b, "2027-03-31", "10000"),
            cert(&c, "", "")
        ),
    );
    // Registered before the register's day: superseded, not applied.
    write(
        &snap.join(format!("kohi/{p}/changes/20261031-090000.csv")),
        &format!("{KOHI_HEADER},change\n{},delete\n", cert(&a, "", "")),
    );
    let other = payer("5413602");
    let rows = [
        format!("{},add", cert(&b, "", "")),                  // C2
        format!("{},update", cert(&a, "2027-03-31", "5000")), // applied
        format!("{p},{b},,,,,,2026-04-01,2026-11-30,,,lose"), // applied
        format!("{p},{c},,,,,,2026-04-01,,,,delete"),         // applied
        format!("{},add", cert(&d, "", "")),                  // applied
        format!("{p},{e},,,,,,2026-04-01,,,,delete"),         // C1
        format!("{},replace", cert(&e, "", "")),              // C3
        format!("{},update", cert(&d, "", "0")),              // C4
        format!("{p},{b},,,,,,2026-04-01,,,,lose"),           // K5: no valid_to
        format!("{other},{b},,,,,,2026-04-01,,,,delete"),     // K1: another payer
    ];
    write(
        &snap.join(format!("kohi/{p}/changes/20261110-093000.csv")),
        &format!("{KOHI_HEADER},change\n{}\n", rows.join("\n")),
    );
    let out = run(&config(&snap, &data)).unwrap();
    let payer_report = &out.report.kohi.as_ref().unwrap().payers[0];
    assert_eq!(
        payer_report.state_file.as_deref(),
        Some(&*format!("kohi/{p}/20261110.csv"))
    );
    let changes: Vec<(String, u64, u64, u64)> = payer_report
        .changes
        .iter()
        .map(|c| (c.file.clone(), c.rows_read, c.rows_applied, c.rows_rejected))
        .collect();
    assert_eq!(
        changes,
        [
            (format!("kohi/{p}/changes/20261110-093000.csv"), 10, 4, 6),
            (format!("kohi/{p}/changes/20261031-090000.csv"), 0, 0, 0),
        ]
    );
    let counts = &payer_report.counts;
    // 3 register rows + 10 change rows = 3 indexed (a updated, b lost, d added) + 6 rejected
    // + 4 replaced (a's old row, the lose row, c and its delete row).
    assert_eq!(
        (
            counts.rows_read,
            counts.rows_indexed,
            counts.rows_rejected,
            counts.rows_replaced
        ),
        (13, 3, 6, 4)
    );
    let html = fs::read_to_string(out.generation_dir.join("report.html")).unwrap();
    assert!(html.contains(&format!("kohi/{p}/changes/20261110-093000.csv")));
    let rejects = fs::read_to_string(out.generation_dir.join(REJECTS_FILE)).unwrap();
    let rules: Vec<&str> = rejects
        .lines()
        .filter(|l| l.contains("20261110-093000"))
        .filter_map(|l| l.split(',').nth(2))
        .collect();
    assert_eq!(rules, ["C2", "C1", "C3", "C4", "K5", "K1"], "{rejects}");
    let index = index_of(&data);
    let birth = "1980-01-23";
    assert_eq!(
        kohi(&index, &p, &a, birth, BUILT_ON)["public_expense"]["copay_limit_yen"],
        5000
    );
    let lost = kohi(&index, &p, &b, birth, "2026-12-01");
    assert_eq!(
        (lost["validity"].clone(), lost["reason"].clone()),
        (2.into(), "expired".into())
    );
    assert_eq!(kohi(&index, &p, &b, birth, "2026-11-30")["validity"], 1);
    assert_eq!(kohi(&index, &p, &c, birth, BUILT_ON)["validity"], 4);
    assert_eq!(kohi(&index, &p, &d, birth, BUILT_ON)["validity"], 1);
}

#[test]
fn a_listed_payer_with_change_files_and_no_register_starts_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let p = payer("8813001");
    write_payers(&snap, &[&p]);
    write(
        &snap.join(format!("kohi/{p}/changes/20261120-100000.csv")),
        &format!("{KOHI_HEADER},change\n{p},A-07,,山田 花子,ヤマダ ハナコ,2,2020-05-05,2026-11-20,,0,,add\n"),
    );
    let out = run(&config(&snap, &data)).unwrap();
    let report = &out.report.kohi.as_ref().unwrap().payers[0];
    assert_eq!(
        (report.counts.rows_read, report.counts.rows_indexed),
        (1, 1)
    );
    let index = index_of(&data);
    assert_eq!(
        kohi(&index, &p, "A-07", "2020-05-05", BUILT_ON)["validity"],
        1
    );
}

mod equivalence {
    //! Property: after a random register and random change files, built step by step, every
    //! public-expense and person answer is a full build's over `materialize_delivery`'s output.
    use super::*;
    use proptest::prelude::*;

    const RECIPIENTS: u8 = 4;
    const PERSONS: u32 = 3;

    /// A certificate: recipient, valid_from year, person (or none), birth variant, ended.
    type Cert = (u8, u8, Option<u32>, bool, bool);
    /// A change: kind 0..4 (add, update, lose, delete), the certificate, copay variant.
    type Change = (u8, Cert, bool);

    fn local() -> String {
        payer("8813001")
    }

    fn from(y: u8) -> String {
        format!("{}-04-01", 2024 + u32::from(y))
    }

    fn birth(alt: bool) -> &'static str {
        if alt {
            "2015-02-02"
        } else {
            "2015-01-01"
        }
    }

    fn row(&(r, y, who, alt, ended): &Cert, copay: &str) -> String {
        let n = who.map(person).unwrap_or_default();
        let to = if ended { "2026-10-31" } else { "" };
        format!(
            "{},R{r},{n},山田 花子,ヤマダ ハナコ,2,{},{},{to},{copay},",
            local(),
            birth(alt),
            from(y)
        )
    }

    fn change_row(&(kind, cert, alt): &Change) -> String {
        let (r, y, ..) = cert;
        let copay = if alt { "0" } else { "500" };
        match kind {
            0 => format!("{},add", row(&cert, copay)),
            1 => format!("{},update", row(&cert, copay)),
            2 => format!("{},R{r},,,,,,{},2026-11-05,,,lose", local(), from(y)),
            _ => format!("{},R{r},,,,,,{},,,,delete", local(), from(y)),
        }
    }

    fn cert() -> impl Strategy<Value = Cert> {
        (
            0..RECIPIENTS,
            0u8..3,
            proptest::option::of(0..PERSONS),
            any::<bool>(),
            any::<bool>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        #[test]
        fn registers_with_changes_answer_as_a_full_build_of_the_materialized_registers(
            register in proptest::option::weighted(0.8, proptest::collection::vec(cert(), 0..6)),
            days in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::collection::vec((0u8..4, cert(), any::<bool>()), 0..5),
                    0..3,
                ),
                1..3,
            ),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
            let p = local();
            write_payers(&snap, &[&p]);
            if let Some(rows) = &register {
                let rows: Vec<String> = rows.iter().map(|c| row(c, "")).collect();
                write(
                    &snap.join(format!("kohi/{p}/20261101.csv")),
                    &format!("{KOHI_HEADER}\n{}\n", rows.join("\n")),
                );
            }
            for (day, files) in days.iter().enumerate() {
                for (n, rows) in files.iter().enumerate() {
                    let rows: Vec<String> = rows.iter().map(change_row).collect();
                    write(
                        &snap.join(format!("kohi/{p}/changes/202611{:02}-{n:02}0000.csv", 10 + day)),
                        &format!("{KOHI_HEADER},change\n{}\n", rows.join("\n")),
                    );
                }
                run(&config(&snap, &data)).unwrap();
            }
            let (out, full) = (tmp.path().join("m"), tmp.path().join("f"));
            let now = ChangeTime::end_of(Date::parse(BUILT_ON).unwrap());
            materialize_delivery(&snap, &out, now, |_, _| {}).unwrap();
            run(&BuildConfig { reuse: Reuse::Nothing, ..config(&out, &full) }).unwrap();
            let (changed, whole) = (index_of(&data), index_of(&full));
            for r in 0..RECIPIENTS {
                for alt in [false, true] {
                    for date in ["2024-06-01", "2026-06-01", "2026-11-05", "2026-11-06", BUILT_ON] {
                        let recipient = format!("R{r}");
                        prop_assert_eq!(
                            kohi(&changed, &p, &recipient, birth(alt), date),
                            kohi(&whole, &p, &recipient, birth(alt), date)
                        );
                    }
                }
            }
            for who in 0..PERSONS {
                for date in ["2026-06-01", "2026-11-06", BUILT_ON] {
                    prop_assert_eq!(
                        person_query(&changed, &person(who), date),
                        person_query(&whole, &person(who), date)
                    );
                }
            }
        }
    }
}

/// The delivery guard covers the registers as it does insurers: a payer's certificates valid
/// today falling by more than `--max-drop-percent`, or a payer gone, refuse the build unless
/// the operator accepts that payer.
#[test]
fn the_guard_refuses_a_truncated_register_unless_accepted() {
    use shikaku::domain::InsurerNumber;
    use shikaku::nightly::run::BuildError;
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let p = payer("5413601");
    write_payers(&snap, &[&p]);
    let rows: Vec<String> = (0..10)
        .map(|i| {
            let r = recipient(&format!("01234{i}"));
            format!("{p},{r},,山田 太郎,ヤマダ タロウ,1,1980-01-23,2026-04-01,,,")
        })
        .collect();
    let register = |day: &str, n: usize| {
        write(
            &snap.join(format!("kohi/{p}/{day}.csv")),
            &format!("{KOHI_HEADER}\n{}\n", rows[..n].join("\n")),
        );
    };
    let guarded = |snap: &Path, data: &Path| BuildConfig {
        max_drop_percent: 10.0,
        ..config(snap, data)
    };
    register("20261101", 10);
    let first = run(&guarded(&snap, &data)).unwrap();
    // 8 of 10 left: 20% > 10%.
    register("20261102", 8);
    let err = run(&guarded(&snap, &data)).unwrap_err();
    assert!(
        matches!(&err, BuildError::Refused { reasons, .. }
            if reasons.len() == 1 && reasons[0].contains(&format!("public-expense payer {p}: certificates valid today fell from 10 to 8"))),
        "{err}"
    );
    assert_eq!(
        Store::new(&data).current().unwrap().as_deref(),
        Some(first.generation.as_str())
    );
    let accepted = BuildConfig {
        accept: vec![InsurerNumber::parse(&p).unwrap()],
        ..guarded(&snap, &data)
    };
    run(&accepted).unwrap();
    // The payer gone from payers.csv: refused, then accepted.
    write_payers(&snap, &[]);
    fs::remove_dir_all(snap.join(format!("kohi/{p}"))).unwrap();
    let err = run(&guarded(&snap, &data)).unwrap_err();
    assert!(err.to_string().contains("is missing"), "{err}");
    run(&accepted).unwrap();
}
