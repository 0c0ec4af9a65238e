//! Injects the defects docs/delivery.md names, row by row at the requested rate, and — in the first
//! chunk — one of each kind up front so that every kind is present whenever defects are on.
//!
//! R1–R7 add a broken copy of a real row (rejected by the build; the real row stays). W1–W4 and
//! X1 alter a real row that is still indexed. X2 and X3 add a row that is indexed. A duplicate
//! writes a real row twice.

use crate::model::{Row, Rule};
use crate::population::{copay_and_limit, ChunkGen};
use crate::render::{individual_text, insurer_text, name_of, to_hiragana};
use crate::universe::Col;
use rand::Rng;
use shikaku::domain::{Date, InsurerKind};

/// The individual number of a recent household, lent to another person for X1.
#[derive(Debug, Clone, Copy)]
pub struct Donor {
    pub first11: u64,
    pub birth: Date,
    pub sex: u8,
}

pub struct Injector {
    rate: f64,
    pending: Vec<Rule>,
    donor: Option<Donor>,
}

impl Injector {
    pub fn new(rate: f64, first_chunk: bool) -> Injector {
        let pending = if rate > 0.0 && first_chunk {
            Rule::ROW_KINDS.to_vec()
        } else {
            Vec::new()
        };
        Injector {
            rate,
            pending,
            donor: None,
        }
    }

    /// Applies defects to the rows of the household that starts at `start`.
    pub fn after_household(
        &mut self,
        g: &mut ChunkGen,
        rows: &mut Vec<Row>,
        start: usize,
        head_gidx: u64,
    ) {
        if self.rate <= 0.0 {
            return;
        }
        let end = rows.len();
        for r in start..end {
            if Some(rows[r].rec.insurer) == g.u.undecodable {
                continue;
            }
            if !self.pending.is_empty() {
                if let Some(i) = (0..self.pending.len())
                    .find(|&i| self.apply(self.pending[i], g, rows, r, head_gidx))
                {
                    self.pending.remove(i);
                }
                continue;
            }
            if g.rng.gen_bool(self.rate.min(1.0)) {
                let kind = Rule::ROW_KINDS[g.rng.gen_range(0..Rule::ROW_KINDS.len())];
                self.apply(kind, g, rows, r, head_gidx);
            }
        }
        if let Some(row) = rows[start..end].iter().find(|x| x.rec.indnum.is_some()) {
            self.donor = row.rec.indnum.map(|first11| Donor {
                first11,
                birth: row.rec.birth,
                sex: row.rec.sex,
            });
        }
    }

    fn apply(
        &self,
        kind: Rule,
        g: &mut ChunkGen,
        rows: &mut Vec<Row>,
        r: usize,
        head_gidx: u64,
    ) -> bool {
        if rows[r].tag.is_some() || !rows[r].original {
            return false;
        }
        if kind.rejects() {
            let (col, text) = broken_field(kind, g, &rows[r]);
            let mut bad = rows[r].clone();
            bad.over = Some((col, text));
            bad.tag = Some(kind);
            bad.original = false;
            rows.push(bad);
            return true;
        }
        match kind {
            Rule::W1 => bad_individual_number(&mut rows[r]),
            Rule::W2 => unusual_copay(g.d, &mut rows[r]),
            Rule::W3 => koki_elsewhere(g, &mut rows[r]),
            Rule::W4 => {
                let kana = name_of(rows[r].rec.family, rows[r].rec.given).1;
                rows[r].over = Some((Col::NameKana, to_hiragana(&kana)));
                rows[r].tag = Some(Rule::W4);
                true
            }
            Rule::X1 => self.mislink(&mut rows[r]),
            Rule::X2 => card_conflict(g, rows, r),
            Rule::X3 => dual_coverage(g, rows, r, head_gidx),
            Rule::Duplicate => {
                rows[r].dup = true;
                rows[r].tag = Some(Rule::Duplicate);
                true
            }
            _ => false,
        }
    }

    /// X1: another person's number on this record (their birthdate or sex differ).
    fn mislink(&self, row: &mut Row) -> bool {
        let Some(d) = self.donor else {
            return false;
        };
        let differs = d.birth != row.rec.birth || d.sex != row.rec.sex;
        if !differs || row.rec.indnum == Some(d.first11) {
            return false;
        }
        row.rec.indnum = Some(d.first11);
        row.tag = Some(Rule::X1);
        true
    }
}

/// The raw text of the field an R rule finds wrong; several variants per rule.
pub(crate) fn broken_field(kind: Rule, g: &mut ChunkGen, row: &Row) -> (Col, String) {
    let rec = &row.rec;
    let v = g.rng.gen_range(0..3);
    match kind {
        Rule::R1 => {
            let ins = &g.u.insurers[rec.insurer as usize];
            let n = g.u.insurers.len();
            if v == 0 && n > 1 {
                // A valid number, but another insurer's.
                let other = (rec.insurer as usize + 1 + g.rng.gen_range(0..n - 1)) % n;
                (Col::InsurerNumber, insurer_text(&g.u.insurers[other]))
            } else {
                let mut s = ins.number.as_str().to_string();
                let last = s.pop().map_or(0, |c| c as u8 - b'0');
                s.push(char::from(b'0' + (last + 1) % 10));
                (Col::InsurerNumber, s)
            }
        }
        Rule::R2 => match v {
            0 => (Col::Number, String::new()),
            // A card number of 22 digits, too long for the field: a run of digits, but no
            // individual number (those have 12, with a check digit); every report that quotes
            // it masks the run (`mask_digit_runs`), as it would mask one.
            1 => (Col::Number, digits_counting_up(22)),
            _ => (Col::Symbol, "ア".repeat(21)),
        },
        Rule::R3 => (Col::Branch, ["1", "100", "A1"][v].into()),
        Rule::R4 => match v {
            0 => (Col::Birthdate, "2021-02-30".into()),
            1 => {
                let future = g.d.add_days(g.rng.gen_range(3650..7300));
                (Col::Birthdate, future.to_string())
            }
            _ => (Col::Birthdate, "1868-01-24".into()),
        },
        Rule::R5 => match v {
            0 => (Col::Qualification, "2020-13-01".into()),
            _ => {
                let before = rec.birth.add_days(-g.rng.gen_range(1..1000));
                (Col::Qualification, before.to_string())
            }
        },
        Rule::R6 => match v {
            0 => (Col::Disqualification, "2020-02-30".into()),
            1 => (Col::Disqualification, rec.qual.to_string()),
            _ => {
                let before = rec.qual.add_days(-g.rng.gen_range(1..100));
                (Col::Disqualification, before.to_string())
            }
        },
        _ => match g.rng.gen_range(0..5) {
            0 => (Col::Sex, "4".into()),
            1 => (Col::Relationship, "3".into()),
            2 => (Col::Reason, "05".into()),
            3 => (Col::Copay, "40".into()),
            _ => (Col::Limit, "C01".into()),
        },
    }
}

/// W1: the linked number with its check digit off by one.
pub(crate) fn bad_individual_number(row: &mut Row) -> bool {
    let Some(first11) = row.rec.indnum else {
        return false;
    };
    let mut text = individual_text(first11);
    let check = text.pop().map_or(0, |c| c as u8 - b'0');
    text.push(char::from(b'0' + (check + 1) % 10));
    row.over = Some((Col::IndividualNumber, text));
    row.tag = Some(Rule::W1);
    true
}

/// W2: a ratio the age on the snapshot date does not allow (nothing is unusual at 75+).
pub(crate) fn unusual_copay(d: Date, row: &mut Row) -> bool {
    let text = match row.rec.birth.age_on(d) {
        i32::MIN..=5 => "30",
        6..=69 => "20",
        70..=74 => "10",
        _ => return false,
    };
    row.over = Some((Col::Copay, text.into()));
    row.tag = Some(Rule::W2);
    true
}

/// W3: a current 後期高齢者 member whose record sits in a 市町村国保 file instead.
fn koki_elsewhere(g: &mut ChunkGen, row: &mut Row) -> bool {
    let kind = g.u.insurers[row.rec.insurer as usize].kind;
    if kind != InsurerKind::Koki || !row.rec.covers(g.d) || row.rec.birth.age_on(g.d) < 75 {
        return false;
    }
    let pref = g.rng.gen_range(0..47);
    let target = g.u.pick(InsurerKind::Kokuho, pref, &mut g.rng);
    if Some(target) == g.u.undecodable {
        return false;
    }
    row.rec.insurer = target;
    row.tag = Some(Rule::W3);
    true
}

/// X2: a different person's record on the same card key, overlapping in time.
fn card_conflict(g: &mut ChunkGen, rows: &mut Vec<Row>, r: usize) -> bool {
    if rows[r].rec.disq.is_some() {
        return false;
    }
    let mut rec = rows[r].rec.clone();
    let d = g.d;
    rec.birth = rec.birth.add_days(-g.rng.gen_range(365..3650));
    rec.family = g.p.sample_family(&mut g.rng);
    rec.sex = if g.rng.gen_bool(0.5) { 1 } else { 2 };
    rec.given = g.p.sample_given(&mut g.rng, rec.sex, rec.birth.ymd().0);
    let age = rec.birth.age_on(d);
    rec.copay = copay_and_limit(&mut g.rng, age).0;
    rec.limit = None;
    rec.qual = rec.qual.max(d.add_days(-g.rng.gen_range(30..300)));
    rec.indnum = None;
    rows.push(Row {
        rec,
        over: None,
        tag: Some(Rule::X2),
        dup: false,
        original: false,
    });
    true
}

/// X3: the same person (same linked number) also covered by a second insurer today.
fn dual_coverage(g: &mut ChunkGen, rows: &mut Vec<Row>, r: usize, head_gidx: u64) -> bool {
    let d = g.d;
    let cur = &rows[r].rec;
    if cur.indnum.is_none() || !cur.covers(d) || cur.birth.age_on(d) >= 75 {
        return false;
    }
    let kind = if g.rng.gen_bool(0.5) {
        InsurerKind::Kokuho
    } else {
        InsurerKind::Kyokai
    };
    let pref = g.rng.gen_range(0..47);
    let insurer = g.u.pick(kind, pref, &mut g.rng);
    if insurer == cur.insurer || Some(insurer) == g.u.undecodable {
        return false;
    }
    let mut rec = cur.clone();
    rec.insurer = insurer;
    rec.sym = g.new_symbol(insurer);
    rec.number = ChunkGen::card_number(head_gidx, 2);
    rec.qual = rec.birth.max(d.add_days(-g.rng.gen_range(10..400)));
    rec.disq = None;
    rec.reason = None;
    rows.push(Row {
        rec,
        over: None,
        tag: Some(Rule::X3),
        dup: false,
        original: false,
    });
    true
}

/// `n` digits counting up from 1 and wrapping at 0 (`12345678901…`): a digit run built, not
/// written out, so no literal of 12 or more digits stands in the source.
fn digits_counting_up(n: usize) -> String {
    (1..=n).map(|i| char::from(b'0' + (i % 10) as u8)).collect()
}
