//! Compaction of change layers (`shikaku build --compact`, and by itself at 32 layers): the
//! live generation's layers merged into one on the same base, from the index alone. Every
//! answer and every finding of the view stay what they were, the base's files are shared,
//! and change generations stacked on the merged layer are what they would have been on the
//! layers it merged.

mod delivery_support;

use delivery_support::*;
use shikaku::domain::PersonKey;
use shikaku::format::LAYERS_DIR;
use shikaku::generations::{Store, INDEX_FILE};
use shikaku::nightly::run::{run, BuildError, Reuse};
use shikaku::nightly::{report_files, Report};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn member(insurer: &str, number: u32, p: u32, qual: &str) -> String {
    format!(
        "{insurer},12,{number},00,{},山田 太郎,ヤマダ タロウ,1,1980-01-23,1,{qual},,,30,",
        person(p)
    )
}

fn rows(header: &str, rows: &[String]) -> String {
    format!("{header}\n{}\n", rows.join("\n"))
}

/// Kyosai cards 1–4 (persons 1–4, card 4 twice: a duplicate row), kumiai card 5 (person 1).
fn base_delivery(snap: &Path) {
    write_insurers(snap);
    let kyosai: Vec<String> = [1, 2, 3, 4, 4]
        .iter()
        .map(|&c| member(KYOSAI, c, c, "2015-04-01"))
        .collect();
    write(
        &snap.join(KYOSAI).join("20261101.csv"),
        &rows(HEADER, &kyosai),
    );
    let kumiai = [member(KUMIAI, 5, 1, "2001-04-01")];
    write(
        &snap.join(KUMIAI).join("20261101.csv"),
        &rows(HEADER, &kumiai),
    );
}

fn change_file(snap: &Path, insurer: &str, name: &str, lines: &[String]) {
    let path = snap
        .join(insurer)
        .join("changes")
        .join(format!("{name}.csv"));
    write(&path, &rows(&format!("{HEADER},change"), lines));
}

/// The change files of day `day` (one per build).
fn day_changes(snap: &Path, day: u32) {
    let name = format!("202611{:02}-090000", 10 + day);
    match day {
        0 => change_file(
            snap,
            KYOSAI,
            &name,
            &[
                keyed("lose", KYOSAI, 2, "2015-04-01", "2026-11-10"),
                format!("{},add", member(KYOSAI, 6, 1, "2026-11-10")),
                keyed("delete", KYOSAI, 3, "2015-04-01", ""),
            ],
        ),
        1 => change_file(
            snap,
            KUMIAI,
            &name,
            &[format!("{},add", member(KUMIAI, 7, 2, "2026-11-11"))],
        ),
        2 => change_file(
            snap,
            KYOSAI,
            &name,
            &[
                format!("{},update", member(KYOSAI, 6, 1, "2026-11-10")).replace(",30,", ",20,"),
                // A row no rule lets in: a finding of the layer.
                format!("{},add", member(KYOSAI, 8, 3, "2026-13-01")),
                format!("{},add", member(KYOSAI, 9, 4, "2026-11-12")),
            ],
        ),
        _ => change_file(
            snap,
            KYOSAI,
            &name,
            &[
                keyed("delete", KYOSAI, 1, "2015-04-01", ""),
                format!("{},add", member(KYOSAI, 10, 2, "2026-11-13")),
            ],
        ),
    }
}

/// Every card and person of the delivery, answered from the live generation of `data`.
fn answers(data: &Path) -> Vec<String> {
    answers_of(&Store::new(data).open_current(PersonKey::demo()).unwrap())
}

/// Every card and person of the delivery, answered from `index` (its id left out).
fn answers_of(index: &shikaku::index::MappedIndex) -> Vec<String> {
    let cards = (1..=10).map(|c| card(if c == 5 || c == 7 { KUMIAI } else { KYOSAI }, c));
    let on = shikaku::domain::Date::parse(BUILT_ON).unwrap();
    cards
        .chain((1..=4).map(person_q))
        .map(|q| {
            let mut out = Vec::new();
            shikaku::query::answer::answer(index, &q, on, &mut out);
            String::from_utf8(out)
                .unwrap()
                .replace(index.generation(), "")
        })
        .collect()
}

/// The live generation's findings, whole, sorted (a merged view need not list them in the
/// same order).
fn findings(data: &Path) -> Vec<String> {
    let store = Store::new(data);
    let dir = store.generation_dir(&store.live().unwrap());
    let mut lines: Vec<String> = whole_rejects(&dir).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn live_report(data: &Path) -> Report {
    let store = Store::new(data);
    let dir = store.generation_dir(&store.live().unwrap());
    shikaku::nightly::report_files::read_whole_report(&dir).unwrap()
}

fn layer_files(dir: &Path) -> usize {
    fs::read_dir(dir.join(LAYERS_DIR)).unwrap().count()
}

#[test]
fn layers_merge_into_one_that_answers_and_reports_as_they_did() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, plain) = (
        tmp.path().join("s"),
        tmp.path().join("d"),
        tmp.path().join("p"),
    );
    base_delivery(&snap);
    for d in [&data, &plain] {
        run(&config(&snap, d, Reuse::UnchangedInsurers)).unwrap();
    }
    for day in 0..3 {
        day_changes(&snap, day);
        for d in [&data, &plain] {
            run(&config(&snap, d, Reuse::UnchangedInsurers)).unwrap();
        }
    }
    let store = Store::new(&data);
    let before = store.live().unwrap();
    let (answers_before, findings_before) = (answers(&data), findings(&data));
    assert!(
        findings_before.iter().any(|l| l.contains("DUP")),
        "{findings_before:?}"
    );
    assert!(
        findings_before.iter().any(|l| l.contains("changes/")),
        "{findings_before:?}"
    );

    let layered = store.open_named(&before, PersonKey::demo()).unwrap();
    let merged = run(&config(&snap, &data, Reuse::Compact)).unwrap();
    let report = live_report(&data);
    let layer = report.layer.as_ref().unwrap();
    assert_eq!((report.layer_count, layer.merged_layers), (1, 3));
    // The merged layers' change files, with their rows, stay in the merge's report.
    let rejected: u64 = layer.change_files.iter().map(|c| c.rows_rejected).sum();
    assert_eq!((layer.change_files.len(), rejected), (3, 1));
    assert_eq!(report.parent.as_deref(), Some(before.as_str()));
    assert_eq!(layer_files(&merged.generation_dir), 1);
    let page = fs::read_to_string(merged.generation_dir.join("report.html")).unwrap();
    assert!(page.contains("merged the 3 layers"), "{page}");
    assert_eq!(answers(&data), answers_before);
    assert_eq!(findings(&data), findings_before);
    merged.index.verify().unwrap();
    // Opened by a process holding the layered generation (a server swapping to it), the
    // merge starts from the base's tables and reads its one layer.
    let swapped = store
        .open_named_after(&merged.generation, PersonKey::demo(), Some(&layered))
        .unwrap();
    assert_eq!((swapped.layer_count(), swapped.layers_read()), (1, 1));
    assert_eq!(answers_of(&swapped), answers_before);
    swapped.verify().unwrap();
    // The base's main file is shared, not written again.
    let base_dir = store.generation_dir(merged.index.base_generation());
    let ino = |p: &Path| fs::metadata(p.join(INDEX_FILE)).unwrap().ino();
    assert_eq!(ino(&merged.generation_dir), ino(&base_dir));
    // Rollback returns to the generation the merge replaced, exactly; the merge comes back.
    assert_eq!(store.rollback(None, PersonKey::demo()).unwrap(), before);
    assert_eq!(answers(&data), answers_before);
    store
        .rollback(Some(&merged.generation), PersonKey::demo())
        .unwrap();
    // A change generation on the merged layer is what it is on the three layers.
    day_changes(&snap, 3);
    for d in [&data, &plain] {
        run(&config(&snap, d, Reuse::UnchangedInsurers)).unwrap();
    }
    assert_eq!(live_report(&data).layer_count, 2);
    assert_eq!(answers(&data), answers(&plain));
    assert_eq!(findings(&data), findings(&plain));
    // Merged again (two layers, one of them a merge), then folded: the same answers.
    run(&config(&snap, &data, Reuse::Compact)).unwrap();
    assert_eq!(answers(&data), answers(&plain));
    assert_eq!(findings(&data), findings(&plain));
    run(&config(&snap, &data, Reuse::Fold)).unwrap();
    assert_eq!(answers(&data), answers(&plain));
}

/// A base, or a single layer (a merge's own, or one change generation), has nothing to
/// compact: refused, the live generation unchanged.
#[test]
fn compacting_fewer_than_two_layers_is_refused_with_nothing_to_compact() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    base_delivery(&snap);
    let refused = |live: &str, layers: usize| {
        let e = run(&config(&snap, &data, Reuse::Compact)).unwrap_err();
        assert!(
            matches!(&e, BuildError::NothingToCompact { generation, layers: n } if generation == live && *n == layers),
            "{e}"
        );
        assert!(e.to_string().contains("--fold"), "{e}");
        assert_eq!(Store::new(&data).live().unwrap(), live);
    };
    let base = run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
    refused(&base.generation, 0);
    day_changes(&snap, 0);
    let one = run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
    refused(&one.generation, 1);
    day_changes(&snap, 1);
    run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
    let merged = run(&config(&snap, &data, Reuse::Compact)).unwrap();
    refused(&merged.generation, 1);
}

/// A change build whose generation stacks 32 layers merges them by itself, after
/// publishing it: the live generation is the merge, with the same answers.
#[test]
fn the_build_merges_by_itself_at_32_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    base_delivery(&snap);
    run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
    let mut layers = Vec::new();
    for n in 0..33u32 {
        let insurer = if n.is_multiple_of(2) { KYOSAI } else { KUMIAI };
        let name = format!("20261110-{:02}{:02}00", 9 + n / 60, n % 60);
        let row = format!("{},add", member(insurer, 100 + n, 1 + n % 4, "2026-11-10"));
        change_file(&snap, insurer, &name, &[row]);
        let out = run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
        layers.push(out.index.layer_count());
        // The 32nd layer is published, then the merge standing in for it, its child: a
        // publisher uploads both, parent first.
        // What the build applied is the change generation's report, whether or not it
        // merged after: its rows, not the merge's.
        assert_eq!(out.report.layer.as_ref().unwrap().change_files.len(), 1);
        match (n, &out.merged) {
            (31, Some(m)) => {
                assert_eq!(m.merged_layers, 32);
                assert_eq!(out.published(), [out.generation.as_str(), &m.generation]);
                assert_eq!(out.live(), m.generation);
                assert_eq!(out.index.generation(), m.generation);
                let merge = report_files::read_whole_report(&m.generation_dir).unwrap();
                assert_eq!(merge.parent.as_ref(), Some(&out.generation));
            }
            (31, None) => panic!("the 32nd layer was not merged"),
            (_, m) => assert!(m.is_none(), "layer {n}: {m:?}"),
        }
    }
    let want: Vec<usize> = (1..=31).chain([1, 2]).collect();
    assert_eq!(layers, want);
    let report = live_report(&data);
    assert_eq!(report.layer.as_ref().unwrap().merged_layers, 0);
    let card_of = |n: u32| card(if n.is_multiple_of(2) { KYOSAI } else { KUMIAI }, 100 + n);
    for n in 0..33 {
        let a = ask(&data, &card_of(n));
        assert!(a.contains("\"validity\":1"), "card {n}: {a}");
    }
}

/// A signed delivery's merge is signed too, its manifest sharing the base's entries: a
/// replica that trusts the key verifies it as signed, and only what the merge wrote.
#[test]
fn a_merge_of_signed_layers_is_signed() {
    use shikaku::index::VerifiedSegments;
    use shikaku::signing::{new_key_file, verify_generation, Trust, TrustedKeys};
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let key_path = tmp.path().join("signing.key");
    let public = new_key_file(&key_path).unwrap();
    let signed = |reuse| signed_config(&snap, &data, &key_path, reuse);
    base_delivery(&snap);
    let base = run(&signed(Reuse::UnchangedInsurers)).unwrap();
    for day in 0..2 {
        day_changes(&snap, day);
        run(&signed(Reuse::UnchangedInsurers)).unwrap();
    }
    let merged = run(&signed(Reuse::Compact)).unwrap();
    let trusted = TrustedKeys::of([public]);
    let known = VerifiedSegments::default();
    let open = |id: &str| Store::new(&data).open_named(id, PersonKey::demo()).unwrap();
    let (trust, _) = verify_generation(&open(&base.generation), &trusted, &known).unwrap();
    assert!(matches!(trust, Trust::Signed(_)));
    let (trust, checked) = verify_generation(&open(&merged.generation), &trusted, &known).unwrap();
    assert!(matches!(trust, Trust::Signed(_)), "{trust:?}");
    let main_bytes = fs::metadata(merged.generation_dir.join(INDEX_FILE))
        .unwrap()
        .len();
    assert!(checked.bytes_verified < main_bytes, "{checked:?}");
}
