//! The change streams against the contract's equivalence (docs/delivery.md "Change files"):
//! a delivery built day by day, as the builder takes each day's change files, answers every
//! query of the workload and checks every receipt exactly as a full build of the generator's
//! materialized snapshots, and as the generator's truth says; every injected change defect is
//! reported under its rule.

use data_gen::{generate, Config, Summary};
use shikaku::claims::output::{FileColumn, RowWriter};
use shikaku::claims::{check_file, parse, Format, Summary as ClaimsSummary};
use shikaku::domain::{Date, PersonKey};
use shikaku::generations::{Store, REJECTS_FILE};
use shikaku::index::MappedIndex;
use shikaku::nightly::report::read_rejects;
use shikaku::nightly::run::{run, BuildConfig, Reuse};
use shikaku::query::{write_answer, CardFields, CardQuery, Lookup, PersonFields, PersonQuery};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// Far from the day the test runs: a build for today applies change files only up to now.
const DATE: &str = "2025-11-24";
const DAYS: u32 = 14;

fn build(snapshots: &Path, data: &Path, on: Date, reuse: Reuse) -> PathBuf {
    run(&BuildConfig {
        snapshots: snapshots.to_path_buf(),
        data: data.to_path_buf(),
        key: PersonKey::demo(),
        built_on: on,
        // Deaths and moves may empty a small insurer of the synthetic nation.
        max_drop_percent: 100.0,
        accept: Vec::new(),
        reuse,
        progress: false,
        signing: None,
    })
    .unwrap()
    .generation_dir
}

fn open(data: &Path) -> MappedIndex {
    Store::new(data).open_current(PersonKey::demo()).unwrap()
}

/// Decodes a delivery file as docs/delivery.md: UTF-8 (BOM optional), else CP932.
fn decode(bytes: &[u8]) -> String {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::SHIFT_JIS.decode(bytes).0.into_owned(),
    }
}

/// Card and person queries for every record a change file names, on the day after the last
/// change and on the record's own qualification and disqualification days: the records the
/// stream touched, which a random workload seldom draws.
fn touched_queries(snap: &Path, today: Date, out: &Path) -> usize {
    let mut w = csv::Writer::from_path(out).unwrap();
    let head = [
        "kind",
        "insurer_number",
        "symbol",
        "number",
        "branch",
        "birthdate",
    ];
    w.write_record(
        head.iter()
            .chain(&["individual_number", "date", "limit_consent", "expected"]),
    )
    .unwrap();
    let mut n = 0;
    for dir in std::fs::read_dir(snap).unwrap() {
        let changes = dir.unwrap().path().join("changes");
        let Ok(files) = std::fs::read_dir(&changes) else {
            continue;
        };
        for file in files {
            let text = decode(&std::fs::read(file.unwrap().path()).unwrap());
            let mut rdr = csv::Reader::from_reader(text.as_bytes());
            let h = rdr.headers().unwrap().clone();
            for rec in rdr.records() {
                let rec = rec.unwrap();
                let get = |k: &str| h.iter().position(|x| x == k).map_or("", |i| &rec[i]);
                let card: Vec<&str> = head[1..].iter().map(|k| get(k)).collect();
                for date in [
                    today.to_string().as_str(),
                    get("qualification_date"),
                    get("disqualification_date"),
                ] {
                    if date.is_empty() {
                        continue;
                    }
                    let mut row = vec!["card"];
                    row.extend(&card);
                    row.extend(["", date, "1", "0"]);
                    w.write_record(&row).unwrap();
                    let ind = get("individual_number");
                    if !ind.is_empty() {
                        w.write_record(["person", "", "", "", "", "", ind, date, "1", "0"])
                            .unwrap();
                    }
                    n += 1;
                }
            }
        }
    }
    w.flush().unwrap();
    n
}

/// Every query's answer JSON (generation left empty, with consent so that the 限度額 category
/// is compared too; `None` for a query that does not parse, as a defect row's fields may not)
/// and its expected validity.
fn answers(index: &MappedIndex, queries: &Path, today: Date) -> Vec<(Option<String>, u8)> {
    let mut rdr = csv::Reader::from_path(queries).unwrap();
    let mut out = Vec::new();
    for rec in rdr.deserialize::<BTreeMap<String, String>>() {
        let rec = rec.unwrap();
        let expected = rec["expected"].parse().unwrap();
        out.push((answer(index, &rec, today), expected));
    }
    out
}

fn answer(index: &MappedIndex, rec: &BTreeMap<String, String>, today: Date) -> Option<String> {
    let get = |k: &str| rec.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let mut json = Vec::new();
    if rec["kind"] == "card" {
        let q = CardQuery::parse(&CardFields {
            insurer_number: get("insurer_number"),
            symbol: get("symbol"),
            number: get("number"),
            branch: get("branch"),
            birthdate: get("birthdate"),
            date: get("date"),
            limit_consent: true,
        })
        .ok()?;
        let date = q.date.unwrap_or(today);
        write_answer(&mut json, &index.card(&q, today), date, "", true);
    } else {
        let fields = PersonFields {
            individual_number: get("individual_number"),
            date: get("date"),
            limit_consent: true,
        };
        let q = PersonQuery::parse(&fields).ok()?;
        let date = q.date.unwrap_or(today);
        write_answer(&mut json, &index.person(&q, today), date, "", true);
    }
    String::from_utf8(json).ok()
}

/// The claims files of `truth.csv`, in its order, with its `receipt,line,verdict,reason,days`.
fn claims_truth(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let truth = std::fs::read_to_string(dir.join("truth.csv")).unwrap();
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in truth.lines().skip(1) {
        let (file, rest) = line.split_once(',').unwrap();
        files
            .entry(file.to_string())
            .or_default()
            .push(rest.to_string());
    }
    files
}

/// Every claims file checked against the index: its rows, file by file.
fn claims_rows(index: &MappedIndex, dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for file in claims_truth(dir).keys() {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let uke = parse(&bytes).unwrap();
        let mut writer = RowWriter::new(Format::Csv, FileColumn::Unnamed);
        let (mut out, mut totals) = (Vec::new(), ClaimsSummary::default());
        check_file(
            index,
            file,
            &uke,
            &mut writer,
            &mut out,
            &mut totals,
            |_, _, _| {},
        );
        rows.extend(String::from_utf8(out).unwrap().lines().map(str::to_string));
    }
    rows
}

fn assert_same(a: &[(Option<String>, u8)], b: &[(Option<String>, u8)], what: &str) {
    assert_eq!(a.len(), b.len());
    let differ: Vec<_> = a.iter().zip(b).filter(|(x, y)| x.0 != y.0).collect();
    assert!(
        differ.is_empty(),
        "{} {what} answers differ: {:#?}",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
}

fn changes_config(out: PathBuf) -> Config {
    let mut cfg = Config::new(10_000, 5, out);
    cfg.date = Date::parse(DATE).unwrap();
    cfg.defect_rate = 0.002;
    cfg.queries = 5_000;
    cfg.claims = 2_000;
    cfg.change_days = DAYS;
    cfg
}

fn generate_with_changes(dir: &Path) -> (Config, Summary) {
    let cfg = changes_config(dir.join("snap"));
    let summary = generate(&cfg).unwrap();
    (cfg, summary)
}

#[test]
fn day_by_day_builds_answer_as_the_materialized_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, summary) = generate_with_changes(dir.path());
    let changes = summary.changes.as_ref().unwrap();
    assert!(changes.files > 0 && changes.rows > 0, "{changes:?}");
    for kind in ["C1", "C2", "C3", "C4", "R1", "R4", "R7", "W1", "W2", "W4"] {
        assert!(changes.defects.contains_key(kind), "no {kind}: {changes:?}");
    }

    let data = dir.path().join("data");
    let first = cfg.date;
    for day in 0..DAYS {
        build(
            &cfg.out,
            &data,
            first.add_days(day as i32),
            Reuse::UnchangedInsurers,
        );
    }
    let last = first.add_days(DAYS as i32 - 1);
    let truth_data = dir.path().join("truth");
    build(
        cfg.materialized_out.as_ref().unwrap(),
        &truth_data,
        last,
        Reuse::Nothing,
    );
    let (built, truth) = (open(&data), open(&truth_data));

    let today = last.add_days(1);
    let queries = cfg.out.join("queries.csv");
    let (a, b) = (
        answers(&built, &queries, today),
        answers(&truth, &queries, today),
    );
    assert_eq!(a.len(), 5_000);
    assert_same(&a, &b, "workload");
    let wrong: Vec<_> = a
        .iter()
        .filter(|(json, want)| {
            let prefix = format!("{{\"validity\":{want}");
            !json.as_ref().is_some_and(|j| j.starts_with(&prefix))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} answers differ from the truth: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );

    let touched = dir.path().join("touched.csv");
    assert!(touched_queries(&cfg.out, today, &touched) > 50);
    let (a, b) = (
        answers(&built, &touched, today),
        answers(&truth, &touched, today),
    );
    assert!(a.iter().filter(|x| x.0.is_some()).count() > 50);
    assert_same(&a, &b, "touched records'");

    let (ca, cb) = (
        claims_rows(&built, &cfg.claims_out),
        claims_rows(&truth, &cfg.claims_out),
    );
    assert_eq!(ca.len(), 2_000);
    assert_eq!(ca, cb, "claims verdicts differ between the two generations");
    // receipt,line,verdict,reason,days as the truth says, for the state after the changes.
    let want: Vec<String> = claims_truth(&cfg.claims_out)
        .into_values()
        .flatten()
        .collect();
    let got: Vec<String> = ca
        .iter()
        .map(|row| row.splitn(6, ',').take(5).collect::<Vec<_>>().join(","))
        .collect();
    let wrong: Vec<_> = got.iter().zip(&want).filter(|(g, w)| g != w).collect();
    assert!(
        wrong.is_empty(),
        "{} receipts differ from the truth: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[test]
fn every_injected_change_defect_is_reported_under_its_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, summary) = generate_with_changes(dir.path());
    let last = cfg.date.add_days(DAYS as i32 - 1);
    let generation = build(&cfg.out, &dir.path().join("data"), last, Reuse::Nothing);
    let rejects = read_rejects(&std::fs::read(generation.join(REJECTS_FILE)).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.out.join("manifest.json")).unwrap()).unwrap();
    let mut found = BTreeMap::<String, u64>::new();
    for e in manifest["defects"].as_array().unwrap() {
        let file = e["file"].as_str().unwrap();
        if !file.contains("/changes/") {
            continue;
        }
        let (line, rule) = (e["line"].as_u64().unwrap(), e["rule"].as_str().unwrap());
        let hit = rejects
            .iter()
            .any(|r| r.file == file && r.line == line && r.rule == rule);
        assert!(hit, "{rule} at {file}:{line} not reported");
        *found.entry(rule.to_string()).or_default() += 1;
    }
    let want: BTreeMap<String, u64> = summary.changes.unwrap().defects;
    assert_eq!(found, want);
}

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn without_the_materialized_snapshots_the_rest_is_byte_for_byte_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (with, summary) = generate_with_changes(dir.path());
    let mut without = changes_config(dir.path().join("snap-alone"));
    without.claims_out = dir.path().join("claims-alone");
    without.materialized_out = None;
    let alone = generate(&without).unwrap();
    let materialized = with.materialized_out.as_ref().unwrap();
    assert!(materialized.join("insurers.csv").exists());
    assert!(!dir.path().join("snap-alone.materialized").exists());
    assert_eq!(alone.changes.as_ref().unwrap().materialized_dir, None);
    assert_eq!(
        summary.changes.unwrap().rows,
        alone.changes.unwrap().rows,
        "the same change rows"
    );
    assert!(
        tree(&with.out) == tree(&without.out),
        "the same snapshots, change files and queries"
    );
    assert!(
        tree(&with.claims_out) == tree(&without.claims_out),
        "the same claims files"
    );
}
