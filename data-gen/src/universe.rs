//! The insurers: numbers, names, kinds, relative sizes, and each one's file-writing habits.
//!
//! Counts and sizes follow March 2020: 協会けんぽ 40.4M in 47 branches, 組合健保 28.8M in 1,388
//! (Zipf-like), 共済 8.5M in 85, 市町村国保 26.6M in ~1,716 municipalities, 国保組合 2.7M in 158,
//! 後期高齢者 18.0M in 47, 船員保険 0.1M in 1. Below a million persons the number of insurers
//! shrinks (as persons^0.7) so that small data sets do not consist of empty files.

use crate::tables::{
    COMPANY_REGIONS, COMPANY_TRADES, KOKUHO_KUMIAI_TRADES, NATIONAL_KYOSAI, PLACE_PARTS,
    PREFECTURES,
};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;
use shikaku::domain::{InsurerKind, InsurerNumber};

/// Columns of docs/delivery.md in their canonical order, plus the unknown `memo` column some insurers add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    InsurerNumber,
    Symbol,
    Number,
    Branch,
    IndividualNumber,
    Name,
    NameKana,
    Sex,
    Birthdate,
    Relationship,
    Qualification,
    Disqualification,
    Reason,
    Copay,
    Limit,
    Memo,
}

pub const CANONICAL_COLUMNS: [Col; 15] = [
    Col::InsurerNumber,
    Col::Symbol,
    Col::Number,
    Col::Branch,
    Col::IndividualNumber,
    Col::Name,
    Col::NameKana,
    Col::Sex,
    Col::Birthdate,
    Col::Relationship,
    Col::Qualification,
    Col::Disqualification,
    Col::Reason,
    Col::Copay,
    Col::Limit,
];

impl Col {
    pub fn header(self) -> &'static str {
        match self {
            Col::InsurerNumber => "insurer_number",
            Col::Symbol => "symbol",
            Col::Number => "number",
            Col::Branch => "branch",
            Col::IndividualNumber => "individual_number",
            Col::Name => "name",
            Col::NameKana => "name_kana",
            Col::Sex => "sex",
            Col::Birthdate => "birthdate",
            Col::Relationship => "relationship",
            Col::Qualification => "qualification_date",
            Col::Disqualification => "disqualification_date",
            Col::Reason => "reason_of_loss",
            Col::Copay => "copay_ratio",
            Col::Limit => "limit_category",
            Col::Memo => "memo",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf8Bom,
    Cp932,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateStyle {
    Iso,
    Compact,
    WarekiLetter,
    WarekiCode,
}

/// How an insurer's card symbols look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolStyle {
    /// 後期高齢者: no symbol.
    None,
    /// Digits zero-padded to `width` (0: not padded) below `max`.
    Digits { width: u8, max: u32 },
    /// 協会けんぽ: 8 digits, prefecture code first (so often a leading zero).
    Kyokai,
    /// A word (kanji, kana or Latin with hyphen) and two digits.
    Word,
}

/// The ways an insurer's system writes its file. Each is legal under docs/delivery.md.
#[derive(Debug, Clone)]
pub struct Habit {
    pub encoding: Encoding,
    pub crlf: bool,
    pub dates: DateStyle,
    /// Digits of symbol, number, branch and dates written full-width.
    pub fullwidth: bool,
    /// name_kana in half-width katakana (old mainframe output).
    pub halfwidth_kana: bool,
    /// copay_ratio as `3割`.
    pub copay_wari: bool,
    pub quote_all: bool,
    /// number zero-padded to 10 digits.
    pub pad_number: bool,
    /// 6-digit insurer numbers padded to 8 characters with leading spaces.
    pub pad_insurer: bool,
    /// Branch of the insured person: 00 or 01.
    pub head_branch: u8,
    pub columns: Vec<Col>,
    pub symbol: SymbolStyle,
}

#[derive(Debug, Clone)]
pub struct Insurer {
    pub number: InsurerNumber,
    pub name: String,
    pub kind: InsurerKind,
    /// Prefecture index 0..47.
    pub pref: u8,
    pub weight: f64,
    pub habit: Habit,
}

/// Weighted choice among insurers by binary search over cumulative weights.
#[derive(Debug, Clone, Default)]
pub struct Picker {
    ids: Vec<u32>,
    cum: Vec<f64>,
}

impl Picker {
    fn push(&mut self, id: u32, weight: f64) {
        let last = self.cum.last().copied().unwrap_or(0.0);
        self.ids.push(id);
        self.cum.push(last + weight.max(1e-12));
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn pick(&self, rng: &mut Xoshiro256PlusPlus) -> Option<u32> {
        let total = *self.cum.last()?;
        let x = rng.gen::<f64>() * total;
        let i = self
            .cum
            .partition_point(|&c| c <= x)
            .min(self.ids.len() - 1);
        Some(self.ids[i])
    }
}

pub const KIND_COUNT: usize = 7;

pub fn kind_index(kind: InsurerKind) -> usize {
    kind.code() as usize - 1
}

/// All insurers of one generated data set and the tables that pick one for a household.
#[derive(Debug, Clone)]
pub struct Universe {
    pub insurers: Vec<Insurer>,
    by_kind: Vec<Picker>,
    kyokai_by_pref: Vec<Option<u32>>,
    koki_by_pref: Vec<Option<u32>>,
    kokuho_by_pref: Vec<Picker>,
    /// With defects: the insurer whose file is made undecodable (and so rejected whole).
    pub undecodable: Option<u32>,
    /// Insurers that also get an older, small snapshot file.
    pub older: Vec<u32>,
}

/// Real numbers of insurers per kind (March 2020).
const REAL_KUMIAI: f64 = 1388.0;
const REAL_KOKUHO: f64 = 1716.0;
const REAL_KOKUHO_KUMIAI: f64 = 158.0;

/// Scale of insurer counts: 1 from a million persons up; fewer insurers below.
fn count_scale(persons: u64) -> f64 {
    (persons as f64 / 1e6).min(1.0).powf(0.7)
}

fn scaled(real: f64, s: f64) -> usize {
    ((real * s).round() as usize).max(1)
}

fn pref_pop(p: usize) -> f64 {
    PREFECTURES[p].1 as f64
}

fn body(digits: &str) -> InsurerNumber {
    InsurerNumber::from_body(digits).expect("generated insurer bodies are 5 or 7 digits")
}

/// Chooses a prefecture with probability ∝ population^exp.
fn weighted_pref(rng: &mut Xoshiro256PlusPlus, exp: f64) -> usize {
    let total: f64 = (0..47).map(|p| pref_pop(p).powf(exp)).sum();
    let mut x = rng.gen::<f64>() * total;
    for p in 0..47 {
        x -= pref_pop(p).powf(exp);
        if x <= 0.0 {
            return p;
        }
    }
    46
}

struct Builder {
    insurers: Vec<Insurer>,
    rng: Xoshiro256PlusPlus,
}

impl Builder {
    fn add(&mut self, number: InsurerNumber, name: String, kind: InsurerKind, pref: usize, w: f64) {
        let habit = random_habit(&mut self.rng, kind, number.as_str().len() == 6);
        self.insurers.push(Insurer {
            number,
            name,
            kind,
            pref: pref as u8,
            weight: w,
            habit,
        });
    }

    fn place_name(&mut self) -> String {
        let a = PLACE_PARTS.choose(&mut self.rng).copied().unwrap_or("山");
        let b = PLACE_PARTS.choose(&mut self.rng).copied().unwrap_or("田");
        let suffix = ["市", "市", "町", "町", "村"]
            .choose(&mut self.rng)
            .copied()
            .unwrap_or("市");
        format!("{a}{b}{suffix}")
    }
}

impl Universe {
    pub fn build(persons: u64, seed: u64, with_defects: bool) -> Universe {
        let s = count_scale(persons);
        let mut b = Builder {
            insurers: Vec::new(),
            rng: crate::rng_for(seed, u64::MAX),
        };
        add_kyokai_and_koki(&mut b, s);
        b.add(
            body("0213001"),
            "全国健康保険協会 船員保険部".into(),
            InsurerKind::Senin,
            12,
            1.0,
        );
        add_kumiai(&mut b, s);
        add_kyosai(&mut b, s);
        add_kokuho(&mut b, s);
        add_kokuho_kumiai(&mut b, s);
        force_habit_variety(&mut b.insurers);
        let mut u = Universe::index(b.insurers);
        u.choose_special_files(&mut b.rng, with_defects);
        u
    }

    fn index(insurers: Vec<Insurer>) -> Universe {
        let mut by_kind = vec![Picker::default(); KIND_COUNT];
        let mut kyokai_by_pref = vec![None; 47];
        let mut koki_by_pref = vec![None; 47];
        let mut kokuho_by_pref = vec![Picker::default(); 47];
        for (i, ins) in insurers.iter().enumerate() {
            let id = i as u32;
            let p = ins.pref as usize;
            by_kind[kind_index(ins.kind)].push(id, ins.weight);
            match ins.kind {
                InsurerKind::Kyokai => kyokai_by_pref[p] = Some(id),
                InsurerKind::Koki => koki_by_pref[p] = Some(id),
                InsurerKind::Kokuho => kokuho_by_pref[p].push(id, ins.weight),
                _ => {}
            }
        }
        Universe {
            insurers,
            by_kind,
            kyokai_by_pref,
            koki_by_pref,
            kokuho_by_pref,
            undecodable: None,
            older: Vec::new(),
        }
    }

    /// The undecodable file goes to a small 組合健保 (its members vanish from the build, as
    /// they would); older snapshots go to about 1% of the others.
    fn choose_special_files(&mut self, rng: &mut Xoshiro256PlusPlus, with_defects: bool) {
        if with_defects {
            self.undecodable = self
                .insurers
                .iter()
                .enumerate()
                .filter(|(_, i)| i.kind == InsurerKind::Kumiai)
                .min_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
                .map(|(i, _)| i as u32);
        }
        let want = (self.insurers.len() / 100).max(1);
        let mut candidates: Vec<u32> = (0..self.insurers.len() as u32)
            .filter(|&i| Some(i) != self.undecodable)
            .collect();
        candidates.shuffle(rng);
        candidates.truncate(want);
        candidates.sort_unstable();
        self.older = candidates;
    }

    /// An insurer of `kind` for a household living in prefecture `pref`; regional insurers
    /// (協会けんぽ branches, 広域連合, municipalities) follow the prefecture when it has one.
    pub fn pick(&self, kind: InsurerKind, pref: usize, rng: &mut Xoshiro256PlusPlus) -> u32 {
        let regional = match kind {
            InsurerKind::Kyokai => self.kyokai_by_pref[pref],
            InsurerKind::Koki => self.koki_by_pref[pref],
            InsurerKind::Kokuho => self.kokuho_by_pref[pref].pick(rng),
            _ => None,
        };
        regional
            .or_else(|| self.by_kind[kind_index(kind)].pick(rng))
            .unwrap_or(0)
    }

    pub fn has_kind(&self, kind: InsurerKind) -> bool {
        !self.by_kind[kind_index(kind)].is_empty()
    }
}

fn add_kyokai_and_koki(b: &mut Builder, s: f64) {
    // With fewer than 47 branches, the most populous prefectures keep theirs.
    let n = scaled(47.0, s).min(47);
    let mut prefs: Vec<usize> = (0..47).collect();
    prefs.sort_by(|&a, &c| pref_pop(c).total_cmp(&pref_pop(a)));
    prefs.truncate(n);
    prefs.sort_unstable();
    for &p in &prefs {
        let pp = p + 1;
        let name = format!("全国健康保険協会 {}支部", PREFECTURES[p].0);
        b.add(
            body(&format!("01{pp:02}001")),
            name,
            InsurerKind::Kyokai,
            p,
            pref_pop(p),
        );
    }
    for &p in &prefs {
        let pp = p + 1;
        let name = format!("{}後期高齢者医療広域連合", PREFECTURES[p].0);
        b.add(
            body(&format!("39{pp:02}101")),
            name,
            InsurerKind::Koki,
            p,
            pref_pop(p),
        );
    }
}

/// 組合健保: very uneven sizes, weight 1/(rank+3) (the largest ≈5% of the kind, like the
/// biggest real ones), concentrated in Tokyo and Osaka.
fn add_kumiai(b: &mut Builder, s: f64) {
    let n = scaled(REAL_KUMIAI, s);
    let mut seq = [0u32; 47];
    for rank in 0..n {
        let p = weighted_pref(&mut b.rng, 1.5);
        seq[p] += 1;
        if seq[p] > 999 {
            continue;
        }
        let region = COMPANY_REGIONS
            .choose(&mut b.rng)
            .copied()
            .unwrap_or("日本");
        let trade = COMPANY_TRADES.choose(&mut b.rng).copied().unwrap_or("電機");
        let name = format!("{region}{trade}健康保険組合");
        let number = body(&format!("06{:02}{:03}", p + 1, seq[p]));
        b.add(
            number,
            name,
            InsurerKind::Kumiai,
            p,
            1.0 / (rank as f64 + 3.0),
        );
    }
}

/// 共済: 国家公務員 (31) ≈21%, 地方公務員 (32) ≈62%, 警察 (33) ≈7%, 私学 (34) ≈10% of the kind.
fn add_kyosai(b: &mut Builder, s: f64) {
    let n31 = scaled(20.0, s).min(NATIONAL_KYOSAI.len());
    for (i, ministry) in NATIONAL_KYOSAI.iter().take(n31).enumerate() {
        let w = 0.21 / zipf_norm(n31, 1.0) / (i as f64 + 1.0);
        let number = body(&format!("3113{:03}", i + 1));
        b.add(
            number,
            format!("{ministry}共済組合"),
            InsurerKind::Kyosai,
            12,
            w,
        );
    }
    let n32 = scaled(63.0, s);
    let mut seq = [0u32; 47];
    for i in 0..n32 {
        let p = if i < 47 && n32 >= 47 {
            i
        } else {
            weighted_pref(&mut b.rng, 1.0)
        };
        seq[p] += 1;
        let name = if seq[p] == 1 {
            format!("地方職員共済組合 {}支部", PREFECTURES[p].0)
        } else {
            format!("{}{}職員共済組合", PREFECTURES[p].0, b.place_name())
        };
        let w = 0.62 * pref_pop(p) / 126_000.0 * 47.0 / n32 as f64;
        b.add(
            body(&format!("32{:02}{:03}", p + 1, seq[p])),
            name,
            InsurerKind::Kyosai,
            p,
            w,
        );
    }
    b.add(
        body("3313001"),
        "警察共済組合".into(),
        InsurerKind::Kyosai,
        12,
        0.07,
    );
    b.add(
        body("3413001"),
        "日本私立学校振興・共済事業団".into(),
        InsurerKind::Kyosai,
        12,
        0.10,
    );
}

fn zipf_norm(n: usize, offset: f64) -> f64 {
    (0..n).map(|i| 1.0 / (i as f64 + offset)).sum()
}

/// 市町村国保: each prefecture's municipalities, a large city first and villages last.
fn add_kokuho(b: &mut Builder, s: f64) {
    let real_total: f64 = PREFECTURES.iter().map(|p| p.2 as f64).sum();
    let mut added = 0;
    for (p, pref) in PREFECTURES.iter().enumerate() {
        let n = (pref.2 as f64 * REAL_KOKUHO / real_total * s).round() as usize;
        let norm = zipf_norm(n, 1.0);
        for r in 0..n {
            let w = pref_pop(p) / norm / (r as f64 + 1.0);
            let name = format!("{}{}", pref.0, b.place_name());
            b.add(
                body(&format!("{:02}{:03}", p + 1, r + 1)),
                name,
                InsurerKind::Kokuho,
                p,
                w,
            );
            added += 1;
        }
    }
    if added == 0 {
        b.add(
            body("13001"),
            "東京都中央区".into(),
            InsurerKind::Kokuho,
            12,
            1.0,
        );
    }
}

/// 国保組合: trade unions of the self-employed, numbered 300 and up within the prefecture.
fn add_kokuho_kumiai(b: &mut Builder, s: f64) {
    let n = scaled(REAL_KOKUHO_KUMIAI, s);
    let mut seq = [0u32; 47];
    for rank in 0..n {
        let p = weighted_pref(&mut b.rng, 1.3);
        seq[p] += 1;
        if seq[p] > 699 {
            continue;
        }
        let trade = KOKUHO_KUMIAI_TRADES
            .choose(&mut b.rng)
            .copied()
            .unwrap_or("建設");
        let name = format!("{}{trade}国民健康保険組合", PREFECTURES[p].0);
        b.add(
            body(&format!("{:02}{:03}", p + 1, 300 + seq[p])),
            name,
            InsurerKind::KokuhoKumiai,
            p,
            1.0 / (rank as f64 + 2.0),
        );
    }
}

fn random_habit(rng: &mut Xoshiro256PlusPlus, kind: InsurerKind, six_digits: bool) -> Habit {
    let r: f64 = rng.gen();
    let encoding = if r < 0.20 {
        Encoding::Cp932
    } else if r < 0.35 {
        Encoding::Utf8Bom
    } else {
        Encoding::Utf8
    };
    let r: f64 = rng.gen();
    let dates = if r < 0.55 {
        DateStyle::Iso
    } else if r < 0.70 {
        DateStyle::Compact
    } else if r < 0.85 {
        DateStyle::WarekiLetter
    } else {
        DateStyle::WarekiCode
    };
    let mut columns = CANONICAL_COLUMNS.to_vec();
    if rng.gen_bool(0.4) {
        columns.shuffle(rng);
    }
    if rng.gen_bool(0.1) {
        let at = rng.gen_range(0..=columns.len());
        columns.insert(at, Col::Memo);
    }
    Habit {
        encoding,
        crlf: rng.gen_bool(0.35),
        dates,
        fullwidth: rng.gen_bool(0.08),
        halfwidth_kana: rng.gen_bool(if encoding == Encoding::Cp932 {
            0.4
        } else {
            0.05
        }),
        copay_wari: rng.gen_bool(0.1),
        quote_all: rng.gen_bool(0.1),
        pad_number: rng.gen_bool(0.15),
        pad_insurer: six_digits && rng.gen_bool(0.4),
        head_branch: if kind == InsurerKind::Koki || rng.gen_bool(0.6) {
            0
        } else {
            1
        },
        columns,
        symbol: symbol_style(rng, kind),
    }
}

fn symbol_style(rng: &mut Xoshiro256PlusPlus, kind: InsurerKind) -> SymbolStyle {
    match kind {
        InsurerKind::Koki => SymbolStyle::None,
        InsurerKind::Kyokai => SymbolStyle::Kyokai,
        InsurerKind::Kyosai => SymbolStyle::Word,
        InsurerKind::Kumiai | InsurerKind::Kokuho if rng.gen_bool(0.25) => SymbolStyle::Word,
        InsurerKind::Kokuho => SymbolStyle::Digits { width: 2, max: 99 },
        _ => SymbolStyle::Digits {
            width: if rng.gen_bool(0.3) { 4 } else { 0 },
            max: 9999,
        },
    }
}

/// Makes sure even a small data set shows every habit: the largest insurers (those with rows)
/// each take one.
fn force_habit_variety(insurers: &mut [Insurer]) {
    let mut order: Vec<usize> = (0..insurers.len()).collect();
    order.sort_by(|&a, &b| insurers[b].weight.total_cmp(&insurers[a].weight));
    // Weights are comparable within a kind only; interleave kinds so each habit lands on a
    // well-populated insurer.
    let mut firsts: Vec<usize> = Vec::new();
    for kind in InsurerKind::ALL {
        firsts.extend(
            order
                .iter()
                .copied()
                .filter(|&i| insurers[i].kind == *kind)
                .take(3),
        );
    }
    for (n, &i) in firsts.iter().enumerate() {
        let h = &mut insurers[i].habit;
        match n % 12 {
            0 => h.encoding = Encoding::Cp932,
            1 => h.encoding = Encoding::Utf8Bom,
            2 => h.crlf = true,
            3 => h.dates = DateStyle::WarekiLetter,
            4 => h.dates = DateStyle::WarekiCode,
            5 => h.fullwidth = true,
            6 => h.columns.reverse(),
            7 => h.columns.push(Col::Memo),
            8 => h.quote_all = true,
            9 => h.halfwidth_kana = true,
            10 => h.copay_wari = true,
            _ => h.pad_number = true,
        }
    }
    if !insurers.iter().any(|i| i.habit.symbol == SymbolStyle::Word) {
        if let Some(i) = insurers.iter_mut().find(|i| i.kind == InsurerKind::Kumiai) {
            i.habit.symbol = SymbolStyle::Word;
        }
    }
}
