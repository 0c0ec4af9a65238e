//! The build report: `report.json` (counts per insurer and in total, by rule; `html` renders
//! it as `report.html`) and `rejects.csv` (`file,line,rule,field,reason`: every rejected row, warning and cross-check
//! finding). Reasons never hold an individual number in clear.

use crate::domain::text::mask_digit_runs;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// One line of `rejects.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ReportLine {
    pub file: String,
    /// 1-based line in the file (the header is line 1); 0 for a whole file.
    pub line: u64,
    pub rule: &'static str,
    pub field: String,
    pub reason: String,
}

/// Row accounting: rows_read = rows_indexed + rows_rejected + rows_deduplicated
/// + rows_replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub rows_read: u64,
    pub rows_indexed: u64,
    pub rows_rejected: u64,
    pub rows_deduplicated: u64,
    /// Rows change files took out of the state: records an `update` replaced or a `delete`
    /// removed, and the `lose` and `delete` rows themselves (they make no record of their
    /// own). Zero, and left out of `report.json`, for an insurer without change files.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_replaced: u64,
    /// Members covered on the build date (records).
    pub covered_today: u64,
    /// Findings by rule code (R*, F*, W*, X*).
    pub by_rule: BTreeMap<String, u64>,
}

impl Counts {
    pub fn balanced(&self) -> bool {
        self.rows_read
            == self.rows_indexed + self.rows_rejected + self.rows_deduplicated + self.rows_replaced
    }

    pub fn add(&mut self, other: &Counts) {
        self.rows_read += other.rows_read;
        self.rows_indexed += other.rows_indexed;
        self.rows_rejected += other.rows_rejected;
        self.rows_deduplicated += other.rows_deduplicated;
        self.rows_replaced += other.rows_replaced;
        self.covered_today += other.covered_today;
        for (rule, n) in &other.by_rule {
            *self.by_rule.entry(rule.clone()).or_default() += n;
        }
    }

    pub fn count_rule(&mut self, rule: &str) {
        *self.by_rule.entry(rule.to_owned()).or_default() += 1;
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a build did with one change file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOutcome {
    /// Read and applied (its rejected rows, if any, are in `rejects.csv`).
    Applied,
    /// Timed before the insurer's snapshot's day: the snapshot holds it; not read.
    Superseded,
}

/// One change file of an insurer, in `report.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeReport {
    /// Relative to the snapshots directory.
    pub file: String,
    pub outcome: ChangeOutcome,
    /// xxh3 of the file's bytes (16 hex digits; empty when superseded, as it is not read): a
    /// later build applies a file of the same name but other content again.
    #[serde(default)]
    pub xxh3: String,
    #[serde(default)]
    pub rows_read: u64,
    #[serde(default)]
    pub rows_applied: u64,
    #[serde(default)]
    pub rows_rejected: u64,
    /// How it decoded (`utf8`, `cp932`); `None` when not decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(default)]
    pub by_rule: BTreeMap<String, u64>,
    /// Size and modification time (ns) of the file read, taken before the read: a later
    /// build finding the same name, size and time takes `xxh3` as the file's without reading
    /// it again (0 when unknown: the file is read and hashed).
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub mtime_ns: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InsurerReport {
    pub insurer_number: String,
    pub insurer_name: String,
    /// The snapshot file used, relative to the snapshots directory.
    pub file: Option<String>,
    pub snapshot_date: Option<String>,
    /// Size and modification time (ns since the epoch) of the snapshot file, so the next
    /// build can tell an unchanged delivery.
    #[serde(default)]
    pub file_bytes: u64,
    #[serde(default)]
    pub file_mtime_ns: u64,
    /// True when this insurer's segment was reused from the previous generation.
    #[serde(default)]
    pub reused: bool,
    /// How the snapshot file decoded (`utf8`, `cp932`): a file of UTF-8 rows with one CP932
    /// line decodes as CP932, its UTF-8 names garbled, and W4 warnings are the only other
    /// sign. `None` when the file could not be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Its change files, applied (in order) and superseded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeReport>,
    /// When change files were applied: the name of the state as `shikaku materialize` writes
    /// it (`<insurer>/<YYYYMMDD>.csv`, the day of the last change). Findings on the state
    /// (`DUP`, `X1`–`X3`) name its lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file: Option<String>,
    /// A snapshot's lines from 2 on that start no indexed row (a row rejected, a row's
    /// further lines): record i of the insurer's state is on line i + 2, its snapshot's
    /// line less the gaps before it. A change generation numbers its records so.
    /// `None` in a report that did not say (the card path does not take its first change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_gaps: Option<Vec<u64>>,
    #[serde(flatten)]
    pub counts: Counts,
}

impl InsurerReport {
    /// The change files applied, by name and content: what a later build compares.
    pub fn applied_changes(&self) -> Vec<(&str, &str)> {
        self.changes
            .iter()
            .filter(|c| c.outcome == ChangeOutcome::Applied)
            .map(|c| (c.file.as_str(), c.xxh3.as_str()))
            .collect()
    }

    /// The files whose report lines are this insurer's, in the order a build writes them:
    /// its snapshot, its change files, then its state (the findings on it), each once. A
    /// state dated its snapshot's own day (changes registered that day) has the snapshot's
    /// name: named twice, a reused insurer's lines were taken twice, doubling every build.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        let changes = self.changes.iter().map(|c| c.file.as_str());
        let state = self
            .state_file
            .as_deref()
            .filter(|s| Some(*s) != self.file.as_deref());
        self.file.as_deref().into_iter().chain(changes).chain(state)
    }
}

/// One public-expense payer of a build, in `report.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PayerReport {
    /// The payer number (for a directory under `kohi/` no listed payer owns, its name).
    pub payer_number: String,
    pub payer_name: String,
    /// The register read, relative to the snapshots directory.
    pub file: Option<String>,
    pub snapshot_date: Option<String>,
    /// How the register decoded (`utf8`, `cp932`); `None` when it could not be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Its change files, applied (in order) and superseded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeReport>,
    /// When change files were applied: the materialized register's name
    /// (`kohi/<payer>/<YYYYMMDD>.csv`, the day of the last change), whose lines the findings
    /// on the state (`DUP`, `X1`) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file: Option<String>,
    /// `covered_today` counts certificates valid on the build date.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The public-expense registers of a build: counts per payer and in total, apart from the
/// insurers' (whose totals count index records).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KohiReport {
    pub totals: Counts,
    pub payers: Vec<PayerReport>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub generation: String,
    pub built_on: String,
    pub published: bool,
    /// Why the build did not publish, when it did not.
    pub refused: Vec<String>,
    pub totals: Counts,
    pub insurers: Vec<InsurerReport>,
    /// Findings not tied to one insurer's rows (unlisted directories, bad file names).
    pub notes: Vec<String>,
    pub elapsed_ms: u64,
    /// Wall time of each phase (read_encode, link, write, verify, publish), for operators.
    #[serde(default)]
    pub phases_ms: BTreeMap<String, u64>,
    /// CPU time of each phase, every thread together: beside `phases_ms`, how much of the
    /// machine a phase kept busy.
    #[serde(default)]
    pub phases_cpu_ms: BTreeMap<String, u64>,
    /// CPU time of the stages of `read_encode` for insurers read from a snapshot alone
    /// (read_file, decode, parse_rows, encode, write_segment), summed over threads.
    #[serde(default)]
    pub stages_cpu_ms: BTreeMap<String, u64>,
    /// Bytes of the generation's index: the main file and every segment file.
    pub index_bytes: u64,
    /// The public-expense registers; `None` when the delivery has no `kohi/` directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kohi: Option<KohiReport>,
    /// `base` (a main file and segments) or `layer` (a change generation: its parent's files
    /// and one more layer). A layer generation's `totals`, `insurers` and `kohi` are its
    /// base's (what the base's segments were made of, which the next base build reuses by);
    /// what the layer applied is in `layer`.
    #[serde(default)]
    pub generation_kind: GenerationKind,
    /// The generation that was live when this one was built (a layer's parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Layers stacked on the base (0 for a base generation).
    #[serde(default)]
    pub layer_count: u32,
    /// What a layer generation's own layer holds and applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerReport>,
}

/// What kind of generation a report describes (the generations' own type: the manifest names
/// it too).
pub use crate::generations::GenerationKind;

/// The records one layer removed from an insurer's state ([`LayerReport::removed_lines`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// The layer's first segment in the global numbering: records in segments before it
    /// were in the view before the layer.
    pub first_segment: u32,
    /// Lines (before the layer) of the records removed, ascending; a line may repeat.
    pub lines: Vec<u64>,
}

impl Removal {
    /// The line now of a record in segment `segment` whose line in the view is `line`,
    /// after the layers `removals` (in order).
    pub fn line_now(removals: &[Removal], segment: usize, line: u64) -> u64 {
        removals
            .iter()
            .filter(|r| r.first_segment as usize > segment)
            .fold(line, |line, r| {
                line - r.lines.partition_point(|&x| x < line) as u64
            })
    }

    /// A layer's removals as the line map they make: `line` before → after.
    pub fn shift(lines: &[u64], line: u64) -> u64 {
        line - lines.partition_point(|&x| x < line) as u64
    }
}

/// A layer generation's own part of `report.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerReport {
    /// The base generation (its main file) the layers stack on.
    pub base: String,
    /// The layer file, in `layers/`.
    pub file: String,
    /// The change files this layer applied, each with its row accounting.
    pub change_files: Vec<ChangeReport>,
    /// Every change file the layered view holds per insurer (the base's and every layer's),
    /// in order, as (file, xxh3): what the next change build compares with. In a layer's own
    /// report (`dropped` set), only the files this layer added to each touched insurer's.
    pub applied: BTreeMap<String, Vec<(String, String)>>,
    /// The (size, modification time in ns) of each file of `applied`, in its order: a file
    /// found with the same name and identity is not read again. Absent (an older report): every
    /// file is read and hashed.
    #[serde(default)]
    pub applied_identity: BTreeMap<String, Vec<(u64, u64)>>,
    /// Members covered today of each insurer a layer since the base touched, as of its last
    /// layer: what the next layer's delivery guard compares with (the insurer entries above
    /// describe the base).
    #[serde(default)]
    pub covered_today: BTreeMap<String, u64>,
    /// Rows of the materialized state of each insurer a layer since the base touched, as of
    /// its last layer: the line an added record takes follows them.
    #[serde(default)]
    pub state_records: BTreeMap<String, u64>,
    /// The materialized state's name of each insurer a layer since the base touched, as of
    /// its last layer: what X1/X3 lines name its records by.
    #[serde(default)]
    pub state_files: BTreeMap<String, String>,
    /// Insurers whose records' lines in the view moved in a way `removed_lines` cannot say
    /// (a line moved down, which no removal does: a guard): their changes take the full
    /// path until the next base.
    #[serde(default)]
    pub lines_shifted: BTreeSet<String>,
    /// Per insurer, the records each layer since the base removed from its state, by their
    /// lines before that layer: a record the view keeps from before that layer has moved up
    /// a line for each removed before it (its line in the view is not rewritten).
    #[serde(default)]
    pub removed_lines: BTreeMap<String, Vec<Removal>>,
    /// Touched insurers this layer computed by their named cards (the card path) and by
    /// their whole state (the full path); docs/delivery.md, "Change generations".
    #[serde(default)]
    pub insurers_card_path: u64,
    #[serde(default)]
    pub insurers_full_path: u64,
    /// Bytes of delivery files (snapshots, change files) this layer's build read.
    #[serde(default)]
    pub delivery_bytes_read: u64,
    pub insurers_touched: Vec<String>,
    pub cards_changed: u64,
    pub cards_removed: u64,
    pub persons_touched: u64,
    /// Records in the layer's delta segments.
    pub records_written: u64,
    /// Bytes this generation wrote: the layer file and its delta segments.
    pub bytes_written: u64,
    /// Layers this one merged (a compaction, `layer_merge`): it applied no change file of
    /// its own, and holds what they held. 0 for a layer of change files.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub merged_layers: u64,
    /// Set when the report is the layer's own (`report_files`): which of its parent's
    /// findings the layer took back, its own `rejects.csv` holding the ones it added. `None`:
    /// a report that holds the whole view itself (an older build's, or one read whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<Dropped>,
}

/// The parent's findings a layer takes back: every line of a touched insurer's files (its
/// state's lines are written again, moved where a removal moved them), and the X1/X3 lines on
/// the records of persons it checked again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// Touched insurers, as their files' first path component.
    pub insurers: BTreeSet<String>,
    /// (insurer, line) of the X1/X3 lines taken back from untouched insurers.
    pub records: BTreeSet<(String, u64)>,
}

impl Dropped {
    /// Whether `line`, a finding of the parent, is one the layer takes back.
    pub fn drops(&self, line: &ReportLine) -> bool {
        let insurer = line.file.split_once('/').map_or("", |(n, _)| n);
        if self.insurers.contains(insurer) {
            return true;
        }
        let cross = line.rule == "X1" || line.rule == "X3";
        cross && self.records.contains(&(insurer.to_owned(), line.line))
    }
}

impl Report {
    /// The report as `report.json` holds it: every text that may name a file, masked as
    /// [`write_rejects`] masks it. Counts, sizes and times stay numbers.
    pub fn masked(&self) -> Report {
        let mask = |s: &String| mask_digit_runs(s).into_owned();
        let mut r = self.clone();
        r.refused = r.refused.iter().map(mask).collect();
        r.notes = r.notes.iter().map(mask).collect();
        for i in &mut r.insurers {
            // An unlisted directory (F4) reports its name as the insurer number.
            i.insurer_number = mask(&i.insurer_number);
            i.insurer_name = mask(&i.insurer_name);
            i.file = i.file.as_ref().map(mask);
            i.state_file = i.state_file.as_ref().map(mask);
            for c in &mut i.changes {
                c.file = mask(&c.file);
            }
        }
        for l in r.layer.iter_mut() {
            for c in &mut l.change_files {
                c.file = mask(&c.file);
            }
            l.applied = std::mem::take(&mut l.applied)
                .into_iter()
                .map(|(k, v)| {
                    (
                        mask(&k),
                        v.into_iter().map(|(f, h)| (mask(&f), h)).collect(),
                    )
                })
                .collect();
        }
        for p in r.kohi.iter_mut().flat_map(|k| k.payers.iter_mut()) {
            p.payer_number = mask(&p.payer_number);
            p.payer_name = mask(&p.payer_name);
            p.file = p.file.as_ref().map(mask);
        }
        r
    }
}

/// Rule codes as `&'static str`, so lines read back from an earlier `rejects.csv` keep the
/// same type as fresh ones.
pub const RULE_CODES: &[&str] = &[
    "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "W0", "W1", "W2", "W3", "W4", "F1", "F2", "F3",
    "F4", "C1", "C2", "C3", "C4", "K1", "K2", "K3", "K4", "K5", "K6", "X1", "X2", "X3", "DUP",
];

/// What each rule code means, in a few words (the console summary, `report.html`).
pub fn rule_meaning(rule: &str) -> &'static str {
    match rule {
        "R0" => "malformed row (cell count, line break in a cell, over-long name)",
        "R1" => "insurer number: bad check digit or not this insurer's",
        "R2" => "number empty or too long, or symbol too long",
        "R3" => "branch not two digits",
        "R4" => "birthdate invalid, in the future or before Meiji",
        "R5" => "qualification date invalid or before the birthdate",
        "R6" => "disqualification date invalid or not after qualification",
        "R7" => "a code not in its list (sex, relationship, reason, copay, limit)",
        "W0" => "unknown column, ignored",
        "W1" => "individual number unusable: dropped, row kept",
        "W2" => "copay ratio unusual for the age",
        "W3" => "75 or over outside a 後期高齢者 insurer",
        "W4" => "name_kana not katakana, or empty",
        "F1" => "file rejected whole: not UTF-8 nor CP932, or mixed",
        "F2" => "file rejected whole: unusable header",
        "F3" => "file rejected whole: not readable as CSV",
        "F4" => "file rejected whole: insurer not in insurers.csv",
        "C1" => "change of a key that does not exist",
        "C2" => "add of a key that exists",
        "C3" => "change missing or not add, update, lose, delete",
        "C4" => "key already changed earlier in the same change file",
        "K1" => "payer number: bad check digit or not this payer's",
        "K2" => "recipient number bad",
        "K3" => "certificate birthdate invalid, in the future or before Meiji",
        "K4" => "valid_from invalid or before the birthdate",
        "K5" => "valid_to invalid or before valid_from",
        "K6" => "institution code, copay limit or sex malformed",
        "X1" => "one individual number on different people",
        "X2" => "one card on different people at once",
        "X3" => "one person covered twice on one day",
        "DUP" => "exact duplicate row, indexed once",
        _ => "",
    }
}

/// What `shikaku build` prints when it published: the totals, the insurers reused and read
/// afresh, the findings by rule, and where the report is (`dir`, the generation's directory).
pub fn console_summary(report: &Report, dir: &std::path::Path) -> String {
    use std::fmt::Write as _;
    if let Some(layer) = &report.layer {
        return layer_summary(report, layer, dir);
    }
    let t = &report.totals;
    let mut out = format!(
        "published {} in {:.1} s: {} rows read, {} indexed, {} rejected, {} duplicates; {} index bytes\n",
        report.generation,
        report.elapsed_ms as f64 / 1000.0,
        t.rows_read,
        t.rows_indexed,
        t.rows_rejected,
        t.rows_deduplicated,
        report.index_bytes
    );
    let reused = report.insurers.iter().filter(|i| i.reused).count();
    let _ = writeln!(
        out,
        "insurers: {}, {reused} reused unchanged from the previous generation, {} read afresh",
        report.insurers.len(),
        report.insurers.len() - reused
    );
    let changes = report.insurers.iter().flat_map(|i| &i.changes);
    let applied = changes
        .clone()
        .filter(|c| c.outcome == ChangeOutcome::Applied)
        .count();
    let superseded = changes.count() - applied;
    if applied + superseded > 0 {
        let _ = writeln!(
            out,
            "change files: {applied} applied, {superseded} superseded (report.json names each); rows replaced by changes: {}",
            t.rows_replaced
        );
    }
    if let Some(k) = &report.kohi {
        let _ = writeln!(
            out,
            "public-expense registers: {} payers, {} rows read, {} indexed, {} rejected, {} duplicates",
            k.payers.len(),
            k.totals.rows_read,
            k.totals.rows_indexed,
            k.totals.rows_rejected,
            k.totals.rows_deduplicated
        );
    }
    if t.by_rule.is_empty() {
        out.push_str("findings: none\n");
    } else {
        out.push_str("findings by rule (rows):\n");
        let known = RULE_CODES.iter().copied();
        let others = t.by_rule.keys().map(String::as_str);
        let mut order: Vec<&str> = known
            .chain(others.filter(|r| !RULE_CODES.contains(r)))
            .collect();
        order.retain(|r| t.by_rule.contains_key(*r));
        for rule in order {
            let _ = writeln!(
                out,
                "  {rule:<4} {:>9}  {}",
                t.by_rule[rule],
                rule_meaning(rule)
            );
        }
    }
    let _ = writeln!(
        out,
        "report: {} (rejects.csv, report.html beside it)",
        dir.join(crate::generations::REPORT_FILE).display()
    );
    out
}

/// [`console_summary`] of a change generation: what its layer applied and touched.
fn layer_summary(report: &Report, l: &LayerReport, dir: &std::path::Path) -> String {
    let rows = |f: fn(&ChangeReport) -> u64| l.change_files.iter().map(f).sum::<u64>();
    if l.merged_layers > 0 {
        return format!(
            "published {} in {:.1} s: a compaction, {} layers merged into one on base {}\n\
             change files of the layers merged: {}; cards held: {}, cards removed: {}, persons held: {}; {} bytes written\n\
             report: {}\n",
            report.generation,
            report.elapsed_ms as f64 / 1000.0,
            l.merged_layers,
            l.base,
            l.change_files.len(),
            l.cards_changed,
            l.cards_removed,
            l.persons_touched,
            l.bytes_written,
            dir.join(crate::generations::REPORT_FILE).display()
        );
    }
    format!(
        "published {} in {:.1} s: a change generation, layer {} on base {}\n\
         change files: {} applied, {} rows read, {} applied, {} rejected\n\
         insurers touched: {}, cards changed: {}, cards removed: {}, persons checked again: {}; {} bytes written\n\
         report: {} (its own change files and findings; rejects.csv and report.html beside it, the base's in reports/)\n",
        report.generation,
        report.elapsed_ms as f64 / 1000.0,
        report.layer_count,
        l.base,
        l.change_files.len(),
        rows(|c| c.rows_read),
        rows(|c| c.rows_applied),
        rows(|c| c.rows_rejected),
        l.insurers_touched.len(),
        l.cards_changed,
        l.cards_removed,
        l.persons_touched,
        l.bytes_written,
        dir.join(crate::generations::REPORT_FILE).display()
    )
}

/// Reads an earlier `rejects.csv` back (for an incremental build).
pub fn read_rejects(bytes: &[u8]) -> csv::Result<Vec<ReportLine>> {
    let mut rdr = csv::Reader::from_reader(bytes);
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        let (Some(file), Some(line), Some(rule), Some(field), Some(reason)) =
            (rec.get(0), rec.get(1), rec.get(2), rec.get(3), rec.get(4))
        else {
            continue;
        };
        let Some(rule) = RULE_CODES.iter().find(|r| **r == rule) else {
            continue;
        };
        out.push(ReportLine {
            file: file.to_owned(),
            line: line.parse().unwrap_or(0),
            rule,
            field: field.to_owned(),
            reason: reason.to_owned(),
        });
    }
    Ok(out)
}

/// `s` with its control characters (a NUL or an escape in a column name read from a file)
/// written as `\u{..}` escapes, so `rejects.csv` stays text a spreadsheet or terminal shows as
/// it is.
fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Writes `rejects.csv`. File names and reasons (which name files) go through
/// `mask_digit_runs`: a delivery's file or directory named with an individual number must
/// not put it in clear in the report (docs/api.md#individual-number), whatever the name.
pub fn write_rejects<W: Write>(w: W, findings: &[ReportLine]) -> csv::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(["file", "line", "rule", "field", "reason"])?;
    for f in findings {
        out.write_record([
            &*escape_controls(&mask_digit_runs(&f.file)),
            &f.line.to_string(),
            f.rule,
            &*escape_controls(&mask_digit_runs(&f.field)),
            &*mask_digit_runs(&f.reason),
        ])?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `file` and `field` cells `write_rejects` writes for one finding.
    fn check(file: &str, field: &str, expected: (&str, &str)) {
        let line = ReportLine {
            file: file.to_owned(),
            line: 1,
            rule: "W0",
            field: field.to_owned(),
            reason: "unknown column ignored".to_owned(),
        };
        let mut out = Vec::new();
        write_rejects(&mut out, &[line]).unwrap();
        let back = read_rejects(&out).unwrap();
        assert_eq!(
            (back[0].file.as_str(), back[0].field.as_str()),
            expected,
            "{field:?}"
        );
        assert!(!out.iter().any(|&b| b < b' ' && b != b'\n'), "{out:?}");
    }

    #[test]
    fn control_characters_are_escaped() {
        check("a.csv", "name", ("a.csv", "name"));
        // Regression: a NUL in a column name was written raw into the field column.
        check("a.csv", "na\0me", ("a.csv", "na\\u{0}me"));
        check("a\u{1b}[31m.csv", "x\ty", ("a\\u{1b}[31m.csv", "x\\u{9}y"));
        check("a.csv", "123456789018\r", ("a.csv", "********9018\\u{d}"));
    }
}
