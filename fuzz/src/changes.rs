//! A change file's bytes through decoding, the header, the row rules and C1–C4, applied to a
//! fixed state of two records.
//!
//! Properties: the file balances (`rows_read = applied + rejected`, the counts by rule add
//! up); the state balances (records + replaced = its records before + rows applied); a file
//! rejected whole changes nothing; every record left is of the file's insurer with
//! normalized text; no issue quotes an individual number in clear.

use super::input::assert_no_clear_number;
use shikaku::domain::{normalize_card_text, Date, IndividualNumber, InsurerNumber};
use shikaku::snapshot::apply::apply_change_file;
use shikaku::snapshot::{
    read_snapshot_bytes, ChangeFile, ChangeInput, ChangeTime, FileContext, RowOutcome, State,
};
use std::path::PathBuf;

/// The fixed state as the file an insurer would send. The first record's individual number
/// is the synthetic worked example of the check digit (first eleven digits 12345678901,
/// check 8), no person's; it is completed here, so no 12-digit number stands in the source.
fn state_file() -> String {
    let example = IndividualNumber::from_first11(12_345_678_901);
    let number = std::str::from_utf8(example.expose_digits()).expect("digits");
    format!(
        "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category
06139992,12,1,00,{number},山田 太郎,ヤマダ タロウ,1,1980-01-23,1,2015-04-01,,,30,
06139992,12,2,01,,山田 花子,ヤマダ ハナコ,2,1982-02-02,2,2015-04-01,2020-04-01,03,30,
"
    )
}

fn state(insurer: InsurerNumber) -> State {
    let ctx = FileContext {
        file: "06139992/20261101.csv".into(),
        path: PathBuf::from("snapshots/06139992/20261101.csv"),
        insurer,
        snapshot_date: Date::parse("2026-11-01").expect("fixture date"),
    };
    let mut records = Vec::new();
    read_snapshot_bytes(state_file().as_bytes(), &ctx, |o| {
        if let RowOutcome::Indexed { record, .. } = o {
            records.push(record);
        }
    })
    .expect("fixture snapshot");
    State::new(records)
}

pub fn rows(data: &[u8]) {
    let insurer = InsurerNumber::parse("06139992").expect("fixture insurer");
    let mut state = state(insurer);
    let before = state.len() as u64;
    let input = ChangeInput {
        file: ChangeFile {
            path: PathBuf::from("snapshots/06139992/changes/20261102-090000.csv"),
            rel_path: "06139992/changes/20261102-090000.csv".into(),
            time: ChangeTime::end_of(Date::parse("2026-11-02").expect("fixture date")),
        },
        bytes: data.to_vec(),
        xxh3: 0,
        refused: None,
        identity: (0, 0),
    };
    let mut issues = Vec::new();
    let s = apply_change_file(&mut state, &input, insurer, &mut issues);
    assert_eq!(s.rows_read, s.applied + s.rejected, "the file balances");
    let rejects: u64 = s
        .by_rule
        .iter()
        .filter(|(r, _)| !r.is_warning())
        .map(|(_, n)| n)
        .sum();
    assert_eq!(rejects, s.rejected, "rejects by rule");
    assert_eq!(
        state.len() as u64 + state.replaced(),
        before + s.applied,
        "the state balances"
    );
    if s.file_reject.is_some() {
        assert_eq!(
            (s.applied, state.len() as u64),
            (0, before),
            "a file rejected whole changed the state"
        );
    }
    for issue in &issues {
        assert_no_clear_number(&issue.reason, "a change issue");
        assert_no_clear_number(&issue.field, "a change issue's field");
        assert!(
            issue.line >= 1 || issue.rule.is_file_level(),
            "line 0: {issue:?}"
        );
    }
    for r in state.records() {
        assert_eq!(r.insurer, insurer, "a record of another insurer (R1)");
        for text in [&r.symbol, &r.number] {
            assert_eq!(
                normalize_card_text(text).as_ref(),
                Ok(text),
                "not normalized"
            );
        }
    }
}
