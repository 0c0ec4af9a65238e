//! One chunk's public-expense part: its certificates (generated on an RNG stream of their
//! own, so that the insurers' files are the same with or without `--kohi`), their defects,
//! the rendered registers, and the `KO` records of the chunk's receipts with the verdicts a
//! correct check gives them, worked out day by day from the chunk's truth (`KTruth::decide`).

use crate::claims::ClaimsPlan;
use crate::kohi::{
    admits, institution_space, make_certificates, payer_number, payer_parts, recipient_text,
    unheld_payer, CertRow, KOut, KRule, KTruth, Program, MUNICIPALITY_CHUNKS, PROGRAMS,
};
use crate::kohi_defects::off_by_one;
use crate::model::Rec;
use crate::population::{ChunkGen, Person};
use crate::writer::InsOut;
use crate::{rng_for, CHUNK};
use rand::Rng;
use shikaku::domain::text::luhn_check_digit;
use shikaku::domain::Date;
use std::collections::{BTreeMap, HashMap};

/// The RNG streams of the chunks' certificates.
const KOHI_STREAM: u64 = u64::MAX / 8;

/// Counts a chunk reports for the summary.
#[derive(Debug, Clone, Default)]
pub struct KohiStats {
    /// Certificates as generated (before defects added rows).
    pub certificates: u64,
    /// Register lines written (defects' extra rows and duplicates included).
    pub rows: u64,
    /// Persons holding a certificate that covers the snapshot date, by program.
    pub holders_by_program: [u64; 7],
    pub holders: u64,
    /// What a correct build reports, by rule (K1–K6, W1, X1, duplicate).
    pub by_rule: BTreeMap<&'static str, u64>,
}

/// The chunk's registers and what the claims need of them.
pub struct KohiChunk {
    pub rows: Vec<CertRow>,
    truth: KTruth,
    /// Clean certificates (row indexes) by holder (the person's index in the chunk).
    by_person: Vec<Vec<u32>>,
    /// A chunk person by (birthdate, family, given, sex); `u32::MAX` when two share it.
    person_of: HashMap<(Date, u16, u16, u8), u32>,
    /// First recipient body of the chunk (see `kohi::make_certificates`).
    base: u64,
    space: u32,
}

/// Generates, damages and renders chunk `k`'s certificates.
pub fn chunk(
    g: &mut ChunkGen,
    ps: &[Person],
    rows: &[crate::model::Row],
    k: u64,
) -> (Vec<InsOut>, KohiStats, KohiChunk) {
    let saved = std::mem::replace(&mut g.rng, rng_for(g.p.seed, KOHI_STREAM + k));
    let mut certs = make_certificates(g, ps, rows, k);
    let generated = certs.len() as u64;
    crate::kohi_defects::inject(g, &mut certs, g.p.rate, k == 0);
    g.rng = saved;
    let outs = crate::kohi_write::render(g.p.seed, &certs);
    let mut stats = KohiStats {
        certificates: generated,
        rows: outs.iter().map(|o| o.lines).sum(),
        ..KohiStats::default()
    };
    let mut holds = vec![0u8; ps.len()];
    for r in certs
        .iter()
        .filter(|r| r.original && r.cert.covers(g.p.date))
    {
        let slot = PROGRAMS
            .iter()
            .position(|&p| p == payer_parts(r.cert.payer).1)
            .unwrap_or(0);
        let bit = 1u8 << slot;
        if holds[r.cert.person as usize] & bit == 0 {
            stats.holders_by_program[slot] += 1;
        }
        holds[r.cert.person as usize] |= bit;
    }
    stats.holders = holds.iter().filter(|&&h| h != 0).count() as u64;
    for r in &certs {
        if let Some(tag) = r
            .tag
            .filter(|&t| !matches!(t, KRule::X1 | KRule::Duplicate))
        {
            *stats.by_rule.entry(tag.as_str()).or_default() += 1;
        }
    }
    for (rule, n) in [
        (KRule::X1, crate::kohi::mislinked(&certs)),
        (KRule::Duplicate, crate::kohi::duplicates(&certs)),
    ] {
        if n > 0 {
            stats.by_rule.insert(rule.as_str(), n);
        }
    }
    let kc = KohiChunk::new(certs, ps, k, institution_space(g.p.persons));
    (outs, stats, kc)
}

/// Where a `KO` record points.
#[derive(Debug, Clone)]
enum KoTarget {
    Held(u32, String),
    NotHeld,
    Malformed(&'static str),
}

/// One `KO` record: its payer and recipient fields as written.
#[derive(Debug, Clone)]
pub struct KoLine {
    pub payer: String,
    pub recipient: String,
    target: KoTarget,
}

/// The `KO` records of a receipt and the institution it is claimed at (a designated one
/// where the certificate names some).
pub struct KoPlan {
    pub lines: Vec<KoLine>,
    pub institution: Option<u32>,
}

/// What the `KO` records make of a receipt.
pub enum KoVerdict {
    Malformed(&'static str),
    /// Every `KO` names a payer whose list is not held.
    NotHeldOnly,
    Ok,
    Return(KOut, Vec<u8>),
}

fn held(c: &crate::kohi::Cert) -> KoLine {
    KoLine {
        payer: payer_number(c.payer).as_str().to_string(),
        recipient: c.recipient.clone(),
        target: KoTarget::Held(c.payer, c.recipient.clone()),
    }
}

impl KohiChunk {
    fn new(rows: Vec<CertRow>, ps: &[Person], k: u64, space: u32) -> KohiChunk {
        let mut by_person = vec![Vec::new(); ps.len()];
        for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.clean()) {
            by_person[r.cert.person as usize].push(i as u32);
        }
        let mut person_of = HashMap::with_capacity(ps.len());
        for (i, p) in ps.iter().enumerate() {
            person_of
                .entry((p.birth, p.family, p.given, p.sex))
                .and_modify(|v| *v = u32::MAX)
                .or_insert(i as u32);
        }
        KohiChunk {
            truth: KTruth::build(&rows),
            rows,
            by_person,
            person_of,
            base: (k % MUNICIPALITY_CHUNKS) * CHUNK,
            space,
        }
    }

    /// The holder of a record's person, when they hold a clean certificate.
    pub fn holder(&self, rec: &Rec) -> Option<u32> {
        let &p = self
            .person_of
            .get(&(rec.birth, rec.family, rec.given, rec.sex))?;
        (p != u32::MAX && !self.by_person[p as usize].is_empty()).then_some(p)
    }

    /// Holders of a clean certificate whose recipient number another person of the same
    /// birthdate also holds (a claim meets `kohi_multiple`).
    pub fn sharing(&self) -> Vec<u32> {
        let mut holders: HashMap<(u32, &str, Date), Vec<u32>> = HashMap::new();
        for r in &self.rows {
            let c = &r.cert;
            let v = holders.entry((c.payer, &c.recipient, c.birth)).or_default();
            if !v.contains(&c.person) {
                v.push(c.person);
            }
        }
        let mut out: Vec<u32> = holders
            .values()
            .filter(|v| v.len() > 1)
            .flatten()
            .copied()
            .filter(|&p| !self.by_person[p as usize].is_empty())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Persons holding a clean 医療扶助 certificate (the receipts without `HO`).
    pub fn welfare_holders(&self) -> Vec<u32> {
        (0..self.by_person.len() as u32)
            .filter(|&p| {
                self.by_person[p as usize]
                    .iter()
                    .any(|&i| payer_parts(self.rows[i as usize].cert.payer).1 == Program::Welfare)
            })
            .collect()
    }

    /// The identity of a holder as their certificates give it: (family, given, sex, birth).
    pub fn identity(&self, person: u32) -> Option<(u16, u16, u8, Date)> {
        let &i = self.by_person[person as usize].first()?;
        let c = &self.rows[i as usize].cert;
        Some((c.family, c.given, c.sex, c.birth))
    }

    /// The `KO` records of a receipt of `person`, made for one purpose: certificates valid
    /// all along (most), lapsed or begun within the month (the service days moved across the
    /// edge when `free_days`), a visit to an institution the certificate does not name, a
    /// typo in the recipient number (a local one's leading zeros dropped), a payer whose
    /// list is not held, a malformed field (`may_malform`); sometimes a second certificate.
    pub fn attach(
        &self,
        g: &mut ChunkGen,
        person: u32,
        days: &mut Vec<u8>,
        plan: &ClaimsPlan,
        free_days: bool,
        may_malform: bool,
    ) -> Option<KoPlan> {
        let (first, last) = (plan.first, plan.day(plan.days));
        let certs: Vec<u32> = self.by_person[person as usize]
            .iter()
            .copied()
            .filter(|&i| {
                let c = &self.rows[i as usize].cert;
                c.from <= last && c.to.is_none_or(|t| t >= first.add_days(-62))
            })
            .collect();
        let main = *certs.get(g.rng.gen_range(0..certs.len().max(1)))?;
        let c = &self.rows[main as usize].cert;
        let mut institution = (!c.institutions.is_empty())
            .then(|| c.institutions[g.rng.gen_range(0..c.institutions.len())]);
        let mut line = held(c);
        match g.rng.gen_range(0..100) {
            0..=67 => {}
            68..=75 if free_days => {
                if let Some(t) = c.to.and_then(|t| plan.day_of(t)).filter(|&t| t < plan.days) {
                    *days = vec![g.rng.gen_range(1..=t), g.rng.gen_range(t + 1..=plan.days)];
                }
            }
            76..=83 if free_days => {
                if let Some(f) = plan.day_of(c.from).filter(|&f| f > 1) {
                    *days = vec![g.rng.gen_range(1..f), g.rng.gen_range(f..=plan.days)];
                }
            }
            84..=89 if !c.institutions.is_empty() => {
                institution = (0..8)
                    .map(|_| g.rng.gen_range(0..self.space))
                    .find(|i| !admits(c, *i));
            }
            84..=94 => {
                let local = !payer_parts(c.payer).1.designated();
                let text = if local && g.rng.gen_bool(0.5) {
                    c.recipient.trim_start_matches('0').to_string()
                } else {
                    recipient_text(c.payer, self.base + g.rng.gen_range(0..CHUNK))
                };
                line.target = KoTarget::Held(c.payer, text.clone());
                line.recipient = text;
            }
            95..=96 => line = unheld_line(g),
            97..=99 if may_malform => {
                if payer_parts(c.payer).1.designated() && g.rng.gen_bool(0.5) {
                    line.recipient = off_by_one(&line.recipient);
                    line.target = KoTarget::Malformed("KO 3");
                } else {
                    line.payer = off_by_one(&line.payer);
                    line.target = KoTarget::Malformed("KO 2");
                }
            }
            _ => {}
        }
        days.sort_unstable();
        days.dedup();
        let mut lines = vec![line];
        // A second program beside the first (a child's 小児慢性 and the local program).
        if g.rng.gen_bool(0.5) {
            if let Some(&o) = certs
                .iter()
                .find(|&&i| self.rows[i as usize].cert.payer != c.payer)
            {
                lines.push(held(&self.rows[o as usize].cert));
            }
        }
        Some(KoPlan { lines, institution })
    }

    /// The verdict of a receipt's `KO` records on its days of service, at `institution`;
    /// `None` when two records give the decisive reason on different days (left open).
    pub fn verdict(
        &self,
        ko: &KoPlan,
        birth: Date,
        days: &[u8],
        plan: &ClaimsPlan,
        institution: u32,
    ) -> Option<KoVerdict> {
        if let Some(f) = ko.lines.iter().find_map(|l| match l.target {
            KoTarget::Malformed(f) => Some(f),
            _ => None,
        }) {
            return Some(KoVerdict::Malformed(f));
        }
        let mut any_held = false;
        let mut top: Option<(usize, Vec<u8>)> = None;
        for line in &ko.lines {
            let KoTarget::Held(payer, recipient) = &line.target else {
                continue;
            };
            let (payer, recipient) = (*payer, recipient.as_str());
            any_held = true;
            let mut by: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
            for &day in days {
                let out = self.truth.decide(
                    &self.rows,
                    (payer, recipient),
                    birth,
                    plan.day(day),
                    Some(institution),
                )?;
                if let Some(rank) = KOut::REASONS.iter().position(|&r| r == out) {
                    by.entry(rank).or_default().push(day);
                }
            }
            let Some((rank, d)) = by.into_iter().next() else {
                continue;
            };
            match &top {
                Some((r0, d0)) if *r0 == rank && *d0 != d => return None,
                Some((r0, _)) if *r0 <= rank => {}
                _ => top = Some((rank, d)),
            }
        }
        Some(match top {
            Some((rank, d)) => KoVerdict::Return(KOut::REASONS[rank], d),
            None if any_held => KoVerdict::Ok,
            None => KoVerdict::NotHeldOnly,
        })
    }
}

/// `queries.csv` rows of kind `kohi` (`kind,…,birthdate,,date,,expected,payer_number,
/// recipient_number`, the batch columns of docs/api.md with the public-expense ones last) over
/// the chunk's clean certificates: on the snapshot date mostly, some on a day of the
/// certificate's period, before or after it; a wrong birthdate; a typo in the recipient
/// number. The expected validity is the naive query's for a client that names no institution
/// (`shikaku load` without `--auth`). Returns the lines and their counts by validity.
pub fn queries(g: &mut ChunkGen, k: &KohiChunk, quota: u64) -> (String, [u64; 5]) {
    let clean: Vec<u32> = k.by_person.iter().flatten().copied().collect();
    let mut out = String::new();
    let mut counts = [0u64; 5];
    for _ in 0..quota {
        let Some(line) = (0..20).find_map(|_| one_query(g, k, &clean)) else {
            continue;
        };
        counts[usize::from(line.1) - 1] += 1;
        out.push_str(&line.0);
    }
    (out, counts)
}

fn one_query(g: &mut ChunkGen, k: &KohiChunk, clean: &[u32]) -> Option<(String, u8)> {
    let &i = clean.get(g.rng.gen_range(0..clean.len().max(1)))?;
    let c = &k.rows[i as usize].cert;
    let (mut birth, mut recipient, mut date) = (c.birth, c.recipient.clone(), g.d);
    match g.rng.gen_range(0..100) {
        0..=59 => {}
        60..=74 => {
            let end = c.to.unwrap_or(g.d).max(c.from);
            date = Date::from_days(g.rng.gen_range(c.from.days()..=end.days()));
        }
        75..=79 => date = c.from.add_days(-g.rng.gen_range(1..200)),
        80..=84 => date = c.to.unwrap_or(g.d).add_days(g.rng.gen_range(1..200)),
        85..=92 => birth = birth.add_days(g.rng.gen_range(1..400)),
        _ => recipient = recipient_text(c.payer, k.base + g.rng.gen_range(0..CHUNK)),
    }
    let expected = match k
        .truth
        .decide(&k.rows, (c.payer, &recipient), birth, date, None)?
    {
        KOut::Eligible => 1,
        KOut::Expired | KOut::NotYet | KOut::OtherInstitution => 2,
        KOut::NotFound => 4,
        KOut::Multiple => 5,
    };
    let birth_text = crate::truth::birth_input(g, birth);
    let line = format!(
        "kohi,,,,,{birth_text},,{date},,{expected},{},{recipient}\n",
        payer_number(c.payer).as_str()
    );
    Some((line, expected))
}

/// A `KO` record of a payer no register holds, for a receipt with no other part.
pub fn unheld_line(g: &mut ChunkGen) -> KoLine {
    let six = format!("{:06}", g.rng.gen_range(0..1_000_000));
    let check = luhn_check_digit(six.as_bytes());
    KoLine {
        payer: unheld_payer(g.rng.gen_range(1..=47)).as_str().to_string(),
        recipient: format!("{six}{check}"),
        target: KoTarget::NotHeld,
    }
}

/// Registers' program labels in payer order, for the summary.
pub fn program_names() -> [&'static str; 7] {
    let mut out = [""; 7];
    for (i, p) in PROGRAMS.iter().enumerate() {
        out[i] = match p {
            Program::Welfare => "12 医療扶助",
            Program::Kosei => "15 更生医療",
            Program::Ikusei => "16 育成医療",
            Program::Seishin => "21 精神通院",
            Program::Shoman => "52 小児慢性特定疾病",
            Program::Nanbyo => "54 難病",
            Program::Local => "80-99 子ども医療費",
        };
    }
    out
}
