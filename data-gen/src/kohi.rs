//! Public-expense (公費) registers of the synthetic population (`--kohi`): one payer of each
//! program per municipality-sized run of chunks, each holder's certificates (受給者証) with
//! their renewals and lapses, at Japan's shares, and the ground truth a correct build answers
//! the public-expense query from.
//!
//! Shares (persons, Japan ~2024): 生活保護 医療扶助 (法別 12) ~2M of 125M, everyone whose
//! insurance ended for 生活保護 and ~1.2% of adults besides; 自立支援医療 精神通院 (21) ~2.5M;
//! 更生 (15) and 育成 (16) small; 難病 (54) ~1M, more often in old age; 小児慢性特定疾病 (52)
//! ~0.1M, under 20; the municipality's 子ども医療費助成 (80–99) ~92% of children to the March
//! after their 15th birthday. A recipient number is unique within its payer and derived from
//! the person's place in the municipality, so every certificate of a (payer, recipient) lies
//! in one chunk and the chunk's truth is complete for it.

use crate::model::Row;
use crate::population::{years_after, ChunkGen, Person};
use crate::render::name_of;
use crate::tables::PREFECTURES;
use crate::CHUNK;
use rand::Rng;
use shikaku::domain::text::luhn_check_digit;
use shikaku::domain::{Date, PayerNumber, ReasonOfLoss};
use shikaku::snapshot::kohi::KohiColumn as KCol;
use std::collections::HashMap;

/// Chunks of the population per municipality: 4 × 16,384 ≈ 65,000 persons, near Japan's mean
/// municipality (125M / 1,741).
pub const MUNICIPALITY_CHUNKS: u64 = 4;

/// The programs every municipality has a payer for, in payer order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Welfare,
    Kosei,
    Ikusei,
    Seishin,
    Shoman,
    Nanbyo,
    Local,
}

pub const PROGRAMS: [Program; 7] = [
    Program::Welfare,
    Program::Kosei,
    Program::Ikusei,
    Program::Seishin,
    Program::Shoman,
    Program::Nanbyo,
    Program::Local,
];

impl Program {
    /// 法別番号. Local programs take one of 80–99 by prefecture, as prefectures choose their own.
    pub fn houbetsu(self, pref: u8) -> u8 {
        match self {
            Program::Welfare => 12,
            Program::Kosei => 15,
            Program::Ikusei => 16,
            Program::Seishin => 21,
            Program::Shoman => 52,
            Program::Nanbyo => 54,
            Program::Local => 80 + (pref * 7) % 20,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Program::Welfare => "生活保護 医療扶助",
            Program::Kosei => "自立支援医療 更生医療",
            Program::Ikusei => "自立支援医療 育成医療",
            Program::Seishin => "自立支援医療 精神通院",
            Program::Shoman => "小児慢性特定疾病医療費",
            Program::Nanbyo => "特定医療費 指定難病",
            Program::Local => "子ども医療費助成",
        }
    }

    /// National programs name designated institutions (医療券, 指定医療機関); local ones pay
    /// at any institution.
    pub fn designated(self) -> bool {
        self != Program::Local
    }

    fn slot(self) -> u32 {
        PROGRAMS.iter().position(|&p| p == self).unwrap_or(0) as u32
    }
}

/// Municipalities of a population of `chunks` chunks.
pub fn municipalities(chunks: u64) -> u64 {
    chunks.div_ceil(MUNICIPALITY_CHUNKS)
}

/// Payer `index` (municipality × 7 + program): its program and municipality.
pub fn payer_parts(index: u32) -> (u64, Program) {
    let m = u64::from(index) / PROGRAMS.len() as u64;
    (m, PROGRAMS[index as usize % PROGRAMS.len()])
}

fn payer_index(m: u64, program: Program) -> u32 {
    (m * PROGRAMS.len() as u64) as u32 + program.slot()
}

fn pref_of(m: u64) -> u8 {
    (m % 47) as u8 + 1
}

/// 法別 + 都道府県 + 実施機関 (the municipality's number within its prefecture) + check:
/// unique up to 47,000 municipalities (the population's limit has ~31,000).
pub fn payer_number(index: u32) -> PayerNumber {
    let (m, program) = payer_parts(index);
    let pref = pref_of(m);
    let body = format!("{:02}{pref:02}{:03}", program.houbetsu(pref), m / 47 % 1000);
    PayerNumber::from_body(&body).expect("seven digits")
}

pub fn payer_name(index: u32) -> String {
    let (m, program) = payer_parts(index);
    let pref = PREFECTURES[usize::from(pref_of(m)) - 1].0;
    format!("{pref} 第{}市 {}", m / 47 + 1, program.label())
}

/// A payer no register holds (法別 51, 特定疾患, is never generated): its `KO` records are
/// not judged.
pub fn unheld_payer(pref: u8) -> PayerNumber {
    PayerNumber::from_body(&format!("51{pref:02}001")).expect("seven digits")
}

/// Local recipient numbers are zero-padded to this many digits (leading zeros significant).
pub fn local_width(payer: u32) -> usize {
    if payer_parts(payer).0.is_multiple_of(3) {
        10
    } else {
        8
    }
}

/// The recipient number of body `body` at `payer`: 6 digits and a check digit for national
/// programs, zero-padded digits for local ones.
pub fn recipient_text(payer: u32, body: u64) -> String {
    if payer_parts(payer).1.designated() {
        let six = format!("{:06}", body % 1_000_000);
        let check = luhn_check_digit(six.as_bytes());
        format!("{six}{check}")
    } else {
        format!("{:0w$}", body + 1, w = local_width(payer))
    }
}

/// One certificate as generated.
#[derive(Debug, Clone)]
pub struct Cert {
    pub payer: u32,
    pub recipient: String,
    pub indnum: Option<u64>,
    pub family: u16,
    pub given: u16,
    pub sex: u8,
    pub birth: Date,
    pub from: Date,
    /// Inclusive.
    pub to: Option<Date>,
    pub copay: Option<u32>,
    /// Institution numbers (`claims::institution_code`).
    pub institutions: Vec<u32>,
    /// The holder's index in the chunk.
    pub person: u32,
}

impl Cert {
    pub fn covers(&self, day: Date) -> bool {
        self.from <= day && self.to.is_none_or(|t| day <= t)
    }
}

/// Defect kinds of the registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KRule {
    K1,
    K2,
    K3,
    K4,
    K5,
    K6,
    W1,
    X1,
    Duplicate,
}

impl KRule {
    pub const ALL: [KRule; 9] = [
        KRule::K1,
        KRule::K2,
        KRule::K3,
        KRule::K4,
        KRule::K5,
        KRule::K6,
        KRule::W1,
        KRule::X1,
        KRule::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KRule::K1 => "K1",
            KRule::K2 => "K2",
            KRule::K3 => "K3",
            KRule::K4 => "K4",
            KRule::K5 => "K5",
            KRule::K6 => "K6",
            KRule::W1 => "W1",
            KRule::X1 => "X1",
            KRule::Duplicate => "DUP",
        }
    }

    pub fn rejects(self) -> bool {
        matches!(
            self,
            KRule::K1 | KRule::K2 | KRule::K3 | KRule::K4 | KRule::K5 | KRule::K6
        )
    }
}

/// A register row: a certificate, optionally one cell replaced by raw text, its defect.
#[derive(Debug, Clone)]
pub struct CertRow {
    pub cert: Cert,
    pub over: Option<(KCol, String)>,
    pub tag: Option<KRule>,
    /// Written twice; the second copy carries the tag.
    pub dup: bool,
    pub original: bool,
}

impl CertRow {
    fn plain(cert: Cert) -> CertRow {
        CertRow {
            cert,
            over: None,
            tag: None,
            dup: false,
            original: true,
        }
    }

    /// Indexed by a correct build (a K rule rejects the row).
    pub fn indexed(&self) -> bool {
        !self.tag.is_some_and(KRule::rejects)
    }

    /// Untouched by any defect: what the claims may rely on.
    pub fn clean(&self) -> bool {
        self.tag.is_none() && self.over.is_none() && self.original
    }

    /// The individual number the build keeps (W1 drops it).
    pub fn kept_number(&self) -> Option<u64> {
        if self.tag == Some(KRule::W1) {
            None
        } else {
            self.cert.indnum
        }
    }
}

/// Institutions the designated lists draw from: one per 500 persons (Japan has one per
/// ~540), so that a clinic's claims file meets several of its certificate holders.
pub fn institution_space(persons: u64) -> u32 {
    (persons / 500).clamp(8, 250_000) as u32
}

/// The chunk's persons who lost their insurance for 生活保護, with the day they did.
fn welfare_starts(rows: &[Row], k: u64) -> HashMap<u64, Date> {
    rows.iter()
        .filter(|r| r.original && r.rec.reason == Some(ReasonOfLoss::Welfare))
        .filter_map(|r| {
            // Welfare ends only single 国保 households' cards: the card's number is the
            // person's (`card_number(gidx, 0)`).
            let gidx = r.rec.number.checked_sub(10_000_000)? / 4;
            let local = gidx.checked_sub(k * CHUNK)?;
            Some((local, r.rec.disq?))
        })
        .collect()
}

/// Generates the chunk's certificates (in person order), before defects.
pub fn make_certificates(g: &mut ChunkGen, ps: &[Person], rows: &[Row], k: u64) -> Vec<CertRow> {
    let welfare = welfare_starts(rows, k);
    let m = k / MUNICIPALITY_CHUNKS;
    let base = (k % MUNICIPALITY_CHUNKS) * CHUNK;
    let space = institution_space(g.p.persons);
    let mut out = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let linked = g.rng.gen_bool(0.85).then(|| g.p.first11(p.gidx));
        let mk = |program: Program, from: Date, to: Option<Date>, g: &mut ChunkGen| {
            let payer = payer_index(m, program);
            let institutions = if program.designated() {
                let n = [1, 1, 1, 2, 2, 3][g.rng.gen_range(0..6)];
                let mut v: Vec<u32> = (0..n).map(|_| g.rng.gen_range(0..space)).collect();
                v.sort_unstable();
                v.dedup();
                v
            } else {
                Vec::new()
            };
            Cert {
                payer,
                recipient: recipient_text(payer, base + i as u64),
                indnum: linked,
                family: p.family,
                given: p.given,
                sex: p.sex,
                birth: p.birth,
                from: from.max(p.birth),
                to,
                copay: copay_limit(g, program),
                institutions,
                person: i as u32,
            }
        };
        for (program, from, to) in programs_of(g, p, welfare.get(&(i as u64)).copied()) {
            let cert = mk(program, from, to, g);
            out.push(CertRow::plain(cert));
        }
    }
    share_twins_numbers(g, ps, &mut out);
    out
}

/// Each program's certificate periods of one person: (program, valid_from, valid_to).
fn programs_of(
    g: &mut ChunkGen,
    p: &Person,
    welfare: Option<Date>,
) -> Vec<(Program, Date, Option<Date>)> {
    let d = g.d;
    let age = p.age;
    let mut v = Vec::new();
    let annual = |g: &mut ChunkGen, program: Program, v: &mut Vec<_>| {
        for (from, to) in annual_periods(g, p.birth) {
            v.push((program, from, Some(to)));
        }
    };
    if let Some(start) = welfare {
        v.push((Program::Welfare, start, None));
    } else if age >= 20 && g.rng.gen_bool(0.017) {
        let start = d.add_days(-g.rng.gen_range(0..8 * 365));
        v.push((Program::Welfare, start, None));
    }
    if (15..=79).contains(&age) && g.rng.gen_bool(0.032) {
        annual(g, Program::Seishin, &mut v);
    }
    if age >= 18 && g.rng.gen_bool(0.003) {
        let from = d.add_days(-g.rng.gen_range(0..300));
        let to = from.add_days(g.rng.gen_range(90..365));
        v.push((Program::Kosei, from, Some(to)));
    }
    if age < 18 && g.rng.gen_bool(0.002) {
        let from = d.add_days(-g.rng.gen_range(0..200));
        let to = from.add_days(g.rng.gen_range(60..180));
        v.push((Program::Ikusei, from, Some(to)));
    }
    if age < 20 && g.rng.gen_bool(0.008) {
        annual(g, Program::Shoman, &mut v);
    }
    let nanbyo = match age {
        0..=39 => 0.003,
        40..=64 => 0.008,
        _ => 0.015,
    };
    if g.rng.gen_bool(nanbyo) {
        annual(g, Program::Nanbyo, &mut v);
    }
    let cutoff = Date::from_ymd(p.birth.ymd().0 + 16, 3, 31).unwrap_or(d);
    if cutoff >= d.add_days(-400) && g.rng.gen_bool(0.92) {
        // From birth (or moving in) to the March after the 15th birthday (中学卒業).
        let from = if g.rng.gen_bool(0.9) {
            p.birth
        } else {
            p.birth.max(d.add_days(-g.rng.gen_range(0..3 * 365)))
        };
        v.push((Program::Local, from, Some(cutoff.max(from))));
    }
    v
}

/// A yearly certificate's periods: first granted within four years, renewed each year (9 in
/// 10) until one lapses or reaches the snapshot date; periods ended over two years ago are
/// no longer listed.
fn annual_periods(g: &mut ChunkGen, birth: Date) -> Vec<(Date, Date)> {
    let d = g.d;
    let mut from = d.add_days(-g.rng.gen_range(0..4 * 365)).max(birth);
    let mut out = Vec::new();
    loop {
        let to = years_after(from, 1).add_days(-1);
        if to >= d.add_days(-730) {
            out.push((from, to));
        }
        if to >= d || !g.rng.gen_bool(0.9) {
            return out;
        }
        from = to.add_days(1);
    }
}

fn copay_limit(g: &mut ChunkGen, program: Program) -> Option<u32> {
    let pick = |g: &mut ChunkGen, v: &[u32]| v[g.rng.gen_range(0..v.len())];
    match program {
        Program::Welfare => Some(0),
        Program::Kosei | Program::Ikusei | Program::Seishin => {
            Some(pick(g, &[0, 2_500, 5_000, 10_000, 20_000]))
        }
        Program::Shoman => Some(pick(g, &[0, 1_250, 2_500, 5_000, 10_000, 15_000])),
        Program::Nanbyo => Some(pick(g, &[0, 2_500, 5_000, 10_000, 20_000, 30_000])),
        Program::Local => [None, None, Some(0), Some(200), Some(500)][g.rng.gen_range(0..5)],
    }
}

/// Twins of one family: sometimes the municipality issued both children one recipient number
/// (a registration error a claim meets as `kohi_multiple`).
fn share_twins_numbers(g: &mut ChunkGen, ps: &[Person], rows: &mut [CertRow]) {
    let mut first: HashMap<(u16, Date, u32), usize> = HashMap::new();
    for r in 0..rows.len() {
        let c = &rows[r].cert;
        if payer_parts(c.payer).1 != Program::Local {
            continue;
        }
        let p = &ps[c.person as usize];
        match first.get(&(p.family, p.birth, c.payer)) {
            // Twins of one given name on one number would make one certificate, kept once.
            Some(&f) if rows[f].cert.given != c.given && g.rng.gen_bool(0.3) => {
                rows[r].cert.recipient = rows[f].cert.recipient.clone();
            }
            Some(_) => {}
            None => {
                first.insert((p.family, p.birth, c.payer), r);
            }
        }
    }
}

/// The public-expense query's outcome (the reasons of a claim's `KO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KOut {
    Eligible,
    NotFound,
    Multiple,
    Expired,
    NotYet,
    OtherInstitution,
}

impl KOut {
    /// The claims reason, in the order of severity (most severe first).
    pub const REASONS: [KOut; 5] = [
        KOut::NotFound,
        KOut::Multiple,
        KOut::Expired,
        KOut::NotYet,
        KOut::OtherInstitution,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            KOut::Eligible => "",
            KOut::NotFound => "kohi_not_found",
            KOut::Multiple => "kohi_multiple",
            KOut::Expired => "kohi_expired",
            KOut::NotYet => "kohi_not_yet",
            KOut::OtherInstitution => "kohi_other_institution",
        }
    }
}

/// The certificates of one chunk as the build indexes them, by (payer, recipient).
pub struct KTruth {
    by_key: HashMap<(u32, String), Vec<u32>>,
}

impl KTruth {
    pub fn build(rows: &[CertRow]) -> KTruth {
        let mut by_key: HashMap<(u32, String), Vec<u32>> = HashMap::new();
        for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.indexed()) {
            by_key
                .entry((r.cert.payer, r.cert.recipient.clone()))
                .or_default()
                .push(i as u32);
        }
        KTruth { by_key }
    }

    /// A naive reading of the public-expense query: candidates of (payer, recipient) with
    /// the birthdate; several people → multiple; a covering one (one the institution may
    /// use preferred; no institution: any) → eligible or other_institution; else the
    /// nearest: expired or not_yet.
    /// `None` when "several people" depends on which candidate comes first (one with a
    /// number, one without, one with another number: same person by kana, not by number).
    pub fn decide(
        &self,
        rows: &[CertRow],
        key: (u32, &str),
        birth: Date,
        date: Date,
        institution: Option<u32>,
    ) -> Option<KOut> {
        let ids = self.by_key.get(&(key.0, key.1.to_string()));
        let cands: Vec<&CertRow> = ids
            .into_iter()
            .flatten()
            .map(|&i| &rows[i as usize])
            .filter(|r| r.cert.birth == birth)
            .collect();
        if cands.is_empty() {
            return Some(KOut::NotFound);
        }
        let same = |a: &CertRow, b: &CertRow| match (a.kept_number(), b.kept_number()) {
            (Some(x), Some(y)) => x == y,
            _ => kana(&a.cert) == kana(&b.cert),
        };
        let several = |first: &CertRow| cands.iter().any(|c| !same(first, c));
        let multiple = several(cands[0]);
        if cands.iter().any(|&f| several(f) != multiple) {
            return None;
        }
        if multiple {
            return Some(KOut::Multiple);
        }
        let covering: Vec<&&CertRow> = cands.iter().filter(|c| c.cert.covers(date)).collect();
        if !covering.is_empty() {
            let admits = covering
                .iter()
                .any(|c| institution.is_none_or(|i| admits(&c.cert, i)));
            return Some(if admits {
                KOut::Eligible
            } else {
                KOut::OtherInstitution
            });
        }
        Some(if cands.iter().any(|c| c.cert.from <= date) {
            KOut::Expired
        } else {
            KOut::NotYet
        })
    }
}

fn kana(c: &Cert) -> String {
    name_of(c.family, c.given).1
}

pub fn admits(c: &Cert, institution: u32) -> bool {
    c.institutions.is_empty() || c.institutions.contains(&institution)
}

/// X1 as a correct build reports it: every indexed certificate whose kept individual number
/// is also on an indexed certificate with another birthdate or sex. Numbers are a person's,
/// and donors are of the same chunk, so a chunk's count is complete.
pub fn mislinked(rows: &[CertRow]) -> u64 {
    let mut groups: HashMap<u64, Vec<&Cert>> = HashMap::new();
    for r in rows.iter().filter(|r| r.indexed()) {
        if let Some(n) = r.kept_number() {
            groups.entry(n).or_default().push(&r.cert);
        }
    }
    // A duplicate row is kept once: count certificates, not rows (dup rows are one row here).
    groups
        .values()
        .filter(|g| g.iter().any(|c| c.birth != g[0].birth || c.sex != g[0].sex))
        .map(|g| g.len() as u64)
        .sum()
}

/// Rows a correct build keeps once (`DUP`): a row written twice, and indexed rows of one
/// payer that read as the same certificate (twins of one name on one number, unlinked).
pub fn duplicates(rows: &[CertRow]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    for r in rows.iter().filter(|r| r.indexed()) {
        let c = &r.cert;
        let key = (
            c.payer,
            c.recipient.as_str(),
            r.kept_number(),
            name_of(c.family, c.given),
            (c.sex, c.birth, c.from, c.to, c.copay),
            c.institutions.as_slice(),
        );
        n += u64::from(!seen.insert(key)) + u64::from(r.dup);
    }
    n
}
