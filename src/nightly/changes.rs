//! An insurer with change files (docs/delivery.md#change-files): its state is materialized in
//! memory (`snapshot::materialize`: the snapshot's records, then each change file applied in
//! name order) and handed to `encode` as the insurer's rows, so every later stage (dedup,
//! X1–X3, encoding, linking, the report, verification, publication) is the nightly build's.
//! Rows are numbered as the materialized snapshot `shikaku materialize` writes lists them
//! (record `i` on line `i + 2`), so findings on the state name lines of that file.
//!
//! The state is reused from the live generation only when its snapshot file is unchanged and
//! the change files it applied are the ones to apply now, by name and content (xxh3): a file
//! replaced under the same name is applied again.

use super::encode::{encode_insurer, InsurerRows};
use super::insurer::{report_line, write_segment, InsurerResult};
use super::profile::{Stage, StageClock, StageTimes};
use super::report::{ChangeOutcome, ChangeReport, Counts};
use super::reuse::{file_identity, Previous, ReuseError};
use super::run::{BuildConfig, BuildError};
use crate::domain::text::mask_digit_runs;
use crate::snapshot::apply::{materialized_file_name, Materialized};
use crate::snapshot::{self, ChangeInput, ChangeSummary, InsurerDelivery, Issue, RuleCounts};
use std::collections::BTreeMap;
use std::path::Path;

/// The xxh3 of a change file as `report.json` keeps it.
pub(super) fn hex(xxh3: u64) -> String {
    format!("{xxh3:016x}")
}

/// Reuses the live generation's segment of this insurer when nothing its state is made of
/// changed, else materializes the state, encodes it and writes its segment file.
pub(super) fn process_state(
    d: &InsurerDelivery,
    insurer_index: u32,
    cfg: &BuildConfig,
    previous: Option<&Previous>,
    segments_dir: &Path,
    stages: &StageTimes,
) -> Result<InsurerResult, BuildError> {
    // Read once: what is hashed is what is applied. A file gone since discovery stops the
    // build with an error naming it.
    let inputs = ChangeInput::read_all(&d.changes)?;
    let identity = d
        .snapshot
        .as_ref()
        .map(|f| file_identity(&f.path).unwrap_or((0, 0)));
    if let Some(prev) = previous {
        let applied: Vec<(String, String)> = inputs
            .iter()
            .map(|c| (c.file.rel_path.to_string(), hex(c.xxh3)))
            .collect();
        let snapshot = d.snapshot.as_ref().map(|f| &*f.rel_path).zip(identity);
        if let Some((old, report)) = prev.unchanged_state(d.insurer.number, snapshot, &applied) {
            match prev.reuse(*old, &d.insurer, report, cfg.built_on, segments_dir) {
                Ok(r) => {
                    return Ok(InsurerResult {
                        part: r.part,
                        counts: r.counts,
                        lines: r.lines,
                        identity: identity.unwrap_or((0, 0)),
                        reused_from: Some(r.old_position),
                        encoding: report.encoding.clone(),
                        file: report.file.clone(),
                        state_file: report.state_file.clone(),
                        line_gaps: report.line_gaps.clone(),
                        changes: report
                            .changes
                            .iter()
                            .filter(|c| c.outcome == ChangeOutcome::Applied)
                            .cloned()
                            .collect(),
                    })
                }
                Err(e @ ReuseError::Unverified { .. }) => tracing::warn!("{e}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut clock = stages.clock();
    let mut fresh = encode_state(d, &inputs, insurer_index, cfg, None, &mut clock)?;
    fresh.identity = identity.unwrap_or((0, 0));
    write_segment(&mut fresh.part, segments_dir)?;
    clock.end(Stage::WriteSegment);
    Ok(fresh)
}

/// Materializes and encodes one insurer's state, with its accounting checked: per change
/// file rows read = applied + rejected, per insurer rows read = indexed + rejected +
/// deduplicated + replaced. `rows_out`, when given, receives a copy of the state's rows
/// (a change build encodes the changed cards' again).
pub(super) fn encode_state(
    d: &InsurerDelivery,
    inputs: &[ChangeInput],
    insurer_index: u32,
    cfg: &BuildConfig,
    rows_out: Option<&mut Vec<(crate::domain::Record, u32)>>,
    clock: &mut StageClock<'_>,
) -> Result<InsurerResult, BuildError> {
    let m = snapshot::materialize(d, inputs)?;
    clock.end(Stage::Materialize);
    check_change_files(&m.changes, &m.issues)?;
    let Materialized {
        records,
        date,
        snapshot: snapshot_summary,
        changes,
        issues,
        replaced,
    } = m;
    let state_records = records.len() as u64;
    let state_file = materialized_file_name(d.insurer.number, date);
    let rows: Vec<_> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (r, u32::try_from(i + 2).unwrap_or(u32::MAX)))
        .collect();
    if let Some(out) = rows_out {
        out.clone_from(&rows);
    }
    let part = encode_insurer(
        InsurerRows {
            number: d.insurer.number,
            name: d.insurer.name.clone(),
            kind: d.insurer.kind,
            snapshot_date: date,
            file: state_file.clone(),
            rows,
            persons: Vec::new(),
        },
        insurer_index,
        &cfg.key,
        cfg.built_on,
    )?;
    clock.end(Stage::Encode);
    let mut by_rule = RuleCounts::default();
    let (mut rows_read, mut rows_rejected) = (0, 0);
    if let Some(s) = &snapshot_summary {
        by_rule.merge(&s.by_rule);
        rows_read += s.rows_read;
        rows_rejected += s.rejected;
    }
    for c in &changes {
        by_rule.merge(&c.by_rule);
        rows_read += c.rows_read;
        rows_rejected += c.rejected;
    }
    let mut counts = Counts {
        rows_read,
        rows_indexed: part.records_indexed,
        rows_rejected,
        rows_deduplicated: part.rows_deduplicated,
        rows_replaced: replaced,
        covered_today: u64::from(part.covered_count),
        by_rule: rule_map(&by_rule),
    };
    for l in &part.findings {
        counts.count_rule(l.rule);
    }
    let mut lines: Vec<_> = issues.into_iter().map(report_line).collect();
    lines.extend(part.findings.iter().cloned());
    let encoded_all = part.records_indexed + part.rows_deduplicated == state_records;
    if !encoded_all || !counts.balanced() {
        return Err(BuildError::Accounting(state_file));
    }
    Ok(InsurerResult {
        part,
        counts,
        lines,
        identity: (0, 0),
        reused_from: None,
        encoding: snapshot_summary
            .as_ref()
            .and_then(|s| s.encoding)
            .map(|e| e.as_str().to_owned()),
        file: d.snapshot.as_ref().map(|f| f.rel_path.to_string()),
        state_file: Some(state_file),
        line_gaps: Some(Vec::new()),
        changes: changes
            .iter()
            .zip(inputs)
            .map(|(c, input)| ChangeReport {
                bytes: input.identity.0,
                mtime_ns: input.identity.1,
                ..applied_report(c)
            })
            .collect(),
    })
}

/// Every change file of a state balanced (rows read = applied + rejected), and each file
/// rejected whole said where the operator looks, not only in rejects.csv: none of its rows
/// applied.
pub(super) fn check_change_files(
    changes: &[ChangeSummary],
    issues: &[Issue],
) -> Result<(), BuildError> {
    if let Some(c) = changes.iter().find(|c| !c.balanced()) {
        return Err(BuildError::Accounting(c.file.to_string()));
    }
    for issue in issues
        .iter()
        .filter(|i| i.line == 0 && !i.rule.is_warning())
    {
        tracing::warn!(
            "rejected whole ({}): {}: {}",
            issue.rule,
            mask_digit_runs(&issue.file),
            mask_digit_runs(&issue.reason)
        );
    }
    Ok(())
}

pub(super) fn rule_map(counts: &RuleCounts) -> BTreeMap<String, u64> {
    counts
        .iter()
        .map(|(rule, n)| (rule.as_str().to_owned(), n))
        .collect()
}

pub(super) fn applied_report(c: &ChangeSummary) -> ChangeReport {
    ChangeReport {
        file: c.file.to_string(),
        outcome: ChangeOutcome::Applied,
        xxh3: hex(c.xxh3),
        rows_read: c.rows_read,
        rows_applied: c.applied,
        rows_rejected: c.rejected,
        encoding: c.encoding.map(|e| e.as_str().to_owned()),
        by_rule: rule_map(&c.by_rule),
        bytes: 0,
        mtime_ns: 0,
    }
}
