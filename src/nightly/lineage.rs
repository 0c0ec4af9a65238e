//! What a generation is to the one before it: a `layer` (it adds only change files to its
//! parent, the generation live when it was built: the same insurers, each from the same
//! snapshot file, every change file the parent applied still applied; none more is a layer
//! too, one that changes nothing, as a build the watch loop starts for a file that then went
//! makes, which must not hold up the layers after it; a public-expense payer's change files
//! count as an insurer's) or a `base` (a new snapshot or register, an insurer or payer more
//! or less, a change file gone: anything else). The fleet's promote policy makes layers live
//! on its own and leaves bases to the operator (`fleet::policy`). Until layered change generations write their own
//! files, a layer is recognized from the two reports; the names (`generation_kind`,
//! `parent`) are the ones those generations' reports carry.

use super::report::{ChangeOutcome, InsurerReport, Report};
use std::collections::{BTreeMap, BTreeSet};

/// `report.json`'s `generation_kind`: the generations' own type, so the manifest (which the
/// generations module makes) names it without importing the build.
pub use crate::generations::GenerationKind as Kind;

/// A generation's kind and parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    pub kind: Kind,
    pub parent: Option<String>,
}

/// An insurer's inputs as a report names them: snapshot (path, size, mtime) and the change
/// files applied (path, xxh3).
type Inputs<'a> = ((Option<&'a str>, u64, u64), BTreeSet<(&'a str, &'a str)>);

fn inputs(r: &InsurerReport) -> Inputs<'_> {
    (
        (r.file.as_deref(), r.file_bytes, r.file_mtime_ns),
        r.applied_changes().into_iter().collect(),
    )
}

/// Insurers by number; an unlisted directory's line (no snapshot date) is not an insurer.
fn by_insurer(report: &Report) -> BTreeMap<&str, Inputs<'_>> {
    report
        .insurers
        .iter()
        .filter(|r| r.snapshot_date.is_some())
        .map(|r| (r.insurer_number.as_str(), inputs(r)))
        .collect()
}

/// A payer's inputs as a report names them: register file and the change files applied
/// (path, xxh3).
type RegisterInputs<'a> = (Option<&'a str>, BTreeSet<(&'a str, &'a str)>);

/// The registers read, by payer.
fn registers(report: &Report) -> BTreeMap<&str, RegisterInputs<'_>> {
    let payers = report.kohi.iter().flat_map(|k| &k.payers);
    payers
        .map(|p| {
            let applied = p
                .changes
                .iter()
                .filter(|c| c.outcome == ChangeOutcome::Applied)
                .map(|c| (c.file.as_str(), c.xxh3.as_str()))
                .collect();
            (p.payer_number.as_str(), (p.file.as_deref(), applied))
        })
        .collect()
}

impl Lineage {
    /// The lineage of the build `report` describes, against `parent`, the report of the
    /// generation live when it was built (none: the first build, or one whose report cannot
    /// be read).
    pub fn of(report: &Report, parent: Option<&Report>) -> Lineage {
        let Some(parent) = parent else {
            return Lineage {
                kind: Kind::Base,
                parent: None,
            };
        };
        Lineage {
            kind: if adds_only_changes(report, parent) {
                Kind::Layer
            } else {
                Kind::Base
            },
            parent: Some(parent.generation.clone()),
        }
    }
}

fn adds_only_changes(report: &Report, parent: &Report) -> bool {
    let (now, before) = (by_insurer(report), by_insurer(parent));
    let (payers_now, payers_before) = (registers(report), registers(parent));
    now.len() == before.len()
        && payers_now.len() == payers_before.len()
        && now.iter().all(|(number, (snapshot, applied))| {
            before.get(number).is_some_and(|(was, applied_before)| {
                snapshot == was && applied_before.is_subset(applied)
            })
        })
        && payers_now.iter().all(|(number, (register, applied))| {
            payers_before
                .get(number)
                .is_some_and(|(was, applied_before)| {
                    register == was && applied_before.is_subset(applied)
                })
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nightly::report::{ChangeOutcome, ChangeReport, Counts};

    /// An insurer: number, snapshot file, applied change files.
    pub(crate) type Spec<'a> = (&'a str, &'a str, &'a [&'a str]);

    /// A report of generation `id` with these insurers.
    pub(crate) fn report(id: &str, insurers: &[Spec<'_>]) -> Report {
        let insurers = insurers
            .iter()
            .map(|(number, file, changes)| InsurerReport {
                insurer_number: (*number).into(),
                insurer_name: String::new(),
                file: Some((*file).into()),
                snapshot_date: Some("2026-11-01".into()),
                file_bytes: 10,
                file_mtime_ns: 1,
                reused: false,
                encoding: None,
                changes: changes
                    .iter()
                    .map(|c| ChangeReport {
                        file: (*c).into(),
                        outcome: ChangeOutcome::Applied,
                        xxh3: "0123456789abcdef".into(),
                        rows_read: 1,
                        rows_applied: 1,
                        rows_rejected: 0,
                        encoding: None,
                        by_rule: BTreeMap::new(),
                    })
                    .collect(),
                state_file: None,
                counts: Counts::default(),
            })
            .collect();
        Report {
            generation: id.into(),
            built_on: "2026-11-24".into(),
            published: true,
            refused: Vec::new(),
            totals: Counts::default(),
            insurers,
            notes: Vec::new(),
            elapsed_ms: 0,
            phases_ms: BTreeMap::new(),
            phases_cpu_ms: BTreeMap::new(),
            stages_cpu_ms: BTreeMap::new(),
            index_bytes: 0,
            kohi: None,
            generation_kind: None,
            parent: None,
        }
    }

    fn check(parent: &[Spec<'_>], now: &[Spec<'_>], expected: Kind) {
        let got = Lineage::of(&report("g2", now), Some(&report("g1", parent)));
        assert_eq!(got.kind, expected, "{parent:?} -> {now:?}");
        assert_eq!(got.parent.as_deref(), Some("g1"));
    }

    #[test]
    fn kinds() {
        let a: &[&str] = &["a/changes/1.csv"];
        let ab: &[&str] = &["a/changes/1.csv", "a/changes/2.csv"];
        let b: &[&str] = &["b/changes/1.csv"];
        // One more change file: a layer.
        check(&[("a", "a/1.csv", a)], &[("a", "a/1.csv", ab)], Kind::Layer);
        check(
            &[("a", "a/1.csv", &[]), ("b", "b/1.csv", &[])],
            &[("a", "a/1.csv", &[]), ("b", "b/1.csv", b)],
            Kind::Layer,
        );
        // Nothing new: a layer that changes nothing.
        check(&[("a", "a/1.csv", a)], &[("a", "a/1.csv", a)], Kind::Layer);
        // A new snapshot, a change file gone, an insurer more: a base.
        check(&[("a", "a/1.csv", a)], &[("a", "a/2.csv", ab)], Kind::Base);
        check(&[("a", "a/1.csv", ab)], &[("a", "a/1.csv", a)], Kind::Base);
        check(
            &[("a", "a/1.csv", a)],
            &[("a", "a/1.csv", ab), ("b", "b/1.csv", &[])],
            Kind::Base,
        );
        let first = Lineage::of(&report("g1", &[("a", "a/1.csv", a)]), None);
        assert_eq!((first.kind, first.parent), (Kind::Base, None));
    }

    /// A public-expense payer's change files count as an insurer's; a new register is a base.
    #[test]
    fn kinds_with_registers() {
        use crate::nightly::report::{KohiReport, PayerReport};
        let with = |id: &str, register: &str, changes: &[&str]| {
            let mut r = report(id, &[("a", "a/1.csv", &[])]);
            let changed = report(id, &[("p", register, changes)]);
            r.kohi = Some(KohiReport {
                totals: Counts::default(),
                payers: vec![PayerReport {
                    payer_number: "p".into(),
                    payer_name: "payer".into(),
                    file: Some(register.into()),
                    changes: changed.insurers[0].changes.clone(),
                    ..PayerReport::default()
                }],
            });
            r
        };
        let kind = |parent: &Report, now: &Report| Lineage::of(now, Some(parent)).kind;
        let one = with("g1", "kohi/p/1.csv", &["kohi/p/changes/1.csv"]);
        let two = with(
            "g2",
            "kohi/p/1.csv",
            &["kohi/p/changes/1.csv", "kohi/p/changes/2.csv"],
        );
        let renewed = with("g2", "kohi/p/2.csv", &[]);
        assert_eq!(kind(&one, &two), Kind::Layer);
        assert_eq!(kind(&one, &renewed), Kind::Base);
        assert_eq!(kind(&two, &one), Kind::Base, "a change file gone");
    }
}
