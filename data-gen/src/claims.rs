//! Monthly claims files (UKE, 医科) of synthetic institutions, drawn from the population, with
//! every verdict of the claims pre-check injected at known rates, and their ground truth.
//!
//! The month of care is the month before the snapshot date's. Each receipt is made for one
//! purpose (a card covered all month, coverage lapsed mid-month, a new card mid-month, a typo
//! in the number, a wrong birthdate, a missing 枝番 on twins' card, the other sex, another
//! name, no day counts, public expense only, a malformed field); its expected verdict is then
//! worked out from the chunk's ground truth day by day (`Truth::card_record`), not assumed
//! from the purpose: a typo can land on another card, a lapsed card on a new qualification.

use crate::kohi_chunk::{unheld_line, KoPlan, KoVerdict, KohiChunk};
use crate::model::{Row, Sym};
use crate::population::ChunkGen;
use crate::render::name_of;
use crate::truth::{CardKey, Truth};
use rand::Rng;
use shikaku::domain::Date;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The month of care and the number of institutions.
#[derive(Debug, Clone, Copy)]
pub struct ClaimsPlan {
    pub first: Date,
    pub days: u8,
    pub institutions: u32,
}

impl ClaimsPlan {
    /// The month before `snapshot`'s, and an institution per 800 receipts.
    pub fn new(snapshot: Date, receipts: u64) -> ClaimsPlan {
        let (y, m, _) = snapshot.ymd();
        let (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
        let first = Date::from_ymd(y, m, 1).expect("the 1st exists");
        let days = (28..=31u32)
            .rev()
            .find(|&d| Date::from_ymd(y, m, d).is_some())
            .unwrap_or(28) as u8;
        ClaimsPlan {
            first,
            days,
            institutions: (receipts / 800).clamp(1, 100_000) as u32,
        }
    }

    pub(crate) fn day(&self, d: u8) -> Date {
        self.first.add_days(i32::from(d) - 1)
    }

    /// Day of the month (1-based) of `date`, if in the month.
    pub(crate) fn day_of(&self, date: Date) -> Option<u8> {
        let n = date.days() - self.first.days() + 1;
        (1..=i32::from(self.days)).contains(&n).then_some(n as u8)
    }
}

/// One generated receipt, numbered when its file is written.
pub struct GenReceipt {
    pub institution: u32,
    /// The `RE` record's fields after the receipt number.
    pub(crate) re_tail: String,
    /// The records after `RE`, each ending in `\n`.
    pub(crate) body: String,
    pub verdict: &'static str,
    pub reason: String,
    /// Days (of the month) that decide a `return`.
    pub(crate) days: Vec<u8>,
    /// Total points (`HO` 6), 0 where it is malformed or absent.
    pub(crate) points: u64,
    /// Carries `KO` records of certificates the registers hold.
    pub with_ko: bool,
}

/// What a receipt is made to show.
#[derive(Clone, Copy)]
enum Purpose {
    Covered,
    Lapsed,
    New,
    Typo,
    WrongBirth,
    NoBranch,
    OtherSex,
    OtherName,
    NoDays,
    PublicOnly,
    Malformed,
}

/// Purposes with their rates in percent.
const PURPOSES: [(Purpose, u32); 11] = [
    (Purpose::Covered, 58),
    (Purpose::Lapsed, 8),
    (Purpose::New, 5),
    (Purpose::Typo, 5),
    (Purpose::WrongBirth, 3),
    (Purpose::NoBranch, 3),
    (Purpose::OtherSex, 3),
    (Purpose::OtherName, 3),
    (Purpose::NoDays, 2),
    (Purpose::PublicOnly, 3),
    (Purpose::Malformed, 7),
];

/// Record pools of a chunk by purpose (record indexes of rows written as generated).
struct Pools {
    covered: Vec<u32>,
    lapsed: Vec<u32>,
    new: Vec<u32>,
    twins: Vec<u32>,
    /// With `--kohi`: covered records of certificate holders, and of holders whose
    /// recipient number another person shares.
    holders: Vec<u32>,
    sharing: Vec<u32>,
}

/// With `--kohi`, the share of receipts covered all month drawn from certificate holders:
/// with the holders drawn for other purposes, about 30% of receipts carry a `KO` (children,
/// 難病 and 医療扶助 patients visit more often than the average person).
const HOLDER_SHARE: f64 = 0.3;

/// The receipts of one chunk.
pub fn make_receipts(
    g: &mut ChunkGen,
    truth: &Truth,
    rows: &[Row],
    quota: u64,
    plan: &ClaimsPlan,
    kohi: Option<&KohiChunk>,
) -> Vec<GenReceipt> {
    let clean = |i: usize| rows[i].tag.is_none() && rows[i].over.is_none() && truth.recs[i].indexed;
    let (first, last) = (plan.first, plan.day(plan.days));
    let ids = |f: &dyn Fn(usize) -> bool| -> Vec<u32> {
        (0..rows.len())
            .filter(|&i| clean(i) && f(i))
            .map(|i| i as u32)
            .collect()
    };
    let covered = ids(&|i| {
        let r = &truth.recs[i];
        r.qual <= first && r.disq.is_none_or(|e| e > last)
    });
    let (holders, sharing) = match kohi {
        Some(k) => {
            let sharing = k.sharing();
            let of = |i: &&u32| k.holder(&rows[**i as usize].rec);
            let holders: Vec<u32> = covered
                .iter()
                .filter(|i| of(i).is_some())
                .copied()
                .collect();
            let shared = holders
                .iter()
                .filter(|i| of(i).is_some_and(|p| sharing.binary_search(&p).is_ok()))
                .copied()
                .collect();
            (holders, shared)
        }
        None => (Vec::new(), Vec::new()),
    };
    let pools = Pools {
        covered,
        lapsed: ids(&|i| truth.recs[i].disq.is_some_and(|e| e > first && e <= last)),
        new: ids(&|i| truth.recs[i].qual > first && truth.recs[i].qual <= last),
        twins: g
            .twins
            .iter()
            .copied()
            .filter(|&i| clean(i as usize))
            .collect(),
        holders,
        sharing,
    };
    let mut out = Vec::with_capacity(quota as usize);
    for _ in 0..quota {
        let purpose = pick_purpose(g);
        let r = (0..20)
            .find_map(|_| one_receipt(g, truth, rows, &pools, plan, purpose, kohi))
            .unwrap_or_else(|| public_only(g, rows, plan, kohi.is_some()));
        out.push(r);
    }
    out
}

fn pick_purpose(g: &mut ChunkGen) -> Purpose {
    let mut x = g.rng.gen_range(0..100);
    for (p, rate) in PURPOSES {
        if x < rate {
            return p;
        }
        x -= rate;
    }
    Purpose::Covered
}

fn pick(g: &mut ChunkGen, v: &[u32]) -> Option<u32> {
    (!v.is_empty()).then(|| v[g.rng.gen_range(0..v.len())])
}

/// What the receipt says, before rendering.
struct Draft {
    key: CardKey,
    insurer: String,
    symbol: String,
    number: String,
    branch: Option<u8>,
    birth: Date,
    birth_text: String,
    sex: u8,
    name: String,
    kana: String,
    /// Days with counts; empty: none.
    days: Vec<u8>,
    malformed: Option<(&'static str, String)>,
    /// No `HO` (public expense only).
    no_ho: bool,
    /// `KO` records (payer, recipient) as written.
    ko: Vec<(String, String)>,
    /// The institution it is claimed at, when a certificate decides it.
    institution: Option<u32>,
}

fn one_receipt(
    g: &mut ChunkGen,
    truth: &Truth,
    rows: &[Row],
    pools: &Pools,
    plan: &ClaimsPlan,
    purpose: Purpose,
    kohi: Option<&KohiChunk>,
) -> Option<GenReceipt> {
    let id = match purpose {
        Purpose::Lapsed => pick(g, &pools.lapsed)?,
        Purpose::New => pick(g, &pools.new)?,
        Purpose::NoBranch => pick(g, &pools.twins)?,
        Purpose::NoDays => pick(g, &pools.lapsed)?,
        Purpose::PublicOnly => {
            return match kohi {
                Some(k) => kohi_only(g, k, plan),
                None => Some(public_only(g, rows, plan, false)),
            }
        }
        Purpose::Covered if kohi.is_some() && g.rng.gen_bool(HOLDER_SHARE) => {
            if g.rng.gen_bool(0.05) && !pools.sharing.is_empty() {
                pick(g, &pools.sharing)?
            } else {
                pick(g, &pools.holders)?
            }
        }
        _ => pick(g, &pools.covered)?,
    };
    let rec = &rows[id as usize].rec;
    let t = &truth.recs[id as usize];
    let (name, kana) = name_of(rec.family, rec.given);
    let mut draft = Draft {
        key: (t.insurer, t.sym.key(), t.number),
        insurer: g.u.insurers[rec.insurer as usize]
            .number
            .as_str()
            .to_string(),
        symbol: symbol_of(rec.sym),
        number: rec.number.to_string(),
        branch: g.rng.gen_bool(0.85).then_some(rec.branch),
        birth: rec.birth,
        birth_text: rec.birth.to_compact(),
        sex: rec.sex,
        name,
        kana,
        days: Vec::new(),
        malformed: None,
        no_ho: false,
        ko: Vec::new(),
        institution: None,
    };
    if !matches!(rec.sex, 1 | 2) {
        return None;
    }
    let visits = g_count(g);
    draft.days = random_days(g, 1..=plan.days, visits);
    match purpose {
        Purpose::Lapsed | Purpose::New => {
            let edge = plan.day_of(if matches!(purpose, Purpose::Lapsed) {
                t.disq?
            } else {
                t.qual
            })?;
            let before = g.rng.gen_range(1..edge);
            let after = g.rng.gen_range(edge..=plan.days);
            draft.days = vec![before, after];
            draft.days.dedup();
        }
        Purpose::Typo => {
            draft.number = typo(g, rec.number).to_string();
            draft.key.2 = draft.number.parse().ok()?;
        }
        Purpose::WrongBirth => {
            let shift = g.rng.gen_range(1..400) * if g.rng.gen_bool(0.5) { 1 } else { -1 };
            draft.birth = rec.birth.add_days(shift);
            draft.birth_text = draft.birth.to_compact();
        }
        Purpose::NoBranch => draft.branch = None,
        Purpose::OtherSex => draft.sex = if rec.sex == 1 { 2 } else { 1 },
        Purpose::OtherName => {
            let other =
                (rec.given + 1 + g.rng.gen_range(0..50)) % crate::tables::GIVEN_NAMES.len() as u16;
            let kana = name_of(rec.family, other).1;
            if kana.replace(' ', "") == draft.kana.replace(' ', "") {
                return None;
            }
            draft.kana = kana;
        }
        Purpose::NoDays => draft.days.clear(),
        Purpose::Malformed => draft.malformed = Some(malform(g, &mut draft, plan)),
        Purpose::Covered | Purpose::PublicOnly => {}
    }
    // Every purpose but a month without day counts may meet a certificate holder's `KO`.
    let ko = match kohi {
        Some(k) if !matches!(purpose, Purpose::NoDays) => match k.holder(rec) {
            Some(person) => {
                let free = !matches!(purpose, Purpose::Lapsed | Purpose::New | Purpose::Malformed);
                let ko = k.attach(
                    g,
                    person,
                    &mut draft.days,
                    plan,
                    free,
                    draft.malformed.is_none(),
                );
                ko.map(|ko| (k, ko))
            }
            None => None,
        },
        _ => None,
    };
    let ko_verdict = match &ko {
        Some((k, ko)) => Some(with_ko(g, k, ko, &mut draft, plan)?),
        None => None,
    };
    let malformed = match (&draft.malformed, &ko_verdict) {
        (Some((field, _)), _) | (None, Some(KoVerdict::Malformed(field))) => Some(*field),
        _ => None,
    };
    let (verdict, reason, days) = match malformed {
        Some(field) => ("error", format!("malformed: {field}"), Vec::new()),
        None => {
            let ho = expected(truth, rows, &draft, plan)?;
            match ko_verdict {
                Some(KoVerdict::Return(k, days)) if ho.0 != "return" => {
                    ("return", k.reason().to_string(), days)
                }
                _ => ho,
            }
        }
    };
    let mut r = render(g, &draft, plan, verdict, reason, days);
    r.with_ko = ko.is_some();
    Some(r)
}

/// Writes a receipt's `KO` records into the draft, settles its institution, and returns
/// what they make of it (`None`: left open).
fn with_ko(
    g: &mut ChunkGen,
    k: &KohiChunk,
    ko: &KoPlan,
    draft: &mut Draft,
    plan: &ClaimsPlan,
) -> Option<KoVerdict> {
    let institution = ko
        .institution
        .unwrap_or_else(|| g.rng.gen_range(0..plan.institutions));
    draft.institution = Some(institution);
    draft.ko = ko
        .lines
        .iter()
        .map(|l| (l.payer.clone(), l.recipient.clone()))
        .collect();
    k.verdict(ko, draft.birth, &draft.days, plan, institution)
}

/// A receipt of public expense only (no `HO`), most often 医療扶助: its `KO` records decide;
/// when every one names a payer whose list is not held, it is `unchecked` `kohi_not_held`.
fn kohi_only(g: &mut ChunkGen, k: &KohiChunk, plan: &ClaimsPlan) -> Option<GenReceipt> {
    let welfare = k.welfare_holders();
    let person = *welfare.get(g.rng.gen_range(0..welfare.len().max(1)))?;
    let (family, given, sex, birth) = k.identity(person)?;
    let visits = g_count(g);
    let mut draft = no_ho_draft(
        (family, given, sex, birth),
        random_days(g, 1..=plan.days, visits),
    );
    let ko = k.attach(g, person, &mut draft.days, plan, true, true)?;
    let (verdict, reason, days) = match with_ko(g, k, &ko, &mut draft, plan)? {
        KoVerdict::Malformed(field) => ("error", format!("malformed: {field}"), Vec::new()),
        KoVerdict::NotHeldOnly => ("unchecked", "kohi_not_held".to_string(), Vec::new()),
        KoVerdict::Ok => ("ok", String::new(), Vec::new()),
        KoVerdict::Return(out, days) => ("return", out.reason().to_string(), days),
    };
    let mut r = render(g, &draft, plan, verdict, reason, days);
    r.with_ko = true;
    Some(r)
}

/// Outpatient visits: one to four days, mostly one or two.
fn g_count(g: &mut ChunkGen) -> usize {
    [1, 1, 1, 2, 2, 3, 4][g.rng.gen_range(0..7)]
}

fn random_days(g: &mut ChunkGen, range: std::ops::RangeInclusive<u8>, n: usize) -> Vec<u8> {
    let mut days: Vec<u8> = (0..n).map(|_| g.rng.gen_range(range.clone())).collect();
    days.sort_unstable();
    days.dedup();
    days
}

fn symbol_of(sym: Sym) -> String {
    let mut s = String::new();
    sym.render(&mut s);
    s
}

/// The number with one digit changed.
fn typo(g: &mut ChunkGen, number: u64) -> u64 {
    let digits = number.to_string().len() as u32;
    let place = 10u64.pow(g.rng.gen_range(0..digits));
    let digit = number / place % 10;
    let new = (digit + g.rng.gen_range(1..10)) % 10;
    let changed = number - digit * place + new * place;
    if changed == 0 {
        number + 1
    } else {
        changed
    }
}

/// Injects one malformed field; returns its name and the cell's new text.
fn malform(g: &mut ChunkGen, d: &mut Draft, plan: &ClaimsPlan) -> (&'static str, String) {
    match g.rng.gen_range(0..5) {
        0 => {
            // The check digit off by one.
            let mut b = d.insurer.clone().into_bytes();
            let last = b.len() - 1;
            b[last] = b'0' + (b[last] - b'0' + 1) % 10;
            d.insurer = String::from_utf8(b).unwrap_or_default();
            ("HO 2", String::new())
        }
        1 => {
            let (y, _, _) = d.birth.ymd();
            d.birth_text = format!("{y:04}0231");
            ("RE 7", String::new())
        }
        2 => ("HO 6", "12O".into()),
        3 => {
            let day = d.days.first().copied().unwrap_or(1).min(plan.days);
            d.days = vec![day];
            let field: &'static str = DAY_FIELDS[usize::from(day) - 1];
            (field, "x".into())
        }
        _ => ("record", "ZZ".into()),
    }
}

/// `SI` field names of the day columns 1–31 (fields 14–44).
const DAY_FIELDS: [&str; 31] = [
    "SI 14", "SI 15", "SI 16", "SI 17", "SI 18", "SI 19", "SI 20", "SI 21", "SI 22", "SI 23",
    "SI 24", "SI 25", "SI 26", "SI 27", "SI 28", "SI 29", "SI 30", "SI 31", "SI 32", "SI 33",
    "SI 34", "SI 35", "SI 36", "SI 37", "SI 38", "SI 39", "SI 40", "SI 41", "SI 42", "SI 43",
    "SI 44",
];

/// The verdict a correct check gives, from the ground truth day by day; `None` where the
/// truth leaves an answer open or a covering record's text is not the one generated.
fn expected(
    truth: &Truth,
    rows: &[Row],
    d: &Draft,
    plan: &ClaimsPlan,
) -> Option<(&'static str, String, Vec<u8>)> {
    let every_day = d.days.is_empty();
    let days: Vec<u8> = if every_day {
        (1..=plan.days).collect()
    } else {
        d.days.clone()
    };
    let mut by: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
    let (mut covered, mut sex_differs, mut kana_differs) = (0, false, false);
    for &day in &days {
        let date = plan.day(day);
        let (v, rec) = truth.card_record(d.key, d.branch, d.birth, date)?;
        let reason = match v {
            1 => {
                let id = rec? as usize;
                if rows[id].tag.is_some() || rows[id].over.is_some() {
                    return None;
                }
                covered += 1;
                let r = &rows[id].rec;
                sex_differs |= r.sex != 3 && r.sex != d.sex;
                let kana = name_of(r.family, r.given).1;
                kana_differs |= kana.replace(' ', "") != d.kana.replace(' ', "");
                continue;
            }
            2 => {
                let r = &truth.recs[rec? as usize];
                if r.disq.is_some_and(|e| date >= e) {
                    "lost"
                } else {
                    "not_yet"
                }
            }
            3 => "other_qualification",
            4 => "not_found",
            _ => "multiple",
        };
        by.entry(reason).or_default().push(day);
    }
    if every_day && covered > 0 && covered < days.len() {
        return Some(("check", "partial_month".into(), Vec::new()));
    }
    for reason in [
        "not_found",
        "multiple",
        "other_qualification",
        "lost",
        "not_yet",
    ] {
        if let Some(days) = by.get(reason) {
            return Some(("return", reason.into(), days.clone()));
        }
    }
    if sex_differs {
        return Some(("check", "sex_differs".into(), Vec::new()));
    }
    if kana_differs {
        return Some(("check", "kana_differs".into(), Vec::new()));
    }
    Some(("ok", String::new(), Vec::new()))
}

/// The draft of a receipt without `HO` of a person (family, given, sex, birthdate).
fn no_ho_draft(who: (u16, u16, u8, Date), days: Vec<u8>) -> Draft {
    let (family, given, sex, birth) = who;
    let (name, kana) = name_of(family, given);
    Draft {
        key: (0, (0, 0), 0),
        insurer: String::new(),
        symbol: String::new(),
        number: String::new(),
        branch: None,
        birth,
        birth_text: birth.to_compact(),
        sex,
        name,
        kana,
        days,
        malformed: None,
        no_ho: true,
        ko: Vec::new(),
        institution: None,
    }
}

/// A receipt of public expense only (no `HO`) whose `KO` names a payer whose list is not
/// held: nothing to check (`unchecked` `kohi_not_held`). Without `kohi` its one `KO` is
/// 医療扶助 of Tokyo, as it always was; with it, a payer no register holds.
fn public_only(g: &mut ChunkGen, rows: &[Row], plan: &ClaimsPlan, kohi: bool) -> GenReceipt {
    let rec = &rows[g.rng.gen_range(0..rows.len())].rec;
    let who = (rec.family, rec.given, rec.sex, rec.birth);
    let mut d = no_ho_draft(who, vec![g.rng.gen_range(1..=plan.days)]);
    if kohi {
        let line = unheld_line(g);
        d.ko = vec![(line.payer, line.recipient)];
    }
    render(g, &d, plan, "unchecked", "kohi_not_held".into(), Vec::new())
}

/// The records of a receipt: `RE` (its tail), `HO`, `SN`, `KO`, `SY`, `SI`, `IY`.
fn render(
    g: &mut ChunkGen,
    d: &Draft,
    plan: &ClaimsPlan,
    verdict: &'static str,
    reason: String,
    days: Vec<u8>,
) -> GenReceipt {
    let (y, m, _) = plan.first.ymd();
    let month = if g.rng.gen_bool(0.15) {
        // 令和 as the era code form GYYMM.
        format!("5{:02}{m:02}", y - 2018)
    } else {
        format!("{y:04}{m:02}")
    };
    let mut re_tail = String::with_capacity(160);
    let _ = write!(
        re_tail,
        "1112,{month},{},{},{},",
        d.name, d.sex, d.birth_text
    );
    // Fields 8-36 empty, 37 the katakana name.
    re_tail.push_str(&",".repeat(29));
    re_tail.push_str(&d.kana);
    let bad = |field: &str| {
        d.malformed
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, v)| v.as_str())
    };
    let mut body = String::with_capacity(400);
    let points: u32 = g.rng.gen_range(100..20_000);
    if !d.no_ho {
        let insurer = if d.insurer.len() == 6 {
            format!("  {}", d.insurer)
        } else {
            d.insurer.clone()
        };
        let points = bad("HO 6").map_or(points.to_string(), str::to_string);
        let _ = writeln!(
            body,
            "HO,{insurer},{},{},{},{points},,,,,,,,,",
            d.symbol,
            d.number,
            d.days.len().max(1)
        );
    }
    for (payer, recipient) in &d.ko {
        let _ = writeln!(body, "KO,{payer},{recipient},,{},,,,,", d.days.len().max(1));
    }
    if !d.no_ho {
        if let Some(b) = d.branch {
            let _ = writeln!(body, "SN,1,01,,,,{b:02},,");
        }
    } else if d.ko.is_empty() {
        // 医療扶助 of Tokyo (payer 12136016, recipient 1234566: valid check digits).
        body.push_str(
            "KO,12136016,1234566,,1,,,,,
",
        );
    }
    body.push_str("SY,8840107,,1,,,,,\n");
    let mut cells = vec![""; 31];
    for &day in &d.days {
        cells[usize::from(day) - 1] = "1";
    }
    let day_bad = d
        .malformed
        .as_ref()
        .filter(|(f, _)| f.starts_with("SI "))
        .map(|(_, v)| v.as_str());
    if let (Some(v), Some(&day)) = (day_bad, d.days.first()) {
        cells[usize::from(day) - 1] = v;
    }
    let _ = writeln!(
        body,
        "SI,12,1,112007410,,288,{},,,,,,,{}",
        d.days.len().max(1),
        cells.join(",")
    );
    if g.rng.gen_bool(0.4) {
        let mut iy = vec![""; 31];
        for &day in &d.days {
            iy[usize::from(day) - 1] = "1";
        }
        let _ = writeln!(
            body,
            "IY,21,1,620000033,1,3,{},,,,,,,{}",
            d.days.len().max(1),
            iy.join(",")
        );
    }
    if let Some(v) = bad("record") {
        let _ = writeln!(body, "{v},1,2,3");
    }
    GenReceipt {
        institution: d
            .institution
            .unwrap_or_else(|| g.rng.gen_range(0..plan.institutions)),
        re_tail,
        body,
        verdict,
        reason,
        days,
        points: if d.no_ho || bad("HO 6").is_some() {
            0
        } else {
            u64::from(points)
        },
        with_ko: false,
    }
}
