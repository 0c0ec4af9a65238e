//! One insurer of the build: read and encoded afresh, or its segment reused from the live
//! generation when nothing it is made of changed. Insurers with change files go through
//! `changes`.

use super::encode::{encode_insurer, InsurerPart, InsurerRows};
use super::profile::{Stage, StageClock, StageTimes};
use super::report::{ChangeOutcome, ChangeReport, Counts, ReportLine};
use super::reuse::{file_identity, Previous, ReuseError};
use super::run::{io_err, BuildConfig, BuildError};
use crate::format::writer::write_segment_file;
use crate::snapshot::{
    self, ChangeFile, InsurerDelivery, InsurerSnapshot, Issue, ReadStep, RowOutcome,
};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// One insurer after reading and encoding.
pub(super) struct InsurerResult {
    pub part: InsurerPart,
    pub counts: Counts,
    pub lines: Vec<ReportLine>,
    /// Size and modification time of the snapshot file.
    pub identity: (u64, u64),
    /// The insurer's position in the live generation, when its segment was reused.
    pub reused_from: Option<usize>,
    /// How its snapshot file decoded.
    pub encoding: Option<String>,
    /// The snapshot file read, for the report (`None` for an insurer with change files and
    /// no snapshot yet).
    pub file: Option<String>,
    /// The materialized state's name, when change files were applied (`part.file` then).
    pub state_file: Option<String>,
    /// Its change files, applied and superseded.
    pub changes: Vec<ChangeReport>,
    /// See [`InsurerReport::line_gaps`](super::report::InsurerReport).
    pub line_gaps: Option<Vec<u64>>,
}

pub(super) fn report_line(issue: Issue) -> ReportLine {
    ReportLine {
        file: issue.file.to_string(),
        line: issue.line,
        rule: issue.rule.as_str(),
        field: issue.field.into_owned(),
        reason: issue.reason,
    }
}

/// Reads one insurer's snapshot and encodes its segment.
fn read_and_encode(
    s: &InsurerSnapshot,
    insurer_index: u32,
    cfg: &BuildConfig,
    clock: &mut StageClock<'_>,
    file_bytes: u64,
) -> Result<InsurerResult, BuildError> {
    // Room for every row at once: growing a vector of records by doubling copied each
    // insurer's records about twice, into memory the kernel had to zero first.
    let mut rows = Vec::with_capacity(rows_capacity(file_bytes));
    let mut lines = Vec::new();
    let summary = snapshot::read_snapshot_staged(
        &s.file,
        &s.insurer,
        |o| match o {
            RowOutcome::Indexed {
                record,
                line,
                warnings,
            } => {
                rows.push((record, u32::try_from(line).unwrap_or(u32::MAX)));
                lines.extend(warnings.into_iter().map(report_line));
            }
            RowOutcome::Rejected(issue) => lines.push(report_line(issue)),
        },
        |step| {
            clock.end(match step {
                ReadStep::Read => Stage::ReadFile,
                ReadStep::Decoded => Stage::Decode,
                ReadStep::Parsed => Stage::ParseRows,
            })
        },
    );
    let summary = match summary {
        Ok(summary) => summary,
        // The system failed to read it: not a defect of the delivery, and an insurer's
        // members must not vanish from the index over it. The build stops, naming the file.
        Err(e @ snapshot::SnapshotError::Io { .. }) => return Err(e.into()),
        Err(e) => {
            // Said where the operator looks, not only in rejects.csv: a whole insurer's rows.
            let said = e.to_string();
            let said = crate::domain::text::mask_digit_runs(&said);
            tracing::warn!("rejected whole ({}): {said}", e.rule());
            lines.clear();
            rows.clear();
            snapshot::account_rejected_file(
                &s.file,
                Some(s.insurer.number),
                e.rule(),
                e.field(),
                &e.to_string(),
            )
        }
    };
    let line_gaps = Some(line_gaps(&rows));
    lines.extend(summary.file_warnings.iter().cloned().map(report_line));
    lines.extend(summary.file_reject.iter().cloned().map(report_line));
    let rows_in_file = rows.len() as u64;
    let part = encode_insurer(
        InsurerRows {
            number: s.insurer.number,
            name: s.insurer.name.clone(),
            kind: s.insurer.kind,
            snapshot_date: s.file.date,
            file: s.file.rel_path.to_string(),
            rows,
            persons: Vec::new(),
        },
        insurer_index,
        &cfg.key,
        cfg.built_on,
    )?;
    clock.end(Stage::Encode);
    let mut counts = Counts {
        rows_read: summary.rows_read,
        rows_indexed: part.records_indexed,
        rows_rejected: summary.rejected,
        rows_deduplicated: part.rows_deduplicated,
        rows_replaced: 0,
        covered_today: u64::from(part.covered_count),
        by_rule: BTreeMap::new(),
    };
    for (rule, n) in summary.by_rule.iter() {
        *counts.by_rule.entry(rule.as_str().to_owned()).or_default() += n;
    }
    // The DUP lines among the findings count the duplicates.
    for l in &part.findings {
        counts.count_rule(l.rule);
    }
    lines.extend(part.findings.iter().cloned());
    // Pair assertion: every row the reader indexed went into the segment or was a duplicate.
    if summary.indexed != rows_in_file || !counts.balanced() {
        return Err(BuildError::Accounting(s.file.rel_path.to_string()));
    }
    Ok(InsurerResult {
        file: Some(part.file.clone()),
        part,
        counts,
        lines,
        identity: (0, 0),
        reused_from: None,
        encoding: summary.encoding.map(|e| e.as_str().to_owned()),
        state_file: None,
        changes: Vec::new(),
        line_gaps,
    })
}

/// The lines from 2 on that start no indexed row (a row rejected, a row's further lines),
/// in order: row i of the state is on line i + 2, so a row's line less the gaps before it
/// is its state's.
fn line_gaps(rows: &[(crate::domain::Record, u32)]) -> Vec<u64> {
    let mut gaps = Vec::new();
    let mut next = 2;
    for (_, line) in rows {
        let line = u64::from(*line);
        gaps.extend(next..line);
        next = line + 1;
    }
    gaps
}

/// Room for the rows of a snapshot of `file_bytes`: rows take about 100 bytes (107 in the
/// generator's files), so 64 leaves room; a file of shorter rows only grows the vector.
/// Reserved pages that are never written cost no memory.
fn rows_capacity(file_bytes: u64) -> usize {
    usize::try_from(file_bytes / 64).unwrap_or(0).min(1 << 24)
}

/// One insurer of the build: its snapshot alone (the nightly path), or its state after its
/// change files (`changes`). Either way its segment file ends up in `segments_dir`.
pub(super) fn process_insurer(
    d: &InsurerDelivery,
    insurer_index: u32,
    cfg: &BuildConfig,
    previous: Option<&Previous>,
    segments_dir: &Path,
    stages: &StageTimes,
) -> Result<InsurerResult, BuildError> {
    let superseded = d.superseded.iter().map(superseded_report);
    let mut result = match d.snapshot() {
        Some(s) if d.changes.is_empty() => {
            process_snapshot(&s, insurer_index, cfg, previous, segments_dir, stages)?
        }
        _ => super::changes::process_state(d, insurer_index, cfg, previous, segments_dir, stages)?,
    };
    result.changes.extend(superseded);
    Ok(result)
}

pub(super) fn superseded_report(c: &ChangeFile) -> ChangeReport {
    ChangeReport {
        file: c.rel_path.to_string(),
        outcome: ChangeOutcome::Superseded,
        xxh3: String::new(),
        rows_read: 0,
        rows_applied: 0,
        rows_rejected: 0,
        encoding: None,
        by_rule: Default::default(),
        bytes: 0,
        mtime_ns: 0,
    }
}

/// Reuses the previous generation's segment file when the snapshot file is unchanged, else
/// reads and encodes the snapshot and writes its segment file (fsynced) into `segments_dir`.
fn process_snapshot(
    s: &InsurerSnapshot,
    insurer_index: u32,
    cfg: &BuildConfig,
    previous: Option<&Previous>,
    segments_dir: &Path,
    stages: &StageTimes,
) -> Result<InsurerResult, BuildError> {
    // An unreadable file gets identity (0, 0), never matches, and its read stops the build.
    let identity = file_identity(&s.file.path).unwrap_or((0, 0));
    if let Some(prev) = previous {
        if let Some((old, report)) = prev.unchanged(&s.file.rel_path, identity) {
            match prev.reuse(*old, &s.insurer, report, cfg.built_on, segments_dir) {
                Ok(r) => {
                    // A file rejected whole is said again each night it is reused unchanged:
                    // the insurer's members are still missing from the index.
                    for l in r
                        .lines
                        .iter()
                        .filter(|l| l.line == 0 && l.rule.starts_with('F'))
                    {
                        tracing::warn!(
                            "rejected whole ({}), unchanged since the last build: {}: {}",
                            l.rule,
                            l.file,
                            l.reason
                        );
                    }
                    return Ok(InsurerResult {
                        part: r.part,
                        counts: r.counts,
                        lines: r.lines,
                        identity,
                        reused_from: Some(r.old_position),
                        encoding: report.encoding.clone(),
                        file: report.file.clone(),
                        state_file: None,
                        changes: Vec::new(),
                        line_gaps: report.line_gaps.clone(),
                    });
                }
                // Parsed afresh below: a fresh segment replaces the corrupt one.
                Err(e @ ReuseError::Unverified { .. }) => tracing::warn!("{e}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut clock = stages.clock();
    let mut fresh = read_and_encode(s, insurer_index, cfg, &mut clock, identity.0)?;
    fresh.identity = identity;
    write_segment(&mut fresh.part, segments_dir)?;
    clock.end(Stage::WriteSegment);
    Ok(fresh)
}

/// Writes a freshly encoded segment into `segments_dir` (fsynced), then drops its bytes: only
/// its meta is needed again.
pub(super) fn write_segment(part: &mut InsurerPart, segments_dir: &Path) -> Result<(), BuildError> {
    let path = segments_dir.join(crate::format::segment_file_name(
        &part.number,
        part.segment.meta.xxh3,
    ));
    let file = File::create(&path).map_err(io_err(&path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write_segment_file(&mut w, part.number, &part.segment).map_err(io_err(&path))?;
    let file = w.into_inner().map_err(|e| io_err(&path)(e.into_error()))?;
    file.sync_all().map_err(io_err(&path))?;
    part.segment.bytes = Vec::new();
    Ok(())
}
