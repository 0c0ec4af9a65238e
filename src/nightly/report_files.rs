//! How a generation's reports lie on disk, and how the whole view is read back.
//!
//! A base generation's `report.json` and `rejects.csv` hold everything. A change generation
//! writes only its own part, so that its bytes follow its change and not the delivery's
//! history (at the nation a base's report names 334,000 change files): its `report.json`
//! has its header, `totals` (the base's) and `layer` with the files it applied and the
//! parent's findings it took back (`layer.dropped`); its `rejects.csv` the findings it added;
//! its `report.html` the layer. Beside them, `reports/` holds, by hard link, the base's
//! report, findings and page and every layer's own report and findings since the base:
//!
//! ```text
//! reports/base.json  reports/base-rejects.csv  reports/base.html
//! reports/layer-0001.json  reports/layer-0001-rejects.csv  ...  (the last is this layer's)
//! ```
//!
//! [`read_whole`] stacks them into the view a build compares with: the base's insurers,
//! every change file applied so far, every finding standing. A watch keeps the last view it
//! read or wrote ([`keep_whole`]), so its next change build does not parse the base's report
//! again.

use super::report::{read_rejects, write_rejects, ChangeOutcome, Report, ReportLine};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::generations::{REJECTS_FILE, REPORT_FILE};

/// The directory of the reports a change generation stacks on.
pub const REPORTS_DIR: &str = "reports";
const BASE_REPORT: &str = "base.json";
const BASE_REJECTS: &str = "base-rejects.csv";
const BASE_HTML: &str = "base.html";

fn layer_report_name(sequence: u32) -> String {
    format!("layer-{sequence:04}.json")
}

fn layer_rejects_name(sequence: u32) -> String {
    format!("layer-{sequence:04}-rejects.csv")
}

/// A generation's report and findings as a build compares with them: for a change
/// generation, its base's stacked with every layer's own part. Masked as written.
#[derive(Debug, Clone)]
pub struct Whole {
    pub report: Report,
    pub lines: Vec<ReportLine>,
}

/// Why a generation's reports cannot be read whole: the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ReportFilesError {
    pub path: String,
    pub reason: String,
}

fn err(path: &Path, reason: impl ToString) -> ReportFilesError {
    ReportFilesError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_report(path: &Path) -> Result<Report, ReportFilesError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| err(path, e))
}

fn read_lines(path: &Path) -> Result<Vec<ReportLine>, ReportFilesError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e))?;
    read_rejects(&bytes).map_err(|e| err(path, e))
}

/// The whole report of the generation in `dir`, without its findings (cheaper: no
/// `rejects.csv` is read).
pub fn read_whole_report(dir: &Path) -> Result<Report, ReportFilesError> {
    let top = read_report(&dir.join(REPORT_FILE))?;
    if !is_own(&top) {
        return Ok(top);
    }
    let reports = dir.join(REPORTS_DIR);
    let mut whole = read_report(&reports.join(BASE_REPORT))?;
    for sequence in whole.layer_count + 1..top.layer_count {
        stack(
            &mut whole,
            read_report(&reports.join(layer_report_name(sequence)))?,
        );
    }
    stack(&mut whole, top);
    Ok(whole)
}

/// The whole report and findings of the generation in `dir`: the view kept by
/// [`keep_whole`] when it is this generation's (taken, not copied), else read from disk.
pub fn read_whole(dir: &Path) -> Result<Whole, ReportFilesError> {
    if let Some(w) = take_kept(dir) {
        return Ok(w);
    }
    let top = read_report(&dir.join(REPORT_FILE))?;
    if !is_own(&top) {
        let lines = read_lines(&dir.join(REJECTS_FILE))?;
        return Ok(Whole { report: top, lines });
    }
    let reports = dir.join(REPORTS_DIR);
    let mut whole = Whole {
        report: read_report(&reports.join(BASE_REPORT))?,
        lines: read_lines(&reports.join(BASE_REJECTS))?,
    };
    // The stack starts after the report it was put on: a base's (layer 0), or, in a data
    // directory an older build began, a change generation's report that holds its whole view.
    for sequence in whole.report.layer_count + 1..=top.layer_count {
        let own = match sequence == top.layer_count {
            true => top.clone(),
            false => read_report(&reports.join(layer_report_name(sequence)))?,
        };
        let own_lines = read_lines(&reports.join(layer_rejects_name(sequence)))?;
        whole = stack_whole(whole, own, own_lines);
    }
    Ok(whole)
}

/// The whole `rejects.csv` of the generation in `dir`: every finding standing in its view
/// (for a change generation, its base's and each layer's, less those taken back), as a base
/// build of the same delivery would list them, not necessarily in its order.
pub fn whole_rejects(dir: &Path) -> Result<Vec<u8>, ReportFilesError> {
    let whole = read_whole(dir)?;
    let mut out = Vec::new();
    write_rejects(&mut out, &whole.lines).map_err(|e| err(dir, e))?;
    Ok(out)
}

/// Whether `report` is a layer's own part (the rest in `reports/`).
fn is_own(report: &Report) -> bool {
    report.layer.as_ref().is_some_and(|l| l.dropped.is_some())
}

/// `whole` (the parent's view) with a layer's own report and findings stacked on it.
pub fn stack_whole(whole: Whole, own: Report, own_lines: Vec<ReportLine>) -> Whole {
    let Whole { mut report, lines } = whole;
    let dropped = own
        .layer
        .as_ref()
        .and_then(|l| l.dropped.clone())
        .unwrap_or_default();
    let mut lines: Vec<ReportLine> = lines.into_iter().filter(|l| !dropped.drops(l)).collect();
    lines.extend(own_lines);
    stack(&mut report, own);
    Whole { report, lines }
}

/// `whole` (a base's or a layered view's report) with a layer's own report stacked on it:
/// the layer's header and part, the change files applied so far per insurer (the base's,
/// then each layer's, in order).
fn stack(whole: &mut Report, own: Report) {
    let (applied, identity) = match whole.layer.take() {
        Some(l) => (l.applied, l.applied_identity),
        None => base_applied(whole),
    };
    let mut own = own;
    let Some(mut layer) = own.layer.take() else {
        return;
    };
    layer.applied = append_each(applied, std::mem::take(&mut layer.applied));
    layer.applied_identity = append_each(identity, std::mem::take(&mut layer.applied_identity));
    layer.dropped = None;
    // The layer's header and part; what its base's report alone holds, from the base.
    *whole = Report {
        totals: std::mem::take(&mut whole.totals),
        insurers: std::mem::take(&mut whole.insurers),
        notes: std::mem::take(&mut whole.notes),
        kohi: whole.kohi.take(),
        layer: Some(layer),
        ..own
    };
}

/// `to` with each of `more`'s lists appended to its own (the files a layer added to each
/// insurer's state after those before it).
fn append_each<T>(
    mut to: BTreeMap<String, Vec<T>>,
    more: BTreeMap<String, Vec<T>>,
) -> BTreeMap<String, Vec<T>> {
    for (number, items) in more {
        to.entry(number).or_default().extend(items);
    }
    to
}

type Applied = BTreeMap<String, Vec<(String, String)>>;
type Identities = BTreeMap<String, Vec<(u64, u64)>>;

/// The change files a base applied per insurer, (file, xxh3) and (size, mtime), in order.
fn base_applied(base: &Report) -> (Applied, Identities) {
    let mut applied = Applied::new();
    let mut identity = Identities::new();
    for r in &base.insurers {
        let files = r
            .changes
            .iter()
            .filter(|c| c.outcome == ChangeOutcome::Applied);
        let names: Vec<_> = files
            .clone()
            .map(|c| (c.file.clone(), c.xxh3.clone()))
            .collect();
        if names.is_empty() {
            continue;
        }
        identity.insert(
            r.insurer_number.clone(),
            files.map(|c| (c.bytes, c.mtime_ns)).collect(),
        );
        applied.insert(r.insurer_number.clone(), names);
    }
    (applied, identity)
}

/// Writes a change generation's own reports into `tmp` (its `report.json`, `rejects.csv`,
/// `report.html`, and under `reports/` the parent's stack by hard link and its own part), and
/// returns its whole view: the parent's (`parent`, read from `parent_dir`) with its own
/// stacked, exactly as [`read_whole`] reads it back.
pub(super) fn write_layer_reports(
    tmp: &Path,
    parent_dir: &Path,
    parent: Whole,
    own: &Report,
    own_lines: &[ReportLine],
) -> Result<Whole, ReportFilesError> {
    let masked = own.masked();
    let reports = tmp.join(REPORTS_DIR);
    std::fs::create_dir_all(&reports).map_err(|e| err(&reports, e))?;
    link_parent_reports(parent_dir, &reports)?;
    // What a read from disk would find: the masked report and the findings as parsed back.
    let own_lines = write_own(tmp, &masked, own_lines)?;
    Ok(stack_whole(parent, masked, own_lines))
}

/// Writes a layer's own report and findings under `reports/` as its sequence's, linked as
/// the generation's `report.json` and `rejects.csv`, and its page; returns the findings as
/// read back.
fn write_own(
    tmp: &Path,
    masked: &Report,
    own_lines: &[ReportLine],
) -> Result<Vec<ReportLine>, ReportFilesError> {
    let reports = tmp.join(REPORTS_DIR);
    let sequence = masked.layer_count;
    let json = serde_json::to_vec_pretty(masked).map_err(|e| err(&reports, e))?;
    let mut rejects = Vec::new();
    write_rejects(&mut rejects, own_lines).map_err(|e| err(&reports, e))?;
    let own_json = reports.join(layer_report_name(sequence));
    let own_rejects = reports.join(layer_rejects_name(sequence));
    write_synced(&own_json, &json)?;
    write_synced(&own_rejects, &rejects)?;
    fsync_dir(&reports)?;
    hard_link(&own_json, &tmp.join(REPORT_FILE))?;
    hard_link(&own_rejects, &tmp.join(REJECTS_FILE))?;
    let html = tmp.join(super::html::REPORT_HTML_FILE);
    std::fs::write(&html, super::html::render_layer(masked)).map_err(|e| err(&html, e))?;
    read_rejects(&rejects).map_err(|e| err(&own_rejects, e))
}

/// Writes a merged layer's reports into `tmp` (`layer_merge`): under `reports/` the base's,
/// linked from the parent's, and the merged layer's own part as layer 1, whose findings are
/// the view's (`whole`, the parent's) less the base's it keeps. `own` is the merged layer's
/// report with the view's whole `layer` part; its `applied` and `dropped` become its own
/// here. Returns the merged generation's whole view, the same findings as `whole`'s.
pub(super) fn write_merged_reports(
    tmp: &Path,
    parent_dir: &Path,
    whole: Whole,
    own: &mut Report,
) -> Result<Whole, ReportFilesError> {
    let parent_reports = parent_dir.join(REPORTS_DIR);
    let base_rejects = parent_reports.join(BASE_REJECTS);
    let base_lines = read_lines(&base_rejects)?;
    let Some(layer) = own.layer.as_mut() else {
        return Err(err(parent_dir, "a merged generation has a layer part"));
    };
    let touched: std::collections::BTreeSet<String> = layer.state_files.keys().cloned().collect();
    let (base_kept, own_lines, records) = split_findings(&base_lines, &whole.lines, &touched)
        .map_err(|reason| err(&base_rejects, reason))?;
    // The change files the merged layers applied, each with its row accounting, kept: the
    // layers' own reports stay behind with their generations.
    for sequence in 1..=whole.report.layer_count {
        let merged = read_report(&parent_reports.join(layer_report_name(sequence)))?;
        layer
            .change_files
            .extend(merged.layer.into_iter().flat_map(|l| l.change_files));
    }
    let (base_applied, base_identity) = base_applied(&whole.report);
    layer.applied = past_prefix(&layer.applied, &base_applied);
    layer.applied_identity = past_prefix(&layer.applied_identity, &base_identity);
    layer.dropped = Some(super::report::Dropped {
        insurers: touched,
        records,
    });
    let masked = own.masked();
    let reports = tmp.join(REPORTS_DIR);
    std::fs::create_dir_all(&reports).map_err(|e| err(&reports, e))?;
    for name in [BASE_REPORT, BASE_REJECTS, BASE_HTML] {
        let from = parent_reports.join(name);
        if from.exists() {
            hard_link(&from, &reports.join(name))?;
        }
    }
    // The view as `read_whole` reads it back: the base's findings kept, then the layer's.
    let mut lines = base_kept;
    lines.extend(write_own(tmp, &masked, &own_lines)?);
    // The merged layer stacked on the base's part of the view, as `read_whole` stacks it.
    let mut report = whole.report;
    report.layer = None;
    stack(&mut report, masked);
    Ok(Whole { report, lines })
}

/// The base's findings (`base`) split against a view's (`view`), for a layer that stands
/// for every layer since the base: those the view keeps, the view's others (the layer's
/// own), and the (insurer, line) of the base's X1/X3 lines of insurers no layer touched that
/// the view took back. A finding of the base the view lacks and no layer could have taken
/// back is an error.
#[allow(clippy::type_complexity)]
fn split_findings(
    base: &[ReportLine],
    view: &[ReportLine],
    touched: &std::collections::BTreeSet<String>,
) -> Result<
    (
        Vec<ReportLine>,
        Vec<ReportLine>,
        std::collections::BTreeSet<(String, u64)>,
    ),
    String,
> {
    let mut in_view: std::collections::HashMap<&ReportLine, usize> = Default::default();
    for l in view {
        *in_view.entry(l).or_default() += 1;
    }
    let insurer = |l: &ReportLine| l.file.split_once('/').map_or("", |(n, _)| n).to_owned();
    let mut records = std::collections::BTreeSet::new();
    let mut left = in_view.clone();
    for l in base.iter().filter(|l| !touched.contains(&insurer(l))) {
        match left.get_mut(l) {
            Some(n) if *n > 0 => *n -= 1,
            _ if l.rule == "X1" || l.rule == "X3" => {
                records.insert((insurer(l), l.line));
            }
            _ => return Err(format!("the base's finding {l:?} is not in the view")),
        }
    }
    let dropped = super::report::Dropped {
        insurers: touched.clone(),
        records: records.clone(),
    };
    let kept: Vec<ReportLine> = base.iter().filter(|l| !dropped.drops(l)).cloned().collect();
    let mut left = in_view;
    for l in &kept {
        match left.get_mut(l) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                return Err(format!(
                    "the base's finding {l:?} is kept but not in the view"
                ))
            }
        }
    }
    let own = view
        .iter()
        .filter(|l| match left.get_mut(l) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .cloned()
        .collect();
    Ok((kept, own, records))
}

/// Each insurer's list past the base's part of it (the files the layers added).
fn past_prefix<T: Clone>(
    all: &BTreeMap<String, Vec<T>>,
    base: &BTreeMap<String, Vec<T>>,
) -> BTreeMap<String, Vec<T>> {
    all.iter()
        .filter_map(|(n, items)| {
            let skip = base.get(n).map_or(0, Vec::len).min(items.len());
            (skip < items.len()).then(|| (n.clone(), items[skip..].to_vec()))
        })
        .collect()
}

/// Links into `reports` the parent generation's stack: a report that holds its whole view (a
/// base's, or an older build's change generation's) as `base.*`, or a change generation's
/// `reports/` as it is.
fn link_parent_reports(parent_dir: &Path, reports: &Path) -> Result<(), ReportFilesError> {
    let parent_reports = parent_dir.join(REPORTS_DIR);
    let top = read_report(&parent_dir.join(REPORT_FILE))?;
    if !is_own(&top) {
        let base = [
            (REPORT_FILE, BASE_REPORT),
            (REJECTS_FILE, BASE_REJECTS),
            (super::html::REPORT_HTML_FILE, BASE_HTML),
        ];
        for (from, to) in base {
            let from = parent_dir.join(from);
            if from.exists() {
                hard_link(&from, &reports.join(to))?;
            }
        }
        return Ok(());
    }
    let entries = std::fs::read_dir(&parent_reports).map_err(|e| err(&parent_reports, e))?;
    for e in entries {
        let e = e.map_err(|e| err(&parent_reports, e))?;
        hard_link(&e.path(), &reports.join(e.file_name()))?;
    }
    Ok(())
}

fn hard_link(from: &Path, to: &Path) -> Result<(), ReportFilesError> {
    std::fs::hard_link(from, to).map_err(|e| err(from, e))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ReportFilesError> {
    let mut f = File::create(path).map_err(|e| err(path, e))?;
    f.write_all(bytes).map_err(|e| err(path, e))?;
    f.sync_all().map_err(|e| err(path, e))
}

fn fsync_dir(dir: &Path) -> Result<(), ReportFilesError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(dir, e))
}

/// The view a build read or wrote last in this process, by its generation's directory and
/// `report.json`'s inode (a directory is never rewritten under its id, but a data directory
/// can be replaced whole).
static KEPT: Mutex<Option<(PathBuf, u64, Whole)>> = Mutex::new(None);

fn report_inode(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join(REPORT_FILE))
        .ok()
        .map(|m| m.ino())
}

/// Keeps `whole`, the view of the generation in `dir`, for the next [`read_whole`] of it in
/// this process (a watch's next build).
pub fn keep_whole(dir: &Path, whole: Whole) {
    let Some(ino) = report_inode(dir) else {
        return;
    };
    *KEPT.lock().unwrap_or_else(|e| e.into_inner()) = Some((dir.to_owned(), ino, whole));
}

fn take_kept(dir: &Path) -> Option<Whole> {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let ino = report_inode(dir)?;
    match kept.take() {
        Some((d, i, w)) if d == dir && i == ino => Some(w),
        other => {
            *kept = other;
            None
        }
    }
}
