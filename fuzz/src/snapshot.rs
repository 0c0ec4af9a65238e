//! A snapshot file's bytes through decoding, the header and the row rules.
//!
//! Properties: every row is accounted for once (`rows_read = indexed + rejected`, and the
//! counts by rule add up); rows come in file order after the header; an indexed record is
//! of the file's insurer and holds normalized text; a reject names a row rule, a warning a
//! warning rule; no issue or error quotes an individual number in clear.

use super::input::assert_no_clear_number;
use shikaku::domain::{normalize_card_text, Date, InsurerNumber};
use shikaku::snapshot::{read_snapshot_bytes, FileContext, Issue, RowOutcome, Rule};
use std::path::PathBuf;

fn check_issue(issue: &Issue, what: &str) {
    assert_no_clear_number(&issue.reason, what);
    assert_no_clear_number(&issue.field, what);
    assert!(issue.line >= 1, "{what} on line 0: {issue:?}");
}

pub fn rows(data: &[u8]) {
    let insurer = InsurerNumber::parse("06139992").expect("fixture insurer");
    let ctx = FileContext {
        file: "06139992/20261101.csv".into(),
        path: PathBuf::from("snapshots/06139992/20261101.csv"),
        insurer,
        snapshot_date: Date::parse("2026-11-01").expect("fixture date"),
    };
    let mut outcomes = Vec::new();
    let summary = match read_snapshot_bytes(data, &ctx, |o| outcomes.push(o)) {
        Ok(summary) => summary,
        Err(e) => {
            assert!(outcomes.is_empty(), "a file rejected whole after rows: {e}");
            assert!(e.rule().is_file_level(), "{e} is not a file-level rule");
            return assert_no_clear_number(&e.to_string(), "a snapshot error");
        }
    };
    let (mut indexed, mut rejected, mut warnings) = (0u64, 0u64, 0u64);
    let mut last_line = 1;
    for issue in &summary.file_warnings {
        check_issue(issue, "a file warning");
        assert_eq!(issue.rule, Rule::W0, "a file warning not W0");
    }
    for outcome in &outcomes {
        let line = match outcome {
            RowOutcome::Indexed {
                record,
                line,
                warnings: w,
            } => {
                indexed += 1;
                warnings += w.len() as u64;
                assert_eq!(record.insurer, insurer, "a record of another insurer (R1)");
                for text in [&record.symbol, &record.number] {
                    assert_eq!(
                        normalize_card_text(text).as_ref(),
                        Ok(text),
                        "not normalized"
                    );
                }
                for issue in w {
                    check_issue(issue, "a row warning");
                    assert!(issue.rule.is_warning(), "a warning under {:?}", issue.rule);
                    assert_eq!(issue.line, *line, "a warning on another line than its row");
                }
                *line
            }
            RowOutcome::Rejected(issue) => {
                rejected += 1;
                check_issue(issue, "a reject");
                assert!(
                    !issue.rule.is_warning() && !issue.rule.is_file_level(),
                    "a row rejected under {:?}",
                    issue.rule
                );
                issue.line
            }
        };
        // Not strictly after: a lone CR ends a row for the CSV reader but not a line for the
        // line count, so two rows can share a line (docs/fuzzing.md, findings).
        assert!(
            line >= last_line,
            "row on line {line} after line {last_line}: {outcome:?}"
        );
        last_line = line;
    }
    assert_eq!(summary.rows_read, outcomes.len() as u64, "rows read");
    assert_eq!((summary.indexed, summary.rejected), (indexed, rejected));
    let by_rule = |pick: fn(Rule) -> bool| -> u64 {
        summary
            .by_rule
            .iter()
            .filter(|(r, _)| pick(*r))
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(by_rule(|r| !r.is_warning()), rejected, "rejects by rule");
    assert_eq!(
        by_rule(Rule::is_warning),
        warnings + summary.file_warnings.len() as u64,
        "warnings by rule"
    );
}
