//! Data-driven tests of change files: each `check` is one boundary of C1–C4 or of the row rules
//! on a change row, with its passing neighbour beside it.

use super::apply::{apply_change_file, materialize, ChangeInput, State};
use super::materialize::write_snapshot_csv;
use super::tests::{csv_text, write, BASE, HEADER as SNAPSHOT_HEADER};
use super::*;
use crate::domain::{Date, InsurerNumber, Record};
use std::path::PathBuf;

/// A snapshot's columns, then `change`.
fn header() -> Vec<&'static str> {
    [&SNAPSHOT_HEADER[..], &["change"]].concat()
}

const INSURER: &str = "33120015";
const CHANGE_DAY: &str = "2026-04-02";

/// A valid `add` row of insurer 33120015 (the snapshot tests' base row), age 46 on the change
/// file's day, with `overrides`.
fn row(overrides: &[(&str, &str)]) -> Vec<String> {
    let mut row: Vec<String> = BASE.iter().map(|s| s.to_string()).collect();
    row.push("add".to_owned());
    let header = header();
    for (col, value) in overrides {
        let i = header
            .iter()
            .position(|h| h == col)
            .unwrap_or_else(|| panic!("no column {col}"));
        row[i] = value.to_string();
    }
    row
}

/// The key columns only, as a `lose` or `delete` row may give them.
fn key_only(change: &str, overrides: &[(&str, &str)]) -> Vec<String> {
    let mut blanks: Vec<(&str, &str)> = SNAPSHOT_HEADER[4..].iter().map(|c| (*c, "")).collect();
    blanks.retain(|(c, _)| *c != "qualification_date");
    blanks.push(("change", change));
    blanks.extend_from_slice(overrides);
    row(&blanks)
}

fn input(name: &str, text: &str) -> ChangeInput {
    let (day, _) = name.split_once('-').expect("stem");
    ChangeInput {
        file: ChangeFile {
            path: PathBuf::from(format!("SNAPSHOTS/{INSURER}/changes/{name}.csv")),
            rel_path: format!("{INSURER}/changes/{name}.csv").into(),
            time: ChangeTime::end_of(Date::parse(day).expect("day")),
        },
        bytes: text.as_bytes().to_vec(),
        xxh3: xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
        refused: None,
        identity: (0, 0),
    }
}

fn insurer() -> InsurerNumber {
    InsurerNumber::parse(INSURER).expect("test insurer")
}

/// The records of `rows` read as a snapshot's (every row valid).
fn records(rows: &[Vec<String>]) -> Vec<Record> {
    let ctx = FileContext {
        file: format!("{INSURER}/20260401.csv").into(),
        path: PathBuf::from("s.csv"),
        insurer: insurer(),
        snapshot_date: Date::parse("2026-04-01").expect("date"),
    };
    let text = csv_text(
        &SNAPSHOT_HEADER,
        &rows.iter().map(|r| r[..15].to_vec()).collect::<Vec<_>>(),
    );
    let mut out = Vec::new();
    read_snapshot_bytes(text.as_bytes(), &ctx, |o| match o {
        RowOutcome::Indexed { record, .. } => out.push(record),
        RowOutcome::Rejected(issue) => panic!("snapshot row rejected: {issue:?}"),
    })
    .expect("snapshot reads");
    out
}

/// Applies one change file of `changes` to a state of `snapshot` rows; `expected[i]` is what
/// became of change row `i`: "ok" when applied, else the rule it was rejected under.
fn check(snapshot: &[Vec<String>], changes: &[Vec<String>], expected: &[&str]) -> State {
    let mut state = State::new(records(snapshot));
    let text = csv_text(&header(), changes);
    let mut issues = Vec::new();
    let s = apply_change_file(
        &mut state,
        &input("20260402-090000", &text),
        insurer(),
        &mut issues,
    );
    let rejects: Vec<(u64, &str)> = issues
        .iter()
        .filter(|i| !i.rule.is_warning())
        .map(|i| (i.line, i.rule.as_str()))
        .collect();
    let got: Vec<&str> = (0..changes.len() as u64)
        .map(|i| {
            rejects
                .iter()
                .find(|(line, _)| *line == i + 2)
                .map_or("ok", |(_, rule)| *rule)
        })
        .collect();
    assert_eq!(got, expected, "{issues:#?}");
    assert_eq!(s.rows_read, changes.len() as u64);
    assert!(s.balanced(), "{s:?}");
    assert_eq!(
        s.rejected,
        expected.iter().filter(|e| **e != "ok").count() as u64
    );
    state
}

#[test]
fn c1_a_change_of_a_key_that_does_not_exist() {
    let member = [row(&[])];
    for kind in ["update", "lose", "delete"] {
        let gone = [("change", kind), ("disqualification_date", "2026-05-01")];
        // The key is exact to the day of qualification.
        check(&member, &[row(&gone)], &["ok"]);
        let day_later = [gone[0], gone[1], ("qualification_date", "2015-04-02")];
        check(&member, &[row(&day_later)], &["C1"]);
        let other_branch = [gone[0], gone[1], ("branch", "02")];
        check(&member, &[row(&other_branch)], &["C1"]);
        check(&[], &[row(&gone)], &["C1"]);
    }
    // The key is normalized as a query's card: full-width digits and leading zeros.
    check(
        &member,
        &[key_only("delete", &[("number", "０３４５６")])],
        &["ok"],
    );
}

#[test]
fn c2_an_add_of_a_key_that_exists() {
    let member = [row(&[])];
    check(&member, &[row(&[])], &["C2"]);
    check(&member, &[row(&[("branch", "02")])], &["ok"]);
    check(
        &member,
        &[row(&[("qualification_date", "2015-04-02")])],
        &["ok"],
    );
    check(&member, &[row(&[("symbol", "13")])], &["ok"]);
    // A record lost since is still the key's: adding it again is an update's work.
    let lost = [row(&[("disqualification_date", "2020-01-01")])];
    check(&lost, &[row(&[])], &["C2"]);
}

#[test]
fn c3_change_missing_or_unknown() {
    check(&[], &[row(&[("change", "")])], &["C3"]);
    check(&[], &[row(&[("change", "remove")])], &["C3"]);
    check(&[], &[row(&[("change", "adds")])], &["C3"]);
    check(&[], &[row(&[("change", " ADD ")])], &["ok"]);
    // C3 before the row rules: an unknown change says so, whatever else is wrong.
    check(&[], &[row(&[("change", "x"), ("branch", "1")])], &["C3"]);
}

#[test]
fn c4_a_key_changed_twice_in_one_file() {
    let member = [row(&[])];
    let update = row(&[("change", "update"), ("copay_ratio", "20")]);
    let lose = key_only("lose", &[("disqualification_date", "2026-05-01")]);
    check(&member, &[update.clone(), lose.clone()], &["ok", "C4"]);
    check(&[], &[row(&[]), update.clone()], &["ok", "C4"]);
    // C4 before C2: an add after a delete of the key in the same file.
    check(&member, &[key_only("delete", &[]), row(&[])], &["ok", "C4"]);
    // A rejected row changes nothing, so it does not count as a change of its key.
    let bad = row(&[("change", "update"), ("copay_ratio", "25")]);
    check(&member, &[bad, update.clone()], &["R7", "ok"]);
    // Another key in the same file, or the same key in the next file, is not C4.
    check(
        &member,
        &[update.clone(), row(&[("branch", "02")])],
        &["ok", "ok"],
    );
    let mut state = check(&member, &[update], &["ok"]);
    let text = csv_text(&header(), &[lose]);
    let mut issues = Vec::new();
    let s = apply_change_file(
        &mut state,
        &input("20260403-090000", &text),
        insurer(),
        &mut issues,
    );
    assert_eq!((s.applied, s.rejected), (1, 0), "{issues:?}");
}

#[test]
fn lose_needs_only_its_key_and_a_disqualification_date() {
    let member = [row(&[])];
    let lose = |d: &str| key_only("lose", &[("disqualification_date", d)]);
    check(&member, &[lose("2015-04-02")], &["ok"]);
    check(&member, &[lose("2015-04-01")], &["R6"]);
    check(&member, &[lose("")], &["R6"]);
    check(&member, &[lose("2026-02-30")], &["R6"]);
    let with_reason = |r: &str| {
        key_only(
            "lose",
            &[
                ("disqualification_date", "2026-05-01"),
                ("reason_of_loss", r),
            ],
        )
    };
    check(&member, &[with_reason("03")], &["ok"]);
    check(&member, &[with_reason("04")], &["R7"]);
    // The key's own columns are still checked.
    check(&member, &[key_only("lose", &[("branch", "1")])], &["R3"]);
    check(
        &member,
        &[key_only("delete", &[("insurer_number", "33120016")])],
        &["R1"],
    );
    check(
        &member,
        &[key_only("delete", &[("qualification_date", "")])],
        &["R5"],
    );
    let state = check(&member, &[with_reason("03")], &["ok"]);
    let r = state.records().next().expect("the record");
    assert_eq!(r.disqualification_date, Date::parse("2026-05-01").ok());
    assert_eq!(r.reason_of_loss.map(|c| c.as_str()), Some("03"));
    assert_eq!(r.name, "山田 太郎", "the other columns are the record's");
}

#[test]
fn add_and_update_pass_the_row_rules_of_the_day() {
    // R4 against the change file's day: born that day is fine, the day after is not.
    check(
        &[],
        &[row(&[
            ("birthdate", CHANGE_DAY),
            ("qualification_date", CHANGE_DAY),
            ("copay_ratio", "20"),
        ])],
        &["ok"],
    );
    check(
        &[],
        &[row(&[
            ("birthdate", "2026-04-03"),
            ("qualification_date", "2026-04-03"),
        ])],
        &["R4"],
    );
    // An update is a whole record: an empty required column is rejected.
    let member = [row(&[])];
    check(
        &member,
        &[row(&[("change", "update"), ("sex", "")])],
        &["R7"],
    );
    check(
        &member,
        &[row(&[("change", "update"), ("number", "")])],
        &["R2"],
    );
    // Warnings keep the row: W1 drops the individual number.
    let state = check(
        &member,
        &[row(&[
            ("change", "update"),
            ("individual_number", "123456789012"),
        ])],
        &["ok"],
    );
    assert_eq!(
        state.records().next().expect("record").individual_number,
        None
    );
}

#[test]
fn a_change_applies_to_every_record_of_its_key() {
    // Two people on one card and one qualification day (an X2 conflict in the snapshot).
    let two = [
        row(&[]),
        row(&[("birthdate", "1981-01-01"), ("individual_number", "")]),
    ];
    let state = check(&two, &[key_only("delete", &[])], &["ok"]);
    assert_eq!((state.len(), state.replaced()), (0, 3));
    let state = check(&two, &[row(&[("change", "update")])], &["ok"]);
    assert_eq!((state.len(), state.replaced()), (1, 2));
    let lose = key_only("lose", &[("disqualification_date", "2026-05-01")]);
    let state = check(&two, &[lose], &["ok"]);
    assert_eq!((state.len(), state.replaced()), (2, 1));
    assert!(state.records().all(|r| r.disqualification_date.is_some()));
}

#[test]
fn files_rejected_whole_or_cut_short() {
    let mut issues = Vec::new();
    let mut apply = |text: &str| {
        let mut state = State::new(records(&[row(&[])]));
        issues.clear();
        let s = apply_change_file(
            &mut state,
            &input("20260402-090000", text),
            insurer(),
            &mut issues,
        );
        assert!(s.balanced(), "{s:?}");
        let rules: Vec<String> = issues
            .iter()
            .map(|i| format!("{}:{}", i.line, i.rule))
            .collect();
        (s.rows_read, s.applied, state.len(), rules)
    };
    // No `change` column: the whole file (F2), nothing applied.
    let no_change = csv_text(&SNAPSHOT_HEADER, &[row(&[("branch", "02")])[..15].to_vec()]);
    assert_eq!(apply(&no_change), (1, 0, 1, vec!["0:F2".to_owned()]));
    let twice = csv_text(
        &[&header()[..], &["change"]].concat(),
        &[[row(&[("branch", "02")]), vec!["add".into()]].concat()],
    );
    assert_eq!(apply(&twice), (1, 0, 1, vec!["0:F2".to_owned()]));
    // Cut mid-row: the rows before apply, the cut one is R0.
    let whole = csv_text(
        &header(),
        &[row(&[("branch", "02")]), row(&[("branch", "03")])],
    );
    let cut = &whole[..whole.len() - 20];
    assert_eq!(apply(cut), (2, 1, 2, vec!["3:R0".to_owned()]));
    // Cut inside a quoted cell: the open quote runs to the end, R0 naming its lines.
    let first = csv_text(&header(), &[row(&[("branch", "02")])]);
    let quoted = format!("{first}33120015,12,3456,03,,\"山田\n");
    let (read, applied, _, rules) = apply(&quoted);
    assert_eq!((read, applied, rules), (2, 1, vec!["3:R0".to_owned()]));
    // Neither UTF-8 nor CP932: F1, nothing applied.
    let undecodable = [header().join(",").as_bytes(), b"\n\xff\xfe\xfa,x\n"].concat();
    let mut state = State::new(Vec::new());
    let mut ci = input("20260402-090000", "");
    ci.bytes = undecodable;
    let s = apply_change_file(&mut state, &ci, insurer(), &mut issues);
    assert_eq!(
        (s.rows_read, s.rejected, s.file_reject.map(|i| i.rule)),
        (1, 1, Some(Rule::F1))
    );
}

#[test]
fn change_files_decode_as_snapshots_do() {
    let rows = [
        row(&[("branch", "02")]),
        row(&[("branch", "03"), ("name", "髙橋 一郎")]),
    ];
    let text = csv_text(&header(), &rows);
    let crlf = text.replace('\n', "\r\n");
    let crlf_bom = format!("\u{feff}{crlf}");
    let (cp932, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&crlf);
    assert!(!unmappable);
    for (what, bytes) in [
        ("utf-8", text.as_bytes().to_vec()),
        ("bom crlf", crlf_bom.into_bytes()),
        ("cp932 crlf", cp932.into_owned()),
    ] {
        let mut state = State::new(Vec::new());
        let mut ci = input("20260402-090000", "");
        ci.bytes = bytes;
        let mut issues = Vec::new();
        let s = apply_change_file(&mut state, &ci, insurer(), &mut issues);
        assert_eq!((s.applied, s.rejected), (2, 0), "{what}: {issues:?}");
        let names: Vec<&str> = state.records().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["山田 太郎", "髙橋 一郎"], "{what}");
    }
}

#[test]
fn a_change_file_that_is_not_a_regular_file_is_refused_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let path = root.join("33120015/changes/20260402-090000.csv");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo");
    let file = ChangeFile {
        path,
        rel_path: "33120015/changes/20260402-090000.csv".into(),
        time: ChangeTime::end_of(Date::parse(CHANGE_DAY).expect("day")),
    };
    let ci = ChangeInput::read(&file).expect("refused, not an error");
    let mut issues = Vec::new();
    let s = apply_change_file(&mut State::new(Vec::new()), &ci, insurer(), &mut issues);
    assert_eq!(
        (s.rows_read, s.file_reject.map(|i| i.rule)),
        (0, Some(Rule::F3))
    );
    assert!(issues[0].reason.contains("named pipe"), "{issues:?}");
}

#[test]
fn every_rule_broken_in_one_file() {
    let member = [row(&[])];
    let rows = [
        row(&[("change", "update"), ("branch", "02")]), // C1
        row(&[]),                                       // C2
        row(&[("change", "")]),                         // C3
        row(&[("branch", "03")]),                       // ok
        row(&[("branch", "03"), ("change", "update")]), // C4
        row(&[("insurer_number", "33120016"), ("branch", "04")]), // R1
        row(&[("number", ""), ("branch", "04")]),       // R2
        row(&[("branch", "4")]),                        // R3
        row(&[("birthdate", "2026-04-03"), ("branch", "04")]), // R4
        row(&[("qualification_date", "1979-01-01"), ("branch", "04")]), // R5
        row(&[("disqualification_date", "2015-04-01"), ("branch", "04")]), // R6
        row(&[("sex", "9"), ("branch", "04")]),         // R7
    ];
    let state = check(
        &member,
        &rows,
        &[
            "C1", "C2", "C3", "ok", "C4", "R1", "R2", "R3", "R4", "R5", "R6", "R7",
        ],
    );
    assert_eq!(state.len(), 2);
}

#[test]
fn a_materialized_state_reads_back_as_the_same_records() {
    let rows = [
        row(&[("name", " 山田, \"太郎\" "), ("name_kana", "ﾔﾏﾀﾞ ﾀﾛｳ")]),
        row(&[
            ("branch", "02"),
            ("symbol", ""),
            ("number", "００１２"),
            ("individual_number", ""),
        ]),
        row(&[
            ("branch", "03"),
            ("disqualification_date", "R8.5.1"),
            ("reason_of_loss", "99"),
            ("limit_category", "A03"),
            ("copay_ratio", "2割"),
        ]),
    ];
    let records = records(&rows);
    let mut bytes = Vec::new();
    write_snapshot_csv(&mut bytes, &records).expect("write");
    let ctx = FileContext {
        file: "m.csv".into(),
        path: PathBuf::from("m.csv"),
        insurer: insurer(),
        snapshot_date: Date::parse("2026-04-01").expect("date"),
    };
    let mut back = Vec::new();
    read_snapshot_bytes(&bytes, &ctx, |o| match o {
        RowOutcome::Indexed { record, line, .. } => back.push((record, line)),
        RowOutcome::Rejected(issue) => panic!("{issue:?}"),
    })
    .expect("reads");
    let lines: Vec<u64> = back.iter().map(|(_, l)| *l).collect();
    assert_eq!(lines, [2, 3, 4], "record i on line i + 2");
    assert_eq!(
        back.into_iter().map(|(r, _)| r).collect::<Vec<_>>(),
        records
    );
}

#[test]
fn discovery_of_change_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "insurers.csv",
        "insurer_number,insurer_name,kind\n33120015,共済,kyosai\n131045,国保,kokuho\n".as_bytes(),
    );
    let snapshot = csv_text(&SNAPSHOT_HEADER, &[row(&[])[..15].to_vec()]);
    write(root, "33120015/20260401.csv", snapshot.as_bytes());
    let change = csv_text(&header(), &[row(&[("branch", "02")])]);
    for name in [
        "20260331-235959.csv", // the day before the snapshot: superseded
        "20260401-000000.csv", // the snapshot's day: applied
        "20260402-090000.csv",
        "20260402-090000.CSV",     // the same time: both, in name order
        "20260402-120001.csv",     // after "now": not yet
        "20260402-0900.csv",       // malformed name
        "20260402-090000.csv.tmp", // still being written
    ] {
        write(root, &format!("33120015/changes/{name}"), change.as_bytes());
    }
    write(
        root,
        "131045/changes/20260402-080000.csv",
        change.as_bytes(),
    );
    write(
        root,
        "06139992/changes/20260402-080000.csv",
        change.as_bytes(),
    );
    let now = ChangeTime {
        date: Date::parse("2026-04-02").expect("date"),
        second_of_day: 12 * 3600,
    };
    let d = discover_at(root, now).expect("discover");
    let names = |files: &[ChangeFile]| -> Vec<String> {
        files
            .iter()
            .map(|f| f.rel_path.rsplit('/').next().unwrap_or("").to_owned())
            .collect()
    };
    type Picked = (String, Option<String>, Vec<String>, Vec<String>);
    let by: Vec<Picked> = d
        .deliveries
        .iter()
        .map(|d| {
            (
                d.insurer.number.to_string(),
                d.snapshot.as_ref().map(|s| s.rel_path.to_string()),
                names(&d.changes),
                names(&d.superseded),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            (
                "33120015".to_owned(),
                Some("33120015/20260401.csv".to_owned()),
                vec![
                    "20260401-000000.csv".to_owned(),
                    "20260402-090000.CSV".to_owned(),
                    "20260402-090000.csv".to_owned()
                ],
                vec!["20260331-235959.csv".to_owned()],
            ),
            (
                "131045".to_owned(),
                None,
                vec!["20260402-080000.csv".to_owned()],
                vec![]
            ),
        ]
    );
    let findings: Vec<String> = d.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        findings,
        [
            "directory 06139992 is not a listed insurer; its 1 change files are not read",
            "directory 06139992 is not a listed insurer and holds no snapshot",
            "33120015/changes/20260402-0900.csv is not named <insurer_number>/changes/YYYYMMDD-hhmmss.csv; not read",
            "33120015/changes/20260402-090000.csv.tmp does not end in .csv; not read (a change file still being written?)",
            "33120015/changes/20260331-235959.csv is timed before the day of the snapshot 33120015/20260401.csv; superseded, not applied",
            "33120015/changes/20260402-120001.csv is timed after the build's time 2026-04-02 12:00:00 JST; not applied yet (a build after that time applies it)",
        ]
    );
    // The insurer without a snapshot starts empty; its state is its change file's.
    let only_changes = &d.deliveries[1];
    let m = materialize(
        only_changes,
        &ChangeInput::read_all(&only_changes.changes).expect("read"),
    )
    .expect("materialize");
    assert_eq!(
        (m.records.len(), m.date.to_string(), m.snapshot.is_none()),
        (0, "2026-04-02".to_owned(), true)
    );
    assert_eq!(
        m.changes[0].rejected, 1,
        "its rows name insurer 33120015: R1"
    );
    // A change file gone between discovery and reading is an error naming it.
    std::fs::remove_file(root.join("131045/changes/20260402-080000.csv")).expect("rm");
    let e = ChangeInput::read_all(&only_changes.changes).expect_err("gone");
    assert!(
        e.to_string().contains("131045/changes/20260402-080000.csv"),
        "{e}"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A change row over a few keys (so changes meet), with one column sometimes set to a
    /// value that breaks a rule.
    fn change_row() -> impl Strategy<Value = Vec<String>> {
        let kind = prop::sample::select(vec!["add", "update", "lose", "delete", "", "x", " Lose "]);
        let column = prop::sample::select(HEADER_NAMES.to_vec());
        let value = prop::sample::select(vec![
            "",
            "1",
            "01",
            "99",
            "123456789018",
            "2015-04-01",
            "2026-05-01",
            "2027-01-01",
            "9",
        ]);
        (kind, 0u32..3, 0u32..2, prop::option::of((column, value))).prop_map(
            |(kind, number, qual, broken)| {
                let number = number.to_string();
                let qual = format!("201{}-04-01", 5 + qual);
                let mut overrides = vec![
                    ("change", kind),
                    ("number", number.as_str()),
                    ("qualification_date", qual.as_str()),
                    ("disqualification_date", "2026-05-01"),
                ];
                overrides.extend(broken);
                row(&overrides)
            },
        )
    }

    const HEADER_NAMES: [&str; 6] = [
        "branch",
        "birthdate",
        "sex",
        "disqualification_date",
        "individual_number",
        "insurer_number",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        /// Any sequence of change files: no panic, every file balanced, and the state's own
        /// balance: records + replaced = snapshot records + rows applied.
        #[test]
        fn any_changes_apply_balanced_and_never_leak(
            snapshot in prop::collection::vec(0u32..3, 0..4),
            files in prop::collection::vec(prop::collection::vec(change_row(), 0..8), 1..4),
        ) {
            let rows: Vec<Vec<String>> = snapshot
                .iter()
                .map(|n| row(&[("number", n.to_string().as_str())]))
                .collect();
            let mut state = State::new(records(&rows));
            let mut applied = 0;
            for (i, file) in files.iter().enumerate() {
                let mut issues = Vec::new();
                let name = format!("20260402-0{i}0000");
                let s = apply_change_file(&mut state, &input(&name, &csv_text(&header(), file)), insurer(), &mut issues);
                prop_assert!(s.balanced());
                prop_assert_eq!(s.rows_read, file.len() as u64);
                applied += s.applied;
                for issue in &issues {
                    prop_assert!(!issue.reason.contains("123456789018"), "{}", issue.reason);
                }
            }
            prop_assert_eq!(state.len() as u64 + state.replaced(), rows.len() as u64 + applied);
            prop_assert_eq!(state.records().count(), state.len());
        }
    }
}
