//! Register rows a payer should never deliver: each is indexed or rejected under a named rule
//! with its line, never a panic, and the file's rows add up (read = indexed + rejected).

use super::*;
use crate::domain::{Date, PayerNumber};
use crate::snapshot::read::LINE_BYTES_MAX;
use std::path::PathBuf;

const HEADER: &str = "payer_number,recipient_number,individual_number,name,name_kana,sex,\
birthdate,valid_from,valid_to,copay_limit_yen,institutions";

/// 難病 of Tokyo (54, recipient numbers with a check digit) and a local program (88, without).
const NANBYO: &str = "54136015";
const LOCAL: &str = "88130018";

fn ctx(payer: &str) -> RegisterContext {
    RegisterContext {
        file: format!("kohi/{payer}/20261101.csv").into(),
        path: PathBuf::from(format!("kohi/{payer}/20261101.csv")),
        payer: PayerNumber::parse(payer).expect("test payer"),
        snapshot_date: Date::parse("2026-11-01").expect("date"),
    }
}

/// A row of `payer` with `recipient`, `valid_to` and `institutions`.
fn row(payer: &str, recipient: &str, valid_to: &str, institutions: &str) -> String {
    format!("{payer},{recipient},,難病 花子,ナンビョウ ハナコ,2,1980-01-23,2026-04-01,{valid_to},10000,{institutions}")
}

/// `institutions` as `n` distinct valid codes (prefecture 01, 医科, check digit made).
fn codes(n: usize) -> String {
    (0..n)
        .map(|i| {
            let body = format!("011{:06}", i);
            let check = crate::domain::text::luhn_check_digit(body.as_bytes());
            format!("{body}{check}")
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Reads `payer`'s register of one `row`: `Ok(())` when indexed, else `(rule, field, reason
/// starts with)`.
fn check(payer: &str, row: &str, expected: Result<(), (&str, &str, &str)>) {
    let mut out = Vec::new();
    let text = format!("{HEADER}\n{row}\n");
    let summary =
        read_register_bytes(text.as_bytes(), &ctx(payer), |o| out.push(o)).expect("file read");
    assert_eq!(summary.rows_read, 1, "{row:.80}");
    assert_eq!(summary.rows_read, summary.indexed + summary.rejected);
    let got = match &out[..] {
        [CertificateOutcome::Indexed { .. }] => Ok(()),
        [CertificateOutcome::Rejected(i)] => {
            assert_eq!(i.line, 2);
            Err((
                i.rule.as_str().to_owned(),
                i.field.to_string(),
                i.reason.clone(),
            ))
        }
        other => panic!("{other:?}"),
    };
    match (got, expected) {
        (Ok(()), Ok(())) => {}
        (Err((rule, field, reason)), Err((r, f, starts))) => {
            assert_eq!((rule.as_str(), field.as_str()), (r, f), "{reason}");
            assert!(
                reason.contains(starts),
                "{reason:?} does not say {starts:?}"
            );
        }
        (got, expected) => panic!("{row:.80}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn the_bad_inputs_of_a_register_are_reported_by_rule() {
    let good = row(NANBYO, "0123455", "2027-03-31", "");
    check(NANBYO, &good, Ok(()));
    // A payer number typed into the recipient column: 8 digits where 7 are due.
    check(
        NANBYO,
        &row(NANBYO, NANBYO, "2027-03-31", ""),
        Err(("K2", "recipient_number", "7")),
    );
    // A local program's numbers have no check digit: 8 digits are a recipient number there.
    check(LOCAL, &row(LOCAL, LOCAL, "", ""), Ok(()));
    // A local recipient number of 30 characters (20 at most), and of 20.
    let thirty = "1234567890".repeat(3);
    check(
        LOCAL,
        &row(LOCAL, &thirty, "", ""),
        Err(("K2", "recipient_number", "20")),
    );
    check(LOCAL, &row(LOCAL, &thirty[..20], "", ""), Ok(()));
    // Designated institutions: 32 at most; 33 is K6; 10,000 make a line longer than any
    // row can be (R0, not read).
    let long = codes(10_000);
    assert!(long.len() > LINE_BYTES_MAX);
    check(NANBYO, &row(NANBYO, "0123455", "", &codes(32)), Ok(()));
    check(
        NANBYO,
        &row(NANBYO, "0123455", "", &codes(33)),
        Err(("K6", "institutions", "33 institutions")),
    );
    check(
        NANBYO,
        &row(NANBYO, "0123455", "", &long),
        Err(("R0", "", "the line is")),
    );
    // A certificate valid for 200 years is a certificate: kept (a register may say so).
    check(NANBYO, &row(NANBYO, "0123455", "2226-03-31", ""), Ok(()));
    check(NANBYO, &row(NANBYO, "0123455", "9999-12-31", ""), Ok(()));
    check(
        NANBYO,
        &row(NANBYO, "0123455", "10000-01-01", ""),
        Err(("K5", "valid_to", "")),
    );
}
