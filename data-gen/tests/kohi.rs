//! The public-expense registers (`--kohi`): a real build reports exactly the defects the
//! manifest says were injected, every number checks, the programs have Japan's shares, and
//! without `--kohi` nothing else changes.

mod common;

use common::*;
use shikaku::domain::{normalize_recipient, Date, IndividualNumber, PayerNumber, PersonKey};
use shikaku::index::MappedIndex;
use shikaku::nightly::run::{run, BuildConfig, Reuse};
use shikaku::query::kohi::{lookup_kohi, KohiFields, KohiQuery};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn generate_kohi(persons: u64, rate: f64, queries: u64) -> (tempfile::TempDir, data_gen::Summary) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = data_gen::Config::new(persons, 5, dir.path().join("out"));
    cfg.date = snapshot_date();
    cfg.defect_rate = rate;
    cfg.queries = queries;
    cfg.kohi = true;
    let summary = data_gen::generate(&cfg).unwrap();
    (dir, summary)
}

fn build(snapshots: &Path, data: &Path, date: Date) -> (serde_json::Value, MappedIndex) {
    run(&BuildConfig {
        snapshots: snapshots.to_path_buf(),
        data: data.to_path_buf(),
        key: PersonKey::demo(),
        built_on: date,
        max_drop_percent: 10.0,
        accept: Vec::new(),
        reuse: Reuse::UnchangedInsurers,
        progress: false,
        signing: None,
    })
    .unwrap();
    // What a server checks before it serves the generation: every section, every checksum.
    let index = shikaku::generations::Store::new(data)
        .open_current(PersonKey::demo())
        .unwrap();
    index.verify().unwrap();
    let id = std::fs::read_to_string(data.join("CURRENT")).unwrap();
    let gen = data.join("generations").join(id.trim());
    let report = serde_json::from_slice(&std::fs::read(gen.join("report.json")).unwrap()).unwrap();
    (report, index)
}

/// Every `kohi` row of `queries.csv` answered by the index as its `expected` says; returns
/// the rows by validity.
fn check_kohi_queries(root: &Path, index: &MappedIndex) -> [u64; 5] {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(root.join("queries.csv"))
        .unwrap();
    let header = r.headers().unwrap().clone();
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (kind, birth, date, expected) = (at("kind"), at("birthdate"), at("date"), at("expected"));
    let (payer, recipient) = (at("payer_number"), at("recipient_number"));
    let mut by = [0u64; 5];
    for rec in r.records() {
        let rec = rec.unwrap();
        if &rec[kind] != "kohi" {
            continue;
        }
        let q = KohiQuery::parse(&KohiFields {
            payer_number: Some(&rec[payer]),
            recipient_number: Some(&rec[recipient]),
            birthdate: Some(&rec[birth]),
            date: Some(&rec[date]),
            institution_code: None,
        })
        .unwrap();
        let got = lookup_kohi(index, &q, snapshot_date()).validity().code();
        assert_eq!(got.to_string(), &rec[expected], "{rec:?}");
        by[usize::from(got) - 1] += 1;
    }
    by
}

fn rejects(data: &Path) -> BTreeSet<(String, u64, String)> {
    let id = std::fs::read_to_string(data.join("CURRENT")).unwrap();
    let path = data.join("generations").join(id.trim()).join("rejects.csv");
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[0].to_string(),
                rec[1].parse().unwrap(),
                rec[2].to_string(),
            )
        })
        .collect()
}

#[test]
fn a_build_reports_exactly_the_injected_register_defects() {
    let (dir, summary) = generate_kohi(50_000, 0.003, 20_000);
    let snap = out(&dir);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(snap.join("manifest.json")).unwrap()).unwrap();
    let counts: BTreeMap<String, u64> =
        serde_json::from_value(manifest["kohi"]["counts"].clone()).unwrap();
    for rule in ["K1", "K2", "K3", "K4", "K5", "K6", "W1", "X1", "DUP"] {
        assert!(
            counts.get(rule).copied().unwrap_or(0) > 0,
            "no {rule}: {counts:?}"
        );
    }
    let data = dir.path().join("data");
    let (report, index) = build(&snap, &data, snapshot_date());
    let by = check_kohi_queries(&snap, &index);
    assert!(by.iter().sum::<u64>() >= 1_900, "{by:?}");
    for v in [1, 2, 4, 5] {
        assert!(by[v - 1] > 0, "no kohi query expects {v}: {by:?}");
    }
    let totals = &report["kohi"]["totals"];
    let got: BTreeMap<String, u64> = serde_json::from_value(totals["by_rule"].clone()).unwrap();
    assert_eq!(got, counts, "the report's counts by rule");
    let kohi = summary.kohi.expect("kohi summary");
    assert_eq!(totals["rows_read"], kohi.rows);
    let rejected: u64 = ["K1", "K2", "K3", "K4", "K5", "K6"]
        .iter()
        .map(|r| counts[*r])
        .sum();
    assert_eq!(totals["rows_rejected"], rejected);
    assert_eq!(totals["rows_deduplicated"], counts["DUP"]);
    // Every injected defect is a line of rejects.csv, where the manifest says.
    let lines = rejects(&data);
    let entries = manifest["kohi"]["defects"].as_array().unwrap();
    assert_eq!(
        entries.len() as u64,
        counts.values().sum::<u64>() - counts["X1"]
            + entries.iter().filter(|e| e["rule"] == "X1").count() as u64
    );
    for e in entries {
        let key = (
            e["file"].as_str().unwrap().to_string(),
            e["line"].as_u64().unwrap(),
            e["rule"].as_str().unwrap().to_string(),
        );
        assert!(lines.contains(&key), "{key:?} is not in rejects.csv");
    }
}

/// Reads every register back: payer numbers and recipient numbers check, local recipient
/// numbers are 1–20 characters, the institutions are valid codes; returns holders of a
/// certificate covering `date` by 法別番号.
fn read_registers(root: &Path, date: Date) -> BTreeMap<u8, BTreeSet<String>> {
    let list = std::fs::read_to_string(root.join("kohi/payers.csv")).unwrap();
    let mut holders: BTreeMap<u8, BTreeSet<String>> = BTreeMap::new();
    for l in list.lines().skip(1) {
        let (number, name) = l.split_once(',').unwrap();
        let payer = PayerNumber::parse(number).unwrap();
        assert!(!name.is_empty());
        let file = root.join(format!("kohi/{number}/{}.csv", date.to_compact()));
        let text = decode(&std::fs::read(file).unwrap()).expect("decodes");
        for line in parse_csv(&text) {
            let f = &line.fields;
            let recipient = normalize_recipient(&f["recipient_number"], payer)
                .unwrap_or_else(|e| panic!("{number} line {}: {e}", line.line));
            if payer.recipient_has_check_digit() {
                assert_eq!(recipient.len(), 7);
            } else {
                assert!((1..=20).contains(&recipient.chars().count()));
            }
            for code in f["institutions"].split(';').filter(|c| !c.is_empty()) {
                shikaku::domain::InstitutionCode::parse(code).unwrap();
            }
            if !f["individual_number"].is_empty() {
                IndividualNumber::parse(&f["individual_number"]).unwrap();
            }
            let from = Date::parse(&f["valid_from"]).unwrap();
            let to = (!f["valid_to"].is_empty()).then(|| Date::parse(&f["valid_to"]).unwrap());
            if from <= date && to.is_none_or(|t| date <= t) {
                let who = format!("{}|{}", f["name"], f["birthdate"]);
                holders.entry(payer.program()).or_default().insert(who);
            }
        }
    }
    holders
}

#[test]
fn registers_check_and_have_japan_s_shares() {
    let persons = 60_000;
    let (dir, summary) = generate_kohi(persons, 0.0, 0);
    let holders = read_registers(&out(&dir), snapshot_date());
    let share = |programs: &[u8]| -> f64 {
        let n: usize = programs
            .iter()
            .map(|p| holders.get(p).map_or(0, BTreeSet::len))
            .sum();
        n as f64 / persons as f64
    };
    // 医療扶助 ~2M, 精神通院 ~2.5M, 難病 ~1M, 小児慢性 ~0.1M of 125M; 子ども医療費 most
    // children to 15 (~12% of the population). Names and birthdates may coincide: the
    // counts are persons told apart by both.
    let check = |what: &str, got: f64, lo: f64, hi: f64| {
        assert!(
            (lo..=hi).contains(&got),
            "{what}: {got:.4} not in {lo}..{hi}"
        );
    };
    check("12", share(&[12]), 0.011, 0.022);
    check("21", share(&[21]), 0.014, 0.026);
    check("54", share(&[54]), 0.005, 0.012);
    check("52", share(&[52]), 0.0003, 0.002);
    check("15+16", share(&[15, 16]), 0.0005, 0.005);
    let local: Vec<u8> = (80..=99).collect();
    check("80-99", share(&local), 0.09, 0.14);
    let kohi = summary.kohi.unwrap();
    assert_eq!(kohi.payers, 7);
    assert!(kohi.defects.is_empty(), "{:?}", kohi.defects);
}

#[test]
fn without_kohi_nothing_else_changes() {
    let (a, _) = generate(20_000, 9, 0.01, 500);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = data_gen::Config::new(20_000, 9, dir.path().join("out"));
    cfg.date = snapshot_date();
    cfg.defect_rate = 0.01;
    cfg.queries = 500;
    cfg.kohi = true;
    data_gen::generate(&cfg).unwrap();
    let plain = tree_bytes(&out(&a));
    let mut with = tree_bytes(&out(&dir));
    let registers = with.keys().filter(|p| p.starts_with("kohi")).count();
    assert!(registers > 7, "{registers} register files");
    with.retain(|p, _| !p.starts_with("kohi"));
    let manifest = |bytes: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        v.as_object_mut().unwrap().remove("kohi");
        v
    };
    let m = Path::new("manifest.json");
    assert_eq!(manifest(&plain[m]), manifest(&with[m]));
    // One query in ten is a public-expense one with --kohi.
    let q = Path::new("queries.csv");
    let kohi_rows = String::from_utf8(with[q].clone())
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("kohi,"))
        .count();
    assert!((30..=50).contains(&kohi_rows), "{kohi_rows} kohi queries");
    let mut plain = plain;
    for p in [m, q] {
        with.remove(p);
        plain.remove(p);
    }
    assert!(plain == with, "the insurers' files changed with --kohi");
}
