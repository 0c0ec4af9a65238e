//! Cross-insurer stage of the build: group linked records by person hash, mark suspected
//! mislinkage (X1), report dual coverage (X3), and lay out the person table. A full build
//! sorts every link; an incremental build merges the live person table with the changed
//! insurers' links and recomputes only the persons they touch.

use super::encode::{InsurerPart, Link};
use super::report::ReportLine;
use crate::domain::{Date, PersonHash};
use crate::format::{encode_person_ref, PersonEntry, PERSON_IDENTITY_UNVERIFIED};
use crate::index::Index;
use rayon::slice::ParallelSliceMut;
use std::collections::{HashMap, HashSet};

/// The person table, its refs, and what the checks found.
#[derive(Debug, Default)]
pub struct Persons {
    pub entries: Vec<PersonEntry>,
    pub refs: Vec<u64>,
    pub findings: Vec<ReportLine>,
}

/// Largest number of records one person may have (the person table counts them in 16 bits).
pub const MAX_RECORDS_PER_PERSON: usize = u16::MAX as usize;

/// Takes the parts' links (they are the largest transient of a build), sorted.
fn take_links(parts: &mut [InsurerPart]) -> Vec<Link> {
    let mut links: Vec<Link> = Vec::with_capacity(parts.iter().map(|p| p.links.len()).sum());
    for p in parts.iter_mut() {
        links.append(&mut p.links);
        p.links.shrink_to_fit();
    }
    let started = std::time::Instant::now();
    // `Link`'s own order, its hash compared as one 128-bit number rather than by `memcmp`
    // (the same order: big-endian numbers order as their bytes do).
    let hash = |l: &Link| u128::from_be_bytes(l.hash.0);
    links.par_sort_unstable_by(|a, b| hash(a).cmp(&hash(b)).then_with(|| a.cmp(b)));
    tracing::debug!(
        links = links.len(),
        sort_ms = started.elapsed().as_millis() as u64,
        "person links sorted"
    );
    links
}

/// The length of the run of links, from the first, with this hash.
fn run_len(links: &[Link], hash: PersonHash) -> usize {
    links.iter().take_while(|l| l.hash == hash).count()
}

/// Consumes the parts' links and lays out every person afresh.
pub fn link_persons(parts: &mut [InsurerPart]) -> Persons {
    let links = take_links(parts);
    let mut out = Persons {
        entries: Vec::new(),
        refs: Vec::with_capacity(links.len()),
        ..Persons::default()
    };
    let mut start = 0;
    while start < links.len() {
        let end = start + run_len(&links[start..], links[start].hash);
        push_person(
            &|i| parts[i as usize].file.clone(),
            &links[start..end],
            &mut out,
        );
        start = end;
    }
    sort_findings(&mut out.findings);
    out
}

/// The file a link's records were indexed from, by the link's insurer (or segment) number.
pub(super) type FileOf<'a> = dyn Fn(u32) -> String + 'a;

/// Checks one person's links (sorted, one hash) and appends its entry and refs.
pub(super) fn push_person(parts: &FileOf<'_>, links: &[Link], out: &mut Persons) {
    let group = &links[..links.len().min(MAX_RECORDS_PER_PERSON)];
    let mislinked = group
        .iter()
        .any(|l| l.birthdate != group[0].birthdate || l.sex != group[0].sex);
    if mislinked {
        report_mislinkage(parts, group, &mut out.findings);
    } else {
        report_dual_coverage(parts, group, &mut out.findings);
    }
    out.entries.push(PersonEntry {
        hash: group[0].hash,
        refs_start: out.refs.len() as u32,
        refs_count: group.len() as u16,
        flags: if mislinked {
            PERSON_IDENTITY_UNVERIFIED
        } else {
            0
        },
    });
    out.refs
        .extend(group.iter().map(|l| encode_person_ref(l.insurer, l.record)));
}

/// Findings in one canonical order, so full and incremental builds write the same report.
pub(super) fn sort_findings(findings: &mut [ReportLine]) {
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.rule, &a.reason).cmp(&(&b.file, b.line, b.rule, &b.reason))
    });
}

/// What an incremental build takes from the live generation for the person stage.
pub struct PreviousPersons<'a, B> {
    pub index: &'a Index<B>,
    /// By old insurer position: its new position when its segment is reused, `None` when the
    /// insurer delivered a new snapshot or is gone (its links then come afresh, or not at all).
    pub reused: Vec<Option<u32>>,
    /// The live generation's X1 and X3 lines.
    pub cross_lines: &'a [ReportLine],
    /// Old insurer position by snapshot file.
    pub old_position_by_file: HashMap<String, usize>,
}

/// Merges the live person table with the fresh insurers' links. A person none of whose
/// records changed keeps its entry (refs renumbered) and its X1/X3 lines; a person with a
/// record in a changed insurer, or a fresh link, is checked again from all its records, as a
/// full build would. The result equals a full build's.
pub fn link_incremental<B: AsRef<[u8]>>(
    parts: &mut [InsurerPart],
    prev: &PreviousPersons<'_, B>,
) -> Persons {
    let fresh = take_links(parts);
    let parts = &*parts;
    let mut out = Persons {
        entries: Vec::with_capacity(prev.index.header().person_count as usize),
        refs: Vec::with_capacity(fresh.len() + prev.index.header().record_count as usize),
        ..Persons::default()
    };
    // Records of persons checked again: their old X1/X3 lines are replaced, not carried.
    let mut rechecked: HashSet<(usize, u64)> = HashSet::new();
    let mut old = prev.index.person_table().peekable();
    let mut next_fresh = 0;
    let mut group: Vec<Link> = Vec::new();
    loop {
        let hash = match (
            old.peek().map(|p| p.hash),
            fresh.get(next_fresh).map(|l| l.hash),
        ) {
            (None, None) => break,
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (Some(a), Some(b)) => a.min(b),
        };
        let old_entry = old.next_if(|p| p.hash == hash);
        let n = run_len(&fresh[next_fresh..], hash);
        let fresh_links = &fresh[next_fresh..next_fresh + n];
        next_fresh += n;
        let untouched = fresh_links.is_empty()
            && old_entry.as_ref().is_some_and(|e| {
                prev.index
                    .person_refs(e)
                    .all(|(ins, _)| prev.reused.get(ins as usize).copied().flatten().is_some())
            });
        if let (true, Some(e)) = (untouched, &old_entry) {
            out.entries.push(PersonEntry {
                refs_start: out.refs.len() as u32,
                ..*e
            });
            out.refs.extend(prev.index.person_refs(e).map(|(ins, rec)| {
                encode_person_ref(prev.reused[ins as usize].expect("checked above"), rec)
            }));
            continue;
        }
        group.clear();
        group.extend_from_slice(fresh_links);
        for (ins, rec) in old_entry
            .as_ref()
            .map(|e| prev.index.person_refs(e))
            .into_iter()
            .flatten()
        {
            let Some(new_ins) = prev.reused.get(ins as usize).copied().flatten() else {
                continue;
            };
            let Some(r) = prev
                .index
                .record_view(ins as usize, rec as usize)
                .and_then(|v| v.entry().ok())
            else {
                continue;
            };
            rechecked.insert((ins as usize, u64::from(r.line)));
            group.push(Link::of_entry(hash, new_ins, rec, &r));
        }
        if group.is_empty() {
            continue;
        }
        group.sort_unstable();
        push_person(&|i| parts[i as usize].file.clone(), &group, &mut out);
    }
    for l in prev.cross_lines {
        let carried = prev.old_position_by_file.get(&l.file).is_some_and(|&ins| {
            prev.reused.get(ins).copied().flatten().is_some() && !rechecked.contains(&(ins, l.line))
        });
        if carried {
            out.findings.push(l.clone());
        }
    }
    sort_findings(&mut out.findings);
    out
}

fn place(parts: &FileOf<'_>, l: &Link) -> String {
    format!("{} line {}", parts(l.insurer), l.line)
}

fn report_mislinkage(parts: &FileOf<'_>, group: &[Link], findings: &mut Vec<ReportLine>) {
    for (i, l) in group.iter().enumerate() {
        let others: Vec<String> = group
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .take(3)
            .map(|(_, o)| place(parts, o))
            .collect();
        findings.push(ReportLine {
            file: parts(l.insurer),
            line: u64::from(l.line),
            rule: "X1",
            field: "individual_number".into(),
            reason: format!(
                "suspected mislinkage: the same individual number is on records with a different birthdate or sex ({}); hidden from person queries until the insurer fixes it",
                others.join(", ")
            ),
        });
    }
}

/// X3: two records of one person covering the same day.
fn report_dual_coverage(parts: &FileOf<'_>, group: &[Link], findings: &mut Vec<ReportLine>) {
    let end = |l: &Link| l.disqualification_date.unwrap_or(Date::MAX);
    for (i, a) in group.iter().enumerate() {
        for b in &group[i + 1..] {
            if a.qualification_date < end(b) && b.qualification_date < end(a) {
                let day = a.qualification_date.max(b.qualification_date);
                findings.push(ReportLine {
                    file: parts(b.insurer),
                    line: u64::from(b.line),
                    rule: "X3",
                    field: "qualification_date".into(),
                    reason: format!("dual coverage: the same person is also covered by {} from {day}; both kept", place(parts, a)),
                });
            }
        }
    }
}
