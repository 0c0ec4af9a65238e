//! A change generation (FORMAT.md, "Layer files"): when the only new inputs since the live
//! generation are change files of insurers it already holds, the build writes one layer
//! file and the changed cards' delta segments, and shares everything else of its parent by
//! hard link. Each touched insurer is diffed against the parent's layered view
//! (`layer_diff`); the persons whose records changed get new entries, checked again (X1, X3)
//! from all their records as a full build would. Whether a build makes one, and of which
//! files, is `layer_plan`'s; past its fold bound the build folds the layers into a new base
//! (the incremental build, `run`), as `shikaku build --compact` does.

use super::encode::{InsurerPart, Link};
use super::layer_cards::{insurer_change, lines_by_insurer};
use super::layer_diff::{
    parent_links, removed_lines, InsurerChange, LineMaps, LinesMoved, RefOrder, Replaced,
};
pub(super) use super::layer_plan::plan;
use super::layer_plan::LayerPlan;
use super::link::{push_person, sort_findings, Persons};
use super::profile::{Phases, StageTimes};
use super::report::{Dropped, GenerationKind, LayerReport, Removal, Report, ReportLine};
use super::report_files::{self, Whole};
use super::run::{insurer_input, io_err, BuildConfig, BuildError, BuildOutcome};
use crate::domain::PersonHash;
use crate::format::writer::{IndexTail, IndexWriter};
use crate::format::*;
use crate::generations::{self, Store, StoreError, INDEX_FILE};
use crate::index::MappedIndex;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

/// Builds, verifies and publishes the change generation `plan` describes.
pub(super) fn run_layer(
    cfg: &BuildConfig,
    store: &Store,
    plan: LayerPlan,
    (started, mut phases): (Instant, Phases),
) -> Result<BuildOutcome, BuildError> {
    let live = &plan.live;
    let first = live.segment_count() as u32;
    let stages = StageTimes::default();
    let numbers = plan
        .touched
        .iter()
        .map(|t| t.delivery.insurer.number.as_str());
    let own_lines = lines_by_insurer(&plan.lines, numbers);
    let no_removals = BTreeMap::new();
    let parent_removals = plan
        .report
        .layer
        .as_ref()
        .map_or(&no_removals, |l| &l.removed_lines);
    let untouched = std::iter::empty();
    let parent_maps = LineMaps::new(
        &plan.report,
        parent_removals,
        live.base_insurers(),
        untouched,
    );
    let mut changes = plan
        .touched
        .par_iter()
        .enumerate()
        .map(|(k, t)| {
            let own = own_lines
                .get(t.delivery.insurer.number.as_str())
                .map_or(&[][..], Vec::as_slice);
            let parent = (live, &plan.report, &parent_maps, own);
            insurer_change(parent, t, cfg, first + k as u32, &stages)
        })
        .collect::<Result<Vec<_>, _>>()?;
    number_delta_segments(&mut changes, first);
    phases.end("materialize_encode_diff");
    let files = FileNames::new(live, &plan.report, &changes);
    let removed_lines = removed_lines(&plan.report, &changes, first);
    let touched = changes.iter().map(|c| c.number.to_string());
    let new_maps = LineMaps::new(&plan.report, &removed_lines, live.base_insurers(), touched);
    let persons = layer_persons(live, &changes, &files, &new_maps);
    phases.end("persons");
    let id = generations::new_generation_id();
    let tmp = store.begin(&id)?;
    let parent_dir = store.generation_dir(&plan.live_id);
    link_parent(&parent_dir, &tmp)?;
    let segments_dir = tmp.join(SEGMENTS_DIR);
    let deltas = changes.iter_mut().filter_map(|c| c.delta.as_mut());
    let mut bytes_written = super::layer_merge::write_deltas(deltas.collect(), &segments_dir)?;
    let sequence = live.layer_count() as u32 + 1;
    let link = LayerLink {
        base_generation: live.base_generation().to_owned(),
        base_header_xxh3: live.base_header_xxh3(),
        parent_generation: plan.live_id.clone(),
        sequence,
        segments_before: first,
    };
    let tombstones: Vec<Tombstone> = changes
        .iter()
        .flat_map(|c| c.tombstones.iter().map(|k| (c.number, k.clone())))
        .collect();
    let deltas: Vec<&InsurerPart> = changes.iter().filter_map(|c| c.delta.as_ref()).collect();
    let layer_bytes = encode_layer(cfg, &id, &deltas, &persons, &link, &tombstones)?;
    let layer_name = write_layer_file(&tmp, sequence, &layer_bytes)?;
    bytes_written += layer_bytes.len() as u64;
    phases.end("write");
    // Read back what was written: the layered view opens, carries the new id, and its
    // layers and new delta segments verify.
    let index = MappedIndex::open_file_after(&tmp.join(INDEX_FILE), cfg.key.clone(), live)
        .map_err(StoreError::from)?;
    index.verify_layers_from(live.layer_count())?;
    for i in first as usize..index.segment_count() {
        index.verify_segment(i)?;
    }
    assert_eq!(
        index.generation(),
        id,
        "the layer generation carries its id"
    );
    phases.end("verify");
    let (dropped, own_lines) = layer_lines(&plan, &changes, &persons, &parent_maps);
    let mut report = layer_report(&plan, &changes, &persons, &id, &layer_name, bytes_written);
    if let Some(l) = &mut report.layer {
        l.removed_lines = removed_lines;
        l.dropped = Some(dropped);
    }
    report.refused = layer_guard(cfg, &plan.report, &changes);
    report.published = report.refused.is_empty();
    report.index_bytes = index.total_bytes();
    report.phases_ms = phases.wall_ms.clone();
    report.phases_cpu_ms = phases.cpu_ms.clone();
    report.stages_cpu_ms = stages.cpu_ms();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    drop(changes);
    let parent = Whole {
        report: plan.report,
        lines: plan.lines,
    };
    let whole = report_files::write_layer_reports(&tmp, &parent_dir, parent, &report, &own_lines)?;
    phases.end("report");
    if !report.refused.is_empty() {
        return Err(super::run::keep_refused(store, &tmp, &id, report.refused));
    }
    if let Some(key) = &cfg.signing {
        // The parent's files keep its manifest's entries: what is hashed is what was written.
        crate::signing::sign_generation_sharing(&tmp, &id, key, Some(&parent_dir))?;
        phases.end("sign");
    }
    let dir = super::run::seal_and_publish(store, &id, &mut report, phases, started)?;
    tracing::info!(generation = %id, layer = sequence, phases_ms = ?report.phases_ms, stages_cpu_ms = ?report.stages_cpu_ms, bytes_written, "published a change generation");
    // The outcome's report is the layer's own, as its report.json holds it; the whole view
    // is kept for the next build of this process (a watch's), which starts from it.
    report_files::keep_whole(&dir, whole);
    Ok(BuildOutcome {
        merged: None,
        generation: id,
        report,
        generation_dir: dir,
        index,
    })
}

/// Gives the delta segments their global numbers, consecutive in insurer order (insurers
/// without a changed card have none), in place of the provisional ones `diff_insurer` used.
fn number_delta_segments(changes: &mut [InsurerChange], first: u32) {
    let mut renumber = HashMap::new();
    let mut next = first;
    for (k, c) in changes.iter().enumerate() {
        if c.delta.is_some() {
            renumber.insert(first + k as u32, next);
            next += 1;
        }
    }
    for c in changes.iter_mut() {
        let links = c
            .links
            .iter_mut()
            .map(|(l, _)| l)
            .chain(c.delta.iter_mut().flat_map(|d| d.links.iter_mut()));
        for l in links {
            if let Some(&n) = renumber.get(&l.insurer) {
                l.insurer = n;
            }
        }
        c.links.sort_unstable();
    }
}

/// The file each segment's records were indexed from, for X1/X3 lines: a touched insurer's
/// new state, else the file the live report names for it.
struct FileNames {
    by_segment: Vec<String>,
}

impl FileNames {
    fn new(live: &MappedIndex, report: &Report, changes: &[InsurerChange]) -> FileNames {
        let mut by_number: HashMap<String, String> = report
            .insurers
            .iter()
            .filter_map(|r| {
                Some((
                    r.insurer_number.clone(),
                    r.state_file.clone().or_else(|| r.file.clone())?,
                ))
            })
            .collect();
        if let Some(l) = &report.layer {
            by_number.extend(l.state_files.clone());
        }
        for c in changes {
            by_number.insert(c.number.to_string(), c.state_file.clone());
        }
        let mut by_segment: Vec<String> = (0..live.segment_count())
            .map(|s| {
                live.segment_insurer(s)
                    .and_then(|i| by_number.get(i.number_str()).cloned())
                    .unwrap_or_default()
            })
            .collect();
        for c in changes.iter().filter(|c| c.delta.is_some()) {
            by_segment.push(c.state_file.clone());
        }
        FileNames { by_segment }
    }

    fn of(&self, segment: u32) -> String {
        self.by_segment
            .get(segment as usize)
            .cloned()
            .unwrap_or_default()
    }
}

/// The entries of the persons the layer touches, checked again from all their records: the
/// parent's records of the insurers the layer did not touch, and the touched insurers' new
/// ones. A person left without records gets an entry without refs (not found, as in a full
/// build).
/// `lines`: how the new generation numbers each insurer's records.
fn layer_persons(
    live: &MappedIndex,
    changes: &[InsurerChange],
    files: &FileNames,
    lines: &LineMaps<'_>,
) -> Persons {
    let touched: BTreeSet<PersonHash> = changes
        .iter()
        .flat_map(|c| c.touched.iter().copied())
        .collect();
    let replaced = Replaced::of(changes);
    // The touched persons' new records, of every touched insurer, in one list by person:
    // one pass over the insurers' links, not one search per person and insurer.
    let mut new_links: Vec<(RefOrder, Link)> = changes
        .iter()
        .flat_map(|c| {
            c.links
                .iter()
                .filter(|(l, _)| touched.contains(&l.hash))
                .map(|(l, (key, at))| ((c.position, key.clone(), *at), *l))
        })
        .collect();
    new_links.sort_unstable_by_key(|(_, l)| l.hash);
    let mut out = Persons::default();
    let mut ordered: Vec<(RefOrder, Link)> = Vec::new();
    let mut group: Vec<Link> = Vec::new();
    for hash in touched {
        ordered.clear();
        let from = new_links.partition_point(|(_, l)| l.hash < hash);
        let own = new_links[from..].iter().take_while(|(_, l)| l.hash == hash);
        ordered.extend(own.cloned());
        ordered.extend(parent_links(live, hash, &replaced, lines));
        // A full build's order: by insurer, then as the insurer's segment has them.
        ordered.sort_unstable();
        group.clear();
        group.extend(ordered.iter().map(|(_, l)| *l));
        if group.is_empty() {
            out.entries.push(PersonEntry {
                hash,
                refs_start: out.refs.len() as u32,
                refs_count: 0,
                flags: 0,
            });
            continue;
        }
        push_person(&|s| files.of(s), &group, &mut out);
    }
    sort_findings(&mut out.findings);
    out
}

/// The layer file's bytes.
pub(super) fn encode_layer(
    cfg: &BuildConfig,
    id: &str,
    deltas: &[&InsurerPart],
    persons: &Persons,
    link: &LayerLink,
    tombstones: &[Tombstone],
) -> Result<Vec<u8>, BuildError> {
    let mut out = std::io::Cursor::new(Vec::new());
    let io = |e: std::io::Error| BuildError::Io {
        path: format!("{LAYERS_DIR}/ (in memory)"),
        source: e,
    };
    let mut w = IndexWriter::new(&mut out).map_err(io)?;
    for d in deltas {
        w.push_insurer(&insurer_input(d)).map_err(io)?;
    }
    w.finish_layer(
        &IndexTail {
            generation_id: id,
            built_on: cfg.built_on,
            person_key_fingerprint: cfg.key.fingerprint(),
            persons: &persons.entries,
            person_refs: &persons.refs,
            kohi: &EncodedKohi::default(),
        },
        link,
        tombstones,
    )
    .map_err(io)?;
    Ok(out.into_inner())
}

/// Writes a layer file into `tmp`'s `layers/`, fsynced, named by its place in the stack and
/// its header checksum; returns the name.
pub(super) fn write_layer_file(
    tmp: &Path,
    sequence: u32,
    bytes: &[u8],
) -> Result<String, BuildError> {
    let name = layer_file_name(sequence, u64_at(bytes, 120));
    let dir = tmp.join(LAYERS_DIR);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    write_synced(&dir.join(&name), bytes)?;
    Ok(name)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Hard-links the parent's main file, segment files and layer files into `tmp`: a change
/// generation shares every byte it does not change.
fn link_parent(parent: &Path, tmp: &Path) -> Result<(), BuildError> {
    let main = parent.join(INDEX_FILE);
    let to = tmp.join(INDEX_FILE);
    std::fs::hard_link(&main, &to).map_err(io_err(&main))?;
    for sub in [SEGMENTS_DIR, LAYERS_DIR] {
        let from = parent.join(sub);
        let into = tmp.join(sub);
        std::fs::create_dir_all(&into).map_err(io_err(&into))?;
        let Ok(entries) = std::fs::read_dir(&from) else {
            continue;
        };
        for e in entries {
            let e = e.map_err(io_err(&from))?;
            let path = e.path();
            std::fs::hard_link(&path, into.join(e.file_name())).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// The change generation's findings as its parent's and its own: the parent's lines it takes
/// back (every line of a touched insurer, whose state's lines are new, and the X1/X3 lines on
/// the records of the persons checked again), and the lines it adds (a touched insurer's
/// X1/X3 lines of persons not checked again, moved to their records' lines in the new state;
/// its change files' and state's findings; the persons' X1/X3).
fn layer_lines(
    plan: &LayerPlan,
    changes: &[InsurerChange],
    persons: &Persons,
    maps: &LineMaps<'_>,
) -> (Dropped, Vec<ReportLine>) {
    let touched: HashSet<PersonHash> = persons.entries.iter().map(|p| p.hash).collect();
    let by_number: HashMap<&str, &InsurerChange> =
        changes.iter().map(|c| (c.number.as_str(), c)).collect();
    let touched_lines = touched_parent_records(plan, &touched, maps);
    let mut dropped = Dropped {
        insurers: by_number.keys().map(|n| (*n).to_owned()).collect(),
        records: BTreeSet::new(),
    };
    let mut lines = Vec::new();
    for l in &plan.lines {
        if l.rule != "X1" && l.rule != "X3" {
            continue;
        }
        // A line names its insurer's file: `<insurer>/...`.
        let insurer = l.file.split_once('/').map_or("", |(n, _)| n);
        let Some(c) = by_number.get(insurer) else {
            let record = (insurer.to_owned(), l.line);
            if touched_lines.contains(&record) {
                dropped.records.insert(record);
            }
            continue;
        };
        let moved = match &c.lines_moved {
            LinesMoved::Map(map) => map
                .get(&maps.report_to_state(c.number.as_str(), l.line))
                .filter(|(_, person)| person.is_none_or(|p| !touched.contains(&p)))
                .map(|(line, _)| *line),
            LinesMoved::Shifted(removed) => {
                let line = (c.number.to_string(), l.line);
                let state = maps.report_to_state(c.number.as_str(), l.line);
                (!touched_lines.contains(&line)).then(|| Removal::shift(removed, state))
            }
        };
        if let Some(line) = moved {
            lines.push(ReportLine {
                file: c.state_file.clone(),
                line,
                ..l.clone()
            });
        }
    }
    for c in changes {
        lines.extend(c.lines.iter().cloned());
    }
    lines.extend(persons.findings.iter().cloned());
    (dropped, lines)
}

/// (insurer, line) of the touched persons' records in the parent's view.
fn touched_parent_records(
    plan: &LayerPlan,
    touched: &HashSet<PersonHash>,
    maps: &LineMaps<'_>,
) -> HashSet<(String, u64)> {
    let live = &plan.live;
    let mut out = HashSet::new();
    for hash in touched {
        let Some(e) = live.find_person(*hash) else {
            continue;
        };
        for (seg, rec) in live.person_refs(&e) {
            let Some(v) = live.record_view(seg as usize, rec as usize) else {
                continue;
            };
            let number = v.insurer_number();
            let line = maps.report_line(number, seg as usize, u64::from(v.line()));
            out.insert((number.to_owned(), line));
        }
    }
    out
}

/// The delivery guard on a change generation, as on a base build: a touched insurer whose
/// members covered today fall by more than `--max-drop-percent` from the live report's count
/// (a change file losing most of an insurer by mistake) refuses the generation unless
/// `--accept` names it.
fn layer_guard(cfg: &BuildConfig, live: &Report, changes: &[InsurerChange]) -> Vec<String> {
    let mut refused = Vec::new();
    for c in changes {
        let number = c.number;
        let after = c.covered_today;
        let Some(was) = covered_today(live, number.as_str()) else {
            continue;
        };
        if super::run::dropped_too_far(was, after, cfg.max_drop_percent)
            && !cfg.accept.contains(&number)
        {
            refused.push(format!(
                "insurer {number}: members covered today fell from {was} to {after} (more than {}%) by its change files; pass --accept {number} if it is real",
                cfg.max_drop_percent
            ));
        }
    }
    refused
}

/// An insurer's members covered today in the live view: its last layer's count, else the
/// base's report's (the report's insurer entries describe the base's segments, which the
/// next fold reuses, so layers do not rewrite them).
fn covered_today(live: &Report, number: &str) -> Option<u64> {
    let layered = live
        .layer
        .as_ref()
        .and_then(|l| l.covered_today.get(number));
    layered.copied().or_else(|| {
        live.insurers
            .iter()
            .find(|r| r.insurer_number == number)
            .map(|r| r.counts.covered_today)
    })
}

fn layer_report(
    plan: &LayerPlan,
    changes: &[InsurerChange],
    persons: &Persons,
    id: &str,
    layer_file: &str,
    bytes_written: u64,
) -> Report {
    // The layer's own part (`report_files`): the base's insurers, notes and registers stay
    // in the base's report.
    let mut report = Report {
        generation: id.to_owned(),
        built_on: plan.report.built_on.clone(),
        published: true,
        totals: plan.report.totals.clone(),
        generation_kind: GenerationKind::Layer,
        parent: Some(plan.live_id.clone()),
        layer_count: plan.live.layer_count() as u32 + 1,
        ..Report::default()
    };
    let change_files = changes.iter().flat_map(|c| c.applied.clone()).collect();
    let parent = plan.report.layer.as_ref();
    let mut state_records = parent.map(|l| l.state_records.clone()).unwrap_or_default();
    state_records.extend(
        changes
            .iter()
            .map(|c| (c.number.to_string(), c.state_records)),
    );
    let mut lines_shifted = parent.map(|l| l.lines_shifted.clone()).unwrap_or_default();
    lines_shifted.extend(
        changes
            .iter()
            .filter(|c| c.lines_shifted)
            .map(|c| c.number.to_string()),
    );
    let card_path = changes.iter().filter(|c| c.cards.is_some()).count() as u64;
    let mut state_files = parent.map(|l| l.state_files.clone()).unwrap_or_default();
    state_files.extend(
        changes
            .iter()
            .map(|c| (c.number.to_string(), c.state_file.clone())),
    );
    report.layer = Some(LayerReport {
        base: plan.live.base_generation().to_owned(),
        file: format!("{LAYERS_DIR}/{layer_file}"),
        change_files,
        applied: plan.applied.clone(),
        applied_identity: plan.applied_identity.clone(),
        covered_today: {
            let mut m = plan
                .report
                .layer
                .as_ref()
                .map(|l| l.covered_today.clone())
                .unwrap_or_default();
            m.extend(
                changes
                    .iter()
                    .map(|c| (c.number.to_string(), c.covered_today)),
            );
            m
        },
        state_records,
        state_files,
        lines_shifted,
        removed_lines: BTreeMap::new(),
        insurers_card_path: card_path,
        insurers_full_path: changes.len() as u64 - card_path,
        delivery_bytes_read: plan.bytes_read + changes.iter().map(|c| c.bytes_read).sum::<u64>(),
        dropped: None,
        insurers_touched: changes.iter().map(|c| c.number.to_string()).collect(),
        cards_changed: changes.iter().map(|c| c.cards_changed).sum(),
        cards_removed: changes.iter().map(|c| c.tombstones.len() as u64).sum(),
        persons_touched: persons.entries.len() as u64,
        records_written: changes
            .iter()
            .filter_map(|c| c.delta.as_ref())
            .map(|d| d.records_indexed)
            .sum(),
        bytes_written,
        merged_layers: 0,
    });
    report
}
