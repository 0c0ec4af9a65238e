//! One insurer of a change generation: its state materialized and encoded in memory as a
//! base build would (`changes::encode_state`), then compared card by card with the parent's
//! layered view. Cards whose records differ go into a delta segment (encoded again from the
//! changed cards' rows, so in the order the full encoding has them), cards gone become
//! tombstones, and every record of the new state gets its place in the new layered view: a
//! changed card's in the delta segment, an unchanged card's where the parent finds it.

use super::changes::encode_state;
use super::encode::{encode_insurer, InsurerPart, InsurerRows, Link};
use super::insurer::InsurerResult;
use super::profile::{Stage, StageTimes};
use super::run::{insurer_input, BuildConfig, BuildError};
use crate::domain::{PersonHash, Record};
use crate::format::writer::{segment_file_bytes, write_index, IndexContents};
use crate::format::{card_key, EncodedKohi, MAX_CARD_KEY_BYTES};
use crate::index::{Index, IndexFiles, MappedIndex};
use crate::snapshot::{ChangeInput, InsurerDelivery};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What one insurer's changes make of the parent's view.
pub(super) struct InsurerChange {
    /// Its base insurer position.
    pub position: usize,
    /// The state's encoding and report (its segment bytes dropped).
    pub result: InsurerResult,
    /// The changed cards' records, numbered as the delta segment it will be.
    pub delta: Option<InsurerPart>,
    pub tombstones: Vec<Vec<u8>>,
    /// Every record of the new state with a person, placed in the new layered view, with
    /// its place in the state's full encoding (a full build's order of a person's refs);
    /// sorted.
    pub links: Vec<(Link, u32)>,
    /// Persons whose set of records changed.
    pub touched: HashSet<PersonHash>,
    /// An unchanged record's line in the parent's state → its line in the new state, and its
    /// person: cross-insurer lines of untouched persons move with them.
    pub lines_moved: HashMap<u64, (u64, Option<PersonHash>)>,
    pub cards_changed: u64,
}

/// A card of the new state: its records in the full encoding (`start`, `count`) and where
/// the new layered view has them (`segment`, `at`).
struct Placed {
    start: usize,
    count: usize,
    segment: usize,
    at: usize,
}

/// Compares insurer `d` (base position `position`) of `live` with its state after `inputs`.
/// `delta_segment` is the global number the delta segment will have.
pub(super) fn diff_insurer(
    live: &MappedIndex,
    position: usize,
    d: &InsurerDelivery,
    inputs: &[ChangeInput],
    cfg: &BuildConfig,
    delta_segment: u32,
    stages: &StageTimes,
) -> Result<InsurerChange, BuildError> {
    let mut clock = stages.clock();
    let mut rows = Vec::new();
    let mut result = encode_state(d, inputs, 0, cfg, Some(&mut rows), &mut clock)?;
    let new = open_alone(&result.part, cfg)?;
    let mut old: BTreeMap<Vec<u8>, (usize, usize, usize)> = live
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
                    lines_moved.insert(u64::from(x.line()), (u64::from(y.line()), y.person()));
                }
            }
            placed.push(Placed {
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
        placed.push(Placed {
            start,
            count,
            segment: delta_segment as usize,
            at: delta_next,
        });
        delta_next += count;
        changed.insert(key);
    }
    let mut tombstones = Vec::new();
    for (key, (seg, a, b)) in old {
        mark(seg, a..b, &old_person);
        tombstones.push(key);
    }
    let delta = (!changed.is_empty())
        .then(|| encode_delta(&result, rows, &changed, cfg, delta_segment))
        .transpose()?;
    if let Some(delta) = &delta {
        // Pair assertion: the delta holds exactly the changed cards' records.
        assert_eq!(delta.records_indexed as usize, delta_next, "delta records");
    }
    let links = place_links(&result.part.links, &placed);
    result.part.links = Vec::new();
    result.part.segment.bytes = Vec::new();
    clock.end(Stage::Diff);
    Ok(InsurerChange {
        position,
        result,
        delta,
        tombstones,
        links,
        touched,
        lines_moved,
        cards_changed: changed.len() as u64,
    })
}

/// The changed cards' rows of the state, encoded as a segment of their own numbered
/// `delta_segment`.
fn encode_delta(
    result: &InsurerResult,
    rows: Vec<(Record, u32)>,
    changed: &HashSet<Vec<u8>>,
    cfg: &BuildConfig,
    delta_segment: u32,
) -> Result<InsurerPart, BuildError> {
    let mut key = [0u8; MAX_CARD_KEY_BYTES];
    let rows = rows
        .into_iter()
        .filter(|(r, _)| {
            card_key(&r.symbol, &r.number, &mut key).is_some_and(|n| changed.contains(&key[..n]))
        })
        .collect();
    let p = &result.part;
    Ok(encode_insurer(
        InsurerRows {
            number: p.number,
            name: p.name.clone(),
            kind: p.kind,
            snapshot_date: p.snapshot_date,
            file: p.file.clone(),
            rows,
        },
        delta_segment,
        &cfg.key,
        cfg.built_on,
    )?)
}

/// The state's links (records numbered in the full encoding) placed in the new view.
fn place_links(links: &[Link], placed: &[Placed]) -> Vec<(Link, u32)> {
    let mut out: Vec<(Link, u32)> = links
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
            Some((at, l.record))
        })
        .collect();
    out.sort_unstable();
    out
}

/// One encoded insurer opened as an index of its own, in memory, to read its cards.
fn open_alone(part: &InsurerPart, cfg: &BuildConfig) -> Result<Index<Vec<u8>>, BuildError> {
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
