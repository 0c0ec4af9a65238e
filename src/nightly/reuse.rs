//! Incremental nightly build: an insurer whose newest snapshot is the file the live generation
//! was built from (same path, size and modification time), and whose change files are the ones
//! it applied (same paths and xxh3), keeps its segment file, which is
//! hard-linked into the new generation instead of being parsed, encoded or copied again; its
//! counts and report lines are carried over. Cross-insurer checks (X1, X3) and the person
//! table are merged incrementally by `link::link_incremental`.
//!
//! Nothing is reused unverified: the live generation's main file is checksummed by reading it
//! before it is used at all, and each segment file before it is linked. A segment that fails
//! is not linked: its insurer is parsed afresh from its snapshot (a hard link would carry the
//! corruption into every later generation, as all of them share the inode).

use super::encode::InsurerPart;
use super::link::PreviousPersons;
use super::report::{Counts, InsurerReport, ReportLine};
use super::run::verify_ranges;
use crate::domain::{Date, InsurerNumber, PersonKey};
use crate::format::writer::{EncodedSegment, SegmentMeta};
use crate::format::{FormatError, SEGMENTS_DIR};
use crate::generations::Store;
use crate::index::MappedIndex;
use crate::snapshot::InsurerEntry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The live generation, opened for reuse.
pub struct Previous {
    index: MappedIndex,
    /// Its directory, where the segment files to link are.
    dir: PathBuf,
    /// Old insurer position and report, by snapshot file (relative path), of the insurers
    /// built from their snapshot alone.
    by_file: HashMap<String, (usize, InsurerReport)>,
    /// The same, by insurer number, of the insurers built from a state with change files.
    states: HashMap<String, (usize, InsurerReport)>,
    /// Report lines by file, without the cross-insurer ones.
    lines_by_file: HashMap<String, Vec<ReportLine>>,
    /// The cross-insurer lines (X1, X3), merged by the person stage.
    cross_lines: Vec<ReportLine>,
}

/// Rules that depend on other insurers and are recomputed on every build.
fn is_cross_insurer(rule: &str) -> bool {
    rule == "X1" || rule == "X3"
}

/// Size and modification time (ns) of a file: how a build recognizes an unchanged delivery.
/// Deliveries are new files named by their date; a file edited in place gets a new
/// modification time. `shikaku build --full` ignores the live generation altogether.
pub use crate::snapshot::file_identity;

/// One reused insurer.
pub struct Reused {
    pub part: InsurerPart,
    pub counts: Counts,
    pub lines: Vec<ReportLine>,
    /// Its position in the live generation's insurer table.
    pub old_position: usize,
}

impl Previous {
    /// Opens the live generation with its report; `None` when there is none or it cannot be
    /// read (then everything is parsed afresh, which is always correct).
    pub fn load(store: &Store, key: &PersonKey) -> Option<Previous> {
        let id = store.current().ok()??;
        let index = store.open(&id, key.clone()).ok()?;
        let dir = store.generation_dir(&id);
        let main = store.index_path(&id);
        if let Err(e) = verify_ranges(&main, index.checksummed_ranges(), &mut check_buffer()) {
            tracing::warn!(
                "the live generation {id} fails verification ({e}); nothing of it is reused"
            );
            return None;
        }
        // A change generation's reports stack on its base's (`report_files`).
        let super::report_files::Whole { report, lines } =
            super::report_files::read_whole(&dir).ok()?;
        let positions: HashMap<&str, usize> = index
            .insurers()
            .iter()
            .enumerate()
            .map(|(i, ins)| (ins.number_str(), i))
            .collect();
        let mut by_file = HashMap::new();
        let mut states = HashMap::new();
        for r in report.insurers {
            let Some(&i) = positions.get(r.insurer_number.as_str()) else {
                continue;
            };
            if r.state_file.is_some() {
                states.insert(r.insurer_number.clone(), (i, r));
            } else if let Some(file) = r.file.clone() {
                if r.file_bytes > 0 && r.file_mtime_ns > 0 {
                    by_file.insert(file, (i, r));
                }
            }
        }
        let mut lines_by_file: HashMap<String, Vec<ReportLine>> = HashMap::new();
        let mut cross_lines = Vec::new();
        for l in lines {
            if is_cross_insurer(l.rule) {
                cross_lines.push(l);
            } else {
                lines_by_file.entry(l.file.clone()).or_default().push(l);
            }
        }
        Some(Previous {
            index,
            dir,
            by_file,
            states,
            lines_by_file,
            cross_lines,
        })
    }

    /// The previous build's report of this file, if it was built from the same file.
    pub fn unchanged(
        &self,
        rel_path: &str,
        identity: (u64, u64),
    ) -> Option<&(usize, InsurerReport)> {
        self.by_file
            .get(rel_path)
            .filter(|(_, r)| (r.file_bytes, r.file_mtime_ns) == identity)
    }

    /// The previous build's report of this insurer's state, if it was made of the same
    /// snapshot file (path, size and modification time; `None` for an insurer without one) and
    /// the same change files (path and xxh3, in order).
    pub fn unchanged_state(
        &self,
        insurer: InsurerNumber,
        snapshot: Option<(&str, (u64, u64))>,
        applied: &[(String, String)],
    ) -> Option<&(usize, InsurerReport)> {
        self.states.get(insurer.as_str()).filter(|(_, r)| {
            let same_snapshot = match snapshot {
                Some((file, identity)) => {
                    r.file.as_deref() == Some(file)
                        && identity != (0, 0)
                        && (r.file_bytes, r.file_mtime_ns) == identity
                }
                None => r.file.is_none(),
            };
            let same_changes = r
                .applied_changes()
                .into_iter()
                .eq(applied.iter().map(|(f, h)| (f.as_str(), h.as_str())));
            same_snapshot && same_changes
        })
    }

    /// Reuses insurer `old` of the live generation: hard-links its segment file into
    /// `segments_dir` and rebuilds its part from the insurer table (no links: the person
    /// stage reads them from the live generation's person table). Its name and kind are
    /// `listed`'s, this delivery's `insurers.csv`: they live in the main file, not in the
    /// segment, and an insurer renamed since must answer with its new name.
    pub fn reuse(
        &self,
        old: usize,
        listed: &InsurerEntry,
        old_report: &InsurerReport,
        built_on: Date,
        segments_dir: &Path,
    ) -> Result<Reused, ReuseError> {
        let info = &self.index.insurers()[old];
        let e = &info.entry;
        let name = e.segment_file_name();
        let from = self.dir.join(SEGMENTS_DIR).join(&name);
        let (_, body, expected) = self.index.segment_check(old);
        let what = format!("segment file {SEGMENTS_DIR}/{name}");
        verify_ranges(&from, vec![(what, body, expected)], &mut check_buffer()).map_err(|e| {
            ReuseError::Unverified {
                from: from.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        let to = segments_dir.join(&name);
        std::fs::hard_link(&from, &to).map_err(|source| ReuseError::Link {
            from: from.display().to_string(),
            source,
        })?;
        // "Covered today" moves with the date: count again unless the date is the same.
        let covered = if built_on == self.index.built_on() {
            e.covered_count
        } else {
            self.index
                .insurer_records(old)
                .filter(|r| r.covers(built_on))
                .count() as u32
        };
        // Its records were indexed from its snapshot, or from its state's lines.
        let file = old_report
            .state_file
            .clone()
            .or_else(|| old_report.file.clone())
            .unwrap_or_default();
        let lines = old_report
            .files()
            .flat_map(|f| self.lines_by_file.get(f).into_iter().flatten().cloned())
            .collect();
        let mut counts = old_report.counts.clone();
        counts.by_rule.retain(|rule, _| !is_cross_insurer(rule));
        counts.covered_today = u64::from(covered);
        let part = InsurerPart {
            number: e.number,
            name: listed.name.clone(),
            kind: listed.kind,
            snapshot_date: e.snapshot_date,
            file,
            segment: EncodedSegment {
                bytes: Vec::new(),
                meta: SegmentMeta::of(e),
            },
            covered_count: covered,
            records_indexed: u64::from(e.record_count),
            rows_deduplicated: old_report.counts.rows_deduplicated,
            links: Vec::new(),
            findings: Vec::new(),
        };
        Ok(Reused {
            part,
            counts,
            lines,
            old_position: old,
        })
    }

    /// What the person stage needs: the live persons and which old insurers were reused
    /// (old position → new position).
    pub fn persons(&self, reused: Vec<Option<u32>>) -> PreviousPersons<'_, bytes::Bytes> {
        let mut old_position_by_file = HashMap::new();
        for (file, (i, _)) in &self.by_file {
            old_position_by_file.insert(file.clone(), *i);
        }
        for (i, r) in self.states.values() {
            if let Some(file) = &r.state_file {
                old_position_by_file.insert(file.clone(), *i);
            }
        }
        PreviousPersons {
            index: &self.index,
            reused,
            cross_lines: &self.cross_lines,
            old_position_by_file,
        }
    }

    pub fn insurer_count(&self) -> usize {
        self.index.insurers().len()
    }
}

/// A read buffer for checksumming: large reads, not a mapping (see `run::verify_ranges`).
fn check_buffer() -> Vec<u8> {
    vec![0u8; 1 << 20]
}

#[derive(Debug, thiserror::Error)]
pub enum ReuseError {
    /// The live segment file fails its checksum (or cannot be read): not to be linked.
    #[error("{from} fails verification ({reason}); its insurer is parsed again")]
    Unverified { from: String, reason: String },
    #[error("linking {from} into the new generation: {source}")]
    Link {
        from: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] FormatError),
}
