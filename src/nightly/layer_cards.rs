//! The card path of a change generation (docs/delivery.md, "Change generations"): for an
//! insurer whose new change files name a few cards, only those cards are read from the
//! parent's layered view (every field of a record but the clear individual number, and its
//! person's hash), changed by the rules every state is changed by (`snapshot::apply`: C1,
//! C2, C4 on the rows R1–R7 and W1–W4 passed), and encoded alone: the work is in proportion
//! to the change, not to the insurer. Where its result could differ from the full path's
//! (`layer_diff::diff_insurer`) it says so (`None`) and the build takes the full path; the
//! conditions are [`parent_state`]'s and [`card_path`]'s.

use super::changes::{applied_report, check_change_files};
use super::encode::{encode_insurer, InsurerRows};
use super::insurer::report_line;
use super::layer_diff::{
    diff_cards, diff_insurer, open_alone, InsurerChange, LineMaps, LinesMoved,
};
use super::profile::{Stage, StageTimes};
use super::report::{Removal, Report, ReportLine};
use super::run::{BuildConfig, BuildError};
use crate::domain::{Date, InsurerNumber, PersonHash, Record};
use crate::format::{card_key, MAX_CARD_KEY_BYTES};
use crate::index::{CardPlace, MappedIndex};
use crate::snapshot::apply::{apply_file, materialized_file_name, read_change_input};
use crate::snapshot::change::{ChangeRows, Changeable, RecordKey, RecordLoss};
use crate::snapshot::{Change, ChangeInput, ChangeRow, InsurerDelivery, State};
use std::collections::{BTreeMap, HashMap, HashSet};

/// An insurer with new change files.
pub(super) struct Touched {
    pub position: usize,
    pub delivery: InsurerDelivery,
    /// Its change files from the first the plan read (in order): those before, `known`, are
    /// the ones the view applied, by name, size and modification time.
    pub read: Vec<ChangeInput>,
    pub known: usize,
    /// How many of its change files the live view had applied.
    pub applied_before: usize,
}

impl Touched {
    /// The change files the view has not applied.
    fn new_inputs(&self) -> &[ChangeInput] {
        &self.read[self.applied_before - self.known..]
    }
}

/// One touched insurer's change: by its cards when [`card_path`] can be exact, else by its
/// whole state (`diff_insurer`), which reads the change files the plan did not.
pub(super) fn insurer_change(
    (live, report, maps, lines): (&MappedIndex, &Report, &LineMaps<'_>, &[ReportLine]),
    t: &Touched,
    cfg: &BuildConfig,
    delta_segment: u32,
    stages: &StageTimes,
) -> Result<InsurerChange, BuildError> {
    let d = &t.delivery;
    let number = d.insurer.number.as_str();
    let parent = parent_state(
        (report, maps),
        lines,
        number,
        t.applied_before,
        cfg.built_on,
    );
    let card_path_allowed = cfg.reuse != super::run::Reuse::WholeStates;
    if let Some(parent) = parent.filter(|_| card_path_allowed) {
        let inputs = t.new_inputs();
        let found = card_path(
            live,
            t.position,
            d,
            inputs,
            &parent,
            cfg,
            delta_segment,
            stages,
        )?;
        if let Some(change) = found {
            return Ok(change);
        }
    }
    let mut inputs = ChangeInput::read_all(&d.changes[..t.known])?;
    let prefix_bytes: u64 = inputs.iter().map(|c| c.bytes.len() as u64).sum();
    inputs.extend(t.read.iter().cloned());
    let line_now = |seg: usize, line: u64| maps.state_line(number, seg, line);
    let mut change = diff_insurer(
        live,
        t.position,
        d,
        &inputs,
        t.applied_before,
        cfg,
        delta_segment,
        stages,
        &line_now,
    )?;
    change.bytes_read += prefix_bytes;
    Ok(change)
}

/// What the card path takes of the parent's report for one insurer.
pub(super) struct ParentState<'a> {
    /// Rows of the insurer's materialized state.
    pub state_records: u64,
    pub covered_today: u64,
    /// The insurer's report lines but X1/X3, in order.
    pub lines: Vec<ReportLine>,
    /// Lines of records whose card has a finding (X2, or a `DUP` kept): the card path
    /// cannot change such a card exactly.
    on_cards: HashSet<u64>,
    /// How the parent numbers the insurer's records and report lines.
    maps: &'a LineMaps<'a>,
    number: String,
}

impl ParentState<'_> {
    /// The line in the parent's state of a record of segment `segment` with `line` in the
    /// view.
    fn line_now(&self, segment: usize, line: u64) -> u64 {
        self.maps.state_line(&self.number, segment, line)
    }

    /// A line the parent's report names, as the parent's state's.
    fn report_to_state(&self, line: u64) -> u64 {
        self.maps.report_to_state(&self.number, line)
    }
}

/// The parent's state of insurer `number` when the card path can be exact for it, else
/// `None`: the parent's report says how its records are numbered (a change file applied,
/// or `line_gaps`); no line moved in a way the layers' removals do not say
/// (`lines_shifted`); the day is the parent's (members covered today count as of the
/// build's day); and each `DUP` line names the line kept. `lines` are the insurer's report
/// lines but X1/X3 ([`lines_by_insurer`]).
pub(super) fn parent_state<'a>(
    (report, maps): (&Report, &'a LineMaps<'a>),
    lines: &[ReportLine],
    number: &str,
    applied_before: usize,
    built_on: Date,
) -> Option<ParentState<'a>> {
    let layer = report.layer.as_ref();
    let base = report
        .insurers
        .iter()
        .find(|r| r.insurer_number == number)?;
    if (applied_before == 0 && base.line_gaps.is_none())
        || report.built_on != built_on.to_string()
        || layer.is_some_and(|l| l.lines_shifted.contains(number))
    {
        return None;
    }
    let state_records = layer
        .and_then(|l| l.state_records.get(number).copied())
        .unwrap_or(base.counts.rows_indexed + base.counts.rows_deduplicated);
    let covered_today = layer
        .and_then(|l| l.covered_today.get(number).copied())
        .unwrap_or(base.counts.covered_today);
    let mut on_cards = HashSet::new();
    for l in lines {
        let line = match l.rule {
            "X2" => l.line,
            // The duplicate left out is the kept record's card's.
            "DUP" => kept_line(&l.reason)?,
            _ => continue,
        };
        on_cards.insert(maps.report_to_state(number, line));
    }
    Some(ParentState {
        state_records,
        covered_today,
        lines: lines.to_vec(),
        on_cards,
        maps,
        number: number.to_owned(),
    })
}

/// A finding's reason with the line it names (`… as line N …`, as `DUP` and X2 reasons
/// name the other row) numbered by `line`.
fn shift_reason(reason: &str, line: impl Fn(u64) -> u64) -> String {
    const AT: &str = "as line ";
    let Some(at) = reason.find(AT).map(|i| i + AT.len()) else {
        return reason.to_owned();
    };
    let digits = reason[at..].bytes().take_while(u8::is_ascii_digit).count();
    match reason[at..at + digits].parse::<u64>() {
        Ok(n) => format!("{}{}{}", &reason[..at], line(n), &reason[at + digits..]),
        Err(_) => reason.to_owned(),
    }
}

/// The line a `DUP` line's reason names as kept (`encode::segment_order` writes it).
fn kept_line(reason: &str) -> Option<u64> {
    let rest = reason.strip_prefix("the same row as line ")?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// Each touched insurer's report lines in the parent but X1/X3, in order: one pass over
/// the parent's lines.
pub(super) fn lines_by_insurer<'a>(
    lines: &[ReportLine],
    numbers: impl Iterator<Item = &'a str>,
) -> HashMap<String, Vec<ReportLine>> {
    let mut out: HashMap<String, Vec<ReportLine>> =
        numbers.map(|n| (n.to_owned(), Vec::new())).collect();
    for l in lines.iter().filter(|l| l.rule != "X1" && l.rule != "X3") {
        let number = l.file.split_once('/').map_or("", |(n, _)| n);
        if let Some(own) = out.get_mut(number) {
            own.push(l.clone());
        }
    }
    out
}

/// A record of the card path's state: the individual number replaced by its person's hash,
/// as the view holds it. Changed by the rules a state of records is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    record: Record,
    person: Option<PersonHash>,
}

impl Changeable for Held {
    type Key = RecordKey;
    type Loss = RecordLoss;

    fn key(&self) -> RecordKey {
        RecordKey::of(&self.record)
    }

    fn lose(&mut self, loss: &RecordLoss) {
        self.record.lose(loss);
    }

    fn describe(key: &RecordKey) -> String {
        <Record as Changeable>::describe(key)
    }
}

/// Insurer `d` (base position `position`) of `live` after its new change files `inputs`,
/// by the cards they name; `None` when the result could differ from the full path's: a key
/// whose card cannot be encoded, a finding of the parent on a named card, a record removed
/// (every later record's line moves), two persons' records on one card and branch (their
/// order is their individual numbers', which the view does not hold), or a DUP or X2
/// finding on the named cards.
#[allow(clippy::too_many_arguments)]
pub(super) fn card_path(
    live: &MappedIndex,
    position: usize,
    d: &InsurerDelivery,
    inputs: &[ChangeInput],
    parent: &ParentState<'_>,
    cfg: &BuildConfig,
    delta_segment: u32,
    stages: &StageTimes,
) -> Result<Option<InsurerChange>, BuildError> {
    let mut clock = stages.clock();
    let number = d.insurer.number;
    let Some(last) = inputs.last() else {
        return Ok(None);
    };
    let parsed: Vec<_> = inputs
        .iter()
        .map(|input| read_change_input(input, number))
        .collect();
    let Some(keys) = named_cards(&parsed) else {
        return Ok(None);
    };
    let Some(held) = held_cards(live, &number, &keys, parent, cfg.built_on)? else {
        return Ok(None);
    };
    let (old, initial, old_covered) = held;
    let (initial_lines, initial): (Vec<u64>, Vec<Held>) = initial.into_iter().unzip();
    let mut state = State::new(initial);
    let mut issues = Vec::new();
    let summaries: Vec<_> = inputs
        .iter()
        .zip(parsed)
        .map(|(input, rows)| {
            let rows = rows.map(|r| held_rows(r, cfg));
            apply_file(&mut state, input, move |_| rows, &mut issues)
        })
        .collect();
    check_change_files(&summaries, &issues)?;
    clock.end(Stage::Materialize);
    let Numbered {
        rows,
        persons,
        removed,
        state_records,
    } = numbered(state.into_slots(), &initial_lines, parent.state_records);
    if persons_share_a_branch(&rows, &persons) {
        return Ok(None);
    }
    let date = last.file.time.date;
    let state_file = materialized_file_name(number, date);
    let part = encode_insurer(
        InsurerRows {
            number,
            name: d.insurer.name.clone(),
            kind: d.insurer.kind,
            snapshot_date: date,
            file: state_file.clone(),
            rows: rows.clone(),
            persons: persons.clone(),
        },
        0,
        &cfg.key,
        cfg.built_on,
    )?;
    if !part.findings.is_empty() {
        return Ok(None);
    }
    clock.end(Stage::Encode);
    let new = open_alone(&part, cfg)?;
    let line_now = |seg: usize, line: u64| parent.line_now(seg, line);
    let diff = diff_cards(live, &new, old, delta_segment, &line_now)?;
    let delta = diff
        .encoded_delta(&part, (rows, persons), cfg, delta_segment)
        .transpose()?;
    let links = diff.links(&part.links, |k| k.to_vec());
    let applied = summaries
        .iter()
        .zip(inputs)
        .map(|(c, input)| super::report::ChangeReport {
            bytes: input.identity.0,
            mtime_ns: input.identity.1,
            ..applied_report(c)
        })
        .collect();
    clock.end(Stage::Diff);
    Ok(Some(InsurerChange {
        position,
        number,
        covered_today: parent.covered_today + u64::from(part.covered_count) - old_covered,
        state_records,
        applied,
        lines: state_lines(
            parent,
            issues.into_iter().map(report_line),
            &state_file,
            &removed,
        ),
        state_file,
        delta,
        tombstones: diff.tombstones,
        links,
        touched: diff.touched,
        lines_moved: LinesMoved::Shifted(removed.clone()),
        cards: Some(keys.into_keys().collect()),
        cards_changed: diff.changed.len() as u64,
        removed,
        lines_shifted: false,
        bytes_read: 0,
    }))
}

/// The named cards' state after the change files, numbered as the materialized state.
struct Numbered {
    rows: Vec<(Record, u32)>,
    persons: Vec<Option<PersonHash>>,
    /// Lines (before) of the records removed, ascending.
    removed: Vec<u64>,
    /// Rows of the whole state after.
    state_records: u64,
}

/// Numbers the slots of the named cards' state (`initial_lines`: the lines of the records
/// it started with, ascending) as the whole state's rows: a record kept moves up a line for
/// each removed before it; one added follows the state's last (`state_records` before).
fn numbered(slots: Vec<Option<Held>>, initial_lines: &[u64], state_records: u64) -> Numbered {
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let mut added = Vec::new();
    for (i, slot) in slots.into_iter().enumerate() {
        match (slot, initial_lines.get(i)) {
            (None, Some(&line)) => removed.push(line),
            (None, None) => {}
            (Some(h), Some(&line)) => kept.push((h, line)),
            (Some(h), None) => added.push(h),
        }
    }
    let state_records = state_records - removed.len() as u64;
    let line32 = |line: u64| u32::try_from(line).unwrap_or(u32::MAX);
    let kept = kept
        .into_iter()
        .map(|(h, line)| (h, line32(Removal::shift(&removed, line))));
    let added_count = added.len() as u64;
    let added = added
        .into_iter()
        .enumerate()
        .map(|(k, h)| (h, line32(state_records + 2 + k as u64)));
    let (rows, persons) = kept
        .chain(added)
        .map(|(h, line)| ((h.record, line), h.person))
        .unzip();
    Numbered {
        rows,
        persons,
        removed,
        state_records: state_records + added_count,
    }
}

/// The cards (keys as in a segment's FST, with their symbol and number) the valid rows of
/// `parsed` name; `None` when a key cannot be encoded (the full path reports it).
fn named_cards<E>(parsed: &[Result<ChangeRows, E>]) -> Option<BTreeMap<Vec<u8>, (String, String)>> {
    let mut keys = BTreeMap::new();
    let mut key = [0u8; MAX_CARD_KEY_BYTES];
    for rows in parsed.iter().flatten() {
        for row in &rows.rows {
            if let ChangeRow::Valid { change, .. } = row {
                let k = change.key();
                let n = card_key(&k.symbol, &k.number, &mut key)?;
                keys.entry(key[..n].to_vec())
                    .or_insert_with(|| (k.symbol.clone(), k.number.clone()));
            }
        }
    }
    Some(keys)
}

/// The named cards' places in the view, their records in state order (by line) with their
/// lines, and how many of them cover the build's day; `None` when a card has a finding in
/// the parent (X2, or an exact duplicate left out: the view holds one record of the rows an
/// `update` or `delete` changes together) or two records claim one line.
#[allow(clippy::type_complexity)]
fn held_cards(
    live: &MappedIndex,
    insurer: &InsurerNumber,
    keys: &BTreeMap<Vec<u8>, (String, String)>,
    parent: &ParentState<'_>,
    built_on: Date,
) -> Result<Option<(BTreeMap<Vec<u8>, CardPlace>, Vec<(u64, Held)>, u64)>, BuildError> {
    let mut old = BTreeMap::new();
    let mut held = Vec::new();
    let mut covered = 0;
    for (key, (symbol, number)) in keys {
        let found = live.card_records(insurer, symbol, number).place();
        let Some(place @ (seg, a, b)) = found else {
            continue;
        };
        old.insert(key.clone(), place);
        for r in a..b {
            let Some(v) = live.record_view(seg, r) else {
                return Ok(None);
            };
            let line = parent.line_now(seg, u64::from(v.line()));
            if parent.on_cards.contains(&line) {
                return Ok(None);
            }
            let record = v.record()?;
            covered += u64::from(record.covers(built_on));
            held.push((
                line,
                Held {
                    record,
                    person: v.person(),
                },
            ));
        }
    }
    held.sort_by_key(|(line, _)| *line);
    if held.windows(2).any(|w| w[0].0 == w[1].0) {
        return Ok(None);
    }
    Ok(Some((old, held, covered)))
}

/// A change file's rows with each record's individual number replaced by its person's hash.
fn held_rows(rows: ChangeRows, cfg: &BuildConfig) -> ChangeRows<Held> {
    let held = |mut record: Record| {
        let person = record.individual_number.take().map(|n| cfg.key.hash(&n));
        Held { record, person }
    };
    ChangeRows {
        encoding: rows.encoding,
        file_warnings: rows.file_warnings,
        rows: rows
            .rows
            .into_iter()
            .map(|row| match row {
                ChangeRow::Valid {
                    change,
                    line,
                    warnings,
                } => ChangeRow::Valid {
                    change: match change {
                        Change::Add(r) => Change::Add(held(r)),
                        Change::Update(r) => Change::Update(held(r)),
                        Change::Lose { key, loss } => Change::Lose { key, loss },
                        Change::Delete(key) => Change::Delete(key),
                    },
                    line,
                    warnings,
                },
                ChangeRow::Rejected(issue) => ChangeRow::Rejected(issue),
            })
            .collect(),
    }
}

/// Whether two records of one card and branch have different persons (or one none): a full
/// build orders them by their individual numbers.
fn persons_share_a_branch(rows: &[(Record, u32)], persons: &[Option<PersonHash>]) -> bool {
    let mut seen: BTreeMap<(&str, &str, crate::domain::Branch), Option<PersonHash>> =
        BTreeMap::new();
    for ((r, _), p) in rows.iter().zip(persons) {
        let at = (r.symbol.as_str(), r.number.as_str(), r.branch);
        if *seen.entry(at).or_insert(*p) != *p {
            return true;
        }
    }
    false
}

/// The insurer's report lines in the new view, in a full path's order: the parent's lines of
/// its files, the new files' (`new`), then the parent's findings (`DUP`, X2: on cards the
/// path did not change, so the same), under the new state's name.
fn state_lines(
    parent: &ParentState<'_>,
    new: impl Iterator<Item = ReportLine>,
    state_file: &str,
    removed: &[u64],
) -> Vec<ReportLine> {
    let (findings, files): (Vec<&ReportLine>, Vec<&ReportLine>) = parent
        .lines
        .iter()
        .partition(|l| l.rule == "X2" || l.rule == "DUP");
    let mut out: Vec<ReportLine> = files.into_iter().cloned().collect();
    out.extend(new);
    // Named by the parent's report, then moved up for this layer's removals.
    let line = |n: u64| Removal::shift(removed, parent.report_to_state(n));
    out.extend(findings.into_iter().map(|l| ReportLine {
        file: state_file.to_owned(),
        line: line(l.line),
        reason: shift_reason(&l.reason, line),
        ..l.clone()
    }));
    out
}
