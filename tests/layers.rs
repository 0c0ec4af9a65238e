//! Change generations (layers) end to end: a build whose only new inputs are change files
//! writes one layer file and the changed cards' delta segments and shares the rest of its
//! parent by hard link; the server's reader stacks the layers; rollback returns to the
//! parent; `--fold` folds; and a crafted layer file is refused with a typed error, never
//! a panic.

mod delivery_support;

use delivery_support::*;
use shikaku::domain::{Date, PersonKey};
use shikaku::format::{xxh3, LAYERS_DIR, SECTION_ENTRY_BYTES, SEGMENTS_DIR};
use shikaku::generations::{Store, INDEX_FILE};
use shikaku::index::{MappedIndex, VerifiedSegments};
use shikaku::nightly::run::{run, BuildConfig, Reuse};
use shikaku::nightly::{GenerationKind, Report};
use shikaku::query::answer::answer;
use shikaku::query::Query;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn member(insurer: &str, number: u32, p: u32, qual: &str, disq: &str) -> String {
    format!(
        "{insurer},12,{number},00,{},山田 太郎,ヤマダ タロウ,1,1980-01-23,1,{qual},{disq},,30,",
        person(p)
    )
}

fn write_rows(path: &Path, header: &str, rows: &[String]) {
    write(path, &format!("{header}\n{}\n", rows.join("\n")));
}

/// Two insurers: kyosai cards 1–3 (persons 1–3), kumiai card 5 (person 1 again, lost).
fn base_delivery(snap: &Path) {
    write_insurers(snap);
    write_rows(
        &snap.join(KYOSAI).join("20261101.csv"),
        HEADER,
        &[
            member(KYOSAI, 1, 1, "2015-04-01", ""),
            member(KYOSAI, 2, 2, "2010-04-01", ""),
            member(KYOSAI, 3, 3, "2020-04-01", ""),
        ],
    );
    write_rows(
        &snap.join(KUMIAI).join("20261101.csv"),
        HEADER,
        &[member(KUMIAI, 5, 1, "2001-04-01", "2015-04-01")],
    );
}

fn change_file(snap: &Path, insurer: &str, name: &str, rows: &[String]) {
    write_rows(
        &snap
            .join(insurer)
            .join("changes")
            .join(format!("{name}.csv")),
        &format!("{HEADER},change"),
        rows,
    );
}

fn validity(answer: &str) -> &str {
    let at = answer.find("\"validity\":").expect("validity") + "\"validity\":".len();
    &answer[at..at + 1]
}

fn inode(p: &Path) -> (u64, u64) {
    let m = fs::metadata(p).unwrap();
    (m.dev(), m.ino())
}

fn report_of(dir: &Path) -> Report {
    shikaku::nightly::report_files::read_whole_report(dir).unwrap()
}

/// A base, then a change file of kyosai (card 2 lost, card 4 added for person 1, card 3
/// deleted): one layer; the main file and kumiai's segment are the parent's inodes.
fn layered(tmp: &Path) -> (PathBuf, PathBuf, String, String) {
    let (snap, data, base) = based(tmp);
    change_file(
        &snap,
        KYOSAI,
        "20261110-090000",
        &[
            format!("{KYOSAI},12,2,00,,,,,,,2010-04-01,2026-11-10,,,,lose"),
            format!("{},add", member(KYOSAI, 4, 1, "2026-11-10", "")),
            format!("{KYOSAI},12,3,00,,,,,,,2020-04-01,,,,,delete"),
        ],
    );
    let layer = run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
    (snap, data, base, layer.generation)
}

/// The base delivery built: (snapshots, data, the base generation).
fn based(tmp: &Path) -> (PathBuf, PathBuf, String) {
    let (snap, data) = (tmp.join("s"), tmp.join("d"));
    base_delivery(&snap);
    let base = run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
    (snap, data, base.generation)
}

#[test]
fn a_layer_generation_shares_its_parent_and_writes_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, data, base, layer) = layered(tmp.path());
    let store = Store::new(&data);
    let (b, l) = (store.generation_dir(&base), store.generation_dir(&layer));
    let report = report_of(&l);
    assert_eq!(report.generation_kind, GenerationKind::Layer);
    assert_eq!(report.parent.as_deref(), Some(base.as_str()));
    assert_eq!(report.layer_count, 1);
    let own = report.layer.expect("a layer report");
    assert_eq!(own.insurers_touched, [KYOSAI]);
    assert_eq!((own.cards_changed, own.cards_removed), (2, 1));
    assert_eq!(own.change_files.len(), 1);
    let c = &own.change_files[0];
    assert_eq!((c.rows_read, c.rows_applied, c.rows_rejected), (3, 3, 0));
    // No main file written, no unchanged segment: the parent's inodes.
    assert_eq!(inode(&b.join(INDEX_FILE)), inode(&l.join(INDEX_FILE)));
    for e in fs::read_dir(b.join(SEGMENTS_DIR)).unwrap() {
        let e = e.unwrap();
        assert_eq!(
            inode(&e.path()),
            inode(&l.join(SEGMENTS_DIR).join(e.file_name()))
        );
    }
    let new_segments = fs::read_dir(l.join(SEGMENTS_DIR)).unwrap().count()
        - fs::read_dir(b.join(SEGMENTS_DIR)).unwrap().count();
    assert_eq!(new_segments, 1, "one delta segment");
    assert_eq!(fs::read_dir(l.join(LAYERS_DIR)).unwrap().count(), 1);
    // Served under its own id, and answering from the layer.
    let index = store.open_named(&layer, PersonKey::demo()).unwrap();
    index.verify().unwrap();
    assert_eq!(index.layer_count(), 1);
    let answers = |data: &Path| {
        [
            card(KYOSAI, 1),
            card(KYOSAI, 2),
            card(KYOSAI, 3),
            card(KYOSAI, 4),
            card(KUMIAI, 5),
            person_q(1),
            person_q(2),
            person_q(3),
        ]
        .iter()
        .map(|q| validity(&ask(data, q)).to_owned())
        .collect::<Vec<_>>()
    };
    // Card 2 lost (invalid), 3 deleted (not found), 4 added; person 1 has cards 1 and 4
    // covering (several), person 2 lost card 2, person 3 has none left (not found).
    let layered = answers(&data);
    assert_eq!(
        layered,
        ["1", "2", "4", "1", "3", "5", "2", "4"].map(String::from)
    );
    // Rollback returns to the parent exactly.
    store.rollback(None, PersonKey::demo()).unwrap();
    assert_eq!(store.live().unwrap(), base);
    assert_eq!(answers(&data)[2], "1", "card 3 is back");
}

/// A process that verified the base verifies of the layer generation only what is new:
/// its layer and delta segment, not the main file both share by hard link; a copy of the
/// main file (another inode) is verified again.
#[test]
fn a_swap_to_a_layer_verifies_only_what_is_new() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, data, base, layer) = layered(tmp.path());
    let store = Store::new(&data);
    let known = VerifiedSegments::default();
    let open = |id: &str| store.open_named(id, PersonKey::demo()).unwrap();
    let first = open(&base).verify_new(&known).unwrap();
    assert!(!first.main_known);
    let swap = open(&layer).verify_new(&known).unwrap();
    let main_bytes = fs::metadata(store.generation_dir(&base).join(INDEX_FILE))
        .unwrap()
        .len();
    assert!(swap.main_known, "the main file is the one verified");
    assert_eq!((swap.segments_verified, swap.segments_known), (1, 2));
    assert!(swap.bytes_verified < main_bytes, "{swap:?}");
    // The same bytes under another inode are not known.
    let copy = tmp.path().join("copy");
    fs::create_dir(&copy).unwrap();
    for name in [INDEX_FILE, SEGMENTS_DIR] {
        let from = store.generation_dir(&base).join(name);
        std::process::Command::new("cp")
            .args(["-r", from.to_str().unwrap(), copy.to_str().unwrap()])
            .status()
            .unwrap();
    }
    let copied = MappedIndex::open_file(&copy.join(INDEX_FILE), PersonKey::demo()).unwrap();
    let again = copied.verify_new(&known).unwrap();
    assert!(!again.main_known);
    assert_eq!(again.segments_verified, 2);
}

/// Every card and person of the delivery, answered from `index`.
fn answers(index: &MappedIndex) -> Vec<String> {
    let queries = (1..=6)
        .map(|c| card(if c >= 5 { KUMIAI } else { KYOSAI }, c))
        .chain((1..=3).map(person_q));
    queries
        .map(|q| {
            let mut out = Vec::new();
            answer(index, &q, Date::parse(BUILT_ON).unwrap(), &mut out);
            String::from_utf8(out).unwrap()
        })
        .collect()
}

/// A child generation opened from its parent (the layers folded so far cloned, only the new
/// one read) is the generation a fresh open makes; from anything but an ancestor, the open
/// is a fresh one.
#[test]
fn a_child_opened_from_its_parent_is_what_a_fresh_open_makes() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, base, first) = layered(tmp.path());
    let store = Store::new(&data);
    let key = PersonKey::demo;
    let (base_index, parent) = (
        store.open_named(&base, key()).unwrap(),
        store.open_named(&first, key()).unwrap(),
    );
    let second = second_layer(&snap, &data).generation;
    let fresh = store.open_named(&second, key()).unwrap();
    assert_eq!(fresh.layers_read(), 2);
    let check = |parent: &MappedIndex, read: usize| {
        let child = store
            .open_named_after(&second, key(), Some(parent))
            .unwrap();
        assert_eq!(child.layers_read(), read);
        assert_eq!(child.generation(), fresh.generation());
        assert_eq!(child.layer_count(), fresh.layer_count());
        assert_eq!(child.segment_count(), fresh.segment_count());
        assert_eq!(answers(&child), answers(&fresh));
        child.verify().unwrap();
    };
    check(&parent, 1);
    check(&base_index, 2);
    check(&fresh, 0);
    // A parent the caller is done with becomes the child.
    let moved = store.open_named(&first, key()).unwrap();
    let child = store.open_named_from(&second, key(), moved).unwrap();
    assert_eq!(child.layers_read(), 1);
    assert_eq!(answers(&child), answers(&fresh));
    // Not an ancestor: the child of the first layer is no parent of the base.
    let back = store.open_named_after(&base, key(), Some(&parent)).unwrap();
    assert_eq!((back.layer_count(), back.layers_read()), (0, 0));
    assert_eq!(answers(&back), answers(&base_index));
    // A parent whose layer file is not the one on disk (another inode, same name): fresh.
    let layer_dir = store.generation_dir(&second).join(LAYERS_DIR);
    let lowest = fs::read_dir(&layer_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let bytes = fs::read(&lowest).unwrap();
    fs::remove_file(&lowest).unwrap();
    fs::write(&lowest, bytes).unwrap();
    check(&parent, 2);
}

#[test]
fn layers_stack_then_fold_into_a_base() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, _, first) = layered(tmp.path());
    let report = second_layer(&snap, &data);
    assert_eq!(report.layer_count, 2);
    assert_eq!(report.parent.as_deref(), Some(first.as_str()));
    let before: Vec<String> = (1..=6)
        .map(|c| ask(&data, &card(if c >= 5 { KUMIAI } else { KYOSAI }, c)))
        .chain((1..=3).map(|p| ask(&data, &person_q(p))))
        .collect();
    let folded = run(&config(&snap, &data, Reuse::Fold)).unwrap();
    assert_eq!(
        report_of(&folded.generation_dir).generation_kind,
        GenerationKind::Base
    );
    assert!(!folded.generation_dir.join(LAYERS_DIR).exists());
    let after: Vec<String> = (1..=6)
        .map(|c| ask(&data, &card(if c >= 5 { KUMIAI } else { KYOSAI }, c)))
        .chain((1..=3).map(|p| ask(&data, &person_q(p))))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_layers_reports_hold_its_own_part_and_read_back_whole() {
    use shikaku::nightly::report_files::{read_whole, REPORTS_DIR};
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, base, first) = layered(tmp.path());
    second_layer(&snap, &data);
    let store = Store::new(&data);
    let dir = store.generation_dir(&store.live().unwrap());
    // The whole view: the one the build kept (taken from this process), then read from disk.
    let (kept, read) = (read_whole(&dir).unwrap(), read_whole(&dir).unwrap());
    assert_eq!(
        serde_json::to_value(&kept.report).unwrap(),
        serde_json::to_value(&read.report).unwrap()
    );
    assert_eq!(kept.lines, read.lines);
    let whole = read.report.layer.unwrap();
    assert_eq!(whole.applied.len(), 2, "{:?}", whole.applied);
    assert!(whole.applied[KUMIAI][0].0.ends_with("20261111-090000.csv"));
    assert!(whole.dropped.is_none());
    assert_eq!(read.report.insurers.len(), 2, "the base's insurers");
    // On disk, the layer's own part: no insurers, only the file it applied.
    let own: Report = serde_json::from_slice(&fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert!(own.insurers.is_empty());
    let layer = own.layer.unwrap();
    assert_eq!(layer.applied.keys().collect::<Vec<_>>(), [KUMIAI]);
    assert_eq!(layer.dropped.unwrap().insurers.len(), 1);
    // The base's report and the first layer's own are shared by hard link, not copied.
    let reports = dir.join(REPORTS_DIR);
    let b = store.generation_dir(&base);
    assert_eq!(
        inode(&reports.join("base.json")),
        inode(&b.join("report.json"))
    );
    assert_eq!(
        inode(&reports.join("layer-0001.json")),
        inode(&store.generation_dir(&first).join("report.json"))
    );
    assert_eq!(
        inode(&reports.join("layer-0002.json")),
        inode(&dir.join("report.json"))
    );
    let page = fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains("reports/base.html"), "{page}");
}

#[test]
fn a_layer_stacks_on_an_older_builds_whole_report() {
    use shikaku::nightly::report_files::{read_whole, whole_rejects, REPORTS_DIR};
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, _, first) = layered(tmp.path());
    let store = Store::new(&data);
    let dir = store.generation_dir(&first);
    // The first layer as an older build wrote it: its whole view in report.json and
    // rejects.csv, no reports/.
    let rejects = whole_rejects(&dir).unwrap();
    let whole = read_whole(&dir).unwrap();
    fs::remove_dir_all(dir.join(REPORTS_DIR)).unwrap();
    for name in ["report.json", "rejects.csv"] {
        fs::remove_file(dir.join(name)).unwrap();
    }
    fs::write(
        dir.join("report.json"),
        serde_json::to_vec(&whole.report).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("rejects.csv"), &rejects).unwrap();
    second_layer(&snap, &data);
    let live = store.generation_dir(&store.live().unwrap());
    assert_eq!(
        inode(&live.join(REPORTS_DIR).join("base.json")),
        inode(&dir.join("report.json"))
    );
    let now = read_whole(&live).unwrap();
    assert_eq!(now.report.layer_count, 2);
    assert_eq!(now.report.layer.unwrap().applied.len(), 2);
    // The first layer's findings but kumiai's (taken back), and the second's own.
    let kept = whole.lines.iter().filter(|l| !l.file.starts_with(KUMIAI));
    assert_eq!(now.lines.len(), kept.count() + count_lines(&live) - 1);
}

/// Data lines of a generation's own `rejects.csv`.
fn count_lines(dir: &Path) -> usize {
    fs::read_to_string(dir.join("rejects.csv"))
        .unwrap()
        .lines()
        .count()
}

/// Kumiai's change file adding card 6 (person 2), built: the report of the generation.
fn second_layer(snap: &Path, data: &Path) -> Report {
    change_file(
        snap,
        KUMIAI,
        "20261111-090000",
        &[format!("{},add", member(KUMIAI, 6, 2, "2026-11-11", ""))],
    );
    let second = run(&config(snap, data, Reuse::UnchangedInsurers)).unwrap();
    report_of(&second.generation_dir)
}

/// Recomputes a layer file's section checksums, its section table's and its header's, so a
/// changed byte meets the reader's structural checks, not a checksum.
fn reseal(b: &mut [u8]) {
    let table = u64::from_le_bytes(b[96..104].try_into().unwrap()) as usize;
    let count = u32::from_le_bytes(b[88..92].try_into().unwrap()) as usize;
    if table + count * SECTION_ENTRY_BYTES != b.len() {
        return;
    }
    for i in 0..count {
        let e = table + i * SECTION_ENTRY_BYTES;
        let off = u64::from_le_bytes(b[e + 8..e + 16].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(b[e + 16..e + 24].try_into().unwrap()) as usize;
        if let Some(s) = off.checked_add(len).filter(|&end| end <= table) {
            let sum = xxh3(&b[off..s]);
            b[e + 24..e + 32].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let sum = xxh3(&b[table..]);
    b[104..112].copy_from_slice(&sum.to_le_bytes());
    let sum = xxh3(&b[..120]);
    b[120..128].copy_from_slice(&sum.to_le_bytes());
}

/// Every byte of a layer file set to hostile values, checksums recomputed: opening gives a
/// typed error or an index; an index answers every query and verifies or fails, never
/// panics. The unchanged file opens and verifies.
#[test]
fn a_crafted_layer_is_refused_never_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, data, _, layer) = layered(tmp.path());
    let dir = Store::new(&data).generation_dir(&layer);
    let layer_file = fs::read_dir(dir.join(LAYERS_DIR))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = fs::read(&layer_file).unwrap();
    // A private copy of the generation whose layer file the test rewrites.
    let copy = tmp.path().join("copy");
    fs::create_dir_all(copy.join(SEGMENTS_DIR)).unwrap();
    fs::create_dir_all(copy.join(LAYERS_DIR)).unwrap();
    fs::copy(dir.join(INDEX_FILE), copy.join(INDEX_FILE)).unwrap();
    for e in fs::read_dir(dir.join(SEGMENTS_DIR)).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), copy.join(SEGMENTS_DIR).join(e.file_name())).unwrap();
    }
    let target = copy.join(LAYERS_DIR).join(layer_file.file_name().unwrap());
    let open = |bytes: &[u8]| {
        fs::write(&target, bytes).unwrap();
        MappedIndex::open_file(&copy.join(INDEX_FILE), PersonKey::demo())
    };
    let index = open(&good).expect("the layer as written opens");
    index.verify().expect("and verifies");
    drop(index);
    let queries: Vec<Query> = (1..=6)
        .map(|c| card(if c >= 5 { KUMIAI } else { KYOSAI }, c))
        .chain((1..=3).map(person_q))
        .collect();
    let (mut refused, mut opened) = (0, 0);
    for at in 0..good.len() {
        for value in [0x00u8, 0xFF, good[at].wrapping_add(1)] {
            if value == good[at] {
                continue;
            }
            let mut bad = good.clone();
            bad[at] = value;
            if at >= 128 {
                reseal(&mut bad);
            }
            match open(&bad) {
                Err(_) => refused += 1,
                Ok(index) => {
                    opened += 1;
                    for q in &queries {
                        let mut out = Vec::new();
                        answer(&index, q, Date::parse(BUILT_ON).unwrap(), &mut out);
                    }
                    let _ = index.verify();
                }
            }
        }
    }
    assert!(
        refused > 0 && opened > 0,
        "refused {refused}, opened {opened}"
    );
    // A layer on another base, or out of its place, is refused by its link.
    fs::write(&target, &good).unwrap();
    let renamed = copy.join(LAYERS_DIR).join("0002-0a1b2c3d4e5f6a7b.shl");
    fs::rename(&target, &renamed).unwrap();
    fs::copy(
        &renamed,
        copy.join(LAYERS_DIR).join("0001-0a1b2c3d4e5f6a7b.shl"),
    )
    .unwrap();
    let Err(err) = MappedIndex::open_file(&copy.join(INDEX_FILE), PersonKey::demo()) else {
        panic!("a layer out of its place opened");
    };
    assert!(err.to_string().contains("does not stack it"), "{err}");
}

/// A layer built with a signing key is signed, its manifest taking the parent's entries for
/// the files it shares; a server trusting the key checks it as signed, and one that verified
/// the parent checks only the layer's new files (not the main file again).
#[test]
fn a_signed_layer_is_checked_as_signed_and_only_what_is_new() {
    use shikaku::generations::manifest::Manifest;
    use shikaku::index::VerifiedSegments;
    use shikaku::signing::{new_key_file, verify_generation, Trust, TrustedKeys};
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let key_path = tmp.path().join("signing.key");
    let public = new_key_file(&key_path).unwrap();
    let signed = |reuse| signed_config(&snap, &data, &key_path, reuse);
    base_delivery(&snap);
    let base = run(&signed(Reuse::UnchangedInsurers)).unwrap();
    change_file(
        &snap,
        KYOSAI,
        "20261110-090000",
        &[format!(
            "{KYOSAI},12,2,00,,,,,,,2010-04-01,2026-11-10,,,,lose"
        )],
    );
    let layer = run(&signed(Reuse::UnchangedInsurers)).unwrap();
    assert_eq!(
        report_of(&layer.generation_dir).generation_kind,
        GenerationKind::Layer
    );
    let manifest = |dir: &Path| -> Manifest {
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap()
    };
    let (b, l) = (
        manifest(&base.generation_dir),
        manifest(&layer.generation_dir),
    );
    let main = |m: &Manifest| {
        m.files
            .iter()
            .find(|f| f.path == INDEX_FILE)
            .unwrap()
            .clone()
    };
    assert_eq!(main(&b), main(&l));
    assert!(l.files.iter().any(|f| f.path.starts_with(LAYERS_DIR)));
    assert_eq!(l.generation_kind.as_deref(), Some("layer"));
    let trusted = TrustedKeys::of([public]);
    let known = VerifiedSegments::default();
    let open = |id: &str| Store::new(&data).open_named(id, PersonKey::demo()).unwrap();
    let (trust, first) = verify_generation(&open(&base.generation), &trusted, &known).unwrap();
    assert!(matches!(trust, Trust::Signed(_)));
    let (trust, second) = verify_generation(&open(&layer.generation), &trusted, &known).unwrap();
    assert!(matches!(trust, Trust::Signed(_)));
    let main_bytes = fs::metadata(layer.generation_dir.join(INDEX_FILE))
        .unwrap()
        .len();
    assert!(first.bytes_verified >= main_bytes);
    assert_eq!(second.segments_verified, 1, "the delta segment only");
    assert!(second.bytes_verified < main_bytes, "{second:?}");
    // Unsigned, the same: the main file a process verified is not verified again.
    let deep = VerifiedSegments::default();
    let base_index = open(&base.generation);
    assert!(base_index.verify_new(&deep).unwrap().bytes_verified >= main_bytes);
    let again = open(&layer.generation).verify_new(&deep).unwrap();
    assert!(again.bytes_verified < main_bytes, "{again:?}");
}

/// The delivery guard holds for change generations: a change file that loses more than
/// `--max-drop-percent` of an insurer's members covered today refuses the generation (kept
/// under `refused/`, the live one unchanged) unless `--accept` names the insurer.
#[test]
fn the_guard_refuses_a_change_file_that_loses_most_of_an_insurer() {
    use shikaku::nightly::run::BuildError;
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, base) = based(tmp.path());
    change_file(
        &snap,
        KYOSAI,
        "20261110-090000",
        &[
            format!("{KYOSAI},12,1,00,,,,,,,2015-04-01,2026-11-10,,,,lose"),
            format!("{KYOSAI},12,2,00,,,,,,,2010-04-01,2026-11-10,,,,lose"),
        ],
    );
    let guarded = |accept: Vec<&str>| BuildConfig {
        max_drop_percent: 50.0,
        accept: accept
            .into_iter()
            .map(|a| shikaku::domain::InsurerNumber::parse(a).unwrap())
            .collect(),
        ..config(&snap, &data, Reuse::UnchangedInsurers)
    };
    match run(&guarded(Vec::new())) {
        Err(BuildError::Refused { reasons, .. }) => {
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            assert!(reasons[0].contains(KYOSAI) && reasons[0].contains("from 3 to 1"));
        }
        other => panic!("not refused: {:?}", other.map(|o| o.generation)),
    }
    let store = Store::new(&data);
    assert_eq!(store.live().unwrap(), base);
    assert_eq!(fs::read_dir(store.refused_dir()).unwrap().count(), 1);
    let accepted = run(&guarded(vec![KYOSAI])).unwrap();
    let report = report_of(&accepted.generation_dir);
    assert_eq!(report.generation_kind, GenerationKind::Layer);
    let layer = report.layer.expect("a layer report");
    assert_eq!(layer.covered_today.get(KYOSAI), Some(&1));
    // The next layer compares with the layered count (1), not the base's (3): adding a
    // member back passes the guard.
    change_file(
        &snap,
        KYOSAI,
        "20261111-090000",
        &[format!("{},add", member(KYOSAI, 7, 7, "2026-11-11", ""))],
    );
    let next = run(&guarded(Vec::new())).unwrap();
    let layer = report_of(&next.generation_dir)
        .layer
        .expect("a layer report");
    assert_eq!(layer.covered_today.get(KYOSAI), Some(&2));
}

/// The plan does not read the change files the live view applied: a file found under its
/// name with the size and modification time recorded is taken as read (here its bytes were
/// changed behind the build's back, time and size kept, and the next layer is still built on
/// the recorded hash); a file whose time moved is read again, and a changed content then
/// makes a base build.
#[test]
fn applied_change_files_are_known_by_name_size_and_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data, _, first) = layered(tmp.path());
    let applied = snap
        .join(KYOSAI)
        .join("changes")
        .join("20261110-090000.csv");
    let recorded = report_of(&Store::new(&data).generation_dir(&first))
        .layer
        .unwrap()
        .applied[KYOSAI]
        .clone();
    let mtime = fs::metadata(&applied).unwrap().modified().unwrap();
    let mut bytes = fs::read(&applied).unwrap();
    let at = bytes.len() - 2;
    bytes[at] = if bytes[at] == b'e' { b'E' } else { b'e' };
    fs::write(&applied, &bytes).unwrap();
    let set_time = |t| {
        fs::File::options()
            .write(true)
            .open(&applied)
            .unwrap()
            .set_modified(t)
            .unwrap()
    };
    set_time(mtime);
    let report = second_layer(&snap, &data);
    assert_eq!(report.generation_kind, GenerationKind::Layer);
    assert_eq!(report.layer.unwrap().applied[KYOSAI], recorded);
    // Its time moved: read, hashed, found changed: the state is rebuilt from the files.
    set_time(mtime + std::time::Duration::from_secs(1));
    let third = run(&config(&snap, &data, Reuse::UnchangedInsurers)).unwrap();
    assert_eq!(
        report_of(&third.generation_dir).generation_kind,
        GenerationKind::Base
    );
}
