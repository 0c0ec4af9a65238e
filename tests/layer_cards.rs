//! The card path of change generations (docs/delivery.md, "Change generations"): a layer
//! whose new change rows name a few cards reads only those cards of the parent's view and
//! the new change files, and its generation answers, reports and lists report lines as a
//! full build of the same delivery does. Each step says which path it expects and checks
//! the equivalence.

mod delivery_support;

use delivery_support::*;
use shikaku::generations::REJECTS_FILE;
use shikaku::nightly::run::{run, BuildOutcome, Reuse};
use shikaku::nightly::GenerationKind;
use shikaku::query::{CardFields, CardQuery, PersonFields, PersonQuery, Query};
use std::fs;
use std::path::Path;

const INSURERS: [&str; 2] = [KYOSAI, KUMIAI];
const CARDS: u32 = 12;
const BIRTHS: [&str; 2] = ["1980-01-23", "1975-05-06"];

/// Card `number` of person `number % 7`.
fn member(insurer: &str, number: u32, birth: &str, qual: &str, disq: &str) -> String {
    format!(
        "{insurer},12,{number},00,{},山田 太郎,ヤマダ タロウ,1,{birth},1,{qual},{disq},,30,",
        person(number % 7)
    )
}

/// Writes a change file; returns its size in bytes.
fn changes(snap: &Path, insurer: &str, name: &str, rows: &[String]) -> u64 {
    let text = format!("{HEADER},change\n{}\n", rows.join("\n"));
    write(
        &snap
            .join(insurer)
            .join("changes")
            .join(format!("{name}.csv")),
        &text,
    );
    text.len() as u64
}

/// Both insurers with a snapshot and a first change file (so their states are materialized
/// in the base); person 1 holds kyosai card 1 and kumiai card 8; kumiai's card 9 is
/// delivered twice (a `DUP` line).
fn base(snap: &Path) {
    write_insurers(snap);
    let rows = |insurer: &str, cards: &[u32]| {
        let rows: Vec<String> = cards
            .iter()
            .map(|&c| member(insurer, c, BIRTHS[0], "2015-04-01", ""))
            .collect();
        format!("{HEADER}\n{}\n", rows.join("\n"))
    };
    write(
        &snap.join(KYOSAI).join("20261101.csv"),
        &rows(KYOSAI, &[1, 2, 3, 4]),
    );
    write(
        &snap.join(KUMIAI).join("20261101.csv"),
        &rows(KUMIAI, &[8, 9, 10, 9]),
    );
    let add = |insurer, c| format!("{},add", member(insurer, c, BIRTHS[0], "2020-04-01", ""));
    changes(snap, KYOSAI, "20261110-000000", &[add(KYOSAI, 5)]);
    changes(snap, KUMIAI, "20261110-000000", &[add(KUMIAI, 11)]);
}

fn answers(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for insurer in INSURERS {
        for c in 0..CARDS {
            for birth in BIRTHS {
                for date in ["2016-06-01", "2021-06-01", "2026-11-05", BUILT_ON] {
                    let q = CardQuery::parse(&CardFields {
                        insurer_number: Some(insurer),
                        symbol: Some("12"),
                        number: Some(&c.to_string()),
                        branch: Some("00"),
                        birthdate: Some(birth),
                        date: Some(date),
                        limit_consent: false,
                    })
                    .unwrap();
                    out.push(ask(data, &Query::Card(q)));
                }
            }
        }
    }
    for p in 0..7 {
        for date in ["2016-06-01", "2026-11-05", BUILT_ON] {
            let n = person(p);
            let q = PersonQuery::parse(&PersonFields {
                individual_number: Some(&n),
                date: Some(date),
                limit_consent: false,
            })
            .unwrap();
            out.push(ask(data, &Query::Person(q)));
        }
    }
    out
}

/// `rejects.csv` sorted. An X1/X3 line carried from the parent keeps the reason it was
/// written with, which may name another insurer's state by an older name (either path),
/// so those lines are compared without their reason.
fn sorted_rejects(dir: &Path) -> Vec<String> {
    let text = delivery_support::whole_rejects(dir);
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.splitn(5, ',').collect();
            match fields.get(2) {
                Some(&"X1") | Some(&"X3") => fields[..4].join(","),
                _ => l.to_owned(),
            }
        })
        .collect();
    lines.sort();
    lines
}

/// A row of `insurer`'s snapshot rejected (line 2): its later rows' lines are not their
/// state's.
fn reject_a_row(snap: &Path, insurer: &str) {
    let path = snap.join(insurer).join("20261101.csv");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replacen("\n", "\nnot,a,row\n", 1)).unwrap();
}

/// Builds a layer over `data` and checks it against a full build of the same delivery:
/// the same answers, report lines and members covered today; the paths taken are
/// `(card, full)`.
fn step(snap: &Path, data: &Path, tmp: &Path, paths: (u64, u64)) -> BuildOutcome {
    let (out, full) = step_answers(snap, data, tmp, paths);
    assert_eq!(
        sorted_rejects(&out.generation_dir),
        sorted_rejects(&full.generation_dir)
    );
    out
}

/// [`step`] but for the report lines: a full path's layer after one whose record removal
/// moved later lines may name them by their older lines (either path's known limit).
fn step_answers(
    snap: &Path,
    data: &Path,
    tmp: &Path,
    paths: (u64, u64),
) -> (BuildOutcome, BuildOutcome) {
    let out = run(&config(snap, data, Reuse::UnchangedInsurers)).unwrap();
    assert_eq!(out.report.generation_kind, GenerationKind::Layer);
    let layer = out.report.layer.clone().unwrap();
    assert_eq!(
        (layer.insurers_card_path, layer.insurers_full_path),
        paths,
        "{:?}",
        layer.insurers_touched
    );
    let full_dir = tmp.join(format!("full-{}", out.generation));
    let full = run(&config(snap, &full_dir, Reuse::Nothing)).unwrap();
    assert_eq!(answers(data), answers(&full_dir));
    for r in &full.report.insurers {
        if layer.insurers_touched.contains(&r.insurer_number) {
            assert_eq!(
                layer.covered_today[&r.insurer_number], r.counts.covered_today,
                "insurer {}",
                r.insurer_number
            );
        }
    }
    (out, full)
}

#[test]
fn an_insurer_of_a_snapshot_alone_takes_the_card_path_at_its_first_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    base(&snap);
    for insurer in INSURERS {
        fs::remove_dir_all(snap.join(insurer).join("changes")).unwrap();
    }
    // Kumiai's snapshot has a row rejected: its state's rows are its lines less one.
    reject_a_row(&snap, KUMIAI);
    run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
    let lose = |insurer, c| keyed("lose", insurer, c, "2015-04-01", "2026-11-11");
    changes(&snap, KYOSAI, "20261111-000000", &[lose(KYOSAI, 3)]);
    changes(&snap, KUMIAI, "20261111-000000", &[lose(KUMIAI, 10)]);
    step(&snap, &data, tmp.path(), (2, 0));
    changes(&snap, KUMIAI, "20261112-000000", &[lose(KUMIAI, 8)]);
    changes(&snap, KYOSAI, "20261112-000000", &[lose(KYOSAI, 4)]);
    step(&snap, &data, tmp.path(), (2, 0));
}

#[test]
fn the_card_path_reads_only_the_new_change_files_and_answers_as_a_full_build() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    base(&snap);
    let first = run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
    assert_eq!(first.report.generation_kind, GenerationKind::Base);

    // One card touched by two files of one layer: lost, then updated.
    let mut bytes = changes(
        &snap,
        KYOSAI,
        "20261111-000000",
        &[keyed("lose", KYOSAI, 2, "2015-04-01", "2026-11-11")],
    );
    let updated = member(KYOSAI, 2, BIRTHS[0], "2015-04-01", "2026-11-20").replace(",30,", ",20,");
    bytes += changes(
        &snap,
        KYOSAI,
        "20261111-120000",
        &[format!("{updated},update")],
    );
    let out = step(&snap, &data, tmp.path(), (1, 0));
    let layer = out.report.layer.unwrap();
    assert_eq!(
        layer.delivery_bytes_read, bytes,
        "only the new change files"
    );
    assert_eq!(layer.cards_changed, 1);

    // A lose of a record the first layer wrote, and an add for a new person (card 6), in
    // both insurers; person 1 gets a kumiai record with another birthdate (X1 across the
    // insurers) and kyosai's card 1 of person 1 is lost.
    let mut bytes = changes(
        &snap,
        KYOSAI,
        "20261112-000000",
        &[
            keyed("lose", KYOSAI, 2, "2015-04-01", "2026-11-12"),
            format!("{},add", member(KYOSAI, 6, BIRTHS[0], "2026-11-01", "")),
            keyed("lose", KYOSAI, 1, "2015-04-01", "2026-11-30"),
        ],
    );
    bytes += changes(
        &snap,
        KUMIAI,
        "20261112-000000",
        &[format!(
            "{},add",
            member(KUMIAI, 1, BIRTHS[1], "2026-11-01", "")
        )],
    );
    let out = step(&snap, &data, tmp.path(), (2, 0));
    let layer = out.report.layer.unwrap();
    assert_eq!(layer.delivery_bytes_read, bytes);
    let rejects = delivery_support::whole_rejects(&out.generation_dir);
    assert!(rejects.contains(",X1,"), "{rejects}");

    // The X1 goes again when the kumiai record is corrected (the card path, by the card).
    changes(
        &snap,
        KUMIAI,
        "20261113-000000",
        &[format!(
            "{},update",
            member(KUMIAI, 1, BIRTHS[0], "2026-11-01", "")
        )],
    );
    let out = step(&snap, &data, tmp.path(), (1, 0));
    let rejects = delivery_support::whole_rejects(&out.generation_dir);
    assert!(!rejects.contains(",X1,"), "{rejects}");

    // A rejected row (C1) and a C4 in a file: the same lines as the full build's. Card 9
    // was delivered twice (the view holds one record of the two rows the lose changes):
    // the full path.
    changes(
        &snap,
        KUMIAI,
        "20261114-000000",
        &[
            keyed("lose", KUMIAI, 3, "2015-04-01", "2026-11-14"),
            keyed("lose", KUMIAI, 9, "2015-04-01", "2026-11-14"),
            keyed("lose", KUMIAI, 9, "2015-04-01", "2026-11-15"),
        ],
    );
    step(&snap, &data, tmp.path(), (0, 1));

    // Delete then add of one key, by its card.
    changes(
        &snap,
        KYOSAI,
        "20261115-000000",
        &[keyed("delete", KYOSAI, 6, "2026-11-01", "")],
    );
    changes(
        &snap,
        KYOSAI,
        "20261115-120000",
        &[format!(
            "{},add",
            member(KYOSAI, 6, BIRTHS[1], "2026-11-01", "")
        )],
    );
    step(&snap, &data, tmp.path(), (1, 0));
    changes(
        &snap,
        KYOSAI,
        "20261116-000000",
        &[keyed("lose", KYOSAI, 4, "2015-04-01", "2026-11-16")],
    );
    changes(
        &snap,
        KUMIAI,
        "20261116-000000",
        &[keyed("lose", KUMIAI, 10, "2015-04-01", "2026-11-16")],
    );
    step(&snap, &data, tmp.path(), (2, 0));

    // A record removed before others moves their lines up (the view keeps their old lines;
    // the layer's removals say how they moved), and the next layers name them so: by the
    // card path, and by the full path (kumiai's card 9, delivered twice).
    changes(
        &snap,
        KYOSAI,
        "20261117-000000",
        &[keyed("delete", KYOSAI, 2, "2015-04-01", "")],
    );
    step(&snap, &data, tmp.path(), (1, 0));
    changes(
        &snap,
        KYOSAI,
        "20261118-000000",
        &[keyed("lose", KYOSAI, 5, "2020-04-01", "2026-11-18")],
    );
    changes(
        &snap,
        KUMIAI,
        "20261118-000000",
        &[keyed("lose", KUMIAI, 11, "2020-04-01", "2026-11-18")],
    );
    step(&snap, &data, tmp.path(), (2, 0));
    changes(
        &snap,
        KUMIAI,
        "20261119-000000",
        &[keyed("delete", KUMIAI, 8, "2015-04-01", "")],
    );
    step(&snap, &data, tmp.path(), (1, 0));
    changes(
        &snap,
        KUMIAI,
        "20261120-000000",
        &[keyed("lose", KUMIAI, 9, "2015-04-01", "2026-11-20")],
    );
    changes(
        &snap,
        KYOSAI,
        "20261120-000000",
        &[keyed("delete", KYOSAI, 1, "2015-04-01", "")],
    );
    step(&snap, &data, tmp.path(), (1, 1));
    changes(
        &snap,
        KUMIAI,
        "20261121-000000",
        &[keyed("lose", KUMIAI, 10, "2015-04-01", "2026-11-21")],
    );
    step(&snap, &data, tmp.path(), (1, 0));
}

mod prop {
    //! Random change sequences built twice, step by step: by the card path where it can be
    //! exact (`Reuse::UnchangedInsurers`) and by the full path alone (`Reuse::WholeStates`).
    //! Each step's generations hold the same delta segments (by content), report lines,
    //! layer accounting and answers, and name the lines a full build names.
    use super::*;
    use proptest::prelude::*;

    /// kind 0..4 (add, update, lose, delete), card, qualification year, birth, copay/loss.
    type Row = (u8, u32, u8, usize, bool);

    fn qual(y: u8) -> String {
        format!("{}-04-01", 2014 + u32::from(y))
    }

    fn row(insurer: &str, &(kind, c, q, b, alt): &Row) -> String {
        let copay = if alt { "20" } else { "30" };
        let record =
            || member(insurer, c, BIRTHS[b], &qual(q), "").replace(",30,", &format!(",{copay},"));
        match kind {
            0 => format!("{},add", record()),
            1 => format!("{},update", record()),
            2 => keyed(
                "lose",
                insurer,
                c,
                &qual(q),
                if alt { "2026-11-05" } else { "2019-01-01" },
            ),
            _ => keyed("delete", insurer, c, &qual(q), ""),
        }
    }

    fn segments(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join("segments"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn rows() -> impl Strategy<Value = Vec<Row>> {
        let kind = prop_oneof![3 => Just(0u8), 2 => Just(1u8), 3 => Just(2u8), 1 => Just(3u8)];
        proptest::collection::vec((kind, 0..CARDS, 0u8..2, 0..2usize, any::<bool>()), 1..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
        #[test]
        fn the_card_path_makes_the_full_paths_generation(
            steps in proptest::collection::vec(
                (proptest::option::of(rows()), proptest::option::of(rows())),
                1..5,
            ),
            plain in any::<(bool, bool)>(),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let snap = tmp.path().join("s");
            let (cards, whole) = (tmp.path().join("c"), tmp.path().join("w"));
            base(&snap);
            reject_a_row(&snap, KYOSAI);
            // An insurer of snapshots alone in the base: its records numbered by lines.
            for (insurer, plain) in [(KYOSAI, plain.0), (KUMIAI, plain.1)] {
                if plain {
                    fs::remove_dir_all(snap.join(insurer).join("changes")).unwrap();
                }
            }
            for data in [&cards, &whole] {
                run(&config(&snap, data, Reuse::UnchangedInsurers)).unwrap();
            }
            for (day, (kyosai, kumiai)) in steps.iter().enumerate() {
                let name = format!("202611{:02}-000000", 11 + day);
                for (insurer, rows) in [(KYOSAI, kyosai), (KUMIAI, kumiai)] {
                    if let Some(rows) = rows {
                        let rows: Vec<String> = rows.iter().map(|r| row(insurer, r)).collect();
                        changes(&snap, insurer, &name, &rows);
                    }
                }
                if kyosai.is_none() && kumiai.is_none() {
                    continue;
                }
                let a = run(&config(&snap, &cards, Reuse::UnchangedInsurers)).unwrap();
                let b = run(&config(&snap, &whole, Reuse::WholeStates)).unwrap();
                let (la, lb) = (a.report.layer.clone().unwrap(), b.report.layer.clone().unwrap());
                prop_assert_eq!(lb.insurers_card_path, 0);
                prop_assert_eq!(segments(&a.generation_dir), segments(&b.generation_dir));
                prop_assert_eq!(
                    fs::read_to_string(a.generation_dir.join(REJECTS_FILE)).unwrap(),
                    fs::read_to_string(b.generation_dir.join(REJECTS_FILE)).unwrap()
                );
                prop_assert_eq!(
                    delivery_support::whole_rejects(&a.generation_dir),
                    delivery_support::whole_rejects(&b.generation_dir)
                );
                prop_assert_eq!(&la.change_files, &lb.change_files);
                prop_assert_eq!(&la.covered_today, &lb.covered_today);
                prop_assert_eq!(&la.state_records, &lb.state_records);
                prop_assert_eq!(&la.state_files, &lb.state_files);
                prop_assert_eq!(
                    (la.cards_changed, la.cards_removed, la.persons_touched, la.records_written),
                    (lb.cards_changed, lb.cards_removed, lb.persons_touched, lb.records_written)
                );
                prop_assert_eq!(answers(&cards), answers(&whole));
                // And the lines a full build names (X1/X3 reasons aside, see
                // `sorted_rejects`).
                let full_dir = tmp.path().join(format!("f{day}"));
                let full = run(&config(&snap, &full_dir, Reuse::Nothing)).unwrap();
                prop_assert_eq!(
                    sorted_rejects(&a.generation_dir),
                    sorted_rejects(&full.generation_dir)
                );
            }
        }
    }
}
