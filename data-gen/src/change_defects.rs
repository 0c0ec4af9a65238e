//! Defects of change files (docs/delivery.md "Change files"): C1–C4, and the row rules R1–R7
//! and W1–W4 on the record a change row makes, injected per real change row at the requested
//! rate and, in the first chunk, one of each kind up front.
//!
//! C1–C4 and R1–R7 add a row the build rejects (the real change is registered as well, so the
//! state does not depend on them); W1–W4 alter a real `add` or `update`, which the build keeps
//! as written, and so does the state.

use crate::changes::{Change, ChangeRow, Sim};
use crate::defects::{bad_individual_number, broken_field, unusual_copay};
use crate::model::{Row, Rule};
use crate::render::{name_of, to_hiragana};
use crate::universe::Col;
use rand::Rng;
use shikaku::domain::{Date, InsurerKind};

/// Every kind injected, in the summary's order.
pub const KINDS: [&str; 15] = [
    "C1", "C2", "C3", "C4", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "W1", "W2", "W3", "W4",
];
/// Numbers of keys that do not exist (C1): never used by the population nor the stream.
const MISSING_CARDS: u64 = 70_000_000_000_000;
/// `change` cells that are not one of the four (C3): empty, a plausible word, a typo.
const BAD_CHANGES: [&str; 3] = ["", "modify", "ad"];

#[derive(Default)]
pub struct Injector {
    rate: f64,
    pending: Vec<usize>,
    pub counts: [u64; 15],
    missing: u64,
}

fn keeps_record(change: Change) -> bool {
    matches!(change, Change::Add | Change::Update)
}

impl Injector {
    pub fn new(rate: f64, first_chunk: bool) -> Injector {
        let pending = if rate > 0.0 && first_chunk {
            (0..KINDS.len()).collect()
        } else {
            Vec::new()
        };
        Injector {
            rate,
            pending,
            counts: [0; 15],
            missing: 0,
        }
    }

    /// The defect kind (index in KINDS) this real row gets, if any.
    pub fn decide(
        &mut self,
        sim: &mut Sim,
        change: Change,
        row: &Row,
        date: Date,
    ) -> Option<usize> {
        if self.rate <= 0.0 {
            return None;
        }
        if let Some(at) =
            (0..self.pending.len()).find(|&at| applicable(sim, self.pending[at], change, row, date))
        {
            return Some(self.pending.remove(at));
        }
        if !sim.g.rng.gen_bool(self.rate.min(1.0)) {
            return None;
        }
        let kind = sim.g.rng.gen_range(0..KINDS.len());
        applicable(sim, kind, change, row, date).then_some(kind)
    }

    /// The rows to register for a real change with defect `kind`, and the state's record.
    pub fn apply(
        &mut self,
        sim: &mut Sim,
        kind: Option<usize>,
        change: Change,
        row: Row,
        day: u16,
        date: Date,
    ) -> (Vec<ChangeRow>, Row) {
        let real = |row: &Row, defect| ChangeRow {
            change: change.as_str().to_string(),
            row: row.clone(),
            defect,
        };
        let Some(kind) = kind else {
            return (vec![real(&row, None)], row);
        };
        self.counts[kind] += 1;
        let name = KINDS[kind];
        match name {
            "W1" | "W2" | "W3" | "W4" => {
                let mut kept = row;
                if warn(sim, name, &mut kept, date) {
                    return (vec![real(&kept, Some(name))], kept);
                }
                self.counts[kind] -= 1;
                (vec![real(&kept, None)], kept)
            }
            "C2" => {
                self.resent_add(sim, day);
                (vec![real(&row, None)], row)
            }
            _ => {
                let extra = self.extra_row(sim, name, change, &row);
                (vec![real(&row, None), extra], row)
            }
        }
    }

    /// A row after the real one, in the same file, that the build rejects under `name`.
    fn extra_row(
        &mut self,
        sim: &mut Sim,
        name: &'static str,
        change: Change,
        row: &Row,
    ) -> ChangeRow {
        let mut bad = row.clone();
        let mut text = change.as_str().to_string();
        match name {
            "C1" => {
                self.missing += 1;
                bad.rec.number = MISSING_CARDS + (sim.chunk() << 20) + self.missing;
                if change == Change::Add {
                    text = Change::Update.as_str().into();
                }
            }
            "C3" => text = BAD_CHANGES[sim.g.rng.gen_range(0..BAD_CHANGES.len())].into(),
            // The same key again: the real row changed it earlier in this file.
            "C4" => text = Change::Update.as_str().into(),
            _ => {
                // R1–R7 come first in Rule::ROW_KINDS.
                let rule = Rule::ROW_KINDS[usize::from(name.as_bytes()[1] - b'1')];
                bad.over = Some(broken_field(rule, sim.g, row));
                bad.tag = Some(rule);
            }
        }
        ChangeRow {
            change: text,
            row: bad,
            defect: Some(name),
        }
    }

    /// C2: an `add` of a record that exists, as a re-sent 資格取得届, in a file of its own.
    fn resent_add(&mut self, sim: &mut Sim, day: u16) {
        let Some(i) = sim.pick(day, |_| true) else {
            return;
        };
        sim.touch(i, day);
        let row = sim.row(i).clone();
        let insurer = row.rec.insurer;
        let rows = vec![ChangeRow {
            change: Change::Add.as_str().into(),
            row,
            defect: Some("C2"),
        }];
        sim.push_noise(day, insurer, rows);
    }
}

fn applicable(sim: &Sim, kind: usize, change: Change, row: &Row, date: Date) -> bool {
    let age = row.rec.birth.age_on(date);
    match KINDS[kind] {
        "C1" | "C2" | "C3" | "C4" => true,
        "W1" => keeps_record(change) && row.rec.indnum.is_some(),
        "W2" => keeps_record(change) && age < 75,
        "W3" => change == Change::Add && sim.kind_of(row.rec.insurer) == InsurerKind::Koki,
        _ => keeps_record(change),
    }
}

/// Alters a kept row so that the build warns under `name` (false: it could not).
fn warn(sim: &mut Sim, name: &str, row: &mut Row, date: Date) -> bool {
    match name {
        "W1" => bad_individual_number(row),
        "W2" => unusual_copay(date, row),
        // The 75th birthday registered by the 市町村国保 instead of the 広域連合.
        "W3" => {
            let pref = sim.g.u.insurers[row.rec.insurer as usize].pref as usize;
            let to = sim.g.u.pick(InsurerKind::Kokuho, pref, &mut sim.g.rng);
            if Some(to) == sim.g.u.undecodable {
                return false;
            }
            row.rec.insurer = to;
            row.tag = Some(Rule::W3);
            true
        }
        _ => {
            let kana = name_of(row.rec.family, row.rec.given).1;
            row.over = Some((Col::NameKana, to_hiragana(&kana)));
            row.tag = Some(Rule::W4);
            true
        }
    }
}
