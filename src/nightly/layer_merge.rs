//! Compaction of change layers (`shikaku build --compact`, and a change build whose layers
//! pass [`MERGE_AT_LAYERS`]): the live generation's layers merged into one layer on the
//! same base, read from the index alone. No snapshot or change file is read: each card a
//! layer holds is taken where the layered view finds it now (its newest records, or its
//! tombstone), each insurer's into one delta segment, and each person a layer holds keeps
//! its newest entry, its refs re-pointed into those segments. The work follows what the
//! layers hold, not the insurers they touched; the answers are the layered view's, which
//! the build checks record by record before publishing.
//!
//! Lines: a delta record's line is written as its state's line now (the layers' removals
//! applied), and every removal is restarted at the merged layer's first segment, so it
//! moves the base's records as it did and the merged records not at all (FORMAT.md, "Layer
//! files"; `layer_diff::LineMaps`).

use super::encode::InsurerPart;
use super::insurer::write_segment;
use super::layer::{encode_layer, write_layer_file};
use super::layer_diff::LineMaps;
use super::profile::Phases;
use super::report::{GenerationKind, LayerReport, Removal, Report};
use super::report_files::{self, Whole};
use super::run::{io_err, BuildConfig, BuildError, BuildOutcome};
use crate::domain::{InsurerKind, PersonHash};
use crate::format::writer::{encode_segment, SegmentInput};
use crate::format::*;
use crate::generations::{self, Store, StoreError, INDEX_FILE};
use crate::index::MappedIndex;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::time::Instant;

/// A change build whose generation stacks this many layers merges them (after publishing
/// it, so the change is answered first). Opening a generation reads each layer file, and a
/// process holding it keeps each layer's tables; a merge costs what the layers hold.
pub const MERGE_AT_LAYERS: usize = 32;
/// A change build whose layers hold more delta segments than this merges them too: each is a
/// file mapped on its own (the merged layer holds at most one per insurer).
pub const MERGE_AT_DELTA_SEGMENTS: usize = 8_192;

/// A merge of the layers a build made after publishing its change generation.
#[derive(Debug, Clone)]
pub struct Merged {
    pub generation: String,
    pub generation_dir: PathBuf,
    pub merged_layers: u64,
    pub elapsed_ms: u64,
}

impl BuildOutcome {
    /// The generation the build left live: the merge, when it merged, else its own.
    pub fn live(&self) -> &str {
        self.merged
            .as_ref()
            .map_or(&self.generation, |m| &m.generation)
    }

    /// The generations the build published, in order (a publisher uploads them so: a merge's
    /// parent is the change generation).
    pub fn published(&self) -> Vec<&str> {
        std::iter::once(self.generation.as_str())
            .chain(self.merged.as_ref().map(|m| m.generation.as_str()))
            .collect()
    }
}

/// Whether a generation's layers are due for a merge, and why.
pub(super) fn merge_due(index: &MappedIndex) -> Option<String> {
    let deltas = index.segment_count() - index.base_insurers();
    if index.layer_count() >= MERGE_AT_LAYERS {
        return Some(format!("{} layers", index.layer_count()));
    }
    (deltas > MERGE_AT_DELTA_SEGMENTS).then(|| format!("{deltas} delta segments"))
}

/// The live generation to compact: its id, its index and its whole report.
pub(super) struct MergeSource {
    pub live_id: String,
    pub live: MappedIndex,
    pub whole: Whole,
}

/// The live generation, opened (from `last` when it is that), and its whole report: what a
/// merge of its layers starts from.
pub(super) fn merge_source(
    cfg: &BuildConfig,
    store: &Store,
    last: Option<MappedIndex>,
) -> Result<MergeSource, BuildError> {
    let live_id = store.live()?;
    let live = match last {
        Some(last) => store.open_named_from(&live_id, cfg.key.clone(), last)?,
        None => store.open_named(&live_id, cfg.key.clone())?,
    };
    let dir = store.generation_dir(&live_id);
    let whole = report_files::read_whole(&dir)?;
    Ok(MergeSource {
        live_id,
        live,
        whole,
    })
}

/// A change generation just published, or, when its layers are due for a merge
/// (`layer_merge::merge_due`), the generation merging them, published after it. A merge
/// that fails leaves the change generation live and says why in the log.
pub(super) fn merge_when_due(
    cfg: &BuildConfig,
    store: &Store,
    built: BuildOutcome,
) -> Result<BuildOutcome, BuildError> {
    let Some(why) = merge_due(&built.index) else {
        return Ok(built);
    };
    tracing::info!(generation = %built.generation, "merging the change layers: {why}");
    let whole = match report_files::read_whole(&built.generation_dir) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("the layers stay unmerged: {e}");
            return Ok(built);
        }
    };
    let BuildOutcome {
        generation,
        report,
        generation_dir,
        index,
        merged: _,
    } = built;
    let source = MergeSource {
        live_id: generation.clone(),
        live: index,
        whole,
    };
    let index = match run_merge(cfg, store, source, (Instant::now(), Phases::new())) {
        Ok(m) => {
            let layer = m.report.layer.as_ref();
            let merged = Merged {
                generation: m.generation,
                generation_dir: m.generation_dir,
                merged_layers: layer.map_or(0, |l| l.merged_layers),
                elapsed_ms: m.report.elapsed_ms,
            };
            return Ok(BuildOutcome {
                generation,
                report,
                generation_dir,
                index: m.index,
                merged: Some(merged),
            });
        }
        Err(e) => {
            // The merge took the change generation's index: it is opened again.
            tracing::warn!("the layers stay unmerged: {e}");
            store.open_named(&generation, cfg.key.clone())?
        }
    };
    Ok(BuildOutcome {
        generation,
        report,
        generation_dir,
        index,
        merged: None,
    })
}

/// One insurer's merged cards.
struct MergedInsurer {
    position: usize,
    /// Its cards' records in one delta segment (`None`: every card it holds was removed).
    delta: Option<InsurerPart>,
    tombstones: Vec<Vec<u8>>,
    cards: u64,
    /// (old segment, old record) → record in the merged delta segment.
    moved: Vec<((u32, u32), u32)>,
}

/// Merges the live generation's layers into one, verifies it against the layered view, and
/// publishes it.
pub(super) fn run_merge(
    cfg: &BuildConfig,
    store: &Store,
    source: MergeSource,
    (started, mut phases): (Instant, Phases),
) -> Result<BuildOutcome, BuildError> {
    let MergeSource {
        live_id,
        live,
        whole,
    } = source;
    let merged_layers = live.layer_count();
    // One layer is what a merge would make of it again.
    if merged_layers < 2 {
        return Err(BuildError::NothingToCompact {
            generation: live_id,
            layers: merged_layers,
        });
    }
    let base = live.base_insurers();
    let no_removals = BTreeMap::new();
    let removals = whole
        .report
        .layer
        .as_ref()
        .map_or(&no_removals, |l| &l.removed_lines);
    let maps = LineMaps::new(&whole.report, removals, base, std::iter::empty());
    let removed_lines = restarted(removals, base as u32);
    let merged_maps = LineMaps::new(&whole.report, &removed_lines, base, std::iter::empty());
    let mut insurers = (0..base)
        .into_par_iter()
        .map(|p| merge_insurer(&live, p, &maps, cfg))
        .filter_map(Result::transpose)
        .collect::<Result<Vec<_>, _>>()?;
    phases.end("merge_cards");
    let moved = number_deltas(&live, &mut insurers, base as u32);
    let persons = merged_persons(&live, &moved)?;
    phases.end("persons");
    let id = generations::new_generation_id();
    let tmp = store.begin(&id)?;
    let parent_dir = store.generation_dir(&live_id);
    link_base(&live, &parent_dir, &tmp)?;
    let segments_dir = tmp.join(SEGMENTS_DIR);
    let deltas = insurers.iter_mut().filter_map(|m| m.delta.as_mut());
    let mut bytes_written = write_deltas(deltas.collect(), &segments_dir)?;
    let link = LayerLink {
        base_generation: live.base_generation().to_owned(),
        base_header_xxh3: live.base_header_xxh3(),
        parent_generation: live.base_generation().to_owned(),
        sequence: 1,
        segments_before: base as u32,
    };
    let tombstones: Vec<Tombstone> = insurers
        .iter()
        .flat_map(|m| {
            let number = live.insurers()[m.position].entry.number;
            m.tombstones.iter().map(move |k| (number, k.clone()))
        })
        .collect();
    let deltas: Vec<&InsurerPart> = insurers.iter().filter_map(|m| m.delta.as_ref()).collect();
    let layer_bytes = encode_layer(cfg, &id, &deltas, &persons, &link, &tombstones)?;
    let layer_name = write_layer_file(&tmp, 1, &layer_bytes)?;
    bytes_written += layer_bytes.len() as u64;
    phases.end("write");
    let index = MappedIndex::open_file_after(&tmp.join(INDEX_FILE), cfg.key.clone(), &live)
        .map_err(StoreError::from)?;
    index.verify_layers()?;
    for i in base..index.segment_count() {
        index.verify_segment(i)?;
    }
    assert_eq!(
        index.generation(),
        id,
        "the merged generation carries its id"
    );
    same_view((&live, &maps), (&index, &merged_maps))?;
    phases.end("verify");
    let records_written = deltas.iter().map(|d| d.records_indexed).sum();
    let layer = LayerReport {
        base: live.base_generation().to_owned(),
        file: format!("{LAYERS_DIR}/{layer_name}"),
        insurers_touched: deltas.iter().map(|d| d.number.to_string()).collect(),
        cards_changed: insurers.iter().map(|m| m.cards).sum(),
        cards_removed: tombstones.len() as u64,
        persons_touched: persons.entries.len() as u64,
        records_written,
        bytes_written,
        merged_layers: merged_layers as u64,
        change_files: Vec::new(),
        insurers_card_path: 0,
        insurers_full_path: 0,
        delivery_bytes_read: 0,
        ..whole.report.layer.clone().unwrap_or_default()
    };
    let mut report = Report {
        generation: id.clone(),
        built_on: whole.report.built_on.clone(),
        published: true,
        totals: whole.report.totals.clone(),
        generation_kind: GenerationKind::Layer,
        parent: Some(live_id.clone()),
        layer_count: 1,
        layer: Some(layer),
        index_bytes: index.total_bytes(),
        ..Report::default()
    };
    report.phases_ms = phases.wall_ms.clone();
    report.phases_cpu_ms = phases.cpu_ms.clone();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    drop(insurers);
    drop(merged_maps);
    drop(maps);
    if let Some(l) = &mut report.layer {
        l.removed_lines = removed_lines;
    }
    let whole = report_files::write_merged_reports(&tmp, &parent_dir, whole, &mut report)?;
    phases.end("report");
    if let Some(key) = &cfg.signing {
        crate::signing::sign_generation_sharing(&tmp, &id, key, Some(&parent_dir))?;
        phases.end("sign");
    }
    let dir = super::run::seal_and_publish(store, &id, &mut report, phases, started)?;
    tracing::info!(generation = %id, merged_layers, phases_ms = ?report.phases_ms, bytes_written, "merged the change layers into one");
    report_files::keep_whole(&dir, whole);
    Ok(BuildOutcome {
        generation: id,
        report,
        generation_dir: dir,
        index,
        merged: None,
    })
}

/// Writes the delta segments (each fsynced: in parallel, so the waits overlap) that are not
/// in `segments_dir` already under their content's name, and returns their bytes.
pub(super) fn write_deltas(
    deltas: Vec<&mut InsurerPart>,
    segments_dir: &Path,
) -> Result<u64, BuildError> {
    deltas
        .into_par_iter()
        .map(|d| {
            let name = segment_file_name(&d.number, d.segment.meta.xxh3);
            // The same content under the same name: already here, shared with the parent.
            if !segments_dir.join(name).exists() {
                write_segment(d, segments_dir)?;
            }
            Ok(d.segment.meta.body_bytes() + SEGMENT_HEADER_BYTES as u64)
        })
        .sum()
}

/// Base insurer `position`'s cards in the layers, merged: the records of each card the view
/// finds in a delta segment, in key order, lines as the state's now; and the cards removed.
/// `None` when no layer holds a card of it.
fn merge_insurer(
    live: &MappedIndex,
    position: usize,
    maps: &LineMaps<'_>,
    cfg: &BuildConfig,
) -> Result<Option<MergedInsurer>, BuildError> {
    let mut cards = live.layered_cards(position);
    if cards.is_empty() {
        return Ok(None);
    }
    cards.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let info = &live.insurers()[position];
    let number = info.number_str();
    let mut records = Vec::new();
    let mut moved = Vec::new();
    let mut tombstones = Vec::new();
    let mut snapshot_date = info.entry.snapshot_date;
    let mut held = 0;
    for (key, at) in cards {
        let Some((seg, a, b)) = at else {
            tombstones.push(key);
            continue;
        };
        held += 1;
        if let Some(s) = live.segment_insurer(seg) {
            snapshot_date = snapshot_date.max(s.entry.snapshot_date);
        }
        for r in a..b {
            let v = live.record_view(seg, r).ok_or_else(|| {
                FormatError::Malformed(format!("segment {seg}: no record {r} (merging {number})"))
            })?;
            let line = maps.state_line(number, seg, u64::from(v.line()));
            moved.push(((seg as u32, r as u32), records.len() as u32));
            records.push((
                v.record()?,
                u32::try_from(line).unwrap_or(u32::MAX),
                v.person(),
            ));
        }
    }
    let delta = match records.is_empty() {
        true => None,
        false => Some(encoded(info, snapshot_date, &records, cfg)?),
    };
    Ok(Some(MergedInsurer {
        position,
        delta,
        tombstones,
        cards: held,
        moved,
    }))
}

/// An insurer's merged records (in segment order already) as a delta segment.
fn encoded(
    info: &crate::index::InsurerInfo,
    snapshot_date: crate::domain::Date,
    records: &[(crate::domain::Record, u32, Option<PersonHash>)],
    cfg: &BuildConfig,
) -> Result<InsurerPart, BuildError> {
    let inputs: Vec<SegmentInput<'_>> = records
        .iter()
        .map(|(record, line, person)| SegmentInput {
            record,
            line: *line,
            person: *person,
        })
        .collect();
    let kind = InsurerKind::from_code(info.entry.kind).ok_or_else(|| {
        FormatError::Malformed(format!(
            "insurer {}: kind {}",
            info.number_str(),
            info.entry.kind
        ))
    })?;
    Ok(InsurerPart {
        number: info.entry.number,
        name: info.name.clone(),
        kind,
        snapshot_date,
        file: String::new(),
        segment: encode_segment(&inputs)?,
        covered_count: records
            .iter()
            .filter(|(r, ..)| r.covers(cfg.built_on))
            .count() as u32,
        records_indexed: records.len() as u64,
        rows_deduplicated: 0,
        links: Vec::new(),
        findings: Vec::new(),
    })
}

/// Where each record of the layers' delta segments went, by old segment (past the base's)
/// and record: the packed person ref of its place in a merged delta segment, or `NOWHERE`
/// (a record of a card the view no longer finds there). Vectors, not a map: at the nation
/// the layers of a month hold millions of records.
struct Moved {
    base: u32,
    by_segment: Vec<Vec<u64>>,
}

const NOWHERE: u64 = u64::MAX;

impl Moved {
    fn get(&self, segment: u32, record: u32) -> Option<u64> {
        let s = self
            .by_segment
            .get((segment.checked_sub(self.base)?) as usize)?;
        s.get(record as usize).copied().filter(|&r| r != NOWHERE)
    }
}

/// Numbers the merged delta segments from `first` (the base's insurer count), in insurer
/// order, and says where each record a layer held went.
fn number_deltas(live: &MappedIndex, insurers: &mut [MergedInsurer], first: u32) -> Moved {
    let by_segment = (first as usize..live.segment_count())
        .map(|s| {
            let records = live.segment_insurer(s).map_or(0, |i| i.entry.record_count);
            vec![NOWHERE; records as usize]
        })
        .collect();
    let mut out = Moved {
        base: first,
        by_segment,
    };
    let with_delta = insurers.iter_mut().filter(|m| m.delta.is_some());
    for (segment, m) in (first..).zip(with_delta) {
        for ((old_seg, old_rec), rec) in m.moved.drain(..) {
            // Cards in the layers' table lie in delta segments, checked at open.
            let slot = old_seg
                .checked_sub(first)
                .and_then(|i| out.by_segment.get_mut(i as usize))
                .and_then(|v| v.get_mut(old_rec as usize));
            if let Some(slot) = slot {
                *slot = encode_person_ref(segment, rec);
            }
        }
    }
    out
}

/// Every person a layer holds, with its newest entry, refs re-pointed: a base record's
/// stays, a delta record's goes where `moved` says. A ref to a record no card of the view
/// holds would be a person the layers failed to check again: refused, never written.
fn merged_persons(live: &MappedIndex, moved: &Moved) -> Result<super::link::Persons, BuildError> {
    let base = live.base_insurers() as u32;
    let mut out = super::link::Persons::default();
    for p in live.layered_persons() {
        let refs_start = out.refs.len() as u32;
        for (seg, rec) in live.person_refs(&p) {
            let r = match seg < base {
                true => encode_person_ref(seg, rec),
                false => moved.get(seg, rec).ok_or_else(|| {
                    BuildError::Merge(format!(
                        "a person's ref names record {rec} of delta segment {seg}, which no card of the view holds"
                    ))
                })?,
            };
            out.refs.push(r);
        }
        out.entries.push(PersonEntry { refs_start, ..p });
    }
    Ok(out)
}

/// The removals of the layers, each restarted at the merged layer's first segment: a base
/// record still moves up a line for each removed before it; a merged delta record, written
/// with its line now, moves no more.
fn restarted(
    removals: &BTreeMap<String, Vec<Removal>>,
    first: u32,
) -> BTreeMap<String, Vec<Removal>> {
    removals
        .iter()
        .map(|(n, rs)| {
            let rs = rs
                .iter()
                .map(|r| Removal {
                    first_segment: first,
                    lines: r.lines.clone(),
                })
                .collect();
            (n.clone(), rs)
        })
        .collect()
}

/// Pair assertion, before publishing: the merged view holds every card and person of the
/// layered view with the same records (content, then line as the state's), refs in the same
/// order, and the same flags. A difference is a bug, reported as one, and nothing published.
fn same_view(
    (live, maps): (&MappedIndex, &LineMaps<'_>),
    (merged, merged_maps): (&MappedIndex, &LineMaps<'_>),
) -> Result<(), BuildError> {
    let differs = |what: String| {
        Err(BuildError::Merge(format!(
            "the merged view differs: {what}"
        )))
    };
    let same_record = |(s, r): (usize, usize), (t, q): (usize, usize)| match (
        live.record_view(s, r),
        merged.record_view(t, q),
    ) {
        (Some(a), Some(b)) => {
            let number = a.insurer_number();
            let was = maps.state_line(number, s, u64::from(a.line()));
            let now = merged_maps.state_line(number, t, u64::from(b.line()));
            a.same_content(&b) && was.min(u64::from(MAX_LINE)) == now
        }
        _ => false,
    };
    for p in 0..live.base_insurers() {
        let mut old = live.layered_cards(p);
        let mut new = merged.layered_cards(p);
        old.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        new.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if old.len() != new.len() {
            return differs(format!(
                "insurer position {p}: {} cards, was {}",
                new.len(),
                old.len()
            ));
        }
        for ((k, a), (l, b)) in old.iter().zip(&new) {
            let same = k == l
                && match (a, b) {
                    (None, None) => true,
                    (Some((s, a0, a1)), Some((t, b0, b1))) => {
                        a1 - a0 == b1 - b0
                            && (0..a1 - a0).all(|j| same_record((*s, a0 + j), (*t, b0 + j)))
                    }
                    _ => false,
                };
            if !same {
                return differs(format!("insurer position {p}: a card's records"));
            }
        }
    }
    let (old, new) = (live.layered_persons(), merged.layered_persons());
    if old.len() != new.len() {
        return differs(format!("{} persons, was {}", new.len(), old.len()));
    }
    for (a, b) in old.iter().zip(&new) {
        let same = a.hash == b.hash
            && a.flags == b.flags
            && a.refs_count == b.refs_count
            && live
                .person_refs(a)
                .zip(merged.person_refs(b))
                .all(|((s, r), (t, q))| {
                    same_record((s as usize, r as usize), (t as usize, q as usize))
                });
        if !same {
            return differs("a person's entry".into());
        }
    }
    Ok(())
}

/// Hard-links the base's main file and its insurers' segment files from the parent into
/// `tmp`: the layers and their delta segments stay behind (the merged layer replaces them).
fn link_base(live: &MappedIndex, parent: &Path, tmp: &Path) -> Result<(), BuildError> {
    let main = parent.join(INDEX_FILE);
    std::fs::hard_link(&main, tmp.join(INDEX_FILE)).map_err(io_err(&main))?;
    let (from, into) = (parent.join(SEGMENTS_DIR), tmp.join(SEGMENTS_DIR));
    std::fs::create_dir_all(&into).map_err(io_err(&into))?;
    for i in &live.insurers()[..live.base_insurers()] {
        let name = segment_file_name(&i.entry.number, i.entry.segment_xxh3);
        let path = from.join(&name);
        std::fs::hard_link(&path, into.join(&name)).map_err(io_err(&path))?;
    }
    Ok(())
}
