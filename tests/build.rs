//! `shikaku build` end to end on small hand-written deliveries: accounting, cross-insurer
//! checks, the delivery guard, leftovers of a crashed build, and privacy of what it writes.

use shikaku::build::run::{run, BuildConfig, BuildError};
use shikaku::domain::{Date, InsurerNumber, PersonKey};
use shikaku::generations::{Store, INDEX_FILE, REJECTS_FILE, REPORT_FILE};
use std::fs;
use std::path::Path;

const HEADER: &str = "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category";

// Individual numbers with valid check digits (IndividualNumber::from_first11).
const PERSON_A: &str = "123456789018";

fn person_b() -> String {
    shikaku::domain::IndividualNumber::from_first11(22345678901)
        .expose_digits()
        .iter()
        .map(|&b| b as char)
        .collect()
}

fn write_delivery(dir: &Path, insurers: &[(&str, &str, &str, &[String])]) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    let mut list = String::from("insurer_number,insurer_name,kind\n");
    for (number, kind, date, rows) in insurers {
        list.push_str(&format!("{number},保険者{number},{kind}\n"));
        let d = dir.join(number);
        fs::create_dir_all(&d).unwrap();
        let mut text = format!("{HEADER}\n");
        for r in *rows {
            text.push_str(r);
            text.push('\n');
        }
        fs::write(d.join(format!("{date}.csv")), text).unwrap();
    }
    fs::write(dir.join("insurers.csv"), list).unwrap();
}

fn config(snapshots: &Path, data: &Path) -> BuildConfig {
    BuildConfig {
        snapshots: snapshots.to_owned(),
        data: data.to_owned(),
        key: PersonKey::demo(),
        built_on: Date::parse("2026-11-24").unwrap(),
        max_drop_percent: 10.0,
        accept: Vec::new(),
        progress: false,
    }
}

fn member(insurer: &str, number: u32, person: &str, birth: &str, qual: &str, disq: &str) -> String {
    format!("{insurer},12,{number},00,{person},山田 太郎,ヤマダ タロウ,1,{birth},1,{qual},{disq},{},30,", if disq.is_empty() { "" } else { "03" })
}

fn rejects(dir: &Path) -> String {
    fs::read_to_string(dir.join(REJECTS_FILE)).unwrap()
}

#[test]
fn accounting_and_cross_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let b = person_b();
    let kyosai: Vec<String> = vec![
        member(
            "33120015",
            1,
            PERSON_A,
            "1980-01-23",
            "2015-04-01",
            "2020-04-01",
        ),
        member(
            "33120015",
            1,
            PERSON_A,
            "1980-01-23",
            "2015-04-01",
            "2020-04-01",
        ), // duplicate
        member("33120015", 2, &b, "1970-05-05", "2010-04-01", ""),
        // X2: same card key, a different person (birthdate differs), overlapping period.
        member("33120015", 2, "", "1971-06-06", "2012-04-01", ""),
        member("33120016", 3, "", "1980-01-23", "2015-04-01", ""), // R1 bad check digit
        member("33120015", 4, "", "1980-13-01", "2015-04-01", ""), // R4
    ];
    let kumiai: Vec<String> = vec![
        // PERSON_A again, covered now: newer qualification elsewhere.
        member("06139992", 9, PERSON_A, "1980-01-23", "2020-04-01", ""),
        // PERSON_B here with another birthdate: X1 mislinkage.
        member("06139992", 10, &b, "1970-05-06", "2010-04-01", ""),
        // X3: PERSON_A covered twice.
        member("06139992", 11, PERSON_A, "1980-01-23", "2021-01-01", ""),
    ];
    write_delivery(
        &snap,
        &[
            ("33120015", "kyosai", "20261101", &kyosai),
            ("06139992", "kumiai", "20261120", &kumiai),
        ],
    );
    let out = run(&config(&snap, &data)).unwrap();
    let t = &out.report.totals;
    assert_eq!(
        (
            t.rows_read,
            t.rows_indexed,
            t.rows_rejected,
            t.rows_deduplicated
        ),
        (9, 6, 2, 1)
    );
    for rule in ["R1", "R4", "DUP", "X1", "X2", "X3"] {
        assert!(
            t.by_rule.get(rule).copied().unwrap_or(0) > 0,
            "{rule} not counted: {:?}",
            t.by_rule
        );
    }
    for r in &out.report.insurers {
        assert!(r.counts.balanced(), "{r:?}");
    }
    let lines = rejects(&out.generation_dir);
    for rule in [",R1,", ",R4,", ",X1,", ",X2,", ",X3,"] {
        assert!(
            lines.contains(rule),
            "{rule} missing from rejects.csv:\n{lines}"
        );
    }
    // Privacy: no individual number in clear anywhere in the generation directory.
    for name in [INDEX_FILE, REPORT_FILE, REJECTS_FILE] {
        let bytes = fs::read(out.generation_dir.join(name)).unwrap();
        for n in [PERSON_A, b.as_str()] {
            assert!(
                !bytes.windows(12).any(|w| w == n.as_bytes()),
                "{n} in clear in {name}"
            );
        }
    }
    assert_eq!(
        Store::new(&data).current().unwrap().as_deref(),
        Some(out.generation.as_str())
    );
}

#[test]
fn guard_refuses_a_truncated_delivery_unless_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let full: Vec<String> = (0..20)
        .map(|i| member("33120015", i, "", "1980-01-23", "2015-04-01", ""))
        .collect();
    write_delivery(&snap, &[("33120015", "kyosai", "20261101", &full)]);
    let first = run(&config(&snap, &data)).unwrap();

    // Tomorrow's delivery lost 3 of 20 members (15% > 10%).
    write_delivery(&snap, &[("33120015", "kyosai", "20261102", &full[..17])]);
    let err = run(&config(&snap, &data)).unwrap_err();
    assert!(
        matches!(&err, BuildError::Refused { reasons, .. } if reasons[0].contains("fell from 20 to 17")),
        "{err}"
    );
    let store = Store::new(&data);
    assert_eq!(
        store.current().unwrap().as_deref(),
        Some(first.generation.as_str()),
        "live generation unchanged"
    );
    assert_eq!(
        store.list().unwrap().len(),
        1,
        "a refused build is never among the generations"
    );

    // 1 of 20 (5%) passes.
    write_delivery(&snap, &[("33120015", "kyosai", "20261103", &full[..19])]);
    run(&config(&snap, &data)).unwrap();

    // An insurer gone missing trips the guard; --accept lets it through.
    write_delivery(
        &snap,
        &[(
            "06139992",
            "kumiai",
            "20261103",
            &[member("06139992", 1, "", "1980-01-23", "2015-04-01", "")],
        )],
    );
    let err = run(&config(&snap, &data)).unwrap_err();
    assert!(
        err.to_string().contains("insurer 33120015 is missing"),
        "{err}"
    );
    let mut cfg = config(&snap, &data);
    cfg.accept = vec![InsurerNumber::parse("33120015").unwrap()];
    run(&cfg).unwrap();
}

#[test]
fn leftovers_of_a_killed_build_are_cleaned_and_never_published() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let rows = vec![member("33120015", 1, "", "1980-01-23", "2015-04-01", "")];
    write_delivery(&snap, &[("33120015", "kyosai", "20261101", &rows)]);
    let store = Store::new(&data);
    let half = store.begin("g-killed").unwrap();
    fs::write(half.join(INDEX_FILE), b"SHIKAKU\x1a half written").unwrap();
    let out = run(&config(&snap, &data)).unwrap();
    assert!(!half.exists(), "unfinished build removed");
    assert_eq!(store.list().unwrap(), vec![out.generation]);
}

#[test]
fn undecodable_file_is_rejected_whole_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let rows = vec![member("33120015", 1, "", "1980-01-23", "2015-04-01", "")];
    write_delivery(
        &snap,
        &[
            ("33120015", "kyosai", "20261101", &rows),
            ("06139992", "kumiai", "20261101", &rows),
        ],
    );
    let mut bytes = format!("{HEADER}\n").into_bytes();
    bytes.extend_from_slice(b"06139992,12,1,00,,\xff\xfe\x80,x,1,1980-01-23,1,2015-04-01,,,30,\n");
    fs::write(snap.join("06139992/20261101.csv"), bytes).unwrap();
    let out = run(&config(&snap, &data)).unwrap();
    assert_eq!(out.report.totals.by_rule.get("F1"), Some(&1));
    assert!(rejects(&out.generation_dir).contains("06139992/20261101.csv,0,F1"));
    assert!(out.report.totals.balanced());
}

#[test]
fn incremental_build_reuses_unchanged_insurers_and_matches_a_full_build() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, fresh) = (
        tmp.path().join("s"),
        tmp.path().join("d"),
        tmp.path().join("f"),
    );
    let b = person_b();
    let kyosai: Vec<String> = vec![
        member(
            "33120015",
            1,
            PERSON_A,
            "1980-01-23",
            "2015-04-01",
            "2020-04-01",
        ),
        member("33120015", 2, &b, "1970-05-05", "2010-04-01", ""),
        member("33120015", 4, "", "1980-13-01", "2015-04-01", ""), // R4
    ];
    let kumiai_day1: Vec<String> = vec![
        member("06139992", 9, PERSON_A, "1980-01-23", "2020-04-01", ""),
        member("06139992", 10, &b, "1970-05-06", "2010-04-01", ""), // X1 with kyosai's record
    ];
    write_delivery(
        &snap,
        &[
            ("33120015", "kyosai", "20261101", &kyosai),
            ("06139992", "kumiai", "20261120", &kumiai_day1),
        ],
    );
    let day1 = run(&config(&snap, &data)).unwrap();
    assert!(day1.report.insurers.iter().all(|r| !r.reused));
    assert_eq!(day1.report.totals.by_rule.get("X1"), Some(&2));

    // Day 2: the kumiai insurer fixes its mislinked row; the kyosai file is unchanged.
    let kumiai_day2: Vec<String> = vec![
        member("06139992", 9, PERSON_A, "1980-01-23", "2020-04-01", ""),
        member("06139992", 10, "", "1970-05-06", "2010-04-01", ""),
    ];
    fs::remove_file(snap.join("06139992/20261120.csv")).unwrap();
    write_delivery(
        &snap,
        &[
            ("33120015", "kyosai", "20261101", &kyosai),
            ("06139992", "kumiai", "20261121", &kumiai_day2),
        ],
    );
    let day2 = run(&config(&snap, &data)).unwrap();
    let reused: Vec<(&str, bool)> = day2
        .report
        .insurers
        .iter()
        .map(|r| (r.insurer_number.as_str(), r.reused))
        .collect();
    assert_eq!(reused, vec![("06139992", false), ("33120015", true)]);
    assert_eq!(
        day2.report.totals.by_rule.get("X1"),
        None,
        "X1 recomputed across insurers"
    );
    assert_eq!(
        day2.report.totals.by_rule.get("R4"),
        Some(&1),
        "reused insurer keeps its counts"
    );
    assert!(
        rejects(&day2.generation_dir).contains(",R4,"),
        "reused insurer keeps its report lines"
    );

    // A full build of the same delivery writes the same index, header aside.
    let full = run(&config(&snap, &fresh)).unwrap();
    let a = fs::read(day2.generation_dir.join(INDEX_FILE)).unwrap();
    let b = fs::read(full.generation_dir.join(INDEX_FILE)).unwrap();
    assert_eq!(a.len(), b.len());
    assert!(a[128..] == b[128..], "incremental and full builds differ");
    assert_eq!(day2.report.totals, full.report.totals);
}
