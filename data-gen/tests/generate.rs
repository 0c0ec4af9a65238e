//! End-to-end checks of generated trees, by re-reading the files.

mod common;

use common::*;
use shikaku::domain::{Date, IndividualNumber, InsurerNumber};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, _) = generate(20_000, 42, 0.01, 500);
    let (b, _) = generate(20_000, 42, 0.01, 500);
    let (c, _) = generate(20_000, 43, 0.01, 500);
    let ta = tree_bytes(&out(&a));
    assert!(ta.len() > 50);
    assert!(ta == tree_bytes(&out(&b)), "same seed gave different trees");
    assert!(
        ta != tree_bytes(&out(&c)),
        "another seed gave the same tree"
    );
}

fn share(part: u64, total: u64) -> f64 {
    part as f64 / total as f64
}

#[test]
fn shares_by_kind_and_age_match_2020() {
    let (dir, _) = generate(40_000, 7, 0.0, 0);
    let today = snapshot_date();
    let tree = read_tree(&out(&dir));
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut bands = [0u64; 4];
    let mut total = 0;
    for f in newest_files(&tree) {
        for l in f.lines.as_ref().expect("clean files decode") {
            let r = validate(l, &f.dir, today).expect("clean rows are valid");
            if !shikaku::domain::covers(r.qual, r.disq, today) {
                continue;
            }
            let age = r.birth.age_on(today);
            if age >= 75 {
                assert!(
                    InsurerNumber::parse(&r.insurer).unwrap().is_koki(),
                    "75+ outside 後期高齢者: {}",
                    f.rel
                );
            }
            *by_kind.entry(tree.insurers[&f.dir].clone()).or_default() += 1;
            bands[match age {
                0..=14 => 0,
                15..=64 => 1,
                65..=74 => 2,
                _ => 3,
            }] += 1;
            total += 1;
        }
    }
    // March 2020 members (millions) over their sum, and the 2020 pyramid.
    let targets = [
        ("kyokai", 40.4),
        ("kumiai", 28.8),
        ("kyosai", 8.5),
        ("kokuho", 26.6),
        ("kokuho_kumiai", 2.7),
        ("koki", 18.0),
        ("senin", 0.1),
    ];
    let sum: f64 = targets.iter().map(|t| t.1).sum();
    for (kind, millions) in targets {
        let got = share(by_kind.get(kind).copied().unwrap_or(0), total);
        assert!(
            (got - millions / sum).abs() < 0.03,
            "{kind}: {got:.3} vs {:.3}",
            millions / sum
        );
    }
    for (i, target) in [0.12, 0.595, 0.138, 0.149].into_iter().enumerate() {
        let got = share(bands[i], total);
        assert!(
            (got - target).abs() < 0.03,
            "age band {i}: {got:.3} vs {target}"
        );
    }
}

#[test]
fn clean_data_has_valid_check_digits_and_dates() {
    let (dir, summary) = generate(20_000, 3, 0.0, 0);
    assert!(summary.defects.is_empty());
    let today = snapshot_date();
    let tree = read_tree(&out(&dir));
    let mut rows = 0;
    for f in &tree.files {
        let lines = f.lines.as_ref().expect("clean files decode");
        for l in lines {
            let ins = l.fields["insurer_number"].clone();
            assert!(
                InsurerNumber::parse(&ins).is_ok(),
                "{} line {}",
                f.rel,
                l.line
            );
            let n = &l.fields["individual_number"];
            if !n.is_empty() {
                assert!(
                    IndividualNumber::parse(n).is_ok(),
                    "{} line {}",
                    f.rel,
                    l.line
                );
            }
            for col in ["birthdate", "qualification_date", "disqualification_date"] {
                let v = &l.fields[col];
                if !v.is_empty() {
                    assert!(
                        Date::parse(v).is_ok(),
                        "{} line {} {col}={v}",
                        f.rel,
                        l.line
                    );
                }
            }
            let r = validate(l, &f.dir, today);
            assert!(r.is_ok(), "{} line {}: {:?}", f.rel, l.line, r.err());
            rows += 1;
        }
    }
    assert!(rows > 20_000);
}

#[derive(serde::Deserialize)]
struct Manifest {
    undecodable_file: Option<String>,
    older_snapshots: Vec<String>,
    counts: BTreeMap<String, u64>,
    defects: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    file: String,
    line: u64,
    rule: String,
}

#[test]
fn every_defect_kind_is_injected_and_really_in_the_files() {
    let (dir, _) = generate(20_000, 11, 0.005, 0);
    let root = out(&dir);
    let today = snapshot_date();
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    let kinds = [
        "R1",
        "R2",
        "R3",
        "R4",
        "R5",
        "R6",
        "R7",
        "W1",
        "W2",
        "W3",
        "W4",
        "X1",
        "X2",
        "X3",
        "duplicate",
        "undecodable",
    ];
    for k in kinds {
        assert!(m.counts.get(k).copied().unwrap_or(0) > 0, "no {k}");
    }
    let undecodable = m.undecodable_file.clone().expect("an undecodable file");
    let bytes = std::fs::read(root.join(&undecodable)).unwrap();
    assert!(std::str::from_utf8(&bytes).is_err());
    assert!(encoding_rs::SHIFT_JIS
        .decode_without_bom_handling_and_without_replacement(&bytes)
        .is_none());
    assert!(!m.older_snapshots.is_empty());

    let tree = read_tree(&root);
    let files: HashMap<&str, &SnapFile> = tree.files.iter().map(|f| (f.rel.as_str(), f)).collect();
    let mut seen = BTreeSet::new();
    for e in &m.defects {
        let f = files[e.file.as_str()];
        seen.insert(e.rule.clone());
        if e.rule == "undecodable" {
            assert!(f.lines.is_none());
            continue;
        }
        let lines = f
            .lines
            .as_ref()
            .expect("defect rows are in decodable files");
        let i = lines
            .iter()
            .position(|l| l.line == e.line)
            .expect("line exists");
        let l = &lines[i];
        let v = validate(l, &f.dir, today);
        match e.rule.as_str() {
            r if r.starts_with('R') => assert_eq!(v.err(), Some(r), "{} line {}", e.file, e.line),
            "W1" => {
                let n = &l.fields["individual_number"];
                assert!(IndividualNumber::parse(n).is_err(), "W1 {n}");
                assert!(v.is_ok());
            }
            "W2" => {
                let r = v.expect("W2 row indexed");
                let age = r.birth.age_on(today);
                let c = shikaku::domain::CopayRatio::new(r.copay).unwrap();
                assert!(!c.usual_for_age(age));
            }
            "W3" => {
                let r = v.expect("W3 row indexed");
                assert!(r.birth.age_on(today) >= 75);
                assert!(!InsurerNumber::parse(&r.insurer).unwrap().is_koki());
            }
            "W4" => {
                let kana = &l.fields["name_kana"];
                assert!(kana.chars().any(|c| ('\u{3041}'..='\u{3096}').contains(&c)));
            }
            "duplicate" => assert_eq!(l.raw, lines[i - 1].raw, "{} line {}", e.file, e.line),
            "X1" | "X2" | "X3" => assert!(v.is_ok(), "{} line {}", e.file, e.line),
            other => panic!("unknown rule {other}"),
        }
    }
    assert_eq!(seen.len(), kinds.len());
}

fn check_queries(persons: u64, seed: u64, rate: f64, n: u64) {
    let (dir, summary) = generate(persons, seed, rate, n);
    let root = out(&dir);
    let tree = read_tree(&root);
    let naive = Naive::build(&tree, snapshot_date());
    let text = std::fs::read_to_string(root.join("queries.csv")).unwrap();
    let queries = parse_csv(&text);
    assert_eq!(queries.len() as u64, n);
    let mut by = [0u64; 5];
    for q in &queries {
        let (expected, got) = naive.answer(q);
        assert_eq!(Some(expected), got, "query line {}: {:?}", q.line, q.raw);
        by[expected as usize - 1] += 1;
    }
    assert_eq!(by, summary.queries_by_expected);
    for (v, count) in by.iter().enumerate() {
        assert!(*count > 0, "no query expects validity {}", v + 1);
    }
}

#[test]
fn expected_answers_agree_with_the_files_clean() {
    check_queries(20_000, 5, 0.0, 3000);
}

#[test]
fn expected_answers_agree_with_the_files_with_defects() {
    check_queries(30_000, 6, 0.01, 4000);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = data_gen::Config::new(0, 1, dir.path().join("x"));
    assert!(data_gen::generate(&cfg).is_err());
    cfg.persons = 10;
    cfg.defect_rate = 2.0;
    assert!(data_gen::generate(&cfg).is_err());
    cfg.defect_rate = 0.0;
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    cfg.out = dir.path().join("file");
    assert!(data_gen::generate(&cfg).is_err());
    cfg.out = dir.path().to_path_buf(); // not empty
    assert!(data_gen::generate(&cfg).is_err());
}
