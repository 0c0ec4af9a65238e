//! One insurer of a change generation, by one of two paths that give the same result.
//!
//! The full path ([`diff_insurer`]): the insurer's state materialized and encoded in memory
//! as a base build would (`changes::encode_state`), then compared card by card with the
//! parent's layered view. The card path (`layer_cards`): only the cards the new change rows
//! name, read from the parent's view, changed by the same rules and encoded alone. Either
//! way cards whose records differ go into a delta segment (encoded again from the changed
//! cards' rows, so in the order the full encoding has them), cards gone become tombstones,
//! and every record the path computed gets its place in the new layered view: a changed
//! card's in the delta segment, an unchanged card's where the parent finds it.

use super::changes::encode_state;
use super::encode::{encode_insurer, InsurerPart, InsurerRows, Link};
use super::insurer::InsurerResult;
use super::profile::{Stage, StageTimes};
use super::report::{ChangeReport, Removal, Report, ReportLine};
use super::run::{insurer_input, BuildConfig, BuildError};
use crate::domain::{InsurerNumber, PersonHash, Record};
use crate::format::writer::{segment_file_bytes, write_index, IndexContents};
use crate::format::{card_key, EncodedKohi, MAX_CARD_KEY_BYTES};
use crate::index::{CardPlace, Index, IndexFiles, MappedIndex};
use crate::snapshot::{ChangeInput, InsurerDelivery};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Where a full build puts a record among its insurer's: its card key, then its place in
/// the encoding that made it (the full path leaves the key empty: its encoding holds every
/// card of the insurer, in key order).
pub(super) type CardOrder = (Vec<u8>, u32);

/// What one insurer's changes make of the parent's view.
pub(super) struct InsurerChange {
    /// Its base insurer position.
    pub position: usize,
    pub number: InsurerNumber,
    /// The materialized state's name, which the insurer's report lines name.
    pub state_file: String,
    pub covered_today: u64,
    /// Rows in the materialized state (what the next added record's line follows).
    pub state_records: u64,
    /// The change files this layer applied, each with its accounting.
    pub applied: Vec<ChangeReport>,
    /// Every report line of the insurer's state (its files' and its cards'), but X1/X3.
    pub lines: Vec<ReportLine>,
    /// The changed cards' records, numbered as the delta segment it will be.
    pub delta: Option<InsurerPart>,
    pub tombstones: Vec<Vec<u8>>,
    /// Every record the path computed with a person, placed in the new layered view, with
    /// its place in a full build's order; sorted.
    pub links: Vec<(Link, CardOrder)>,
    /// Persons whose set of records changed.
    pub touched: HashSet<PersonHash>,
    pub lines_moved: LinesMoved,
    /// The cards whose records `links` holds: `None` for every card of the insurer (the
    /// full path), else the card path's cards.
    pub cards: Option<HashSet<Vec<u8>>>,
    pub cards_changed: u64,
    /// The records this layer removed from the state, by their lines before it (ascending):
    /// every record the view keeps moves up a line for each before it.
    pub removed: Vec<u64>,
    /// Whether lines moved in a way `removed` does not say: the next layer cannot take
    /// lines from the view.
    pub lines_shifted: bool,
    /// Bytes of delivery files the path read itself (the change files the plan read aside;
    /// the full path's caller adds those it read for it).
    pub bytes_read: u64,
}

/// The parent's records a change generation computed again: every record of the insurers
/// the full path took, and the cards the card path took.
pub(super) struct Replaced {
    pub insurers: HashSet<String>,
    pub cards: HashSet<(String, Vec<u8>)>,
}

impl Replaced {
    pub(super) fn of(changes: &[InsurerChange]) -> Replaced {
        let mut out = Replaced {
            insurers: HashSet::new(),
            cards: HashSet::new(),
        };
        for c in changes {
            let number = c.number.to_string();
            match &c.cards {
                None => {
                    out.insurers.insert(number);
                }
                Some(cards) => out
                    .cards
                    .extend(cards.iter().map(|k| (number.clone(), k.clone()))),
            }
        }
        out
    }
}

/// How a generation numbers each insurer's records: a record's line in the view is its
/// snapshot's line for a base segment of an insurer whose snapshot has gaps
/// (`InsurerReport::line_gaps`), less the layers' removals before it; and the report names
/// an insurer's lines by its state's rows once a layer touched it (else by its snapshot's).
pub(super) struct LineMaps<'a> {
    gaps: HashMap<&'a str, &'a [u64]>,
    removals: &'a BTreeMap<String, Vec<Removal>>,
    base_segments: usize,
    /// Insurers whose report lines are their state's though they have gaps.
    state_named: HashSet<String>,
}

impl<'a> LineMaps<'a> {
    /// The parent's numbering (`removals`: its layers'), or, with this layer's removals and
    /// touched insurers, the new generation's.
    pub fn new(
        report: &'a Report,
        removals: &'a BTreeMap<String, Vec<Removal>>,
        base_segments: usize,
        touched: impl Iterator<Item = String>,
    ) -> LineMaps<'a> {
        let gaps = report
            .insurers
            .iter()
            .filter_map(|r| {
                let g = r.line_gaps.as_deref().filter(|g| !g.is_empty())?;
                Some((r.insurer_number.as_str(), g))
            })
            .collect();
        let mut state_named: HashSet<String> = touched.collect();
        if let Some(l) = &report.layer {
            state_named.extend(l.state_records.keys().cloned());
        }
        LineMaps {
            gaps,
            removals,
            base_segments,
            state_named,
        }
    }

    fn gaps(&self, number: &str) -> &[u64] {
        self.gaps.get(number).copied().unwrap_or_default()
    }

    /// The state's line of insurer `number`'s record of segment `segment`, `line` in the
    /// view.
    pub fn state_line(&self, number: &str, segment: usize, line: u64) -> u64 {
        let line = match segment < self.base_segments {
            true => Removal::shift(self.gaps(number), line),
            false => line,
        };
        match self.removals.get(number) {
            Some(r) => Removal::line_now(r, segment, line),
            None => line,
        }
    }

    /// Whether the report names insurer `number`'s records by its state's lines.
    fn state_named(&self, number: &str) -> bool {
        self.gaps(number).is_empty() || self.state_named.contains(number)
    }

    /// The report's line of the record [`Self::state_line`] numbers.
    pub fn report_line(&self, number: &str, segment: usize, line: u64) -> u64 {
        match self.state_named(number) {
            true => self.state_line(number, segment, line),
            false => line,
        }
    }

    /// A line the report names of insurer `number`, as its state's.
    pub fn report_to_state(&self, number: &str, line: u64) -> u64 {
        match self.state_named(number) {
            true => line,
            false => Removal::shift(self.gaps(number), line),
        }
    }
}

/// The parent's removals with this layer's (its first segment `first`).
pub(super) fn removed_lines(
    report: &Report,
    changes: &[InsurerChange],
    first: u32,
) -> BTreeMap<String, Vec<Removal>> {
    let mut out = report
        .layer
        .as_ref()
        .map(|l| l.removed_lines.clone())
        .unwrap_or_default();
    for c in changes.iter().filter(|c| !c.removed.is_empty()) {
        out.entry(c.number.to_string()).or_default().push(Removal {
            first_segment: first,
            lines: c.removed.clone(),
        });
    }
    out
}

/// Where a full build puts a person's ref: its insurer's position, then the record's place
/// in the insurer's segment (card key, then record; see `layer_diff::CardOrder` for a
/// touched insurer's).
pub(super) type RefOrder = (usize, Vec<u8>, u32);

/// A person's records in the parent's view, but those `replaced`.
pub(super) fn parent_links(
    live: &MappedIndex,
    hash: PersonHash,
    replaced: &Replaced,
    lines: &LineMaps<'_>,
) -> Vec<(RefOrder, Link)> {
    let Some(entry) = live.find_person(hash) else {
        return Vec::new();
    };
    live.person_refs(&entry)
        .filter_map(|(seg, rec)| {
            let v = live.record_view(seg as usize, rec as usize)?;
            if replaced.insurers.contains(v.insurer_number()) {
                return None;
            }
            let r = v.entry().ok()?;
            let position = live.insurer_position(&v.insurer().entry.number)?;
            let mut key = [0u8; MAX_CARD_KEY_BYTES];
            let len = card_key(v.symbol(), v.number(), &mut key)?;
            let card = (v.insurer_number().to_owned(), key[..len].to_vec());
            if replaced.cards.contains(&card) {
                return None;
            }
            let order = (position, key[..len].to_vec(), rec);
            let mut link = Link::of_entry(hash, seg, rec, &r);
            let line = lines.report_line(v.insurer_number(), seg as usize, u64::from(r.line));
            link.line = u32::try_from(line).unwrap_or(u32::MAX);
            Some((order, link))
        })
        .collect()
}

/// Where the parent's X1/X3 lines of the insurer's unchanged records go.
pub(super) enum LinesMoved {
    /// An unchanged record's line in the parent's state → its line in the new state, and its
    /// person: cross-insurer lines of untouched persons move with them.
    Map(HashMap<u64, (u64, Option<PersonHash>)>),
    /// Every record kept moves up a line for each of these (the card path's removed
    /// records' lines before the layer, ascending): the lines of untouched persons move so,
    /// renamed to the new state file.
    Shifted(Vec<u64>),
}

/// A card of the new state: its records in the path's encoding (`start`, `count`) and where
/// the new layered view has them (`segment`, `at`).
struct Placed {
    key: Vec<u8>,
    start: usize,
    count: usize,
    segment: usize,
    at: usize,
}

/// Compares insurer `d` (base position `position`) of `live` with its state after `inputs`
/// (every change file, the first `applied_before` already in the view). `delta_segment` is
/// the global number the delta segment will have.
#[allow(clippy::too_many_arguments)]
pub(super) fn diff_insurer(
    live: &MappedIndex,
    position: usize,
    d: &InsurerDelivery,
    inputs: &[ChangeInput],
    applied_before: usize,
    cfg: &BuildConfig,
    delta_segment: u32,
    stages: &StageTimes,
    line_now: &dyn Fn(usize, u64) -> u64,
) -> Result<InsurerChange, BuildError> {
    let mut clock = stages.clock();
    let mut rows = Vec::new();
    let result = encode_state(d, inputs, 0, cfg, Some(&mut rows), &mut clock)?;
    let new = open_alone(&result.part, cfg)?;
    let mut old: BTreeMap<Vec<u8>, CardPlace> = live
        .segment_cards(position)?
        .into_iter()
        .map(|(k, s, c)| (k, (position, s as usize, s as usize + c as usize)))
        .collect();
    for (k, at) in live.layered_cards(position) {
        match at {
            Some(at) => old.insert(k, at),
            None => old.remove(&k),
        };
    }
    let diff = diff_cards(live, &new, old, delta_segment, line_now)?;
    let InsurerResult {
        part,
        counts,
        lines,
        changes,
        ..
    } = result;
    let delta = diff
        .encoded_delta(&part, (rows, Vec::new()), cfg, delta_segment)
        .transpose()?;
    let links = place_links(&part.links, &diff.placed, |_| Vec::new());
    let snapshot_bytes = d.snapshot.as_ref().map_or(0, |f| {
        super::reuse::file_identity(&f.path).map_or(0, |i| i.0)
    });
    clock.end(Stage::Diff);
    // Lines of the records the view keeps from before (not rewritten) as a removal's map:
    // exact at each of them, the only lines it is asked for (report lines are the state's).
    let removed = removed_by_shift(&diff.lines_moved);
    let lines_shifted = removed.is_none();
    let removed = removed.unwrap_or_default();
    Ok(InsurerChange {
        position,
        number: part.number,
        state_file: part.file.clone(),
        covered_today: counts.covered_today,
        state_records: part.records_indexed + part.rows_deduplicated,
        applied: changes.into_iter().skip(applied_before).collect(),
        lines,
        delta,
        tombstones: diff.tombstones,
        links,
        touched: diff.touched,
        lines_moved: LinesMoved::Map(diff.lines_moved),
        cards: None,
        cards_changed: diff.changed.len() as u64,
        removed,
        lines_shifted,
        bytes_read: snapshot_bytes,
    })
}

/// Removed lines that map every kept record's line before (`moved`: before → after) as
/// the state's removals did: for each rise of the shift between two kept lines, that many
/// at the lower (a record removed between them counts for every line from the upper on).
/// `None` when a line moved down, which no removal does.
fn removed_by_shift(moved: &HashMap<u64, (u64, Option<PersonHash>)>) -> Option<Vec<u64>> {
    let mut pairs: Vec<(u64, u64)> = moved.iter().map(|(&was, &(now, _))| (was, now)).collect();
    pairs.sort_unstable();
    let (mut out, mut below, mut shift) = (Vec::new(), 0, 0);
    for (was, now) in pairs {
        let s = was.checked_sub(now)?;
        if s < shift {
            return None;
        }
        out.extend(std::iter::repeat_n(below, (s - shift) as usize));
        (below, shift) = (was, s);
    }
    Some(out)
}

/// The cards of a path's encoding (`new`) compared with where the parent's view has them
/// (`old`: every card the path answers for).
pub(super) struct CardDiff {
    placed: Vec<Placed>,
    pub changed: HashSet<Vec<u8>>,
    pub tombstones: Vec<Vec<u8>>,
    pub touched: HashSet<PersonHash>,
    pub lines_moved: HashMap<u64, (u64, Option<PersonHash>)>,
    delta_records: usize,
}

/// `line_now` gives a parent's record's line in the parent's state from its segment and its
/// line in the view.
pub(super) fn diff_cards(
    live: &MappedIndex,
    new: &Index<Vec<u8>>,
    mut old: BTreeMap<Vec<u8>, CardPlace>,
    delta_segment: u32,
    line_now: &dyn Fn(usize, u64) -> u64,
) -> Result<CardDiff, BuildError> {
    let mut touched = HashSet::new();
    let mut mark = |seg: usize,
                    range: std::ops::Range<usize>,
                    index: &dyn Fn(usize, usize) -> Option<PersonHash>| {
        for r in range {
            touched.extend(index(seg, r));
        }
    };
    let old_person = |seg: usize, r: usize| live.record_view(seg, r).and_then(|v| v.person());
    let new_person = |seg: usize, r: usize| new.record_view(seg, r).and_then(|v| v.person());
    let mut placed = Vec::new();
    let mut changed: HashSet<Vec<u8>> = HashSet::new();
    let mut lines_moved = HashMap::new();
    let mut delta_next = 0;
    for (key, s, c) in new.segment_cards(0)? {
        let (start, count) = (s as usize, c as usize);
        let before = old.remove(&key);
        let same = before.filter(|&(seg, a, b)| {
            b - a == count
                && (0..count).all(|j| {
                    match (live.record_view(seg, a + j), new.record_view(0, start + j)) {
                        (Some(x), Some(y)) => x.same_content(&y),
                        _ => false,
                    }
                })
        });
        if let Some((seg, a, _)) = same {
            for j in 0..count {
                if let (Some(x), Some(y)) =
                    (live.record_view(seg, a + j), new.record_view(0, start + j))
                {
                    let was = line_now(seg, u64::from(x.line()));
                    lines_moved.insert(was, (u64::from(y.line()), y.person()));
                }
            }
            placed.push(Placed {
                key,
                start,
                count,
                segment: seg,
                at: a,
            });
            continue;
        }
        if let Some((seg, a, b)) = before {
            mark(seg, a..b, &old_person);
        }
        mark(0, start..start + count, &new_person);
        changed.insert(key.clone());
        placed.push(Placed {
            key,
            start,
            count,
            segment: delta_segment as usize,
            at: delta_next,
        });
        delta_next += count;
    }
    let mut tombstones = Vec::new();
    for (key, (seg, a, b)) in old {
        mark(seg, a..b, &old_person);
        tombstones.push(key);
    }
    Ok(CardDiff {
        placed,
        changed,
        tombstones,
        touched,
        lines_moved,
        delta_records: delta_next,
    })
}

impl CardDiff {
    /// The changed cards' rows of an encoding (`rows` with their known persons, as
    /// [`InsurerRows`] takes them), encoded as a segment of their own numbered
    /// `delta_segment`; `None` when no card changed.
    pub(super) fn encoded_delta(
        &self,
        part: &InsurerPart,
        (rows, persons): (Vec<(Record, u32)>, Vec<Option<PersonHash>>),
        cfg: &BuildConfig,
        delta_segment: u32,
    ) -> Option<Result<InsurerPart, BuildError>> {
        if self.changed.is_empty() {
            return None;
        }
        let mut key = [0u8; MAX_CARD_KEY_BYTES];
        let mut in_delta = |r: &Record| {
            card_key(&r.symbol, &r.number, &mut key)
                .is_some_and(|n| self.changed.contains(&key[..n]))
        };
        let keep: Vec<bool> = rows.iter().map(|(r, _)| in_delta(r)).collect();
        let persons = persons
            .into_iter()
            .zip(&keep)
            .filter_map(|(p, &k)| k.then_some(p))
            .collect();
        let rows = rows
            .into_iter()
            .zip(&keep)
            .filter_map(|(r, &k)| k.then_some(r))
            .collect();
        let encoded = encode_insurer(
            InsurerRows {
                number: part.number,
                name: part.name.clone(),
                kind: part.kind,
                snapshot_date: part.snapshot_date,
                file: part.file.clone(),
                rows,
                persons,
            },
            delta_segment,
            &cfg.key,
            cfg.built_on,
        );
        Some(encoded.map_err(BuildError::from).inspect(|delta| {
            // Pair assertion: the delta holds exactly the changed cards' records.
            assert_eq!(
                delta.records_indexed as usize, self.delta_records,
                "delta records"
            );
        }))
    }

    /// The path's links (records numbered in its encoding) placed in the new view.
    pub(super) fn links(
        &self,
        links: &[Link],
        key_of: impl Fn(&[u8]) -> Vec<u8>,
    ) -> Vec<(Link, CardOrder)> {
        place_links(links, &self.placed, key_of)
    }
}

/// An encoding's links placed in the new view, each with its [`CardOrder`] (`key_of` the
/// card's key as the order takes it).
fn place_links(
    links: &[Link],
    placed: &[Placed],
    key_of: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<(Link, CardOrder)> {
    let mut out: Vec<(Link, CardOrder)> = links
        .iter()
        .filter_map(|l| {
            let i = l.record as usize;
            let card = placed.partition_point(|p| p.start + p.count <= i);
            let p = placed.get(card).filter(|p| p.start <= i)?;
            let at = Link {
                insurer: p.segment as u32,
                record: (p.at + i - p.start) as u32,
                ..*l
            };
            Some((at, (key_of(&p.key), l.record)))
        })
        .collect();
    out.sort_unstable();
    out
}

/// One encoded insurer opened as an index of its own, in memory, to read its cards.
pub(super) fn open_alone(
    part: &InsurerPart,
    cfg: &BuildConfig,
) -> Result<Index<Vec<u8>>, BuildError> {
    let mut main = std::io::Cursor::new(Vec::new());
    let io = |e: std::io::Error| BuildError::Io {
        path: format!("{} (in memory)", part.file),
        source: e,
    };
    write_index(
        &mut main,
        &IndexContents {
            generation_id: "change",
            built_on: cfg.built_on,
            person_key_fingerprint: cfg.key.fingerprint(),
            insurers: &[insurer_input(part)],
            persons: &[],
            person_refs: &[],
            kohi: &EncodedKohi::default(),
        },
    )
    .map_err(io)?;
    let files = IndexFiles {
        main: main.into_inner(),
        segments: vec![segment_file_bytes(part.number, &part.segment)],
    };
    Ok(Index::open(files, cfg.key.clone())?)
}
