//! A small, independent reader of generated trees for the tests: decodes files the way
//! docs/delivery.md says, validates rows with the root crate's parsers, and answers queries naively
//! from what was read (not from the generator's own model).

#![allow(dead_code)]

use encoding_rs::SHIFT_JIS;
use shikaku::domain::{
    covers, normalize_card_text, Branch, CopayRatio, Date, IndividualNumber, InsurerNumber,
    LimitCategory, ReasonOfLoss, Relationship, Sex,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

pub fn generate(
    persons: u64,
    seed: u64,
    rate: f64,
    queries: u64,
) -> (tempfile::TempDir, data_gen::Summary) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = data_gen::Config::new(persons, seed, dir.path().join("out"));
    cfg.date = snapshot_date();
    cfg.defect_rate = rate;
    cfg.queries = queries;
    let summary = data_gen::generate(&cfg).expect("generate");
    (dir, summary)
}

pub fn snapshot_date() -> Date {
    Date::from_ymd(2025, 11, 24).unwrap()
}

pub fn out(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("out")
}

/// Decodes as docs/delivery.md: UTF-8 (BOM optional) or CP932; `None` when neither.
pub fn decode(bytes: &[u8]) -> Option<String> {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(b) {
        return Some(s.to_string());
    }
    SHIFT_JIS
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|c| c.into_owned())
}

#[derive(Debug, Clone)]
pub struct Line {
    pub line: u64,
    pub fields: HashMap<String, String>,
    pub raw: Vec<String>,
}

#[derive(Debug)]
pub struct SnapFile {
    pub rel: String,
    pub dir: String,
    pub date: String,
    pub lines: Option<Vec<Line>>,
}

pub struct Tree {
    pub insurers: BTreeMap<String, String>,
    pub files: Vec<SnapFile>,
}

pub fn read_tree(root: &Path) -> Tree {
    let text = std::fs::read_to_string(root.join("insurers.csv")).unwrap();
    let mut insurers = BTreeMap::new();
    for l in text.lines().skip(1) {
        let parts: Vec<&str> = l.split(',').collect();
        insurers.insert(parts[0].to_string(), parts[2].to_string());
    }
    let mut files = Vec::new();
    for number in insurers.keys() {
        let mut names: Vec<String> = std::fs::read_dir(root.join(number))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let rel = format!("{number}/{name}");
            let bytes = std::fs::read(root.join(&rel)).unwrap();
            let lines = decode(&bytes).map(|t| parse_csv(&t));
            files.push(SnapFile {
                rel,
                dir: number.clone(),
                date: name.trim_end_matches(".csv").to_string(),
                lines,
            });
        }
    }
    Tree { insurers, files }
}

/// Parses CSV line by line (no generated field holds a line break), so that line numbers
/// are physical lines (the header is line 1).
pub fn parse_csv(text: &str) -> Vec<Line> {
    let split = |l: &str| -> Vec<String> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(l.as_bytes());
        let rec = rdr
            .records()
            .next()
            .expect("one record")
            .expect("valid CSV");
        rec.iter().map(str::to_string).collect()
    };
    let mut physical = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let headers = split(physical.next().expect("header"));
    let mut out = Vec::new();
    for (i, l) in physical.enumerate() {
        if l.is_empty() {
            continue;
        }
        let raw = split(l);
        assert_eq!(raw.len(), headers.len(), "line {}", i + 2);
        let fields = headers.iter().cloned().zip(raw.iter().cloned()).collect();
        out.push(Line {
            line: i as u64 + 2,
            fields,
            raw,
        });
    }
    out
}

/// A validated record (docs/delivery.md), normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rec {
    pub insurer: String,
    pub symbol: String,
    pub number: String,
    pub branch: u8,
    pub indnum: Option<[u8; 12]>,
    pub kana: String,
    pub sex: u8,
    pub birth: Date,
    pub qual: Date,
    pub disq: Option<Date>,
    pub copay: u8,
    pub limit: Option<String>,
    pub name: String,
}

fn opt(f: &HashMap<String, String>, k: &str) -> String {
    f.get(k).cloned().unwrap_or_default()
}

/// Validates one row; `Err(rule)` for R1–R7.
pub fn validate(line: &Line, dir: &str, today: Date) -> Result<Rec, &'static str> {
    let f = &line.fields;
    let ins = InsurerNumber::parse(&opt(f, "insurer_number")).map_err(|_| "R1")?;
    if ins.as_str() != dir {
        return Err("R1");
    }
    let number = normalize_card_text(&opt(f, "number")).map_err(|_| "R2")?;
    if number.is_empty() {
        return Err("R2");
    }
    let symbol = normalize_card_text(&opt(f, "symbol")).map_err(|_| "R2")?;
    let branch = Branch::parse_exact(&opt(f, "branch")).map_err(|_| "R3")?;
    let birth = Date::parse(&opt(f, "birthdate")).map_err(|_| "R4")?;
    if birth > today || birth < Date::meiji_first() {
        return Err("R4");
    }
    let qual = Date::parse(&opt(f, "qualification_date")).map_err(|_| "R5")?;
    if qual < birth {
        return Err("R5");
    }
    let d = opt(f, "disqualification_date");
    let disq = if d.trim().is_empty() {
        None
    } else {
        let d = Date::parse(&d).map_err(|_| "R6")?;
        if d <= qual {
            return Err("R6");
        }
        Some(d)
    };
    let sex = Sex::parse(&opt(f, "sex")).ok_or("R7")?;
    Relationship::parse(&opt(f, "relationship")).ok_or("R7")?;
    let reason = opt(f, "reason_of_loss");
    if !reason.is_empty() {
        ReasonOfLoss::parse(&reason).ok_or("R7")?;
    }
    let copay = CopayRatio::parse(&opt(f, "copay_ratio")).ok_or("R7")?;
    let limit = opt(f, "limit_category");
    if !limit.is_empty() {
        LimitCategory::parse(&limit).ok_or("R7")?;
    }
    let indnum = IndividualNumber::parse(&opt(f, "individual_number"))
        .ok()
        .map(|n| *n.expose_digits());
    Ok(Rec {
        insurer: ins.as_str().to_string(),
        symbol,
        number,
        branch: branch.value(),
        indnum,
        kana: opt(f, "name_kana"),
        sex: sex.code(),
        birth,
        qual,
        disq,
        copay: copay.percent(),
        limit: (!limit.is_empty()).then_some(limit),
        name: opt(f, "name"),
    })
}

/// The naive index of the newest decodable files.
pub struct Naive {
    pub recs: Vec<Rec>,
    cards: HashMap<(String, String, String), Vec<usize>>,
    persons: HashMap<[u8; 12], Vec<usize>>,
    unverified: HashSet<[u8; 12]>,
}

pub fn newest_files(tree: &Tree) -> Vec<&SnapFile> {
    let mut newest: BTreeMap<&str, &SnapFile> = BTreeMap::new();
    for f in &tree.files {
        let e = newest.entry(f.dir.as_str()).or_insert(f);
        if f.date > e.date {
            *e = f;
        }
    }
    newest.into_values().collect()
}

impl Naive {
    pub fn build(tree: &Tree, today: Date) -> Naive {
        let mut set = HashSet::new();
        let mut recs = Vec::new();
        for f in newest_files(tree) {
            let Some(lines) = &f.lines else { continue };
            for l in lines {
                if let Ok(r) = validate(l, &f.dir, today) {
                    if set.insert(r.clone()) {
                        recs.push(r);
                    }
                }
            }
        }
        let mut cards: HashMap<_, Vec<usize>> = HashMap::new();
        let mut persons: HashMap<_, Vec<usize>> = HashMap::new();
        for (i, r) in recs.iter().enumerate() {
            cards
                .entry((r.insurer.clone(), r.symbol.clone(), r.number.clone()))
                .or_default()
                .push(i);
            if let Some(n) = r.indnum {
                persons.entry(n).or_default().push(i);
            }
        }
        let unverified = persons
            .iter()
            .filter(|(_, ids)| {
                ids.iter().any(|&i| {
                    recs[i].birth != recs[ids[0]].birth || recs[i].sex != recs[ids[0]].sex
                })
            })
            .map(|(n, _)| *n)
            .collect();
        Naive {
            recs,
            cards,
            persons,
            unverified,
        }
    }

    pub fn card(
        &self,
        key: (String, String, String),
        branch: Option<u8>,
        birth: Date,
        date: Date,
    ) -> Option<u8> {
        let c: Vec<&Rec> = self
            .cards
            .get(&key)
            .map(|v| v.iter().map(|&i| &self.recs[i]).collect())
            .unwrap_or_default();
        let c: Vec<&Rec> = c
            .into_iter()
            .filter(|r| r.birth == birth && branch.is_none_or(|b| r.branch == b))
            .collect();
        if c.is_empty() {
            return Some(4);
        }
        if c.iter().any(|r| r.branch != c[0].branch) {
            return Some(5);
        }
        match c.iter().filter(|r| covers(r.qual, r.disq, date)).count() {
            0 => {}
            1 => return Some(1),
            _ => return Some(5),
        }
        let nums: HashSet<[u8; 12]> = c
            .iter()
            .filter_map(|r| r.indnum)
            .filter(|n| !self.unverified.contains(n))
            .collect();
        match nums.len() {
            0 => Some(2),
            1 => {
                let n = nums.iter().next().unwrap();
                let other = self.persons[n]
                    .iter()
                    .any(|&i| covers(self.recs[i].qual, self.recs[i].disq, date));
                Some(if other { 3 } else { 2 })
            }
            _ => None,
        }
    }

    pub fn person(&self, n: [u8; 12], date: Date) -> u8 {
        if self.unverified.contains(&n) {
            return 4;
        }
        let Some(ids) = self.persons.get(&n) else {
            return 4;
        };
        match ids
            .iter()
            .filter(|&&i| covers(self.recs[i].qual, self.recs[i].disq, date))
            .count()
        {
            0 => 2,
            1 => 1,
            _ => 5,
        }
    }

    /// Answers one line of queries.csv; returns (expected column, naive answer).
    pub fn answer(&self, q: &Line) -> (u8, Option<u8>) {
        let f = &q.fields;
        let expected: u8 = opt(f, "expected").parse().unwrap();
        let date = Date::parse(&opt(f, "date")).expect("query date");
        let got = if opt(f, "kind") == "person" {
            let n = IndividualNumber::parse(&opt(f, "individual_number")).expect("number");
            Some(self.person(*n.expose_digits(), date))
        } else {
            let ins = InsurerNumber::parse(&opt(f, "insurer_number")).expect("insurer");
            let sym = normalize_card_text(&opt(f, "symbol")).expect("symbol");
            let num = normalize_card_text(&opt(f, "number")).expect("number");
            let b = opt(f, "branch");
            let branch = (!b.is_empty()).then(|| Branch::parse_query(&b).expect("branch").value());
            let birth = Date::parse(&opt(f, "birthdate")).expect("birthdate");
            self.card((ins.as_str().to_string(), sym, num), branch, birth, date)
        };
        (expected, got)
    }
}

/// Every file of a tree with its bytes, for byte-identity checks.
pub fn tree_bytes(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}
