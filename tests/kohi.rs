//! Public expense (公費) end to end: registers read by `shikaku build`, counted and reported.

use shikaku::domain::{Date, PayerNumber, PersonKey};
use shikaku::generations::{REJECTS_FILE, REPORT_FILE};
use shikaku::nightly::run::{run, BuildConfig, Reuse};
use std::fs;
use std::path::Path;

const INSURER_HEADER: &str = "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category";
const KOHI_HEADER: &str = "payer_number,recipient_number,individual_number,name,name_kana,sex,birthdate,valid_from,valid_to,copay_limit_yen,institutions";

// Valid check digits (IndividualNumber::from_first11).
const PERSON_A: &str = "123456789018";

fn payer(body: &str) -> String {
    PayerNumber::from_body(body).unwrap().to_string()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
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
    }
}

/// A delivery of one insurer and two payers (難病 54, a local program 88), with a row for
/// each rule, a duplicate, an X1 pair, an unlisted payer directory and a change file.
fn delivery(snap: &Path) -> (String, String) {
    write(
        &snap.join("insurers.csv"),
        "insurer_number,insurer_name,kind\n06139992,組合,kumiai\n",
    );
    write(
        &snap.join("06139992/20261101.csv"),
        &format!("{INSURER_HEADER}\n06139992,12,1,00,{PERSON_A},山田 太郎,ヤマダ タロウ,1,1980-01-23,1,2015-04-01,,,30,\n"),
    );
    let (nanbyo, local) = (payer("5413601"), payer("8813001"));
    write(
        &snap.join("kohi/payers.csv"),
        &format!("payer_number,payer_name\n{nanbyo},東京都 難病\n{local},子ども医療費助成\n"),
    );
    let rows = [
        format!("{nanbyo},0123455,{PERSON_A},山田 太郎,ヤマダ タロウ,1,1980-01-23,2026-04-01,2027-03-31,10000,0110113719"),
        format!("{nanbyo},0123455,{PERSON_A},山田 太郎,ヤマダ タロウ,1,1980-01-23,2026-04-01,2027-03-31,10000,0110113719"),
        format!("{nanbyo},0123456,,山田 次郎,ヤマダ ジロウ,1,1980-01-23,2026-04-01,,,"),
        format!("{nanbyo},0000000,,山田 三郎,ヤマダ サブロウ,1,1980-01-23,2026-04-01,2026-03-01,,"),
    ];
    write(
        &snap.join(format!("kohi/{nanbyo}/20261101.csv")),
        &format!("{KOHI_HEADER}\n{}\n", rows.join("\n")),
    );
    // The same individual number with another birthdate: X1 on both certificates.
    write(
        &snap.join(format!("kohi/{local}/20261110.csv")),
        &format!("{KOHI_HEADER}\n{local},007,{PERSON_A},山田 太郎,ヤマダ タロウ,1,1980-01-24,2026-04-01,,0,\n"),
    );
    write(
        &snap.join(format!("kohi/{local}/changes/20261111-090000.csv")),
        "change\n",
    );
    write(
        &snap.join("kohi/21136010/20261101.csv"),
        &format!("{KOHI_HEADER}\nx\ny\n"),
    );
    (nanbyo, local)
}

#[test]
fn registers_are_read_counted_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let (nanbyo, local) = delivery(&snap);
    let out = run(&config(&snap, &data)).unwrap();
    let kohi = out.report.kohi.as_ref().expect("a kohi report");
    let t = &kohi.totals;
    assert_eq!(
        (
            t.rows_read,
            t.rows_indexed,
            t.rows_rejected,
            t.rows_deduplicated
        ),
        (7, 2, 4, 1),
        "{t:?}"
    );
    assert!(t.balanced());
    for (rule, n) in [("K2", 1), ("K5", 1), ("F4", 2), ("DUP", 1), ("X1", 2)] {
        assert_eq!(
            t.by_rule.get(rule).copied(),
            Some(n),
            "{rule}: {:?}",
            t.by_rule
        );
    }
    assert_eq!(
        kohi.payers.len(),
        3,
        "two payers and the unlisted directory"
    );
    assert_eq!(kohi.payers[0].payer_number, nanbyo);
    assert_eq!(kohi.payers[0].counts.covered_today, 1);
    // The insurers' totals are the index's records, untouched by the registers.
    assert_eq!(out.report.totals.rows_indexed, 1);
    let lines = fs::read_to_string(out.generation_dir.join(REJECTS_FILE)).unwrap();
    for needle in [
        format!("kohi/{nanbyo}/20261101.csv,3,DUP,"),
        format!("kohi/{nanbyo}/20261101.csv,4,K2,recipient_number,"),
        format!("kohi/{nanbyo}/20261101.csv,5,K5,valid_to,"),
        format!("kohi/{local}/20261110.csv,2,X1,individual_number,"),
        "kohi/21136010/20261101.csv,0,F4,payer_number,".to_owned(),
    ] {
        assert!(lines.contains(&needle), "{needle} missing:\n{lines}");
    }
    let notes = out.report.notes.join("\n");
    assert!(notes.contains("change files not read"), "{notes}");
    let html = fs::read_to_string(out.generation_dir.join("report.html")).unwrap();
    assert!(html.contains("Public-expense registers"));
    for name in [REPORT_FILE, REJECTS_FILE, "report.html"] {
        let bytes = fs::read(out.generation_dir.join(name)).unwrap();
        assert!(
            !bytes.windows(12).any(|w| w == PERSON_A.as_bytes()),
            "individual number in clear in {name}"
        );
    }
}

#[test]
fn a_delivery_without_registers_has_no_kohi_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    delivery(&snap);
    fs::remove_dir_all(snap.join("kohi")).unwrap();
    let out = run(&config(&snap, &data)).unwrap();
    assert!(out.report.kohi.is_none());
    // A `kohi/` directory without its payers.csv stops the build, naming the file.
    write(&snap.join("kohi/x"), "");
    let err = run(&config(&snap, &tmp.path().join("d2"))).unwrap_err();
    assert!(err.to_string().contains("payers.csv"), "{err}");
}

#[test]
fn the_index_holds_the_certificates_by_recipient_and_by_person() {
    use shikaku::domain::{IndividualNumber, InstitutionCode};
    use shikaku::index::MappedIndex;
    let tmp = tempfile::tempdir().unwrap();
    let (snap, data) = (tmp.path().join("s"), tmp.path().join("d"));
    let (nanbyo, local) = delivery(&snap);
    let out = run(&config(&snap, &data)).unwrap();
    let index = MappedIndex::open_file(
        &out.generation_dir.join(shikaku::generations::INDEX_FILE),
        PersonKey::demo(),
    )
    .unwrap();
    index.verify().unwrap();
    assert_eq!(index.header().certificate_count, 2);
    assert_eq!(
        index.payers().len(),
        2,
        "the listed payers, not the unlisted directory"
    );
    let p = index.payer(PayerNumber::parse(&nanbyo).unwrap()).unwrap();
    assert_eq!(p.name, "東京都 難病");
    let found: Vec<_> = index.certificates_of(p, "0123455").collect();
    assert_eq!(found.len(), 1);
    let c = found[0];
    assert_eq!(
        (c.recipient(), c.name(), c.name_kana()),
        ("0123455", "山田 太郎", "ヤマダ タロウ")
    );
    assert_eq!(c.valid_to(), Some(Date::parse("2027-03-31").unwrap()));
    assert!(c.covers(Date::parse("2027-03-31").unwrap()));
    assert_eq!(c.copay_limit_yen(), Some(10_000));
    assert_eq!(c.institutions().collect::<Vec<_>>(), ["0110113719"]);
    assert!(c.admits(InstitutionCode::parse("0110113719").unwrap()));
    assert!(!c.admits(
        InstitutionCode::parse("0130113715")
            .unwrap_or_else(|_| { InstitutionCode::parse("0110113727").unwrap() })
    ));
    assert!(
        c.identity_unverified(),
        "X1 with the local program's certificate"
    );
    assert_eq!(index.certificates_of(p, "0123463").count(), 0);
    assert_eq!(
        index.certificates_of(p, "123455").count(),
        0,
        "leading zeros count"
    );
    let local = index.payer(PayerNumber::parse(&local).unwrap()).unwrap();
    assert_eq!(index.certificates_of(local, "007").count(), 1);
    let hash = PersonKey::demo().hash(&IndividualNumber::parse(PERSON_A).unwrap());
    assert_eq!(index.person_certificates(hash).count(), 2);
}
