//! Incremental nightly build: an insurer whose newest snapshot is byte-for-byte the file the
//! live generation was built from reuses its encoded segment, its counts and its report lines
//! instead of being parsed again. Cross-insurer checks (X1, X3) are always recomputed.

use super::encode::{InsurerPart, Link};
use super::report::{read_rejects, Counts, InsurerReport, Report, ReportLine};
use crate::domain::{Date, InsurerKind, PersonKey};
use crate::format::writer::EncodedSegment;
use crate::format::FormatError;
use crate::generations::{Store, REJECTS_FILE, REPORT_FILE};
use crate::index::MappedIndex;
use std::collections::HashMap;
use std::path::Path;

/// The live generation, opened for reuse.
pub struct Previous {
    index: MappedIndex,
    /// Old insurer index and report, by snapshot file (relative path).
    by_file: HashMap<String, (usize, InsurerReport)>,
    lines_by_file: HashMap<String, Vec<ReportLine>>,
}

/// Rules that depend on other insurers and are recomputed on every build.
fn is_cross_insurer(rule: &str) -> bool {
    rule == "X1" || rule == "X3"
}

/// Size and xxh3 of a file: how a build recognizes an unchanged delivery.
pub fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    let bytes = std::fs::read(path)?;
    Ok((bytes.len() as u64, xxhash_rust::xxh3::xxh3_64(&bytes)))
}

impl Previous {
    /// Opens the live generation with its report; `None` when there is none or it cannot be
    /// read (then everything is parsed afresh, which is always correct).
    pub fn load(store: &Store, key: &PersonKey) -> Option<Previous> {
        let id = store.current().ok()??;
        let index = store.open(&id, key.clone()).ok()?;
        let dir = store.generation_dir(&id);
        let report: Report =
            serde_json::from_slice(&std::fs::read(dir.join(REPORT_FILE)).ok()?).ok()?;
        let lines = read_rejects(&std::fs::read(dir.join(REJECTS_FILE)).ok()?).ok()?;
        let positions: HashMap<&str, usize> = index
            .insurers()
            .iter()
            .enumerate()
            .map(|(i, ins)| (ins.number_str(), i))
            .collect();
        let mut by_file = HashMap::new();
        for r in report.insurers {
            if let (Some(file), Some(&i)) =
                (r.file.clone(), positions.get(r.insurer_number.as_str()))
            {
                if r.file_bytes > 0 {
                    by_file.insert(file, (i, r));
                }
            }
        }
        let mut lines_by_file: HashMap<String, Vec<ReportLine>> = HashMap::new();
        for l in lines.into_iter().filter(|l| !is_cross_insurer(l.rule)) {
            lines_by_file.entry(l.file.clone()).or_default().push(l);
        }
        Some(Previous {
            index,
            by_file,
            lines_by_file,
        })
    }

    /// The previous build's report of this file, if it was built from identical bytes.
    pub fn unchanged(
        &self,
        rel_path: &str,
        identity: (u64, u64),
    ) -> Option<&(usize, InsurerReport)> {
        self.by_file
            .get(rel_path)
            .filter(|(_, r)| (r.file_bytes, r.file_xxh3) == identity)
    }

    /// Rebuilds an insurer's part from the previous generation: segment bytes copied, links
    /// decoded from its records, covered count taken afresh for `built_on`.
    pub fn reuse(
        &self,
        old: usize,
        old_report: &InsurerReport,
        insurer_index: u32,
        built_on: Date,
    ) -> Result<(InsurerPart, Counts, Vec<ReportLine>), FormatError> {
        let info = &self.index.insurers()[old];
        let e = &info.entry;
        let segment = EncodedSegment {
            bytes: self.index.segment_bytes(old).to_vec(),
            xxh3: e.segment_xxh3,
            record_count: e.record_count,
            key_count: e.key_count,
            fst_bytes: e.fst_bytes,
            heap_bytes: e.heap_bytes,
        };
        let mut links = Vec::new();
        let mut covered = 0u32;
        for (i, view) in self.index.insurer_records(old).enumerate() {
            let r = view.entry()?;
            if view.covers(built_on) {
                covered += 1;
            }
            if let Some(hash) = r.person {
                links.push(Link {
                    hash,
                    insurer: insurer_index,
                    record: i as u32,
                    birthdate: r.birthdate,
                    sex: r.sex,
                    qualification_date: r.qualification_date,
                    disqualification_date: r.disqualification_date,
                    line: r.line,
                });
            }
        }
        let file = old_report.file.clone().unwrap_or_default();
        let lines = self.lines_by_file.get(&file).cloned().unwrap_or_default();
        let mut counts = old_report.counts.clone();
        counts.by_rule.retain(|rule, _| !is_cross_insurer(rule));
        counts.covered_today = u64::from(covered);
        let part = InsurerPart {
            number: e.number,
            name: info.name.clone(),
            kind: InsurerKind::from_code(e.kind)
                .ok_or_else(|| FormatError::Malformed("insurer kind".into()))?,
            snapshot_date: e.snapshot_date,
            file,
            segment,
            covered_count: covered,
            records_indexed: u64::from(e.record_count),
            rows_deduplicated: old_report.counts.rows_deduplicated,
            links,
            findings: lines.iter().filter(|l| l.rule == "X2").cloned().collect(),
        };
        Ok((part, counts, lines))
    }
}
