//! Change files (異動) end to end: `shikaku build` applies them over the newest snapshot,
//! reports each file applied or superseded, reuses an insurer only while its snapshot and
//! change files (by content) are unchanged; and the equivalence the contract tests hold: a
//! build over snapshots and change files answers every query as a full build over
//! `shikaku materialize`'s output does.

mod delivery_support;

use delivery_support::*;
use shikaku::domain::{Date, PersonKey};
use shikaku::generations::{Store, REJECTS_FILE};
use shikaku::nightly::run::{run, BuildConfig, BuildOutcome, Reuse};
use shikaku::nightly::ChangeOutcome;
use shikaku::query::answer::answer;
use shikaku::query::{CardFields, CardQuery, PersonFields, PersonQuery, Query};
use shikaku::snapshot::materialize::materialize_delivery;
use shikaku::snapshot::ChangeTime;
use std::fs;
use std::path::Path;

/// A snapshot row of card `number`, linked to person `number % 7` (so persons span cards and
/// insurers).
fn member(insurer: &str, number: u32, birth: &str, qual: &str, disq: &str) -> String {
    format!(
        "{insurer},12,{number},00,{},山田 太郎,ヤマダ タロウ,1,{birth},1,{qual},{disq},,30,",
        person(number % 7)
    )
}

fn change(kind: &str, row: &str) -> String {
    format!("{row},{kind}")
}

fn write_snapshot(snap: &Path, insurer: &str, date: &str, rows: &[String]) {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    write(&snap.join(insurer).join(format!("{date}.csv")), &text);
}

fn write_changes(snap: &Path, insurer: &str, name: &str, rows: &[String]) {
    let mut text = format!("{HEADER},change\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    write(
        &snap
            .join(insurer)
            .join("changes")
            .join(format!("{name}.csv")),
        &text,
    );
}

fn config(snap: &Path, data: &Path) -> BuildConfig {
    delivery_support::config(snap, data, Reuse::UnchangedInsurers)
}

fn card(data: &Path, insurer: &str, number: u32, birth: &str, date: &str) -> String {
    let q = CardQuery::parse(&CardFields {
        insurer_number: Some(insurer),
        symbol: Some("12"),
        number: Some(&number.to_string()),
        branch: Some("00"),
        birthdate: Some(birth),
        date: Some(date),
        limit_consent: false,
    })
    .unwrap();
    ask(data, &Query::Card(q))
}

fn person_query(data: &Path, p: u32, date: &str) -> String {
    let q = PersonQuery::parse(&PersonFields {
        individual_number: Some(&person(p)),
        date: Some(date),
        limit_consent: false,
    })
    .unwrap();
    ask(data, &Query::Person(q))
}

/// The answer JSON of the live generation, its generation id taken out.
fn ask(data: &Path, q: &Query) -> String {
    let index = Store::new(data).open_current(PersonKey::demo()).unwrap();
    let mut out = Vec::new();
    answer(&index, q, Date::parse(BUILT_ON).unwrap(), &mut out);
    String::from_utf8(out)
        .unwrap()
        .replace(index.generation(), "")
}

fn validity(answer: &str) -> &str {
    let at = answer.find("\"validity\":").expect("validity") + "\"validity\":".len();
    &answer[at..at + 1]
}

fn changes_of(out: &BuildOutcome, insurer: &str) -> Vec<(String, ChangeOutcome, u64, u64)> {
    let r = out
        .report
        .insurers
        .iter()
        .find(|r| r.insurer_number == insurer)
        .unwrap();
    r.changes
        .iter()
        .map(|c| {
            let name = c.file.rsplit('/').next().unwrap().to_owned();
            (name, c.outcome, c.rows_applied, c.rows_rejected)
        })
        .collect()
}

fn reused(out: &BuildOutcome) -> Vec<(String, bool)> {
    out.report
        .insurers
        .iter()
        .map(|r| (r.insurer_number.clone(), r.reused))
        .collect()
}

/// A kyosai snapshot of three members, change files over two days (one superseded, one with
/// a C1 row), and a kumiai insurer with change files only.
fn delivery(snap: &Path) {
    write_insurers(snap);
    write_snapshot(
        snap,
        KYOSAI,
        "20261101",
        &[
            member(KYOSAI, 1, "1980-01-23", "2015-04-01", ""),
            member(KYOSAI, 2, "1970-05-05", "2010-04-01", ""),
            member(KYOSAI, 3, "1990-02-02", "2020-04-01", ""),
        ],
    );
    // Before the snapshot's day: the snapshot holds it already.
    write_changes(
        snap,
        KYOSAI,
        "20261031-120000",
        &[keyed("delete", KYOSAI, 2, "2010-04-01", "")],
    );
    write_changes(
        snap,
        KYOSAI,
        "20261110-090000",
        &[
            keyed("lose", KYOSAI, 1, "2015-04-01", "2026-11-10"),
            change("add", &member(KYOSAI, 4, "2000-03-03", "2026-11-10", "")),
            keyed("delete", KYOSAI, 9, "2015-04-01", ""), // C1
        ],
    );
    write_changes(
        snap,
        KYOSAI,
        "20261120-090000",
        &[keyed("delete", KYOSAI, 3, "2020-04-01", "")],
    );
    write_changes(
        snap,
        KUMIAI,
        "20261115-100000",
        &[change(
            "add",
            &member(KUMIAI, 10, "1985-07-07", "2026-11-15", ""),
        )],
    );
}

#[test]
fn a_build_applies_change_files_and_names_each_in_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    delivery(&snap);
    let out = run(&config(&snap, &data)).unwrap();
    use ChangeOutcome::{Applied, Superseded};
    assert_eq!(
        changes_of(&out, KYOSAI),
        [
            ("20261110-090000.csv".to_owned(), Applied, 2, 1),
            ("20261120-090000.csv".to_owned(), Applied, 1, 0),
            ("20261031-120000.csv".to_owned(), Superseded, 0, 0),
        ]
    );
    assert_eq!(
        changes_of(&out, KUMIAI),
        [("20261115-100000.csv".to_owned(), Applied, 1, 0)]
    );
    let t = &out.report.totals;
    // 3 snapshot rows + 4 + 1 change rows; 3 records (1 lost, 2, 4) + 10; delete 3: the
    // record and the delete row; lose: its row.
    assert_eq!(
        (
            t.rows_read,
            t.rows_indexed,
            t.rows_rejected,
            t.rows_replaced
        ),
        (8, 4, 1, 3)
    );
    let kyosai = &out.report.insurers[1];
    assert_eq!(
        kyosai.state_file.as_deref(),
        Some("33120015/20261120.csv"),
        "dated with its last change file's day"
    );
    let rejects = fs::read_to_string(out.generation_dir.join(REJECTS_FILE)).unwrap();
    assert!(
        rejects.contains("33120015/changes/20261110-090000.csv,4,C1,change,"),
        "{rejects}"
    );
    let console = shikaku::nightly::report::console_summary(&out.report, &out.generation_dir);
    assert!(
        console.contains("change files: 3 applied, 1 superseded (report.json names each); rows replaced by changes: 3"),
        "{console}"
    );
    let html = fs::read_to_string(out.generation_dir.join("report.html")).unwrap();
    assert!(
        html.contains("<td>33120015/changes/20261031-120000.csv</td><td>superseded</td>"),
        "{html}"
    );
    let notes = out.report.notes.join("\n");
    assert!(notes.contains("33120015/changes/20261031-120000.csv is timed before the day of the snapshot 33120015/20261101.csv; superseded"), "{notes}");
    // The answers are the state's.
    assert_eq!(
        validity(&card(&data, KYOSAI, 1, "1980-01-23", "2026-11-09")),
        "1"
    );
    assert_eq!(
        validity(&card(&data, KYOSAI, 1, "1980-01-23", "2026-11-10")),
        "2"
    );
    assert_eq!(
        validity(&card(&data, KYOSAI, 2, "1970-05-05", BUILT_ON)),
        "1"
    );
    assert_eq!(
        validity(&card(&data, KYOSAI, 3, "1990-02-02", BUILT_ON)),
        "4"
    );
    assert_eq!(
        validity(&card(&data, KYOSAI, 4, "2000-03-03", BUILT_ON)),
        "1"
    );
    assert_eq!(
        validity(&card(&data, KUMIAI, 10, "1985-07-07", BUILT_ON)),
        "1"
    );
}

/// A build that never makes a change layer: the incremental build's reuse, folding layers.
fn folding(snap: &Path, data: &Path) -> BuildConfig {
    BuildConfig {
        reuse: Reuse::Fold,
        ..config(snap, data)
    }
}

/// The X1 lines of the live generation's `rejects.csv`.
fn x1_lines(data: &Path) -> usize {
    let store = Store::new(data);
    let dir = store.generation_dir(&store.live().unwrap());
    delivery_support::whole_rejects(&dir)
        .lines()
        .filter(|l| l.contains(",X1,"))
        .count()
}

#[test]
fn an_insurer_is_reused_until_its_change_files_differ_by_content() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    delivery(&snap);
    run(&folding(&snap, &data)).unwrap();
    let again = run(&folding(&snap, &data)).unwrap();
    assert_eq!(
        reused(&again),
        [(KUMIAI.to_owned(), true), (KYOSAI.to_owned(), true)]
    );
    assert_eq!(
        changes_of(&again, KYOSAI).len(),
        3,
        "applied and superseded, named again"
    );
    // The same name, the same size, other content (member 2 deleted, not 3): applied again.
    write_changes(
        &snap,
        KYOSAI,
        "20261120-090000",
        &[keyed("delete", KYOSAI, 2, "2010-04-01", "")],
    );
    let replaced = run(&folding(&snap, &data)).unwrap();
    assert_eq!(
        reused(&replaced),
        [(KUMIAI.to_owned(), true), (KYOSAI.to_owned(), false)]
    );
    assert_eq!(
        validity(&card(&data, KYOSAI, 2, "1970-05-05", BUILT_ON)),
        "4"
    );
    assert_eq!(
        validity(&card(&data, KYOSAI, 3, "1990-02-02", BUILT_ON)),
        "1"
    );
    // A new change file is taken, the rest reused; `--full` reads everything.
    write_changes(
        &snap,
        KUMIAI,
        "20261124-080000",
        &[keyed("lose", KUMIAI, 10, "2026-11-15", "2026-11-24")],
    );
    let newer = run(&folding(&snap, &data)).unwrap();
    assert_eq!(
        reused(&newer),
        [(KUMIAI.to_owned(), false), (KYOSAI.to_owned(), true)]
    );
    assert_eq!(
        validity(&card(&data, KUMIAI, 10, "1985-07-07", BUILT_ON)),
        "2"
    );
    let full = run(&BuildConfig {
        reuse: Reuse::Nothing,
        ..config(&snap, &data)
    })
    .unwrap();
    assert!(reused(&full).iter().all(|(_, r)| !r));
    assert_eq!(full.report.totals, newer.report.totals);
    // A new snapshot supersedes the change files before its day.
    write_snapshot(
        &snap,
        KUMIAI,
        "20261124",
        &[member(KUMIAI, 11, "1985-07-07", "2026-11-01", "")],
    );
    let snapshot = run(&folding(&snap, &data)).unwrap();
    assert_eq!(
        changes_of(&snapshot, KUMIAI),
        [
            (
                "20261124-080000.csv".to_owned(),
                ChangeOutcome::Applied,
                0,
                1
            ),
            (
                "20261115-100000.csv".to_owned(),
                ChangeOutcome::Superseded,
                0,
                0
            ),
        ],
        "the lose of card 10 is C1 on the new snapshot"
    );
    // A change file taken out of the delivery leaves the state: card 4 was its add.
    assert_eq!(
        validity(&card(&data, KYOSAI, 4, "2000-03-03", BUILT_ON)),
        "1"
    );
    fs::remove_file(snap.join(KYOSAI).join("changes/20261110-090000.csv")).unwrap();
    let removed = run(&folding(&snap, &data)).unwrap();
    assert_eq!(
        reused(&removed),
        [(KUMIAI.to_owned(), true), (KYOSAI.to_owned(), false)]
    );
    assert_eq!(
        validity(&card(&data, KYOSAI, 4, "2000-03-03", BUILT_ON)),
        "4"
    );
}

#[test]
fn bad_change_files_are_reported_never_partly_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    delivery(&snap);
    let kumiai = snap.join(KUMIAI).join("changes");
    // Timed after the build's time: not applied yet, noted.
    write_changes(
        &snap,
        KUMIAI,
        "20261125-000000",
        &[change(
            "add",
            &member(KUMIAI, 12, "1985-07-07", "2026-11-15", ""),
        )],
    );
    // Truncated mid-row: the whole rows apply, the cut one is R0.
    let text = format!(
        "{HEADER},change\n{}\n{}",
        change("add", &member(KUMIAI, 13, "1985-07-07", "2026-11-15", "")),
        &change("add", &member(KUMIAI, 14, "1985-07-07", "2026-11-15", ""))[..30]
    );
    write(&kumiai.join("20261116-000000.csv"), &text);
    // No change column: rejected whole.
    write(
        &kumiai.join("20261117-000000.csv"),
        &format!(
            "{HEADER}\n{}\n",
            member(KUMIAI, 15, "1985-07-07", "2026-11-15", "")
        ),
    );
    // 2 GiB (sparse: no disk is used): refused unread, nothing of it applied.
    fs::File::create(kumiai.join("20261117-120000.csv"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    // Still being written, and a malformed name: not read.
    write(&kumiai.join("20261118-000000.csv.part"), "x");
    write(&kumiai.join("20261118.csv"), "x");
    let out = run(&folding(&snap, &data)).unwrap();
    assert_eq!(
        changes_of(&out, KUMIAI),
        [
            (
                "20261115-100000.csv".to_owned(),
                ChangeOutcome::Applied,
                1,
                0
            ),
            (
                "20261116-000000.csv".to_owned(),
                ChangeOutcome::Applied,
                1,
                1
            ),
            (
                "20261117-000000.csv".to_owned(),
                ChangeOutcome::Applied,
                0,
                1
            ),
            (
                "20261117-120000.csv".to_owned(),
                ChangeOutcome::Applied,
                0,
                0
            ),
        ]
    );
    let rejects = fs::read_to_string(out.generation_dir.join(REJECTS_FILE)).unwrap();
    assert!(
        rejects.contains("06139992/changes/20261116-000000.csv,3,R0"),
        "{rejects}"
    );
    assert!(
        rejects.contains("06139992/changes/20261117-000000.csv,0,F2,change,"),
        "{rejects}"
    );
    assert!(
        rejects.contains("06139992/changes/20261117-120000.csv,0,F3,,\"whole file rejected (0 data rows), nothing applied: ")
            && rejects.contains("is 2147483648 bytes, more than the 268435456 a change file may hold"),
        "{rejects}"
    );
    let notes = out.report.notes.join("\n");
    for said in [
        "06139992/changes/20261125-000000.csv is timed after the build's time 2026-11-24 23:59:59 JST; not applied yet",
        "06139992/changes/20261118-000000.csv.part does not end in .csv; not read",
        "06139992/changes/20261118.csv is not named <insurer_number>/changes/YYYYMMDD-hhmmss.csv; not read",
    ] {
        assert!(notes.contains(said), "{said} in {notes}");
    }
    assert_eq!(
        validity(&card(&data, KUMIAI, 13, "1985-07-07", BUILT_ON)),
        "1"
    );
    assert_eq!(
        validity(&card(&data, KUMIAI, 15, "1985-07-07", BUILT_ON)),
        "4"
    );
    // A change file that cannot be read stops the build, naming it; nothing is published.
    let live = Store::new(&data).live().unwrap();
    std::os::unix::fs::symlink(kumiai.join("gone"), kumiai.join("20261119-000000.csv")).unwrap();
    let e = run(&folding(&snap, &data)).unwrap_err().to_string();
    assert!(e.contains("06139992/changes/20261119-000000.csv"), "{e}");
    assert_eq!(Store::new(&data).live().unwrap(), live);
}

#[test]
fn a_change_that_removes_a_mislinkage_clears_the_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    write_insurers(&snap);
    // Card 1 here and card 8 there carry person 1 (8 % 7), born on different days: X1.
    write_snapshot(
        &snap,
        KYOSAI,
        "20261101",
        &[member(KYOSAI, 1, "1980-01-23", "2015-04-01", "")],
    );
    write_snapshot(
        &snap,
        KUMIAI,
        "20261101",
        &[member(KUMIAI, 8, "1981-01-23", "2015-04-01", "2020-04-01")],
    );
    let out = run(&config(&snap, &data)).unwrap();
    assert_eq!(out.report.totals.by_rule.get("X1"), Some(&2));
    assert_eq!(validity(&person_query(&data, 1, BUILT_ON)), "4");
    // The insurer corrects the birthdate: the mark goes, the person is found again.
    write_changes(
        &snap,
        KUMIAI,
        "20261120-090000",
        &[change(
            "update",
            &member(KUMIAI, 8, "1980-01-23", "2015-04-01", "2020-04-01"),
        )],
    );
    // A change layer over the base: the person is checked again from all their records.
    let out = run(&config(&snap, &data)).unwrap();
    assert_eq!(
        out.report.generation_kind,
        shikaku::nightly::GenerationKind::Layer
    );
    assert_eq!(x1_lines(&data), 0);
    assert_eq!(validity(&person_query(&data, 1, BUILT_ON)), "1");
    // And a change that brings one back marks it again.
    write_changes(
        &snap,
        KUMIAI,
        "20261121-090000",
        &[change(
            "update",
            &member(KUMIAI, 8, "1982-01-23", "2015-04-01", "2020-04-01"),
        )],
    );
    run(&config(&snap, &data)).unwrap();
    assert_eq!(x1_lines(&data), 2);
    assert_eq!(validity(&person_query(&data, 1, BUILT_ON)), "4");
    // Folded, the incremental build reuses only the insurer no change touched.
    let out = run(&folding(&snap, &data)).unwrap();
    assert_eq!(
        reused(&out),
        [(KUMIAI.to_owned(), false), (KYOSAI.to_owned(), true)]
    );
    assert_eq!(out.report.totals.by_rule.get("X1"), Some(&2));
    assert_eq!(validity(&person_query(&data, 1, BUILT_ON)), "4");
}

#[test]
fn materialize_refuses_a_directory_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, out) = (tmp.path().join("s"), tmp.path().join("o"));
    delivery(&snap);
    write(&out.join("left.csv"), "x");
    let now = ChangeTime::end_of(Date::parse(BUILT_ON).unwrap());
    let e = materialize_delivery(&snap, &out, now, |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("is not empty"), "{e}");
}

mod equivalence {
    //! Property (docs/delivery.md#change-files): after random snapshots and random change
    //! files, built step by step (each build a change layer over the last when only change
    //! files are new, else incremental), every card and person query answers as a full
    //! build over `materialize_delivery`'s output does, the layers merged into one
    //! (`--compact`) now and then; and folded (`--fold`), the generation is a full build's.
    use super::*;
    use proptest::prelude::*;

    const INSURERS: [&str; 2] = [KYOSAI, KUMIAI];
    const CARDS: u32 = 5;

    fn segments(generation: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(generation.join("segments"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// One change row: kind 0..4 (add, update, lose, delete), card, qualification year,
    /// birth year, copay or loss variant.
    type ChangeRow = (u8, u32, u8, u8, bool);
    /// A snapshot row: card, qualification year, birth year, ended.
    type SnapRow = (u32, u8, u8, bool);

    fn qual(y: u8) -> String {
        format!("{}-04-01", 2018 + u32::from(y))
    }

    fn birth(y: u8) -> String {
        format!("{}-01-01", 1970 + u32::from(y))
    }

    fn snap_row(insurer: &str, &(c, q, b, ended): &SnapRow) -> String {
        let disq = if ended { "2026-06-01" } else { "" };
        member(insurer, c, &birth(b), &qual(q), disq)
    }

    fn change_row(insurer: &str, &(kind, c, q, b, alt): &ChangeRow) -> String {
        let copay = if alt { "20" } else { "30" };
        let add =
            || member(insurer, c, &birth(b), &qual(q), "").replace(",30,", &format!(",{copay},"));
        match kind {
            0 => change("add", &add()),
            1 => change("update", &add()),
            2 => keyed(
                "lose",
                insurer,
                c,
                &qual(q),
                if alt { "2026-11-05" } else { "2017-01-01" },
            ),
            _ => keyed("delete", insurer, c, &qual(q), ""),
        }
    }

    fn snapshot() -> impl Strategy<Value = Option<Vec<SnapRow>>> {
        proptest::option::weighted(
            0.8,
            proptest::collection::vec((0..CARDS, 0u8..3, 0u8..2, any::<bool>()), 0..6),
        )
    }

    fn changes() -> impl Strategy<Value = Vec<Vec<ChangeRow>>> {
        let row = (0u8..4, 0..CARDS, 0u8..3, 0u8..2, any::<bool>());
        proptest::collection::vec(proptest::collection::vec(row, 0..5), 0..3)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        #[test]
        fn changes_answer_as_a_full_build_of_the_materialized_snapshots(
            snapshots in proptest::collection::vec(snapshot(), INSURERS.len()),
            steps in proptest::collection::vec(proptest::collection::vec(changes(), INSURERS.len()), 1..5),
            merges in proptest::collection::vec(any::<bool>(), 5),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
            write_insurers(&snap);
            for (insurer, rows) in INSURERS.iter().zip(&snapshots) {
                if let Some(rows) = rows {
                    let rows: Vec<String> = rows.iter().map(|r| snap_row(insurer, r)).collect();
                    write_snapshot(&snap, insurer, "20261101", &rows);
                }
            }
            for (day, step) in steps.iter().enumerate() {
                for (insurer, files) in INSURERS.iter().zip(step) {
                    for (n, rows) in files.iter().enumerate() {
                        let rows: Vec<String> = rows.iter().map(|r| change_row(insurer, r)).collect();
                        let name = format!("202611{:02}-{:02}0000", 10 + day, n);
                        write_changes(&snap, insurer, &name, &rows);
                    }
                }
                if fs::read_dir(&snap).unwrap().count() > 1 {
                    let built = run(&config(&snap, &data)).unwrap();
                    // Now and then the layers so far merged into one (`--compact`).
                    if merges[day] && built.index.layer_count() > 1 {
                        run(&BuildConfig { reuse: Reuse::Compact, ..config(&snap, &data) }).unwrap();
                    }
                }
            }
            if Store::new(&data).live().is_err() {
                return Ok(()); // nothing delivered at all
            }
            let (out, full) = (tmp.path().join("m"), tmp.path().join("f"));
            let now = ChangeTime::end_of(Date::parse(BUILT_ON).unwrap());
            materialize_delivery(&snap, &out, now, |_, _| {}).unwrap();
            run(&BuildConfig { reuse: Reuse::Nothing, ..config(&out, &full) }).unwrap();
            // Built step by step (change layers stacked on a base), every answer is a full
            // build's over the materialized snapshots.
            same_answers(&data, &full)?;
            // Folded into a new base, the generation is the one a full build of the same
            // delivery writes: the same segments, report lines and counts, and answers.
            run(&BuildConfig { reuse: Reuse::Fold, ..config(&snap, &data) }).unwrap();
            let rebuilt = tmp.path().join("r");
            let whole = run(&BuildConfig { reuse: Reuse::Nothing, ..config(&snap, &rebuilt) }).unwrap();
            let live = Store::new(&data);
            let step_dir = live.generation_dir(&live.live().unwrap());
            prop_assert!(!step_dir.join(shikaku::format::LAYERS_DIR).exists());
            prop_assert_eq!(segments(&step_dir), segments(&whole.generation_dir));
            prop_assert_eq!(
                fs::read_to_string(step_dir.join(REJECTS_FILE)).unwrap(),
                fs::read_to_string(whole.generation_dir.join(REJECTS_FILE)).unwrap()
            );
            let step: shikaku::nightly::Report =
                serde_json::from_slice(&fs::read(step_dir.join("report.json")).unwrap()).unwrap();
            prop_assert_eq!(&step.totals, &whole.report.totals);
            for (a, b) in step.insurers.iter().zip(&whole.report.insurers) {
                prop_assert_eq!(&a.counts, &b.counts, "insurer {}", a.insurer_number);
                prop_assert_eq!(&a.changes, &b.changes, "insurer {}", a.insurer_number);
            }
            same_answers(&data, &full)?;
        }
    }

    /// Every card and person query of the test's small world answers the same from the live
    /// generations of `a` and `b` (generation ids aside).
    fn same_answers(a: &Path, b: &Path) -> Result<(), TestCaseError> {
        for insurer in INSURERS {
            for c in 0..CARDS {
                for y in 0..2 {
                    for date in [
                        "2017-06-01",
                        "2019-06-01",
                        "2026-06-01",
                        "2026-11-05",
                        BUILT_ON,
                    ] {
                        prop_assert_eq!(
                            card(a, insurer, c, &birth(y), date),
                            card(b, insurer, c, &birth(y), date)
                        );
                    }
                }
            }
        }
        for p in 0..7 {
            for date in ["2019-06-01", "2026-11-05", BUILT_ON] {
                prop_assert_eq!(person_query(a, p, date), person_query(b, p, date));
            }
        }
        Ok(())
    }
}

/// Regression (found by `perf/changes.sh`): an insurer reused with its change files had its
/// report lines taken twice when its state was dated the snapshot's own day (a change file
/// registered on that day), as the state file then has the snapshot's name; they doubled on
/// every build (1, 2, 4, 8 … a W1 line, 8.4M lines of one insurer by the 25th day).
#[test]
fn a_reused_insurer_keeps_its_report_lines_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    write_insurers(&snap);
    // A W1 (an individual number with a bad check digit) in the snapshot.
    let bad_number =
        member(KYOSAI, 1, "1980-01-23", "2015-04-01", "").replacen(&person(1), "123456789010", 1);
    write_snapshot(&snap, KYOSAI, "20261120", &[bad_number]);
    write_snapshot(
        &snap,
        KUMIAI,
        "20261120",
        &[member(KUMIAI, 5, "1975-05-05", "2010-04-01", "")],
    );
    write_changes(
        &snap,
        KYOSAI,
        "20261120-090000",
        &[change(
            "add",
            &member(KYOSAI, 2, "1990-02-02", "2016-04-01", ""),
        )],
    );
    let lines = |data: &Path| {
        let store = Store::new(data);
        let live = store.live().unwrap();
        let rejects = delivery_support::whole_rejects(&store.generation_dir(&live));
        rejects.lines().filter(|l| l.contains(",W1,")).count()
    };
    run(&config(&snap, &data)).unwrap();
    assert_eq!(lines(&data), 1);
    for _ in 0..3 {
        let again = run(&config(&snap, &data)).unwrap();
        assert!(reused(&again).contains(&(KYOSAI.to_owned(), true)));
        assert_eq!(lines(&data), 1);
    }
}
