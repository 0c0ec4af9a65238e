//! Ground truth: a naive, direct reading of docs/api.md (card and person queries) over the records a correct build
//! indexes (rejected rows and the undecodable file left out, duplicates once, W1 numbers
//! dropped, X1 numbers hidden from person queries), and the query workload built from it.
//!
//! Every record of a person and of a card lives in one chunk (see `population`), so the truth
//! of a chunk is complete for the cards and numbers it queries.

use crate::model::{Row, Rule, Sym};
use crate::population::ChunkGen;
use crate::render::{date_text, individual_text, push_digits, symbol_text};
use crate::universe::DateStyle;
use rand::Rng;
use shikaku::domain::{covers, Date};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone)]
pub struct TRec {
    pub insurer: u32,
    pub sym: Sym,
    pub number: u64,
    pub branch: u8,
    pub indnum: Option<u64>,
    pub birth: Date,
    pub sex: u8,
    pub qual: Date,
    pub disq: Option<Date>,
    pub indexed: bool,
}

impl TRec {
    fn covers(&self, day: Date) -> bool {
        covers(self.qual, self.disq, day)
    }
}

pub type CardKey = (u32, (u8, u32), u64);

/// The records of one chunk, as the build must index them.
pub struct Truth {
    pub recs: Vec<TRec>,
    cards: HashMap<CardKey, Vec<u32>>,
    persons: HashMap<u64, Vec<u32>>,
    unverified: HashSet<u64>,
}

impl Truth {
    pub fn build(rows: &[Row], undecodable: Option<u32>) -> Truth {
        let recs: Vec<TRec> = rows
            .iter()
            .map(|row| {
                let r = &row.rec;
                let rejected = row.tag.is_some_and(Rule::rejects);
                TRec {
                    insurer: r.insurer,
                    sym: r.sym,
                    number: r.number,
                    branch: r.branch,
                    // W1: the build drops a number with a bad check digit.
                    indnum: if row.tag == Some(Rule::W1) {
                        None
                    } else {
                        r.indnum
                    },
                    birth: r.birth,
                    sex: r.sex,
                    qual: r.qual,
                    disq: r.disq,
                    indexed: !rejected && Some(r.insurer) != undecodable,
                }
            })
            .collect();
        let mut cards: HashMap<CardKey, Vec<u32>> = HashMap::new();
        let mut persons: HashMap<u64, Vec<u32>> = HashMap::new();
        for (i, t) in recs.iter().enumerate().filter(|(_, t)| t.indexed) {
            cards
                .entry((t.insurer, t.sym.key(), t.number))
                .or_default()
                .push(i as u32);
            if let Some(n) = t.indnum {
                persons.entry(n).or_default().push(i as u32);
            }
        }
        // X1: one number on records whose birthdate or sex differ.
        let unverified = persons
            .iter()
            .filter(|(_, ids)| {
                let first = &recs[ids[0] as usize];
                ids.iter().any(|&i| {
                    let r = &recs[i as usize];
                    r.birth != first.birth || r.sex != first.sex
                })
            })
            .map(|(&n, _)| n)
            .collect();
        Truth {
            recs,
            cards,
            persons,
            unverified,
        }
    }

    /// docs/api.md#card-query. `None` when the contract leaves the answer open (candidates of one branch
    /// linked to different people), so such a query is not emitted.
    pub fn card(&self, key: CardKey, branch: Option<u8>, birth: Date, date: Date) -> Option<u8> {
        let cands: Vec<&TRec> = self
            .cards
            .get(&key)
            .map(|ids| {
                ids.iter()
                    .map(|&i| &self.recs[i as usize])
                    .filter(|r| r.birth == birth && branch.is_none_or(|b| r.branch == b))
                    .collect()
            })
            .unwrap_or_default();
        if cands.is_empty() {
            return Some(4);
        }
        if cands.iter().any(|r| r.branch != cands[0].branch) {
            return Some(5);
        }
        match cands.iter().filter(|r| r.covers(date)).count() {
            1 => return Some(1),
            0 => {}
            _ => return Some(5),
        }
        let mut numbers: Vec<u64> = cands
            .iter()
            .filter_map(|r| r.indnum)
            .filter(|n| !self.unverified.contains(n))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        match numbers.as_slice() {
            [] => Some(2),
            [n] => {
                let elsewhere = self
                    .persons
                    .get(n)
                    .is_some_and(|ids| ids.iter().any(|&i| self.recs[i as usize].covers(date)));
                Some(if elsewhere { 3 } else { 2 })
            }
            _ => None,
        }
    }

    /// [`Self::card`] with the record a validity 1 or 2 answer shows: the covering one, or
    /// the one nearest before the date (of those begun by then, the one that ended last; of
    /// two that ended the same day, the one begun last; else the earliest).
    pub fn card_record(
        &self,
        key: CardKey,
        branch: Option<u8>,
        birth: Date,
        date: Date,
    ) -> Option<(u8, Option<u32>)> {
        let v = self.card(key, branch, birth, date)?;
        if v > 2 {
            return Some((v, None));
        }
        let cands: Vec<u32> = self.cards.get(&key).map_or(Vec::new(), |ids| {
            ids.iter()
                .copied()
                .filter(|&i| {
                    let r = &self.recs[i as usize];
                    r.birth == birth && branch.is_none_or(|b| r.branch == b)
                })
                .collect()
        });
        let rec = |i: &u32| &self.recs[*i as usize];
        let chosen = if v == 1 {
            cands.iter().find(|i| rec(i).covers(date)).copied()
        } else {
            let end = |i: &u32| (rec(i).disq.unwrap_or(Date::MAX), rec(i).qual);
            cands
                .iter()
                .filter(|i| rec(i).qual <= date)
                .max_by_key(|i| end(i))
                .or_else(|| cands.iter().min_by_key(|i| rec(i).qual))
                .copied()
        };
        Some((v, chosen))
    }

    /// docs/api.md#person-query.
    pub fn person(&self, first11: u64, date: Date) -> u8 {
        if self.unverified.contains(&first11) {
            return 4;
        }
        let Some(ids) = self.persons.get(&first11) else {
            return 4;
        };
        match ids
            .iter()
            .filter(|&&i| self.recs[i as usize].covers(date))
            .count()
        {
            0 => 2,
            1 => 1,
            _ => 5,
        }
    }
}

/// One line of queries.csv.
struct Query {
    person: bool,
    insurer: String,
    symbol: String,
    number: String,
    branch: String,
    birthdate: String,
    individual: String,
    date: Date,
    consent: bool,
    expected: u8,
}

pub const QUERIES_HEADER: &str =
    "kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent,expected\n";

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', ' ', '\u{3000}']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

impl Query {
    fn write(&self, out: &mut String) {
        out.push_str(if self.person { "person" } else { "card" });
        for f in [
            &self.insurer,
            &self.symbol,
            &self.number,
            &self.branch,
            &self.birthdate,
            &self.individual,
        ] {
            out.push(',');
            csv_field(out, f);
        }
        out.push(',');
        out.push_str(&self.date.to_string());
        out.push_str(if self.consent { ",1," } else { ",," });
        out.push(char::from(b'0' + self.expected));
        out.push('\n');
    }
}

/// Builds `quota` queries of a realistic mix over the chunk; returns CSV lines and counts by
/// expected validity.
pub fn make_queries(
    g: &mut ChunkGen,
    truth: &Truth,
    rows: &[Row],
    quota: u64,
) -> (String, [u64; 5]) {
    let pools = Pools::new(g, truth, rows);
    let mut out = String::new();
    let mut counts = [0u64; 5];
    for _ in 0..quota {
        let q = (0..20)
            .find_map(|_| one_query(g, truth, &pools))
            .unwrap_or_else(|| unknown_card(g, truth));
        counts[q.expected as usize - 1] += 1;
        q.write(&mut out);
    }
    (out, counts)
}

/// Records to draw queries from, by purpose.
struct Pools {
    all: Vec<u32>,
    current: Vec<u32>,
    lost: Vec<u32>,
    linked: Vec<u32>,
    twins: Vec<u32>,
    mislinked: Vec<u64>,
    dual: Vec<u64>,
}

impl Pools {
    fn new(g: &ChunkGen, truth: &Truth, rows: &[Row]) -> Pools {
        let d = g.d;
        let ids = |f: &dyn Fn(&TRec) -> bool| -> Vec<u32> {
            (0..truth.recs.len() as u32)
                .filter(|&i| f(&truth.recs[i as usize]))
                .collect()
        };
        let tagged = |rule: Rule| -> Vec<u64> {
            rows.iter()
                .filter(|r| r.tag == Some(rule))
                .filter_map(|r| r.rec.indnum)
                .collect()
        };
        Pools {
            all: ids(&|_| true),
            current: ids(&|t| t.indexed && t.covers(d)),
            lost: ids(&|t| t.indexed && t.disq.is_some()),
            linked: ids(&|t| t.indexed && t.indnum.is_some()),
            twins: g.twins.clone(),
            mislinked: tagged(Rule::X1),
            dual: tagged(Rule::X3),
        }
    }
}

fn pick<T: Copy>(g: &mut ChunkGen, v: &[T]) -> Option<T> {
    (!v.is_empty()).then(|| v[g.rng.gen_range(0..v.len())])
}

fn range_day(g: &mut ChunkGen, lo: Date, hi: Date) -> Date {
    if hi <= lo {
        return lo;
    }
    Date::from_days(g.rng.gen_range(lo.days()..=hi.days()))
}

fn one_query(g: &mut ChunkGen, truth: &Truth, pools: &Pools) -> Option<Query> {
    let d = g.d;
    let t = g.rng.gen_range(0..100);
    let (id, branch_given, date, birth_shift) = match t {
        0..=34 => {
            let id = pick(g, &pools.current)?;
            let r = &truth.recs[id as usize];
            let date = if g.rng.gen_bool(0.85) {
                d
            } else {
                range_day(g, r.qual, d)
            };
            (id, g.rng.gen_bool(0.75), date, 0)
        }
        35..=46 => {
            let id = pick(g, &pools.lost)?;
            let date = match truth.recs[id as usize].disq {
                Some(end) if g.rng.gen_bool(0.3) => range_day(g, end, d),
                _ => d,
            };
            (id, g.rng.gen_bool(0.7), date, 0)
        }
        47..=54 => {
            let id = pick(g, &pools.current)?;
            let shift = g.rng.gen_range(1..3000) * if g.rng.gen_bool(0.5) { 1 } else { -1 };
            (id, g.rng.gen_bool(0.7), d, shift)
        }
        55..=59 => return Some(unknown_card(g, truth)),
        60..=64 => {
            let id = pick(g, &pools.twins)?;
            (id, false, d, 0)
        }
        65..=68 => {
            let id = pick(g, &pools.all)?;
            let before = truth.recs[id as usize]
                .qual
                .add_days(-g.rng.gen_range(1..500));
            (id, true, before, 0)
        }
        69..=72 => {
            let id = pick(g, &pools.all)?;
            (id, g.rng.gen_bool(0.7), d, 0)
        }
        73..=86 => {
            let id = pick(g, &pools.linked)?;
            let n = truth.recs[id as usize].indnum?;
            let date = if g.rng.gen_bool(0.85) {
                d
            } else {
                d.add_days(-g.rng.gen_range(1..800))
            };
            return Some(person_query(g, truth, n, date));
        }
        87..=91 => {
            // A number no one in the data set holds.
            let idx = g.p.persons + g.rng.gen_range(0..1_000_000_000);
            let n = g.p.first11(idx);
            return Some(person_query(g, truth, n, d));
        }
        92..=95 => {
            let n = pick(g, &pools.mislinked)?;
            return Some(person_query(g, truth, n, d));
        }
        _ => {
            let n = pick(g, &pools.dual)?;
            return Some(person_query(g, truth, n, d));
        }
    };
    card_query(g, truth, id, branch_given, date, birth_shift)
}

fn card_query(
    g: &mut ChunkGen,
    truth: &Truth,
    id: u32,
    branch_given: bool,
    date: Date,
    birth_shift: i32,
) -> Option<Query> {
    let r = &truth.recs[id as usize];
    let birth = r.birth.add_days(birth_shift);
    let key = (r.insurer, r.sym.key(), r.number);
    let branch = branch_given.then_some(r.branch);
    let expected = truth.card(key, branch, birth, date)?;
    Some(Query {
        person: false,
        insurer: insurer_input(g, r.insurer),
        symbol: symbol_text(r.sym, g.rng.gen_bool(0.1)),
        number: number_input(g, r.number),
        branch: branch.map(|b| branch_input(g, b)).unwrap_or_default(),
        birthdate: birth_input(g, birth),
        individual: String::new(),
        date,
        consent: g.rng.gen_bool(0.25),
        expected,
    })
}

/// A card of an older snapshot only: the build reads the newest file, so it finds nothing.
pub fn stale_query(g: &mut ChunkGen, rec: &crate::model::Rec, out: &mut String) {
    let q = Query {
        person: false,
        insurer: insurer_input(g, rec.insurer),
        symbol: String::new(),
        number: number_input(g, rec.number),
        branch: format!("{:02}", rec.branch),
        birthdate: birth_input(g, rec.birth),
        individual: String::new(),
        date: g.d,
        consent: false,
        expected: 4,
    };
    q.write(out);
}

/// A card no insurer issued (numbers from 9×10^13 are never generated).
fn unknown_card(g: &mut ChunkGen, truth: &Truth) -> Query {
    let insurer = g.rng.gen_range(0..g.u.insurers.len() as u32);
    let number = 90_000_000_000_000 + g.rng.gen_range(0..1_000_000_000u64);
    let birth = g.d.add_days(-g.rng.gen_range(0..30_000));
    let expected = truth
        .card((insurer, Sym::None.key(), number), None, birth, g.d)
        .unwrap_or(4);
    Query {
        person: false,
        insurer: insurer_input(g, insurer),
        symbol: String::new(),
        number: number_input(g, number),
        branch: String::new(),
        birthdate: birth_input(g, birth),
        individual: String::new(),
        date: g.d,
        consent: false,
        expected,
    }
}

fn person_query(g: &mut ChunkGen, truth: &Truth, first11: u64, date: Date) -> Query {
    let mut individual = String::new();
    push_digits(
        &mut individual,
        &individual_text(first11),
        g.rng.gen_bool(0.05),
    );
    Query {
        person: true,
        insurer: String::new(),
        symbol: String::new(),
        number: String::new(),
        branch: String::new(),
        birthdate: String::new(),
        individual,
        date,
        consent: g.rng.gen_bool(0.25),
        expected: truth.person(first11, date),
    }
}

/// Insurer numbers as clinics type them: sometimes full-width, 6-digit ones sometimes padded.
pub fn insurer_input(g: &mut ChunkGen, insurer: u32) -> String {
    let u = g.u;
    let s = u.insurers[insurer as usize].number.as_str();
    let mut out = String::new();
    if s.len() == 6 && g.rng.gen_bool(0.3) {
        out.push_str("  ");
    }
    push_digits(&mut out, s, g.rng.gen_bool(0.08));
    out
}

fn number_input(g: &mut ChunkGen, number: u64) -> String {
    let raw = if g.rng.gen_bool(0.1) {
        format!("{number:014}")
    } else {
        number.to_string()
    };
    let mut out = String::new();
    push_digits(&mut out, &raw, g.rng.gen_bool(0.08));
    out
}

fn branch_input(g: &mut ChunkGen, b: u8) -> String {
    if b < 10 && g.rng.gen_bool(0.15) {
        b.to_string()
    } else {
        format!("{b:02}")
    }
}

/// Birthdates in every form docs/api.md#dates accepts, including unpadded 和暦 (`S45.1.23`).
pub fn birth_input(g: &mut ChunkGen, birth: Date) -> String {
    let r = g.rng.gen_range(0..100);
    match r {
        0..=54 => birth.to_string(),
        55..=64 => birth.to_compact(),
        65..=76 => date_text(birth, DateStyle::WarekiLetter),
        77..=88 => date_text(birth, DateStyle::WarekiCode),
        89..=94 => {
            let mut s = String::new();
            push_digits(&mut s, &birth.to_string(), true);
            s
        }
        _ => unpadded_wareki(birth),
    }
}

fn unpadded_wareki(birth: Date) -> String {
    let Some(w) = birth.to_wareki_letter() else {
        return birth.to_string();
    };
    let mut parts = w.split('.');
    let (Some(ey), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return w;
    };
    let strip = |s: &str| s.trim_start_matches('0').to_string();
    format!("{ey}.{}.{}", strip(m), strip(d))
}
