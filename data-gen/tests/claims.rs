//! The generated claims files checked by shikaku against a real build give, receipt by
//! receipt, the verdict, reason and days of the generator's ground truth (`truth.csv`), and
//! every verdict and reason appears, the public-expense (`KO`) ones with them: the data set
//! has registers (`--kohi`), and about 30% of the receipts carry `KO` records.

use data_gen::{generate, Config};
use shikaku::claims::output::{FileColumn, RowWriter};
use shikaku::claims::{check_file, parse, Format, Summary};
use shikaku::domain::{Date, PersonKey};
use shikaku::generations::Store;
use shikaku::nightly::run::{run, BuildConfig, Reuse};
use std::collections::{BTreeMap, BTreeSet};

const DATE: &str = "2026-11-24";

#[test]
fn claims_100k_receipts_are_checked_as_the_truth_says() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let mut cfg = Config::new(60_000, 11, &snap);
    cfg.date = Date::parse(DATE).unwrap();
    cfg.defect_rate = 0.002;
    cfg.claims = 100_000;
    cfg.kohi = true;
    let summary = generate(&cfg).unwrap();
    assert_eq!(summary.claims, 100_000);
    let with_ko = summary.kohi.as_ref().unwrap().claims_with_ko;
    assert!(
        (25_000..=35_000).contains(&with_ko),
        "{with_ko} receipts with KO records"
    );
    run(&BuildConfig {
        snapshots: snap.clone(),
        data: dir.path().join("data"),
        key: PersonKey::demo(),
        built_on: Date::parse(DATE).unwrap(),
        max_drop_percent: 10.0,
        accept: Vec::new(),
        reuse: Reuse::UnchangedInsurers,
        progress: false,
        signing: None,
    })
    .unwrap();
    let index = Store::new(dir.path().join("data"))
        .open_current(PersonKey::demo())
        .unwrap();

    // file → receipt → "verdict,reason,days" as the truth says.
    let truth = std::fs::read_to_string(cfg.claims_out.join("truth.csv")).unwrap();
    let mut expected: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in truth.lines().skip(1) {
        let (file, rest) = line.split_once(',').unwrap();
        let (receipt, rest) = rest.split_once(',').unwrap();
        let (row_line, rest) = rest.split_once(',').unwrap();
        expected
            .entry(file.to_string())
            .or_default()
            .push((format!("{receipt},{row_line}"), rest.to_string()));
    }
    let mut totals = Summary::default();
    let (mut wrong, mut rows) = (Vec::new(), 0usize);
    let mut reasons = BTreeSet::new();
    for (file, want) in &expected {
        let bytes = std::fs::read(cfg.claims_out.join(file)).unwrap();
        let uke = parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut writer = RowWriter::new(Format::Csv, FileColumn::Unnamed);
        let mut out = Vec::new();
        check_file(
            &index,
            file,
            &uke,
            &mut writer,
            &mut out,
            &mut totals,
            |_, _, _| {},
        );
        let text = String::from_utf8(out).unwrap();
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got.len(), want.len(), "{file}: one row per receipt");
        for (row, (id, truth)) in got.iter().zip(want) {
            rows += 1;
            // receipt,line,verdict,reason,days,...
            let cells: Vec<&str> = row.splitn(6, ',').collect();
            let got_id = format!("{},{}", cells[0], cells[1]);
            let got_truth = format!("{},{},{}", cells[2], cells[3], cells[4]);
            reasons.insert(format!("{} {}", cells[2], cells[3]).trim().to_string());
            if got_id != *id || got_truth != *truth {
                wrong.push(format!(
                    "{file} {id}: expected {truth}, got {got_id} {got_truth}"
                ));
            }
        }
    }
    assert_eq!(rows, 100_000);
    assert_eq!(totals.receipts, 100_000);
    assert!(
        wrong.is_empty(),
        "{} of {rows} receipts differ from the truth:\n{:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(20)]
    );
    for reason in [
        "ok",
        "return not_found",
        "return multiple",
        "return other_qualification",
        "return lost",
        "return not_yet",
        "check partial_month",
        "check sex_differs",
        "check kana_differs",
        "return kohi_not_found",
        "return kohi_multiple",
        "return kohi_expired",
        "return kohi_not_yet",
        "return kohi_other_institution",
        "unchecked kohi_not_held",
        "error malformed: KO 2",
        "error malformed: KO 3",
        "error malformed: HO 2",
        "error malformed: HO 6",
        "error malformed: RE 7",
        "error malformed: record",
    ] {
        assert!(
            reasons.contains(reason),
            "no receipt is {reason}: {reasons:?}"
        );
    }
}
