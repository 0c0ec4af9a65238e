use super::*;
use crate::domain::{Date, PayerNumber};
use crate::snapshot::{ChangeTime, Rule};
use std::path::PathBuf;

const HEADER: &str = "payer_number,recipient_number,individual_number,name,name_kana,sex,\
birthdate,valid_from,valid_to,copay_limit_yen,institutions";

fn payer() -> PayerNumber {
    PayerNumber::parse("54136015").unwrap()
}

fn ctx() -> RegisterContext {
    RegisterContext {
        file: "kohi/54136015/20261101.csv".into(),
        path: PathBuf::from("kohi/54136015/20261101.csv"),
        payer: payer(),
        snapshot_date: Date::parse("2026-11-01").unwrap(),
    }
}

fn read(text: &str) -> Vec<CertificateOutcome> {
    let mut out = Vec::new();
    let summary = read_register_bytes(text.as_bytes(), &ctx(), |o| out.push(o)).unwrap();
    assert_eq!(summary.rows_read, summary.indexed + summary.rejected);
    out
}

/// One row under the full header: `Ok(warning rules)` when kept, `Err((rule, field))`.
fn check(row: &str, expected: Result<&[Rule], (Rule, &str)>) {
    let outcomes = read(&format!("{HEADER}\n{row}\n"));
    let got = match &outcomes[..] {
        [CertificateOutcome::Indexed { warnings, .. }] => {
            Ok(warnings.iter().map(|w| w.rule).collect::<Vec<_>>())
        }
        [CertificateOutcome::Rejected(i)] => Err((i.rule, i.field.to_string())),
        other => panic!("{row}: {other:?}"),
    };
    let expected = expected
        .map(<[Rule]>::to_vec)
        .map_err(|(r, f)| (r, f.to_owned()));
    assert_eq!(got, expected, "{row}");
}

const GOOD: &str = "54136015,0123455,123456789018,難病 花子,ナンビョウ ハナコ,2,1980-01-23,2026-04-01,2027-03-31,10000,0110113719";

#[test]
fn a_good_row_makes_a_certificate() {
    let outcomes = read(&format!("{HEADER}\n{GOOD}\n"));
    let [CertificateOutcome::Indexed {
        certificate: c,
        line: 2,
        warnings,
    }] = &outcomes[..]
    else {
        panic!("{outcomes:?}")
    };
    assert!(warnings.is_empty());
    assert_eq!(c.recipient, "0123455");
    assert_eq!(c.copay_limit_yen, Some(10_000));
    assert_eq!(c.institutions.len(), 1);
    assert!(
        c.covers(Date::parse("2027-03-31").unwrap()),
        "valid_to is inclusive"
    );
    assert!(!c.covers(Date::parse("2027-04-01").unwrap()));
}

#[test]
fn rules_k1_to_k6_and_w1() {
    let with = |col: usize, value: &str| {
        let mut cells: Vec<&str> = GOOD.split(',').collect();
        cells[col] = value;
        cells.join(",")
    };
    check(GOOD, Ok(&[]));
    check(&with(0, "54136016"), Err((Rule::K1, "payer_number")));
    check(&with(0, "12136016"), Err((Rule::K1, "payer_number")));
    check(&with(1, "0123456"), Err((Rule::K2, "recipient_number")));
    check(&with(1, "123455"), Err((Rule::K2, "recipient_number")));
    check(&with(1, ""), Err((Rule::K2, "recipient_number")));
    check(&with(1, "０１２３４５５"), Ok(&[]));
    check(&with(6, "2026-11-02"), Err((Rule::K3, "birthdate")));
    check(&with(6, "H31.05.01"), Err((Rule::K3, "birthdate")));
    check(&with(7, ""), Err((Rule::K4, "valid_from")));
    check(&with(7, "1979-12-31"), Err((Rule::K4, "valid_from")));
    check(&with(8, "2026-03-31"), Err((Rule::K5, "valid_to")));
    check(&with(8, "2026-04-01"), Ok(&[]));
    check(&with(8, ""), Ok(&[]));
    check(&with(9, "-1"), Err((Rule::K6, "copay_limit_yen")));
    check(&with(9, "0"), Ok(&[]));
    check(&with(10, "0110113718"), Err((Rule::K6, "institutions")));
    check(&with(10, "0110113719;"), Ok(&[]));
    check(&with(5, "9"), Err((Rule::K6, "sex")));
    check(&with(5, ""), Ok(&[]));
    check(&with(2, "123456789019"), Ok(&[Rule::W1]));
    check(&format!("{GOOD},extra"), Err((Rule::R0, "")));
}

#[test]
fn local_programs_keep_leading_zeros_and_have_no_check_digit() {
    let local = PayerNumber::from_body("8813001").unwrap();
    let ctx = RegisterContext {
        payer: local,
        ..ctx()
    };
    let text = format!("payer_number,recipient_number,name,name_kana,birthdate,valid_from\n{local},00７,子 一,コ イチ,2020-01-01,2026-04-01\n");
    let mut out = Vec::new();
    read_register_bytes(text.as_bytes(), &ctx, |o| out.push(o)).unwrap();
    let [CertificateOutcome::Indexed { certificate, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(certificate.recipient, "007");
    assert_eq!(certificate.sex, None);
}

#[test]
fn reasons_never_show_an_individual_number() {
    let row = GOOD.replace("0123455", "123456789018");
    let outcomes = read(&format!("{HEADER}\n{row}\n"));
    let [CertificateOutcome::Rejected(issue)] = &outcomes[..] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(issue.rule, Rule::K2);
    assert!(!issue.reason.contains("123456789018"), "{}", issue.reason);
}

fn end_of(day: &str) -> ChangeTime {
    ChangeTime::end_of(Date::parse(day).unwrap())
}

#[test]
fn payers_and_registers_are_discovered() {
    let dir = tempfile::tempdir().unwrap();
    let kohi = dir.path().join(KOHI_DIR);
    std::fs::create_dir_all(kohi.join("54136015")).unwrap();
    std::fs::create_dir_all(kohi.join("99999999")).unwrap();
    std::fs::write(
        kohi.join(PAYERS_FILE),
        "payer_number,payer_name\n54136015,難病 東京都\n",
    )
    .unwrap();
    for name in ["20261001.csv", "20261101.csv", "20991231.csv"] {
        std::fs::write(kohi.join("54136015").join(name), HEADER).unwrap();
    }
    let found = discover_kohi(dir.path(), end_of("2026-11-24")).unwrap();
    assert_eq!(found.payers.len(), 1);
    assert_eq!(
        found.registers[0].file.as_ref().map(|f| &*f.rel_path),
        Some("kohi/54136015/20261101.csv")
    );
    assert_eq!(found.registers[0].older, 1);
    let notes: Vec<String> = found.findings.iter().map(ToString::to_string).collect();
    assert!(
        notes.iter().any(|n| n.contains("20991231.csv")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("kohi/99999999")),
        "{notes:?}"
    );
    // Without `kohi/`, no registers; with it but a bad payers.csv, the build stops.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        discover_kohi(empty.path(), end_of("2026-11-24")).unwrap(),
        KohiDiscovery::default()
    );
    std::fs::write(
        kohi.join(PAYERS_FILE),
        "payer_number,payer_name\n54136016,x\n",
    )
    .unwrap();
    let err = discover_kohi(dir.path(), end_of("2026-11-24")).unwrap_err();
    assert!(
        err.to_string().contains("line 2: field payer_number"),
        "{err}"
    );
}
