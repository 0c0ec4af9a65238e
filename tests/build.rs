//! `shikaku build` end to end on small hand-written deliveries: accounting, cross-insurer
//! checks, the delivery guard, leftovers of a crashed build, and privacy of what it writes.

use shikaku::domain::{Date, InsurerNumber, PersonKey};
use shikaku::generations::{Store, INDEX_FILE, REJECTS_FILE, REPORT_FILE};
use shikaku::nightly::run::{run, BuildConfig, BuildError, Reuse};
use std::fs;
use std::path::{Path, PathBuf};

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
        write_snapshot(dir, number, date, rows);
    }
    fs::write(dir.join("insurers.csv"), list).unwrap();
}

/// Adds one insurer's snapshot file to a delivery.
fn write_snapshot(dir: &Path, number: &str, date: &str, rows: &[String]) {
    let d = dir.join(number);
    fs::create_dir_all(&d).unwrap();
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    fs::write(d.join(format!("{date}.csv")), text).unwrap();
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
        assert_eq!(r.encoding.as_deref(), Some("utf8"), "{r:?}");
    }
    let lines = rejects(&out.generation_dir);
    // Regression: a duplicate row was counted in report.json but had no line of its own.
    assert_eq!(t.by_rule.get("DUP"), Some(&1));
    for rule in [",R1,", ",R4,", ",X1,", ",X2,", ",X3,", ",DUP,"] {
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

/// Regression (operator audit): a delivery's file or directory named with an individual
/// number put it in clear in report.json and rejects.csv.
#[test]
fn names_holding_an_individual_number_are_masked_in_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    write_two_insurers(&snap);
    let rows = vec![member("33120015", 1, "", "1980-01-23", "2015-04-01", "")];
    write_snapshot(&snap, PERSON_A, "20261101", &rows);
    fs::write(snap.join("33120015").join(format!("{PERSON_A}.csv")), "x\n").unwrap();
    let out = run(&config(&snap, &data)).unwrap();
    let reported = format!("{:?}", out.report);
    assert!(reported.contains(PERSON_A), "the test names a file so");
    for name in [REPORT_FILE, REJECTS_FILE] {
        let text = fs::read_to_string(out.generation_dir.join(name)).unwrap();
        assert!(!text.contains(PERSON_A), "{name}:\n{text}");
        assert!(text.contains("********9018"), "{name}:\n{text}");
    }
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

    // Regression: with the person key rotated, the live index cannot be opened and a
    // truncated delivery was published unguarded; the guard now reads the live report.
    let members: Vec<String> = (0..20)
        .map(|i| member("06139992", i, "", "1980-01-23", "2015-04-01", ""))
        .collect();
    write_delivery(&snap, &[("06139992", "kumiai", "20261104", &members)]);
    run(&config(&snap, &data)).unwrap();
    write_delivery(&snap, &[("06139992", "kumiai", "20261105", &members[..10])]);
    let rotated = BuildConfig {
        key: PersonKey::from_hex(&"ab".repeat(32)).unwrap(),
        ..config(&snap, &data)
    };
    let err = run(&rotated).unwrap_err();
    assert!(err.to_string().contains("fell from 20 to 10"), "{err}");
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

/// Regression: two builds into one data directory both ran; the second began by removing
/// "unfinished builds", the first's work among them, and both published.
#[test]
fn a_second_build_is_refused_while_one_holds_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let rows = vec![member("33120015", 1, "", "1980-01-23", "2015-04-01", "")];
    write_delivery(&snap, &[("33120015", "kyosai", "20261101", &rows)]);
    let store = Store::new(&data);
    let running = store.begin("g-running").unwrap();
    let held = store.lock().unwrap();
    let err = run(&config(&snap, &data)).unwrap_err().to_string();
    assert!(err.contains("another build"), "{err}");
    assert!(
        err.contains(&data.join("LOCK").display().to_string()),
        "{err}"
    );
    assert!(running.exists(), "the running build's work is left alone");
    assert!(store.list().unwrap().is_empty());
    drop(held);
    let out = run(&config(&snap, &data)).unwrap();
    assert_eq!(store.list().unwrap(), vec![out.generation]);
}

/// Where a test writes its delivery, builds nightly, and builds a full build to compare.
fn delivery_and_two_data_dirs(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (tmp.join("s"), tmp.join("d"), tmp.join("f"))
}

/// A delivery of two insurers (33120015, 06139992) of one member each, dated 2026-11-01.
fn write_two_insurers(snap: &Path) {
    let rows = vec![member("33120015", 1, "", "1980-01-23", "2015-04-01", "")];
    write_delivery(
        snap,
        &[
            ("33120015", "kyosai", "20261101", &rows),
            ("06139992", "kumiai", "20261101", &rows),
        ],
    );
}

#[test]
fn undecodable_file_is_rejected_whole_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    write_two_insurers(&snap);
    let mut bytes = format!("{HEADER}\n").into_bytes();
    bytes.extend_from_slice(b"06139992,12,1,00,,\xff\xfe\x80,x,1,1980-01-23,1,2015-04-01,,,30,\n");
    fs::write(snap.join("06139992/20261101.csv"), bytes).unwrap();
    let out = run(&config(&snap, &data)).unwrap();
    assert_eq!(out.report.totals.by_rule.get("F1"), Some(&1));
    assert!(rejects(&out.generation_dir).contains("06139992/20261101.csv,0,F1"));
    assert!(out.report.totals.balanced());
}

/// Regression: a snapshot file the system could not read (permissions, a disk error) was
/// counted as an F3 reject and the build published without that insurer's members.
#[test]
fn a_file_the_system_cannot_read_stops_the_build() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    write_two_insurers(&snap);
    // Tests may run as root, whom permissions do not stop: a dangling link cannot be read.
    let file = snap.join("06139992/20261101.csv");
    fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("gone.csv"), &file).unwrap();
    let err = run(&config(&snap, &data)).unwrap_err();
    assert!(matches!(err, BuildError::Snapshot(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("06139992/20261101.csv") && message.contains("cannot read"),
        "{message}"
    );
    assert!(Store::new(&data).current().unwrap().is_none());
}

#[test]
fn incremental_build_reuses_unchanged_insurers_and_matches_a_full_build() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, fresh) = delivery_and_two_data_dirs(tmp.path());
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
    write_snapshot(&snap, "06139992", "20261121", &kumiai_day2);
    // Regression: the kyosai insurer renamed in insurers.csv, its file unchanged, kept its
    // old name in an incremental build (the full build below must write the same index).
    let list = fs::read_to_string(snap.join("insurers.csv")).unwrap();
    let renamed = list.replace("保険者33120015", "改名共済組合");
    assert_ne!(list, renamed);
    fs::write(snap.join("insurers.csv"), renamed).unwrap();
    let day2 = run(&config(&snap, &data)).unwrap();
    let kyosai_name = day2
        .report
        .insurers
        .iter()
        .find(|r| r.insurer_number == "33120015")
        .map(|r| r.insurer_name.as_str());
    assert_eq!(kyosai_name, Some("改名共済組合"));
    assert!(
        day2.report
            .insurers
            .iter()
            .all(|r| r.encoding.as_deref() == Some("utf8")),
        "a reused insurer keeps its file's encoding"
    );
    assert_eq!(
        reused_insurers(&day2),
        vec![("06139992", false), ("33120015", true)]
    );
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
    assert_same_generation(&day2.generation_dir, &full.generation_dir);
    assert_eq!(day2.report.totals, full.report.totals);

    // `--full` parses everything even with a live generation.
    let again = run(&BuildConfig {
        reuse: Reuse::Nothing,
        ..config(&snap, &data)
    })
    .unwrap();
    assert!(again.report.insurers.iter().all(|r| !r.reused));
    assert_same_generation(&again.generation_dir, &full.generation_dir);
}

/// Flips the last byte of `path` in place (a bit rotting on disk).
fn flip_last_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    *bytes.last_mut().unwrap() ^= 0x55;
    // Written in place, as rot would: every hard link of the file sees it.
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    std::io::Write::write_all(&mut f, &bytes).unwrap();
}

fn reused_insurers(outcome: &shikaku::nightly::run::BuildOutcome) -> Vec<(&str, bool)> {
    outcome
        .report
        .insurers
        .iter()
        .map(|r| (r.insurer_number.as_str(), r.reused))
        .collect()
}

/// Regression: a live segment file corrupted on disk was hard-linked, unverified, into the
/// next generation, which was published (and every later build linked it again).
#[test]
fn a_corrupt_live_generation_is_parsed_again_not_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, fresh) = delivery_and_two_data_dirs(tmp.path());
    let b = person_b();
    let kyosai = vec![member("33120015", 2, &b, "1970-05-05", "2010-04-01", "")];
    let kumiai = vec![member(
        "06139992",
        9,
        PERSON_A,
        "1980-01-23",
        "2020-04-01",
        "",
    )];
    write_delivery(
        &snap,
        &[
            ("33120015", "kyosai", "20261101", &kyosai),
            ("06139992", "kumiai", "20261120", &kumiai),
        ],
    );
    let day1 = run(&config(&snap, &data)).unwrap();
    let segment = fs::read_dir(day1.generation_dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("33120015")
        })
        .unwrap();
    flip_last_byte(&segment);
    let verify = |dir: &Path| {
        shikaku::index::MappedIndex::open_file(&dir.join(INDEX_FILE), PersonKey::demo())
            .unwrap()
            .verify()
    };
    assert!(verify(&day1.generation_dir).is_err());

    let day2 = run(&config(&snap, &data)).unwrap();
    assert_eq!(
        reused_insurers(&day2),
        vec![("06139992", true), ("33120015", false)]
    );
    verify(&day2.generation_dir).unwrap();
    let full = run(&config(&snap, &fresh)).unwrap();
    assert_same_generation(&day2.generation_dir, &full.generation_dir);

    // A live main file that fails its checksums: nothing of it is reused.
    flip_last_byte(&day2.generation_dir.join(INDEX_FILE));
    let day3 = run(&config(&snap, &data)).unwrap();
    assert!(reused_insurers(&day3).iter().all(|(_, reused)| !reused));
    verify(&day3.generation_dir).unwrap();
}

/// Two generations hold the same index (header aside), segment files and rejects.
fn assert_same_generation(a: &Path, b: &Path) {
    let main_a = fs::read(a.join(INDEX_FILE)).unwrap();
    let main_b = fs::read(b.join(INDEX_FILE)).unwrap();
    assert_eq!(main_a.len(), main_b.len());
    assert!(main_a[128..] == main_b[128..], "main index files differ");
    let listing = |d: &Path| {
        let mut names: Vec<(String, Vec<u8>)> = fs::read_dir(d.join("segments"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(listing(a), listing(b), "segment files differ");
    assert_eq!(rejects(a), rejects(b), "rejects differ");
}

mod incremental_equals_full {
    //! Property: for random deliveries where persons span insurers (twins of numbers with
    //! another birthdate for X1, overlapping coverage for X3), a nightly build after some
    //! insurers change writes exactly what a full build of the same delivery writes.
    use super::*;
    use proptest::prelude::*;

    const INSURERS: [(&str, &str); 4] = [
        ("33120015", "kyosai"),
        ("06139992", "kumiai"),
        ("01130012", "kyokai"),
        ("06130025", "kumiai"),
    ];

    /// One row: (person 0..6 or none, birth year offset 0..2, qualification year, ended).
    type Row = (Option<u8>, u8, u8, bool);

    fn person(p: u8) -> String {
        shikaku::domain::IndividualNumber::from_first11(30000000000 + u64::from(p) * 7919)
            .expose_digits()
            .iter()
            .map(|&b| b as char)
            .collect()
    }

    fn rows(insurer: &str, rows: &[Row]) -> Vec<String> {
        rows.iter()
            .enumerate()
            .map(|(i, &(p, birth, qual, ended))| {
                let number = p.map_or(100 + i as u32, u32::from);
                member(
                    insurer,
                    number,
                    &p.map(person).unwrap_or_default(),
                    &format!("{}-01-01", 1960 + u32::from(birth)),
                    &format!("{}-04-01", 2010 + u32::from(qual)),
                    &if ended {
                        format!("{}-04-01", 2012 + u32::from(qual))
                    } else {
                        String::new()
                    },
                )
            })
            .collect()
    }

    fn delivery() -> impl Strategy<Value = Vec<Vec<Row>>> {
        let row = (
            proptest::option::weighted(0.8, 0u8..6),
            0u8..2,
            0u8..8,
            any::<bool>(),
        );
        proptest::collection::vec(proptest::collection::vec(row, 0..6), INSURERS.len())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn nightly_build_equals_full_build(
            day1 in delivery(),
            day2 in delivery(),
            changed in proptest::collection::vec(any::<bool>(), INSURERS.len()),
            next_day in any::<bool>(),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let (snap, data, fresh) = (tmp.path().join("s"), tmp.path().join("d"), tmp.path().join("f"));
            let first: Vec<(&str, &str, &str, Vec<String>)> = INSURERS
                .iter()
                .zip(&day1)
                .map(|(&(n, k), r)| (n, k, "20261101", rows(n, r)))
                .collect();
            let list: Vec<(&str, &str, &str, &[String])> =
                first.iter().map(|(n, k, d, r)| (*n, *k, *d, r.as_slice())).collect();
            write_delivery(&snap, &list);
            run(&BuildConfig { max_drop_percent: 100.0, ..config(&snap, &data) }).unwrap();
            for (i, &(n, _)) in INSURERS.iter().enumerate() {
                if changed[i] {
                    write_snapshot(&snap, n, "20261102", &rows(n, &day2[i]));
                }
            }
            let date = if next_day { "2026-11-25" } else { "2026-11-24" };
            let cfg = |d: &Path| BuildConfig {
                max_drop_percent: 100.0,
                built_on: Date::parse(date).unwrap(),
                accept: INSURERS.iter().map(|(n, _)| InsurerNumber::parse(n).unwrap()).collect(),
                ..config(&snap, d)
            };
            let nightly = run(&cfg(&data)).unwrap();
            let full = run(&cfg(&fresh)).unwrap();
            let reused = nightly.report.insurers.iter().filter(|r| r.reused).count();
            prop_assert_eq!(reused, changed.iter().filter(|c| !**c).count());
            assert_same_generation(&nightly.generation_dir, &full.generation_dir);
            prop_assert_eq!(&nightly.report.totals, &full.report.totals);
            for (a, b) in nightly.report.insurers.iter().zip(&full.report.insurers) {
                prop_assert_eq!(&a.counts, &b.counts, "insurer {}", a.insurer_number);
            }
        }
    }
}

#[test]
fn a_build_given_a_signing_key_signs_what_it_deep_checked() {
    use shikaku::signing::{verify_generation, SigningKey, Trust, TrustedKeys};
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let rows = vec![member(
        "33120015",
        1,
        PERSON_A,
        "1980-01-23",
        "2015-04-01",
        "",
    )];
    write_delivery(&snap, &[("33120015", "kyosai", "20261101", &rows)]);
    // Unsigned, the build deep-checks what it wrote too: it never publishes a generation a
    // server would refuse.
    let unsigned = run(&config(&snap, &tmp.path().join("unsigned"))).unwrap();
    assert!(unsigned.report.phases_ms.contains_key("deep_check"));
    let key_path = tmp.path().join("signing.key");
    let public = shikaku::signing::new_key_file(&key_path).unwrap();
    let signer = std::sync::Arc::new(SigningKey::load(&key_path).unwrap());
    let out = run(&BuildConfig {
        signing: Some(signer),
        ..config(&snap, &data)
    })
    .unwrap();
    assert!(out.report.phases_ms.contains_key("deep_check"));
    let index = Store::new(&data).open_current(PersonKey::demo()).unwrap();
    let known = shikaku::index::VerifiedSegments::default();
    let (trust, _) = verify_generation(&index, &TrustedKeys::of([public]), &known).unwrap();
    assert_eq!(trust, Trust::Signed(public.id()));
    // The signed manifest is the one `shikaku publish` computes for the store.
    let local = shikaku::fleet::Manifest::of_dir(&out.generation_dir, &out.generation).unwrap();
    let written = fs::read(out.generation_dir.join(shikaku::signing::MANIFEST_FILE)).unwrap();
    assert_eq!(written, local.to_json());
}
