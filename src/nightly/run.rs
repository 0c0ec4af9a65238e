//! The nightly build, end to end: discover, read and encode every insurer in parallel, link
//! persons, write the index and its report under `tmp/`, verify what was written, check the
//! delivery guard, seal and publish.

use super::encode::InsurerPart;
use super::insurer::{process_insurer, report_line, InsurerResult};
use super::kohi::{build_registers, encode_certificates};
use super::link::{link_incremental, link_persons};
use super::profile::{Phases, StageTimes};
use super::report::{write_rejects, Counts, InsurerReport, KohiReport, Report, ReportLine};
use super::reuse::{Previous, ReuseError};
use crate::domain::{Date, InsurerNumber, PayerNumber, PersonKey};
use crate::format::writer::{IndexTail, IndexWriter, InsurerInput};
use crate::format::{FormatError, SEGMENTS_DIR};
use crate::generations::{self, Store, StoreError, INDEX_FILE, REJECTS_FILE, REPORT_FILE};
use crate::index::MappedIndex;
use crate::snapshot::{self, ChangeTime, Finding, Rule, SnapshotError};
use crate::snapshot::{Identities, ScanCache};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use thiserror::Error;

/// Default for the guard: refuse to publish when an insurer's members covered today fall by
/// more than this share against the live generation.
pub const DEFAULT_MAX_DROP_PERCENT: f64 = 10.0;

#[derive(Debug, Clone)]
pub struct BuildConfig {
    pub snapshots: PathBuf,
    pub data: PathBuf,
    pub key: PersonKey,
    /// "Today" for covered counts (the build date in Japan).
    pub built_on: Date,
    /// Guard threshold, in percent.
    pub max_drop_percent: f64,
    /// Insurers the operator accepts despite the guard.
    pub accept: Vec<InsurerNumber>,
    /// Whether unchanged insurers are taken from the live generation.
    pub reuse: Reuse,
    /// A progress bar (on a terminal); else progress goes to the log.
    pub progress: bool,
    /// The operator's signing key (`build --signing-key`): the generation is then deep-checked
    /// here and its manifest signed, so that servers trusting the key check only checksums.
    pub signing: Option<std::sync::Arc<crate::signing::SigningKey>>,
}

/// What a build may take from the live generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reuse {
    /// Unchanged snapshot files keep their segments, and persons are merged (the nightly
    /// build); when only change files are new, a change generation (one more layer,
    /// `layer.rs`) instead, until the layers are due for folding.
    #[default]
    UnchangedInsurers,
    /// As `UnchangedInsurers`, but always a new base: the layers folded
    /// (`shikaku build --fold`).
    Fold,
    /// The live generation's layers merged into one on the same base, from the index alone
    /// (`shikaku build --compact`, `layer_merge.rs`); the delivery is not read.
    Compact,
    /// Parse and encode everything (`shikaku build --full`).
    Nothing,
    /// As `UnchangedInsurers`, but a change generation computes every touched insurer from
    /// its whole state (the full path, `layer_diff`), never by its named cards: what the
    /// card path (`layer_cards`) is checked against.
    WholeStates,
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("encoding the index: {0}")]
    Format(#[from] FormatError),
    #[error(transparent)]
    Reuse(#[from] ReuseError),
    #[error("signing the generation: {0}")]
    Signing(#[from] crate::signing::SigningError),
    #[error(transparent)]
    Reports(#[from] super::report_files::ReportFilesError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "row accounting does not balance for {0}: this is a bug in shikaku, nothing was published"
    )]
    Accounting(String),
    #[error("the live generation {generation} has {layers} change layer(s): nothing to compact (a new base is `shikaku build --fold`)")]
    NothingToCompact { generation: String, layers: usize },
    #[error("merging the change layers: {0}: this is a bug in shikaku, nothing was published")]
    Merge(String),
    #[error("not published: {}; see {report}", reasons.join("; "))]
    Refused {
        reasons: Vec<String>,
        report: String,
    },
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A finished, published build.
pub struct BuildOutcome {
    pub generation: String,
    pub report: Report,
    pub generation_dir: PathBuf,
    /// The generation as the build opened it to verify it. A process that builds again (a
    /// watch) holds it until then and hands it back ([`Kept::last`]): the next build takes it
    /// as the live generation instead of opening it again.
    pub index: MappedIndex,
    /// When the build then merged the layers (`layer_merge::merge_when_due`): the merge,
    /// published after the change generation and live now (`index` is it). `generation`,
    /// `report` and `generation_dir` stay the change generation's: what the build applied.
    pub merged: Option<Merged>,
}

impl std::fmt::Debug for BuildOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildOutcome")
            .field("generation", &self.generation)
            .field("generation_dir", &self.generation_dir)
            .finish_non_exhaustive()
    }
}

/// A build's progress: a bar on a terminal; otherwise (cron, systemd) a log line at each
/// phase and at every tenth of the insurers, so the log shows a long build is alive.
struct Progress {
    bar: Option<ProgressBar>,
    insurers: u64,
    done: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn new(insurers: u64, bar: bool) -> Progress {
        let bar = bar.then(|| {
            let bar = ProgressBar::new(insurers);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:40}] {pos}/{len} insurers ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let p = Progress {
            bar,
            insurers,
            done: Default::default(),
        };
        p.phase("reading snapshots");
        p
    }

    fn phase(&self, what: &'static str) {
        match &self.bar {
            Some(bar) => bar.set_message(what),
            None => tracing::info!("{what}"),
        }
    }

    /// One insurer read and encoded (from any thread).
    fn insurer_done(&self) {
        if let Some(bar) = &self.bar {
            return bar.inc(1);
        }
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let tenth = |n: u64| n * 10 / self.insurers.max(1);
        if tenth(n) > tenth(n - 1) {
            tracing::info!("{n} of {} insurers read and encoded", self.insurers);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs a whole build. On success the new generation is live.
pub fn run(cfg: &BuildConfig) -> Result<BuildOutcome, BuildError> {
    run_kept(cfg, Kept::default())
}

pub use super::layer_merge::Merged;

/// What a process that builds again and again (a watch) keeps for its next build, so that a
/// change build costs what changed, not what the delivery and the live generation hold.
#[derive(Default)]
pub struct Kept<'a> {
    /// The delivery's files' identities as just listed: a change build takes them instead
    /// of asking the file system for every change file since the base.
    pub listed: Identities,
    /// The insurer directories' scans, kept from build to build.
    pub scans: Option<&'a ScanCache>,
    /// The generation the last build made, as it opened it: a change build's open of the
    /// live generation becomes it (`MappedIndex::open_file_from`), not a fresh open.
    pub last: Option<MappedIndex>,
}

/// [`run`], with what the caller kept from its last build.
pub fn run_kept(cfg: &BuildConfig, kept: Kept) -> Result<BuildOutcome, BuildError> {
    let existed = cfg.data.exists();
    let store = Store::new(&cfg.data);
    let lock = store.lock()?;
    let result = run_locked(cfg, &store, kept);
    if result.is_err() && !existed {
        // The directory is this build's alone (made by it, and locked since): a first build
        // that fails leaves none, rather than a `LOCK` that would make `serve` and `query`
        // take it for a data directory where nothing was built yet.
        if let Err(e) = std::fs::remove_dir_all(&cfg.data) {
            tracing::warn!(
                "cannot remove {} after the failed build: {e}",
                cfg.data.display()
            );
        }
    }
    drop(lock);
    result
}

fn run_locked(
    cfg: &BuildConfig,
    store: &Store,
    mut kept: Kept,
) -> Result<BuildOutcome, BuildError> {
    let started = Instant::now();
    let cleaned = store.clean_tmp()?;
    if cleaned > 0 {
        tracing::info!(
            cleaned,
            "removed unfinished builds from {}",
            store.tmp_dir().display()
        );
    }
    // A change generation's report counts these two phases too (a base build's phases begin
    // at reading).
    let mut phases = Phases::new();
    if cfg.reuse == Reuse::Compact {
        let source = super::layer_merge::merge_source(cfg, store, kept.last.take())?;
        phases.end("plan");
        return super::layer_merge::run_merge(cfg, store, source, (started, phases));
    }
    let now = ChangeTime::for_build(cfg.built_on);
    let discovery = snapshot::discover_scanned(&cfg.snapshots, now, kept.scans)?;
    phases.end("discover");
    if matches!(cfg.reuse, Reuse::UnchangedInsurers | Reuse::WholeStates) {
        match super::layer::plan(store, cfg, &discovery, (&kept.listed, kept.last.take())) {
            Ok(plan) => {
                phases.end("plan");
                let built = super::layer::run_layer(cfg, store, plan, (started, phases))?;
                return super::layer_merge::merge_when_due(cfg, store, built);
            }
            Err(why) => tracing::info!("building a base generation, not a change layer: {why}"),
        }
    }
    let mut deliveries = discovery.deliveries.clone();
    deliveries.sort_by_key(|s| s.insurer.number.to_key());
    let previous = match cfg.reuse {
        Reuse::UnchangedInsurers | Reuse::Fold | Reuse::WholeStates | Reuse::Compact => {
            Previous::load(store, &cfg.key)
        }
        Reuse::Nothing => None,
    };
    let id = generations::new_generation_id();
    let tmp = store.begin(&id)?;

    let mut phases = Phases::new();
    let stages = StageTimes::default();
    let progress = Progress::new(deliveries.len() as u64, cfg.progress);
    let index_path = tmp.join(INDEX_FILE);
    let segments_dir = tmp.join(SEGMENTS_DIR);
    std::fs::create_dir_all(&segments_dir).map_err(io_err(&segments_dir))?;
    // Insurers are read, encoded and written in parallel, each into its own segment file, so
    // memory holds the segments being encoded, not the nation's.
    let results = deliveries
        .par_iter()
        .enumerate()
        .map(|(i, s)| {
            let r = process_insurer(s, i as u32, cfg, previous.as_ref(), &segments_dir, &stages);
            progress.insurer_done();
            r
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The workers kept what they freed for the next insurer (the build starts with
    // mimalloc's purge delay: `Command::holds_memory_idle`). The link phase holds the
    // build's largest transients (links, person table) and is its peak: from here what is
    // freed goes back at once, and the workers' heaps are emptied.
    crate::allocator::return_freed_memory_at_once();
    rayon::broadcast(|_| crate::allocator::collect_freed_memory());
    let fresh_segments: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.reused_from.is_none())
        .map(|(i, _)| i)
        .collect();
    phases.end("read_encode");
    progress.phase("linking persons");
    let mut reused = vec![None; previous.as_ref().map_or(0, Previous::insurer_count)];
    for (i, r) in results.iter().enumerate() {
        if let Some(old) = r.reused_from {
            reused[old] = Some(i as u32);
        }
    }
    let (mut parts, mut lines, mut insurer_reports): (Vec<_>, Vec<_>, Vec<_>) = split(results);
    let kohi_discovery =
        snapshot::kohi::discover_kohi(&cfg.snapshots, ChangeTime::for_build(cfg.built_on))?;
    let kohi = build_registers(&kohi_discovery, cfg.built_on)?;
    let payers: Vec<(PayerNumber, &str)> = kohi_discovery
        .payers
        .iter()
        .map(|p| (p.number, p.name.as_str()))
        .collect();
    let kohi_index = encode_certificates(&payers, &kohi.certificates, &cfg.key)?;
    phases.end("kohi");
    let persons = match &previous {
        Some(prev) => link_incremental(&mut parts, &prev.persons(reused)),
        None => link_persons(&mut parts),
    };
    drop(previous);
    // Cross-insurer lines name the file the records were indexed from: the snapshot, or the
    // materialized state of an insurer with change files.
    let report_by_file: HashMap<String, usize> = insurer_reports
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((r.state_file.clone().or_else(|| r.file.clone())?, i)))
        .collect();
    for l in &persons.findings {
        if let Some(&i) = report_by_file.get(&l.file) {
            insurer_reports[i].counts.count_rule(l.rule);
        }
    }
    lines.extend(persons.findings.iter().cloned());
    let (extra_lines, mut notes) = discovery_findings(&discovery.findings);
    notes.extend(kohi_discovery.findings.iter().map(ToString::to_string));
    lines.extend(kohi.lines);
    for (line, counts) in extra_lines {
        insurer_reports.push(InsurerReport {
            insurer_number: line.file.split('/').next().unwrap_or_default().to_owned(),
            insurer_name: String::new(),
            file: Some(line.file.clone()),
            snapshot_date: None,
            file_bytes: 0,
            file_mtime_ns: 0,
            reused: false,
            encoding: None,
            changes: Vec::new(),
            state_file: None,
            line_gaps: None,
            counts,
        });
        lines.push(line);
    }
    let mut totals = Counts::default();
    for r in &insurer_reports {
        totals.add(&r.counts);
    }
    assert!(
        totals.balanced(),
        "per-insurer counts balance, so the totals do"
    );

    phases.end("link");
    progress.phase("writing index");
    let file = File::create(&index_path).map_err(io_err(&index_path))?;
    let mut w = BufWriter::with_capacity(8 << 20, file);
    let mut writer = IndexWriter::new(&mut w).map_err(io_err(&index_path))?;
    for p in &parts {
        writer
            .push_insurer(&insurer_input(p))
            .map_err(io_err(&index_path))?;
    }
    let header = writer
        .finish(&IndexTail {
            generation_id: &id,
            built_on: cfg.built_on,
            person_key_fingerprint: cfg.key.fingerprint(),
            persons: &persons.entries,
            person_refs: &persons.refs,
            kohi: &kohi_index,
        })
        .map_err(io_err(&index_path))?;
    w.flush().map_err(io_err(&index_path))?;
    drop(w);
    drop(parts);
    drop(persons);
    phases.end("write");
    progress.phase("verifying");
    // Read back what was written: structure, every checksum, and the counts.
    let index = MappedIndex::open_file(&index_path, cfg.key.clone()).map_err(StoreError::from)?;
    verify_by_reading(&index, &index_path, &fresh_segments)?;
    assert_eq!(index.header(), &header, "the index reads back as written");
    assert_eq!(
        header.record_count, totals.rows_indexed,
        "every indexed row is in the index"
    );
    assert_eq!(
        header.certificate_count, kohi.report.totals.rows_indexed,
        "every indexed certificate is in the index"
    );

    phases.end("verify");
    // The checks a server runs before serving, so that no generation a server would refuse
    // is ever published (a reused segment was checked by the build that wrote it). A signed
    // build checks every file: the signature vouches for all of them.
    progress.phase("deep check");
    match cfg.signing {
        Some(_) => index.verify_structure()?,
        None => index.verify_structure_of(&fresh_segments)?,
    }
    phases.end("deep_check");
    // The live generation's report (the one this build would replace): the payers' guard
    // compares with it, and report.html shows the change against it; none before the first
    // publication.
    let previous: Option<Report> = store
        .live()
        .ok()
        .and_then(|live| super::report_files::read_whole_report(&store.generation_dir(&live)).ok());
    let mut refused = guard(store, cfg, &index);
    refused.extend(guard_registers(previous.as_ref(), cfg, &kohi.report));
    let mut report = Report {
        generation: id.clone(),
        built_on: cfg.built_on.to_string(),
        published: refused.is_empty(),
        refused: refused.clone(),
        totals,
        insurers: insurer_reports,
        notes,
        elapsed_ms: started.elapsed().as_millis() as u64,
        phases_ms: phases.wall_ms.clone(),
        phases_cpu_ms: phases.cpu_ms.clone(),
        stages_cpu_ms: stages.cpu_ms(),
        index_bytes: index.total_bytes(),
        kohi: cfg
            .snapshots
            .join(snapshot::kohi::KOHI_DIR)
            .is_dir()
            .then_some(kohi.report),
        generation_kind: super::report::GenerationKind::Base,
        parent: store.current().ok().flatten(),
        layer_count: 0,
        layer: None,
    };
    write_report_files(&tmp, &report, &lines, previous.as_ref())?;
    progress.finish();
    if !refused.is_empty() {
        return Err(keep_refused(store, &tmp, &id, refused));
    }
    if let Some(key) = &cfg.signing {
        progress.phase("signing");
        crate::signing::sign_generation(&tmp, &id, key)?;
        phases.end("sign");
    }
    let dir = seal_and_publish(store, &id, &mut report, phases, started)?;
    tracing::info!(
        generation = %id,
        phases_ms = ?report.phases_ms,
        phases_cpu_ms = ?report.phases_cpu_ms,
        stages_cpu_ms = ?report.stages_cpu_ms,
        "published"
    );
    Ok(BuildOutcome {
        merged: None,
        generation: id,
        report,
        generation_dir: dir,
        index,
    })
}

/// Seals generation `id` and makes it live, then gives `report` the phases' times and the
/// build's: the last step of a base and of a change generation alike.
pub(super) fn seal_and_publish(
    store: &Store,
    id: &str,
    report: &mut Report,
    mut phases: Phases,
    started: Instant,
) -> Result<std::path::PathBuf, BuildError> {
    let dir = store.seal(id)?;
    store.publish(id)?;
    phases.end("publish");
    report.phases_ms = phases.wall_ms;
    report.phases_cpu_ms = phases.cpu_ms;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(dir)
}

pub(super) fn insurer_input(p: &InsurerPart) -> InsurerInput<'_> {
    InsurerInput {
        number: p.number,
        kind: p.kind.code(),
        name: &p.name,
        snapshot_date: p.snapshot_date,
        covered_count: p.covered_count,
        segment: p.segment.meta,
    }
}

/// Recomputes every checksum of the main file and of the segment files this build wrote
/// (`fresh`, by insurer position) by reading them, not through the mapping: a national index
/// is larger than the build's memory budget, and read pages stay in the page cache instead of
/// the process. Hard-linked segment files were verified just before they were linked
/// (`Previous::reuse`) and are never modified; opening the index checked their headers and
/// sizes.
fn verify_by_reading(index: &MappedIndex, path: &Path, fresh: &[usize]) -> Result<(), BuildError> {
    let segments_dir = path.parent().unwrap_or(Path::new(".")).join(SEGMENTS_DIR);
    let mut buf = vec![0u8; 8 << 20];
    verify_ranges(path, index.checksummed_ranges(), &mut buf)?;
    for &i in fresh {
        let (name, body, expected) = index.segment_check(i);
        let what = format!("segment file {SEGMENTS_DIR}/{name}");
        verify_ranges(
            &segments_dir.join(name),
            vec![(what, body, expected)],
            &mut buf,
        )?;
    }
    Ok(())
}

/// Checks each `(what, range, xxh3)` of the file at `path` by reading it.
pub(super) fn verify_ranges(
    path: &Path,
    ranges: Vec<(String, std::ops::Range<usize>, u64)>,
    buf: &mut [u8],
) -> Result<(), BuildError> {
    use std::os::unix::fs::FileExt;
    let file = File::open(path).map_err(io_err(path))?;
    for (what, range, expected) in ranges {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut at = range.start as u64;
        while at < range.end as u64 {
            let n = (range.end as u64 - at).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], at)
                .map_err(io_err(path))?;
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        if hasher.digest() != expected {
            return Err(BuildError::Format(FormatError::Checksum { what }));
        }
    }
    Ok(())
}

type Split = (Vec<InsurerPart>, Vec<ReportLine>, Vec<InsurerReport>);

fn split(results: Vec<InsurerResult>) -> Split {
    let mut parts = Vec::with_capacity(results.len());
    let mut lines = Vec::new();
    let mut reports = Vec::with_capacity(results.len());
    for r in results {
        reports.push(InsurerReport {
            insurer_number: r.part.number.to_string(),
            insurer_name: r.part.name.clone(),
            file: r.file,
            snapshot_date: Some(r.part.snapshot_date.to_string()),
            file_bytes: r.identity.0,
            file_mtime_ns: r.identity.1,
            reused: r.reused_from.is_some(),
            encoding: r.encoding,
            changes: r.changes,
            state_file: r.state_file,
            line_gaps: r.line_gaps,
            counts: r.counts,
        });
        lines.extend(r.lines);
        parts.push(r.part);
    }
    (parts, lines, reports)
}

/// Turns discovery findings into report lines (with row accounting for unlisted insurers'
/// files, rejected whole under F4) and notes.
fn discovery_findings(findings: &[Finding]) -> (Vec<(ReportLine, Counts)>, Vec<String>) {
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    for f in findings {
        notes.push(f.to_string());
        if let Finding::UnlistedDirectory {
            newest: Some(file),
            insurer,
            ..
        } = f
        {
            let summary = snapshot::account_rejected_file(
                file,
                *insurer,
                Rule::F4,
                "insurer_number",
                "the insurer is not listed in insurers.csv",
            );
            let mut counts = Counts {
                rows_read: summary.rows_read,
                rows_rejected: summary.rejected,
                ..Counts::default()
            };
            for (rule, n) in summary.by_rule.iter() {
                *counts.by_rule.entry(rule.as_str().to_owned()).or_default() += n;
            }
            if let Some(issue) = summary.file_reject {
                lines.push((report_line(issue), counts));
            }
        }
    }
    (lines, notes)
}

/// The guard against truncated or failed deliveries: compares each insurer's members covered
/// today with the live generation's. Returns why it refuses, if it does.
fn guard(store: &Store, cfg: &BuildConfig, new: &MappedIndex) -> Vec<String> {
    let Ok(Some(live_id)) = store.current() else {
        return Vec::new();
    };
    let Some(live_counts) = live_covered_counts(store, cfg, &live_id) else {
        tracing::warn!(
            live_id,
            "neither the live generation's index nor its report can be read; the guard has nothing to compare with"
        );
        return Vec::new();
    };
    let new_counts: BTreeMap<String, u64> = new
        .insurers()
        .iter()
        .map(|i| (i.number_str().to_owned(), u64::from(i.entry.covered_count)))
        .collect();
    let mut refused = Vec::new();
    for (number, &before) in &live_counts {
        if cfg.accept.iter().any(|a| a.as_str() == number) {
            continue;
        }
        match new_counts.get(number) {
            None => refused.push(format!(
                "insurer {number} is missing (present in {live_id}); pass --accept {number} if it really left"
            )),
            Some(&after) if dropped_too_far(before, after, cfg.max_drop_percent) => {
                refused.push(format!(
                    "insurer {number}: members covered today fell from {before} to {after} (more than {}%); a truncated delivery? pass --accept {number} if it is real",
                    cfg.max_drop_percent,
                ))
            }
            Some(_) => {}
        }
    }
    refused
}

/// The guard for the public-expense registers, as for insurers: a listed payer whose
/// certificates valid today fall by more than `max_drop_percent`, or that went missing,
/// refuses the build (a truncated register would turn its recipients into "not found").
/// Compared with the live generation's `report.json` (it needs no person key).
fn guard_registers(live: Option<&Report>, cfg: &BuildConfig, new: &KohiReport) -> Vec<String> {
    let Some(live) = live else {
        return Vec::new();
    };
    let Some(before) = live.kohi.as_ref().map(payers_covered) else {
        return Vec::new();
    };
    let after = payers_covered(new);
    let mut refused = Vec::new();
    for (number, &was) in &before {
        if cfg.accept.iter().any(|a| a.as_str() == number) {
            continue;
        }
        match after.get(number) {
            None => refused.push(format!(
                "public-expense payer {number} is missing (present in {}); pass --accept {number} if it really left",
                live.generation
            )),
            Some(&now) if dropped_too_far(was, now, cfg.max_drop_percent) => refused.push(format!(
                "public-expense payer {number}: certificates valid today fell from {was} to {now} (more than {}%); a truncated register? pass --accept {number} if it is real",
                cfg.max_drop_percent
            )),
            Some(_) => {}
        }
    }
    refused
}

/// Certificates valid on the build date per listed payer (a directory `payers.csv` does not
/// list has a report line without a name: not a payer).
fn payers_covered(kohi: &KohiReport) -> BTreeMap<String, u64> {
    kohi.payers
        .iter()
        .filter(|p| !p.payer_name.is_empty())
        .map(|p| (p.payer_number.clone(), p.counts.covered_today))
        .collect()
}

/// Keeps a build the guard refused for inspection, outside `generations/` so it can never go
/// live, and says so.
pub(super) fn keep_refused(
    store: &Store,
    tmp: &Path,
    id: &str,
    reasons: Vec<String>,
) -> BuildError {
    let kept = store.refused_dir().join(id);
    let moved = std::fs::create_dir_all(store.refused_dir())
        .and_then(|()| std::fs::rename(tmp, &kept))
        .map_err(io_err(&kept));
    match moved {
        Ok(()) => BuildError::Refused {
            reasons,
            report: kept.join(REPORT_FILE).display().to_string(),
        },
        Err(e) => e,
    }
}

/// Whether a count that was `before` and is `after` fell by more than `max_percent`.
pub(super) fn dropped_too_far(before: u64, after: u64, max_percent: f64) -> bool {
    before > 0 && (before - after.min(before)) as f64 / before as f64 * 100.0 > max_percent
}

/// Members covered today per insurer of the live generation: from its index, or, when that
/// cannot be opened (the person key was rotated since, which the index refuses), from its
/// `report.json`, which holds the same counts and needs no key.
fn live_covered_counts(
    store: &Store,
    cfg: &BuildConfig,
    live_id: &str,
) -> Option<BTreeMap<String, u64>> {
    match store.open(live_id, cfg.key.clone()) {
        Ok(live) => Some(
            live.insurers()
                .iter()
                .map(|i| (i.number_str().to_owned(), u64::from(i.entry.covered_count)))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(live_id, "the live generation cannot be opened ({e}); the guard compares with its report.json");
            let report =
                super::report_files::read_whole_report(&store.generation_dir(live_id)).ok()?;
            // Lines for unlisted directories (F4) have no snapshot date: not insurers.
            Some(
                report
                    .insurers
                    .into_iter()
                    .filter(|r| r.snapshot_date.is_some())
                    .map(|r| (r.insurer_number, r.counts.covered_today))
                    .collect(),
            )
        }
    }
}

pub(super) fn write_report_files(
    dir: &Path,
    report: &Report,
    lines: &[ReportLine],
    previous: Option<&Report>,
) -> Result<(), BuildError> {
    let masked = report.masked();
    let html_path = dir.join(super::html::REPORT_HTML_FILE);
    std::fs::write(&html_path, super::html::render(&masked, previous))
        .map_err(io_err(&html_path))?;
    let report_path = dir.join(REPORT_FILE);
    let f = File::create(&report_path).map_err(io_err(&report_path))?;
    serde_json::to_writer_pretty(BufWriter::new(f), &masked).map_err(|e| BuildError::Io {
        path: report_path.display().to_string(),
        source: e.into(),
    })?;
    let rejects_path = dir.join(REJECTS_FILE);
    let f = File::create(&rejects_path).map_err(io_err(&rejects_path))?;
    write_rejects(BufWriter::new(f), lines).map_err(|e| BuildError::Io {
        path: rejects_path.display().to_string(),
        source: e.into(),
    })?;
    Ok(())
}
