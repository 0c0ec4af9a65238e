//! Change streams (異動, docs/delivery.md "Change files"): what happens to the members of one
//! chunk on each day after the snapshot, at Japan's daily rates scaled to the population, as
//! groups of change rows (one insurer, one day, in order) and the chunk's state after them.
//!
//! Every record a change touches belongs to the chunk's own persons, so each chunk simulates
//! on its own (and in parallel) and its state is the ground truth of its queries. A record
//! is changed at most once a day: two changes of one key in one file would be C4.

use crate::change_defects::{Injector, KINDS};
use crate::model::{Rec, Row, Sym};
use crate::population::{copay_and_limit, years_after, ChunkGen};
use crate::truth::CardKey;
use rand::Rng;
use shikaku::domain::{Date, InsurerKind, ReasonOfLoss};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Japan's population, which the daily rates below are of.
const NATION: f64 = 126_000_000.0;
/// Births a day: 686,061 in 2024 (人口動態統計), each an `add` of a dependant.
const BIRTHS_PER_DAY: f64 = 1_880.0;
/// Deaths a day: 1,605,298 in 2024, each a `lose` with reason 01.
const DEATHS_PER_DAY: f64 = 4_400.0;
/// Corrections (資格変更: name on marriage, copay ratio or 限度額 category) a day.
const CORRECTIONS_PER_DAY: f64 = 3_000.0;
/// Registrations in error a day, each a `delete` of a record the stream added earlier.
const ERRORS_PER_DAY: f64 = 300.0;
/// Households moving insurer a day (job change, leaving a job for 国保, finding one): a
/// `lose` and an `add` per member, about 3.4 rows a move. With the ~5,300 persons a day
/// turning 75 (two rows each, from the population's own ages) and the causes above, about
/// 55,000 rows a day: Japan's ~20 million qualification events a year.
const MOVES_PER_DAY: f64 = 10_200.0;
/// Card numbers of the stream's new cards: above every number the population uses (below
/// 10^13) and below the older snapshots' (8×10^13) and the C1 defects' (7×10^13).
const NEW_CARDS: u64 = 60_000_000_000_000;
/// Longest delay from the event to its registration (by law within five days).
const MAX_LAG: i32 = 5;

/// What a change row does (the `change` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Update,
    Lose,
    Delete,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Add => "add",
            Change::Update => "update",
            Change::Lose => "lose",
            Change::Delete => "delete",
        }
    }
}

/// One line of a change file: the `change` cell, the record, and the defect it carries.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub change: String,
    pub row: Row,
    pub defect: Option<&'static str>,
}

/// Rows that go, in this order, into one change file of `insurer` registered on day `day`.
#[derive(Debug, Clone)]
pub struct Group {
    pub day: u16,
    pub insurer: u32,
    pub rows: Vec<ChangeRow>,
}

/// Events by cause, in the summary's order.
pub const CAUSES: [&str; 6] = [
    "job_change",
    "birth",
    "death",
    "koki_75",
    "correction",
    "error",
];

/// A chunk's change stream and its state after it.
#[derive(Default)]
pub struct ChunkChanges {
    pub groups: Vec<Group>,
    pub causes: [u64; 6],
    pub defects: BTreeMap<&'static str, u64>,
}

/// Simulates `days` days of changes over the chunk's rows; returns the state after them.
pub fn simulate(g: &mut ChunkGen, rows: Vec<Row>, k: u64, days: u32) -> (Vec<Row>, ChunkChanges) {
    let mut sim = Sim::new(g, rows, k, days);
    for day in 0..days as u16 {
        sim.one_day(day);
    }
    let state = sim
        .rows
        .into_iter()
        .zip(sim.gone)
        .filter_map(|(r, gone)| (!gone).then_some(r))
        .collect();
    let defects = KINDS
        .iter()
        .zip(sim.inj.counts)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (*k, n))
        .collect();
    let out = ChunkChanges {
        groups: sim.groups,
        causes: sim.causes,
        defects,
    };
    (state, out)
}

/// Poisson draw (Knuth; the mean split in halves above 30 to stay exact in f64).
fn poisson(rng: &mut impl Rng, mean: f64) -> u64 {
    if mean > 30.0 {
        return poisson(rng, mean / 2.0) + poisson(rng, mean / 2.0);
    }
    let limit = (-mean).exp();
    let (mut n, mut p) = (0, rng.gen::<f64>());
    while p > limit {
        n += 1;
        p *= rng.gen::<f64>();
    }
    n
}

fn card_of(r: &Rec) -> CardKey {
    (r.insurer, r.sym.key(), r.number)
}

pub(crate) struct Sim<'g, 'a> {
    pub g: &'g mut ChunkGen<'a>,
    rows: Vec<Row>,
    gone: Vec<bool>,
    /// Day + 1 of the record's last change (0: none yet).
    busy: Vec<u16>,
    cards: HashMap<CardKey, Vec<usize>>,
    /// Cards holding a defect row: a change would touch records the truth keeps apart.
    blocked: HashSet<CardKey>,
    /// Records the stream added, with their day: what a registration in error deletes.
    added: Vec<(usize, u16)>,
    /// Records turning 75 during the stream outside a 後期高齢者 insurer, by birthday.
    turning_75: Vec<(Date, usize)>,
    next_card: u64,
    next_person: u64,
    k: u64,
    scale: f64,
    groups: Vec<Group>,
    causes: [u64; 6],
    pub inj: Injector,
}

impl<'g, 'a> Sim<'g, 'a> {
    fn new(g: &'g mut ChunkGen<'a>, rows: Vec<Row>, k: u64, days: u32) -> Sim<'g, 'a> {
        let mut cards: HashMap<CardKey, Vec<usize>> = HashMap::new();
        let mut blocked = HashSet::new();
        for (i, r) in rows.iter().enumerate() {
            cards.entry(card_of(&r.rec)).or_default().push(i);
            if r.tag.is_some() || r.dup || !r.original {
                blocked.insert(card_of(&r.rec));
            }
        }
        let (first, end) = (g.p.date, g.p.date.add_days(days as i32));
        let mut turning_75: Vec<(Date, usize)> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| g.u.insurers[r.rec.insurer as usize].kind != InsurerKind::Koki)
            .map(|(i, r)| (years_after(r.rec.birth, 75), i))
            .filter(|(b, _)| *b >= first && *b < end)
            .collect();
        turning_75.sort();
        let persons = g.stats.persons as f64;
        let inj = Injector::new(g.p.rate, k == 0);
        Sim {
            g,
            gone: vec![false; rows.len()],
            busy: vec![0; rows.len()],
            rows,
            cards,
            blocked,
            added: Vec::new(),
            turning_75,
            next_card: NEW_CARDS + (k << 20),
            next_person: 0,
            k,
            scale: persons / NATION,
            groups: Vec::new(),
            causes: [0; 6],
            inj,
        }
    }

    fn one_day(&mut self, day: u16) {
        let date = self.g.p.date.add_days(i32::from(day));
        self.koki_75(day, date);
        let scale = self.scale;
        let counts = [MOVES_PER_DAY, BIRTHS_PER_DAY, DEATHS_PER_DAY]
            .map(|rate| poisson(&mut self.g.rng, rate * scale));
        (0..counts[0]).for_each(|_| self.job_change(day, date));
        (0..counts[1]).for_each(|_| self.birth(day, date));
        (0..counts[2]).for_each(|_| self.death(day, date));
        let corrections = poisson(&mut self.g.rng, CORRECTIONS_PER_DAY * scale);
        (0..corrections).for_each(|_| self.correction(day, date));
        let errors = poisson(&mut self.g.rng, ERRORS_PER_DAY * scale);
        (0..errors).for_each(|_| self.error(day));
    }

    /// A record any change may touch today: a clean, current record of a decodable file.
    pub fn eligible(&self, i: usize, day: u16) -> bool {
        let r = &self.rows[i];
        !self.gone[i]
            && self.busy[i] != day + 1
            && r.rec.disq.is_none()
            && r.tag.is_none()
            && r.over.is_none()
            && !self.blocked.contains(&card_of(&r.rec))
            && Some(r.rec.insurer) != self.g.u.undecodable
    }

    /// A random eligible record that `want` accepts (a few tries: a miss skips the event).
    pub fn pick(&mut self, day: u16, want: impl Fn(&Rec) -> bool) -> Option<usize> {
        if self.rows.is_empty() {
            return None;
        }
        (0..40).find_map(|_| {
            let i = self.g.rng.gen_range(0..self.rows.len());
            (self.eligible(i, day) && want(&self.rows[i].rec)).then_some(i)
        })
    }

    fn lag(&mut self, max: i32) -> i32 {
        self.g.rng.gen_range(0..=max)
    }

    fn new_card(&mut self, insurer: u32) -> (Sym, u64) {
        let sym = self.g.new_symbol(insurer);
        (sym, self.fresh_number())
    }

    /// Registers one real change of record `target` (`None`: a new record) as a group,
    /// with a defect at the injector's rate, and applies it to the state as the build would
    /// (a warning's row is kept as written).
    fn register(&mut self, day: u16, change: Change, row: Row, target: Option<usize>) {
        let date = self.g.p.date.add_days(i32::from(day));
        let mut inj = std::mem::take(&mut self.inj);
        let kind = inj.decide(self, change, &row, date);
        let (rows, state) = inj.apply(self, kind, change, row, day, date);
        self.inj = inj;
        self.commit(target, change, &state, day);
        let insurer = state.rec.insurer;
        self.groups.push(Group { day, insurer, rows });
    }

    /// Pushes a group of defect rows only (they change nothing).
    pub fn push_noise(&mut self, day: u16, insurer: u32, rows: Vec<ChangeRow>) {
        self.groups.push(Group { day, insurer, rows });
    }

    fn commit(&mut self, i: Option<usize>, change: Change, row: &Row, day: u16) {
        let at = match i {
            Some(i) => i,
            None => {
                self.rows.push(row.clone());
                self.gone.push(false);
                self.busy.push(0);
                let at = self.rows.len() - 1;
                self.cards.entry(card_of(&row.rec)).or_default().push(at);
                self.added.push((at, day));
                at
            }
        };
        match change {
            Change::Delete => self.gone[at] = true,
            _ => self.rows[at] = row.clone(),
        }
        self.busy[at] = day + 1;
    }

    /// Marks a record as changed today without changing it (a defect row names its key).
    pub fn touch(&mut self, i: usize, day: u16) {
        self.busy[i] = day + 1;
    }

    pub fn row(&self, i: usize) -> &Row {
        &self.rows[i]
    }

    pub fn kind_of(&self, insurer: u32) -> InsurerKind {
        self.g.u.insurers[insurer as usize].kind
    }

    pub fn chunk(&self) -> u64 {
        self.k
    }

    fn fresh_number(&mut self) -> u64 {
        self.next_card += 1;
        self.next_card
    }

    /// Everyone reaching 75 moves to the 後期高齢者 insurer of their prefecture that day.
    fn koki_75(&mut self, day: u16, date: Date) {
        let from = self.turning_75.partition_point(|(b, _)| *b < date);
        let to = self.turning_75.partition_point(|(b, _)| *b <= date);
        for j in from..to {
            let i = self.turning_75[j].1;
            if !self.eligible(i, day) || self.rows[i].rec.qual >= date {
                continue;
            }
            let old = self.rows[i].rec.clone();
            let pref = self.g.u.insurers[old.insurer as usize].pref as usize;
            let koki = self.g.u.pick(InsurerKind::Koki, pref, &mut self.g.rng);
            if Some(koki) == self.g.u.undecodable || koki == old.insurer {
                continue;
            }
            self.causes[3] += 1;
            self.lose(i, day, date, ReasonOfLoss::OtherInsurance);
            let (copay, limit) = copay_and_limit(&mut self.g.rng, 75);
            let number = self.fresh_number();
            let rec = Rec {
                insurer: koki,
                sym: Sym::None,
                number,
                branch: self.g.u.insurers[koki as usize].habit.head_branch,
                rel: 1,
                qual: date,
                disq: None,
                reason: None,
                copay,
                limit,
                ..old
            };
            self.add(day, rec);
        }
    }

    fn lose(&mut self, i: usize, day: u16, disq: Date, reason: ReasonOfLoss) {
        let mut row = self.rows[i].clone();
        row.rec.disq = Some(disq);
        row.rec.reason = Some(reason);
        self.register(day, Change::Lose, row, Some(i));
    }

    fn add(&mut self, day: u16, rec: Rec) {
        self.register(day, Change::Add, Row::plain(rec), None);
    }

    /// A household leaves its insurer for another one: each member loses the old card and
    /// gets a new one, effective the same day.
    fn job_change(&mut self, day: u16, date: Date) {
        let Some(head) = self.pick(day, |r| {
            r.rel == 1 && (18..70).contains(&r.birth.age_on(date)) && r.qual < date
        }) else {
            return;
        };
        let old = self.rows[head].rec.clone();
        let old_kind = self.kind_of(old.insurer);
        if old_kind == InsurerKind::Koki {
            return;
        }
        let eff = date.add_days(-self.lag(MAX_LAG));
        let members: Vec<usize> = self.cards[&card_of(&old)]
            .iter()
            .copied()
            .filter(|&m| self.eligible(m, day) && self.rows[m].rec.qual < eff)
            .collect();
        if !members.contains(&head) {
            return;
        }
        let employed = !matches!(old_kind, InsurerKind::Kokuho | InsurerKind::KokuhoKumiai);
        let to_kokuho = employed && self.g.rng.gen_bool(0.2);
        let kind = if to_kokuho {
            InsurerKind::Kokuho
        } else {
            self.g.employee_kind()
        };
        let pref = self.g.u.insurers[old.insurer as usize].pref as usize;
        // The same insurer is a new card too (another employer within 協会けんぽ).
        let to = self.g.u.pick(kind, pref, &mut self.g.rng);
        if Some(to) == self.g.u.undecodable || self.kind_of(to) != kind {
            return;
        }
        self.causes[0] += 1;
        let reason = if to_kokuho {
            ReasonOfLoss::Other
        } else {
            ReasonOfLoss::OtherInsurance
        };
        let (sym, number) = self.new_card(to);
        let head_branch = self.g.u.insurers[to as usize].habit.head_branch;
        for (branch, m) in (head_branch..).zip(members) {
            let rec = Rec {
                insurer: to,
                sym,
                number,
                branch,
                qual: eff,
                disq: None,
                reason: None,
                ..self.rows[m].rec.clone()
            };
            self.lose(m, day, eff, reason);
            self.add(day, rec);
        }
    }

    /// A child is born into a household: a dependant on the parent's card.
    fn birth(&mut self, day: u16, date: Date) {
        let Some(parent) = self.pick(day, |r| {
            r.rel == 1 && (20..46).contains(&r.birth.age_on(date))
        }) else {
            return;
        };
        let p = self.rows[parent].rec.clone();
        let branch = self.cards[&card_of(&p)]
            .iter()
            .map(|&m| self.rows[m].rec.branch)
            .max()
            .unwrap_or(p.branch);
        if branch >= 99 {
            return;
        }
        self.causes[1] += 1;
        let birth = date.add_days(-self.g.rng.gen_range(0..=14));
        let sex = self.g.rng.gen_range(1..=2);
        let given = self.g.p.sample_given(&mut self.g.rng, sex, birth.ymd().0);
        // A My Number is issued with the birth registration; not every insurer has linked it.
        let idx = self.g.p.persons + self.k * crate::CHUNK + self.next_person;
        self.next_person += 1;
        let indnum = (self.next_person < crate::CHUNK && self.g.rng.gen_bool(0.5))
            .then(|| self.g.p.first11(idx));
        let rec = Rec {
            branch: branch + 1,
            indnum,
            given,
            sex,
            birth,
            rel: 2,
            qual: birth,
            disq: None,
            reason: None,
            copay: 20,
            limit: None,
            ..p
        };
        self.add(day, rec);
    }

    fn death(&mut self, day: u16, date: Date) {
        let Some(i) = self.pick(day, |r| r.birth.age_on(date) >= 65) else {
            return;
        };
        let disq = date.add_days(1 - self.g.rng.gen_range(1..=MAX_LAG));
        if disq <= self.rows[i].rec.qual {
            return;
        }
        self.causes[2] += 1;
        self.lose(i, day, disq, ReasonOfLoss::Death);
    }

    /// 資格変更: a new family name on marriage, or a new copay ratio or 限度額 category.
    fn correction(&mut self, day: u16, date: Date) {
        let Some(i) = self.pick(day, |r| r.qual <= date) else {
            return;
        };
        self.causes[4] += 1;
        let mut row = self.rows[i].clone();
        if row.rec.sex == 2 && self.g.rng.gen_bool(0.5) {
            row.rec.family = self.g.p.sample_family(&mut self.g.rng);
        } else {
            let age = row.rec.birth.age_on(date);
            (row.rec.copay, row.rec.limit) = copay_and_limit(&mut self.g.rng, age);
        }
        self.register(day, Change::Update, row, Some(i));
    }

    /// 登録誤り: a record the stream added on an earlier day is deleted.
    fn error(&mut self, day: u16) {
        let candidates: Vec<usize> = self
            .added
            .iter()
            .filter(|&&(i, d)| d < day && self.eligible(i, day))
            .map(|&(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let i = candidates[self.g.rng.gen_range(0..candidates.len())];
        self.causes[5] += 1;
        let row = self.rows[i].clone();
        self.register(day, Change::Delete, row, Some(i));
    }
}
