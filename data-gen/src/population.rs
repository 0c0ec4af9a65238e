//! One chunk of the population: persons drawn from the age pyramid, grouped into households
//! (employee families on one card, couples in 国保, 後期高齢者 singles), and their
//! qualification histories turned into records.
//!
//! A chunk is self-contained: every record of a person and of a card is made in the chunk that
//! holds the person, so the ground truth of a query can be computed from the chunk alone.

use crate::model::{Rec, Row, Sym};
use crate::universe::{kind_index, SymbolStyle, Universe, KIND_COUNT};
use crate::Params;
use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;
use shikaku::domain::{Date, InsurerKind, LimitCategory, ReasonOfLoss};

/// Records lost more than this long before the snapshot date are no longer in the snapshot.
pub const RETENTION_DAYS: i32 = 5 * 365;

#[derive(Debug, Clone)]
pub struct Person {
    pub age: u8,
    pub birth: Date,
    pub sex: u8,
    pub family: u16,
    pub given: u16,
    /// Global person index (the population is numbered 0..persons).
    pub gidx: u64,
    pub copay: u8,
    pub limit: Option<LimitCategory>,
}

/// Counters a chunk reports for the summary.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub persons: u64,
    pub households: u64,
    /// Persons by age band on the snapshot date: 0–14, 15–64, 65–74, 75+.
    pub age_bands: [u64; 4],
    /// Original records covering the snapshot date, by insurer kind.
    pub current_by_kind: [u64; KIND_COUNT],
}

pub struct ChunkGen<'a> {
    pub p: &'a Params,
    pub u: &'a Universe,
    pub rng: Xoshiro256PlusPlus,
    pub d: Date,
    pub stats: Stats,
    /// Row indexes of twins (same card, same birthdate, different branches).
    pub twins: Vec<u32>,
}

/// Members of one household; the first is the head (本人 / 世帯主).
pub struct Household {
    pub members: Vec<u32>,
    pub kind: InsurerKind,
}

pub(crate) fn years_after(date: Date, n: i32) -> Date {
    let (y, m, d) = date.ymd();
    Date::from_ymd(y + n, m, d)
        .or_else(|| Date::from_ymd(y + n, m, d - 1))
        .unwrap_or(date)
}

fn range_day(rng: &mut Xoshiro256PlusPlus, lo: Date, hi: Date) -> Date {
    if hi <= lo {
        return lo;
    }
    Date::from_days(rng.gen_range(lo.days()..=hi.days()))
}

const YEAR: i32 = 365;

impl<'a> ChunkGen<'a> {
    pub fn new(p: &'a Params, u: &'a Universe, chunk: u64) -> ChunkGen<'a> {
        ChunkGen {
            p,
            u,
            rng: crate::rng_for(p.seed, chunk),
            d: p.date,
            stats: Stats::default(),
            twins: Vec::new(),
        }
    }

    pub fn sample_persons(&mut self, start: u64, len: u64) -> Vec<Person> {
        let mut out = Vec::with_capacity(len as usize);
        for i in 0..len {
            let age = self.p.sample_age(&mut self.rng);
            let birth = self.birth_for_age(age);
            let sex = if self.rng.gen_bool(0.5) { 1 } else { 2 };
            out.push(Person {
                age,
                birth,
                sex,
                family: self.p.sample_family(&mut self.rng),
                given: 0,
                gidx: start + i,
                copay: 30,
                limit: None,
            });
            let band = match age {
                0..=14 => 0,
                15..=64 => 1,
                65..=74 => 2,
                _ => 3,
            };
            self.stats.age_bands[band] += 1;
        }
        self.stats.persons += len;
        out
    }

    fn birth_for_age(&mut self, age: u8) -> Date {
        let hi = years_after(self.d, -i32::from(age));
        let lo = years_after(self.d, -i32::from(age) - 1).add_days(1);
        range_day(&mut self.rng, lo, hi)
    }

    /// Groups persons into households: children and students to parents of a fitting age
    /// (siblings and, rarely, twins on one card), spouses to heads, the rest single.
    /// Returns each person's head.
    pub fn form_households(&mut self, ps: &mut [Person]) -> Vec<u32> {
        const NONE: u32 = u32::MAX;
        let n = ps.len();
        let mut head_of = vec![NONE; n];
        let mut avail: Vec<Vec<u32>> = vec![Vec::new(); 105];
        let mut kid_bucket: Vec<Vec<u32>> = vec![Vec::new(); 105];
        let mut kids = Vec::new();
        for (i, p) in ps.iter().enumerate() {
            let a = p.age as usize;
            if a >= 75 {
                head_of[i] = i as u32;
            } else if a < 18 || (a <= 22 && self.rng.gen_bool(0.5)) {
                kids.push(i as u32);
                kid_bucket[a].push(i as u32);
            } else {
                avail[a].push(i as u32);
            }
        }
        let mut cap = vec![0u8; n];
        let mut open: Vec<Vec<u32>> = vec![Vec::new(); 105];
        let mut heads = Vec::new();
        for &c in &kids {
            if head_of[c as usize] != NONE {
                continue; // already placed as a twin
            }
            let a = ps[c as usize].age;
            let target = i32::from(a) + 24 + self.rng.gen_range(0..14);
            let Some(h) = self.find_parent(target, &mut open, &mut avail, &mut cap, &mut heads)
            else {
                head_of[c as usize] = c; // no parent of a fitting age: own 国保 household
                continue;
            };
            head_of[c as usize] = h;
            if self.rng.gen_bool(0.02) {
                self.add_twin(c, h, ps, &mut kid_bucket, &mut head_of);
            }
        }
        for &h in &heads {
            head_of[h as usize] = h;
        }
        self.add_spouses(ps, &heads, &mut avail, &mut head_of);
        self.pair_seniors(ps, &mut avail, &mut head_of);
        for (i, h) in head_of.iter_mut().enumerate() {
            if *h == NONE {
                *h = i as u32;
            }
        }
        self.name_members(ps, &head_of);
        head_of
    }

    fn find_parent(
        &mut self,
        target: i32,
        open: &mut [Vec<u32>],
        avail: &mut [Vec<u32>],
        cap: &mut [u8],
        heads: &mut Vec<u32>,
    ) -> Option<u32> {
        for dist in 0..=14 {
            for t in [target + dist, target - dist] {
                if !(18..=74).contains(&t) || (dist == 0 && t != target) {
                    continue;
                }
                let t = t as usize;
                let join = !open[t].is_empty() && (avail[t].is_empty() || self.rng.gen_bool(0.6));
                let h = if join {
                    *open[t].last()?
                } else if let Some(h) = avail[t].pop() {
                    cap[h as usize] = 1
                        + u8::from(self.rng.gen_bool(0.6))
                        + u8::from(self.rng.gen_bool(0.25))
                        + u8::from(self.rng.gen_bool(0.05));
                    heads.push(h);
                    open[t].push(h);
                    h
                } else {
                    continue;
                };
                cap[h as usize] -= 1;
                if cap[h as usize] == 0 {
                    open[t].retain(|&x| x != h);
                }
                return Some(h);
            }
        }
        None
    }

    fn add_twin(
        &mut self,
        c: u32,
        h: u32,
        ps: &mut [Person],
        kid_bucket: &mut [Vec<u32>],
        head_of: &mut [u32],
    ) {
        let a = ps[c as usize].age as usize;
        while let Some(j) = kid_bucket[a].pop() {
            if j != c && head_of[j as usize] == u32::MAX {
                head_of[j as usize] = h;
                ps[j as usize].birth = ps[c as usize].birth;
                return;
            }
        }
    }

    fn take_adult(&mut self, avail: &mut [Vec<u32>], target: i32, spread: i32) -> Option<u32> {
        for dist in 0..=spread {
            for t in [target + dist, target - dist] {
                if (18..=74).contains(&t) {
                    if let Some(s) = avail[t as usize].pop() {
                        return Some(s);
                    }
                }
            }
        }
        None
    }

    /// Most parents are married; the spouse is a dependant on the same card about half the
    /// time, otherwise insured in their own right (their own household here).
    fn add_spouses(
        &mut self,
        ps: &mut [Person],
        heads: &[u32],
        avail: &mut [Vec<u32>],
        head_of: &mut [u32],
    ) {
        for &h in heads {
            if !self.rng.gen_bool(0.8) {
                continue;
            }
            let target = i32::from(ps[h as usize].age) + self.rng.gen_range(-4..=2);
            let Some(s) = self.take_adult(avail, target, 3) else {
                continue;
            };
            let dependant = self.rng.gen_bool(0.55);
            head_of[s as usize] = if dependant { h } else { s };
            if dependant {
                ps[h as usize].sex = if self.rng.gen_bool(0.85) { 1 } else { 2 };
            }
            ps[s as usize].sex = 3 - ps[h as usize].sex;
            ps[s as usize].family = ps[h as usize].family;
        }
    }

    /// Retired couples share one 国保 card (国保 is per household).
    fn pair_seniors(&mut self, ps: &mut [Person], avail: &mut [Vec<u32>], head_of: &mut [u32]) {
        for age in 65..=74usize {
            while let Some(h) = avail[age].pop() {
                head_of[h as usize] = h;
                if self.rng.gen_bool(0.5) {
                    let target = age as i32 + self.rng.gen_range(-3..=3);
                    if let Some(s) = self.take_adult(avail, target.clamp(65, 74), 2) {
                        head_of[s as usize] = h;
                        ps[s as usize].sex = 3 - ps[h as usize].sex;
                        ps[s as usize].family = ps[h as usize].family;
                    }
                }
            }
        }
    }

    /// Dependants carry the head's family name; given names, copay and limit category follow
    /// each person's sex and age.
    fn name_members(&mut self, ps: &mut [Person], head_of: &[u32]) {
        for i in 0..ps.len() {
            let h = head_of[i] as usize;
            if h != i {
                ps[i].family = ps[h].family;
            }
            let (y, _, _) = ps[i].birth.ymd();
            ps[i].given = self.p.sample_given(&mut self.rng, ps[i].sex, y);
            let age = ps[i].birth.age_on(self.d);
            let (copay, limit) = copay_and_limit(&mut self.rng, age);
            ps[i].copay = copay;
            ps[i].limit = limit;
        }
    }

    /// Households in a stable order (by head), head first.
    pub fn households(&mut self, ps: &[Person], head_of: &[u32]) -> Vec<Household> {
        let mut keys: Vec<u64> = head_of
            .iter()
            .enumerate()
            .map(|(i, &h)| (u64::from(h) << 33) | (u64::from(h != i as u32) << 32) | i as u64)
            .collect();
        keys.sort_unstable();
        let mut out: Vec<Household> = Vec::new();
        let mut cur_head = u32::MAX;
        for k in keys {
            let h = (k >> 33) as u32;
            let i = (k & 0xFFFF_FFFF) as u32;
            if h != cur_head {
                cur_head = h;
                let kind = self.household_kind(&ps[h as usize]);
                out.push(Household {
                    members: Vec::with_capacity(4),
                    kind,
                });
            }
            if let Some(last) = out.last_mut() {
                last.members.push(i);
            }
        }
        self.stats.households += out.len() as u64;
        out
    }

    /// Kind by the head's age, calibrated so persons by kind match the March 2020 shares.
    /// Heads under 18 are children who found no parent of a fitting age: 国保 alone.
    fn household_kind(&mut self, head: &Person) -> InsurerKind {
        let r: f64 = self.rng.gen();
        match head.age {
            75.. => InsurerKind::Koki,
            0..=17 => InsurerKind::Kokuho,
            65..=74 if r < 0.75 => InsurerKind::Kokuho,
            65..=74 => self.employee_kind(),
            _ if r < 0.148 => InsurerKind::Kokuho,
            _ if r < 0.177 => InsurerKind::KokuhoKumiai,
            _ => self.employee_kind(),
        }
    }

    pub fn employee_kind(&mut self) -> InsurerKind {
        let r = self.rng.gen::<f64>() * 77.8;
        if r < 40.4 {
            InsurerKind::Kyokai
        } else if r < 69.2 {
            InsurerKind::Kumiai
        } else if r < 77.7 {
            InsurerKind::Kyosai
        } else {
            InsurerKind::Senin
        }
    }

    pub fn new_symbol(&mut self, insurer: u32) -> Sym {
        let ins = &self.u.insurers[insurer as usize];
        match ins.habit.symbol {
            SymbolStyle::None => Sym::None,
            SymbolStyle::Kyokai => Sym::Digits {
                val: (u32::from(ins.pref) + 1) * 1_000_000 + self.rng.gen_range(0..1_000_000),
                width: 8,
            },
            SymbolStyle::Digits { width, max } => Sym::Digits {
                val: self.rng.gen_range(1..=max),
                width,
            },
            SymbolStyle::Word => Sym::Word {
                word: self
                    .rng
                    .gen_range(0..crate::tables::SYMBOL_WORDS.len() as u8),
                val: self.rng.gen_range(1..=99),
            },
        }
    }

    /// A card number unique in the data set: derived from the head's global index and a slot
    /// (0 current card, 1 previous card, 2 dual-coverage defect card).
    pub fn card_number(gidx: u64, slot: u64) -> u64 {
        10_000_000 + gidx * 4 + slot
    }

    fn indnum(&self, p: &Person) -> u64 {
        self.p.first11(p.gidx)
    }

    fn linked(&mut self, p: &Person, chance: f64) -> Option<u64> {
        self.rng.gen_bool(chance).then(|| self.indnum(p))
    }

    #[allow(clippy::too_many_arguments)]
    fn rec(
        &mut self,
        p: &Person,
        insurer: u32,
        sym: Sym,
        number: u64,
        branch: u8,
        rel: u8,
        qual: Date,
        disq: Option<(Date, ReasonOfLoss)>,
        link_chance: f64,
    ) -> Rec {
        Rec {
            insurer,
            sym,
            number,
            branch,
            indnum: self.linked(p, link_chance),
            family: p.family,
            given: p.given,
            sex: p.sex,
            birth: p.birth,
            rel,
            qual: qual.max(p.birth),
            disq: disq.map(|(d, _)| d),
            reason: disq.map(|(_, r)| r),
            copay: p.copay,
            limit: p.limit,
        }
    }

    /// Emits every record of one household: the current card and, where the history has one,
    /// the card lost on a job change, on retirement or on the 75th birthday; deaths and
    /// 生活保護 end the current record.
    pub fn emit_household(&mut self, ps: &[Person], hh: &Household, rows: &mut Vec<Row>) {
        let head = &ps[hh.members[0] as usize];
        match hh.kind {
            InsurerKind::Koki => self.emit_koki(head, rows),
            InsurerKind::Kokuho | InsurerKind::KokuhoKumiai => self.emit_kokuho(ps, hh, rows),
            _ => self.emit_employee(ps, hh, rows),
        }
    }

    fn emit_card(
        &mut self,
        ps: &[Person],
        members: &[u32],
        card: (u32, Sym, u64),
        period: (Date, Option<(Date, ReasonOfLoss)>),
        link_chance: f64,
        rows: &mut Vec<Row>,
    ) {
        let (insurer, sym, number) = card;
        let (qual, loss) = period;
        let head_branch = self.u.insurers[insurer as usize].habit.head_branch;
        let start = rows.len();
        let mut branch = head_branch;
        for (n, &m) in members.iter().enumerate() {
            let p = &ps[m as usize];
            if loss.is_some_and(|(end, _)| p.birth >= end) {
                continue; // born after the card was lost
            }
            let rel = if n == 0 { 1 } else { 2 };
            let rec = self.rec(
                p,
                insurer,
                sym,
                number,
                branch,
                rel,
                qual,
                loss,
                link_chance,
            );
            branch += 1;
            if rec.covers(self.d) {
                self.stats.current_by_kind[kind_index(self.u.insurers[insurer as usize].kind)] += 1;
            }
            rows.push(Row::plain(rec));
        }
        self.note_twins(rows, start);
    }

    fn note_twins(&mut self, rows: &[Row], start: usize) {
        for i in start..rows.len() {
            for j in start..rows.len() {
                if i != j && rows[i].rec.rel == 2 && rows[i].rec.birth == rows[j].rec.birth {
                    self.twins.push(i as u32);
                    break;
                }
            }
        }
    }

    fn emit_employee(&mut self, ps: &[Person], hh: &Household, rows: &mut Vec<Row>) {
        let d = self.d;
        let head = &ps[hh.members[0] as usize];
        let first_job = years_after(head.birth, 18 + self.rng.gen_range(0..5));
        let work_start = first_job.max(years_after(d, -40)).min(d);
        let q_cur = range_day(&mut self.rng, work_start.max(years_after(d, -20)), d);
        let pref = self.rng.gen_range(0..47);
        let insurer = self.u.pick(hh.kind, pref, &mut self.rng);
        let sym = self.new_symbol(insurer);
        let number = Self::card_number(head.gidx, 0);
        let job_change = self.rng.gen_bool(0.3)
            && q_cur.days() > d.days() - RETENTION_DAYS
            && q_cur.days() - work_start.days() > 400;
        if job_change {
            let lo = work_start.max(q_cur.add_days(-10 * YEAR));
            let q_prev = range_day(&mut self.rng, lo, q_cur.add_days(-200));
            // Sometimes a gap between the two jobs: the old card is plainly invalid then.
            let gap = if self.rng.gen_bool(0.2) {
                self.rng.gen_range(1..=60)
            } else {
                0
            };
            let prev_kind = if self.rng.gen_bool(0.75) {
                self.employee_kind()
            } else {
                InsurerKind::Kokuho
            };
            let prev = self.u.pick(prev_kind, pref, &mut self.rng);
            if prev != insurer {
                let psym = self.new_symbol(prev);
                let loss = (q_cur.add_days(-gap), ReasonOfLoss::OtherInsurance);
                let card = (prev, psym, Self::card_number(head.gidx, 1));
                self.emit_card(ps, &hh.members, card, (q_prev, Some(loss)), 0.7, rows);
            }
        }
        self.emit_card(
            ps,
            &hh.members,
            (insurer, sym, number),
            (q_cur, None),
            0.85,
            rows,
        );
    }

    fn emit_kokuho(&mut self, ps: &[Person], hh: &Household, rows: &mut Vec<Row>) {
        let d = self.d;
        let head = &ps[hh.members[0] as usize];
        let pref = self.rng.gen_range(0..47);
        let insurer = self.u.pick(hh.kind, pref, &mut self.rng);
        let sym = self.new_symbol(insurer);
        let retiree = (60..=74).contains(&head.age) && self.rng.gen_bool(0.8);
        let q_cur = if retiree {
            years_after(head.birth, 60 + self.rng.gen_range(0..6)).min(d)
        } else {
            range_day(&mut self.rng, head.birth.max(years_after(d, -15)), d)
        };
        if retiree && q_cur.days() > d.days() - RETENTION_DAYS && self.rng.gen_bool(0.7) {
            let kind = self.employee_kind();
            let prev = self.u.pick(kind, pref, &mut self.rng);
            let psym = self.new_symbol(prev);
            let q_prev = q_cur
                .add_days(-self.rng.gen_range(2 * YEAR..20 * YEAR))
                .max(years_after(head.birth, 18));
            let reason = if self.rng.gen_bool(0.8) {
                ReasonOfLoss::OtherInsurance
            } else {
                ReasonOfLoss::Other
            };
            if q_prev < q_cur {
                let card = (prev, psym, Self::card_number(head.gidx, 1));
                self.emit_card(
                    ps,
                    &hh.members,
                    card,
                    (q_prev, Some((q_cur, reason))),
                    0.7,
                    rows,
                );
            }
        }
        let single = hh.members.len() == 1;
        let end = if single && head.age < 65 && self.rng.gen_bool(0.02) && q_cur < d {
            let day = range_day(&mut self.rng, q_cur.add_days(1), d);
            Some((day, ReasonOfLoss::Welfare))
        } else if single && head.age >= 65 && self.rng.gen_bool(0.03) {
            self.death(q_cur)
        } else {
            None
        };
        let card = (insurer, sym, Self::card_number(head.gidx, 0));
        self.emit_card(ps, &hh.members, card, (q_cur, end), 0.85, rows);
    }

    /// A death within the retention window after `qual`: the record ends the day after.
    fn death(&mut self, qual: Date) -> Option<(Date, ReasonOfLoss)> {
        let lo = qual.max(self.d.add_days(-RETENTION_DAYS));
        let hi = self.d.add_days(-1);
        (lo < hi).then(|| {
            let day = range_day(&mut self.rng, lo, hi);
            (day.add_days(1), ReasonOfLoss::Death)
        })
    }

    fn emit_koki(&mut self, p: &Person, rows: &mut Vec<Row>) {
        let d = self.d;
        let pref = self.rng.gen_range(0..47);
        let b75 = years_after(p.birth, 75);
        let koki_start = Date::from_ymd(2008, 4, 1).unwrap_or(b75);
        let q_cur = b75.max(koki_start);
        let members = [0u32];
        let one = std::slice::from_ref(p);
        if b75.days() > d.days() - RETENTION_DAYS {
            // The 75th birthday moved them from 国保 (or an employer's insurer) into 後期高齢者.
            let kind = if self.rng.gen_bool(0.8) {
                InsurerKind::Kokuho
            } else {
                self.employee_kind()
            };
            let prev = self.u.pick(kind, pref, &mut self.rng);
            let psym = self.new_symbol(prev);
            let q_prev = b75
                .add_days(-self.rng.gen_range(YEAR..15 * YEAR))
                .max(years_after(p.birth, 60));
            let loss = Some((b75, ReasonOfLoss::OtherInsurance));
            let card = (prev, psym, Self::card_number(p.gidx, 1));
            self.emit_card(one, &members, card, (q_prev, loss), 0.7, rows);
        }
        let death_chance = match p.age {
            0..=84 => 0.04,
            85..=94 => 0.12,
            _ => 0.25,
        };
        let end = if self.rng.gen_bool(death_chance) {
            self.death(q_cur)
        } else {
            None
        };
        let insurer = self.u.pick(InsurerKind::Koki, pref, &mut self.rng);
        let card = (insurer, Sym::None, Self::card_number(p.gidx, 0));
        self.emit_card(one, &members, card, (q_cur, end), 0.85, rows);
    }
}

/// rule W2 (docs/delivery.md#warnings) ratios and a limit category of the right family (A under 70, B from 70) that
/// agrees with the ratio: 現役並み (B01–B03) pay 30%, 一般Ⅱ (B09) 20% at 75+.
pub fn copay_and_limit(rng: &mut Xoshiro256PlusPlus, age: i32) -> (u8, Option<LimitCategory>) {
    use LimitCategory::*;
    let copay = match age {
        i32::MIN..=5 => 20,
        6..=69 => 30,
        70..=74 => {
            if rng.gen_bool(0.2) {
                30
            } else {
                20
            }
        }
        _ => {
            let r: f64 = rng.gen();
            if r < 0.75 {
                10
            } else if r < 0.9 {
                20
            } else {
                30
            }
        }
    };
    if !rng.gen_bool(0.3) {
        return (copay, None);
    }
    let pick =
        |rng: &mut Xoshiro256PlusPlus, list: &[LimitCategory]| list[rng.gen_range(0..list.len())];
    let limit = match (age, copay) {
        (i32::MIN..=69, _) => pick(rng, &[A01, A02, A03, A03, A03, A04, A04, A05, A06]),
        (_, 30) => pick(rng, &[B01, B02, B03]),
        (70..=74, _) => pick(rng, &[B04, B04, B04, B05, B06, B07, B08]),
        (_, 20) => B09,
        _ => pick(rng, &[B04, B05, B06, B07, B08, B10, B10]),
    };
    (copay, Some(limit))
}
