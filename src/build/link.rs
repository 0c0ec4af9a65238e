//! Cross-insurer stage of the build: group linked records by person hash, mark suspected
//! mislinkage (X1), report dual coverage (X3), and lay out the person table.

use super::encode::{InsurerPart, Link};
use super::report::ReportLine;
use crate::domain::Date;
use crate::format::{encode_person_ref, PersonEntry, PERSON_IDENTITY_UNVERIFIED};
use rayon::slice::ParallelSliceMut;

/// The person table, its refs, and what the checks found.
#[derive(Debug, Default)]
pub struct Persons {
    pub entries: Vec<PersonEntry>,
    pub refs: Vec<u64>,
    pub findings: Vec<ReportLine>,
    /// Per insurer index: how many of its records were marked identity-unverified.
    pub unverified_records: u64,
}

/// Largest number of records one person may have (the person table counts them in 16 bits).
pub const MAX_RECORDS_PER_PERSON: usize = u16::MAX as usize;

/// Consumes the parts' links (they are the largest transient of a build).
pub fn link_persons(parts: &mut [InsurerPart]) -> Persons {
    let mut links: Vec<Link> = Vec::with_capacity(parts.iter().map(|p| p.links.len()).sum());
    for p in parts.iter_mut() {
        links.append(&mut p.links);
        p.links.shrink_to_fit();
    }
    let parts = &*parts;
    let started = std::time::Instant::now();
    links.par_sort_unstable();
    tracing::debug!(
        links = links.len(),
        sort_ms = started.elapsed().as_millis() as u64,
        "person links sorted"
    );
    let mut out = Persons {
        entries: Vec::new(),
        refs: Vec::with_capacity(links.len()),
        ..Persons::default()
    };
    let mut start = 0;
    while start < links.len() {
        let end = start
            + links[start..]
                .iter()
                .take_while(|l| l.hash == links[start].hash)
                .count();
        let group = &links[start..end.min(start + MAX_RECORDS_PER_PERSON)];
        let mislinked = group
            .iter()
            .any(|l| l.birthdate != group[0].birthdate || l.sex != group[0].sex);
        if mislinked {
            report_mislinkage(parts, group, &mut out.findings);
            out.unverified_records += group.len() as u64;
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
        start = end;
    }
    out
}

fn place(parts: &[InsurerPart], l: &Link) -> String {
    format!("{} line {}", parts[l.insurer as usize].file, l.line)
}

fn report_mislinkage(parts: &[InsurerPart], group: &[Link], findings: &mut Vec<ReportLine>) {
    for (i, l) in group.iter().enumerate() {
        let others: Vec<String> = group
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .take(3)
            .map(|(_, o)| place(parts, o))
            .collect();
        findings.push(ReportLine {
            file: parts[l.insurer as usize].file.clone(),
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
fn report_dual_coverage(parts: &[InsurerPart], group: &[Link], findings: &mut Vec<ReportLine>) {
    let end = |l: &Link| l.disqualification_date.unwrap_or(Date::MAX);
    for (i, a) in group.iter().enumerate() {
        for b in &group[i + 1..] {
            if a.qualification_date < end(b) && b.qualification_date < end(a) {
                let day = a.qualification_date.max(b.qualification_date);
                findings.push(ReportLine {
                    file: parts[b.insurer as usize].file.clone(),
                    line: u64::from(b.line),
                    rule: "X3",
                    field: "qualification_date".into(),
                    reason: format!("dual coverage: the same person is also covered by {} from {day}; both kept", place(parts, a)),
                });
            }
        }
    }
}
