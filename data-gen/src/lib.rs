//! `data_gen`: a national-scale synthetic population of insured persons, written as the insurer
//! snapshots of docs/delivery.md, with injected defects and a query workload whose expected answers come
//! from the generator's own ground truth.
//!
//! The population is cut into chunks of persons. Each chunk is generated on its own (its RNG is
//! seeded from the seed and the chunk number), in parallel, and appended to the insurers' files
//! in chunk order: the same seed gives the same bytes whatever the thread count, and memory
//! stays bounded at any scale.

mod change_defects;
mod changes;
mod claims;
mod claims_files;
mod defects;
mod kohi;
mod kohi_chunk;
mod kohi_defects;
mod kohi_write;
pub mod model;
mod population;
pub mod render;
mod stream;
pub mod tables;
mod truth;
pub mod universe;
mod writer;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use model::{Rec, Row, Sym};
use population::{ChunkGen, Stats};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::Serialize;
use shikaku::domain::{Date, InsurerKind};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;
use tables::{FAMILY_NAMES, GIVEN_NAMES};
use universe::{kind_index, Col, Universe};
use writer::{InsOut, Writer};

pub use truth::QUERIES_HEADER;
/// With `kohi`, `queries.csv`'s header ends with these (after `expected`).
pub const KOHI_QUERY_COLUMNS: &str = ",payer_number,recipient_number\n";
pub use writer::UNDECODABLE_BYTES;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Config {
    pub persons: u64,
    pub seed: u64,
    pub out: PathBuf,
    /// The snapshot date (the date of every newest file); default today in Japan.
    pub date: Date,
    /// Probability per row of an injected defect (0 = clean data).
    pub defect_rate: f64,
    /// Number of lines of `queries.csv` (0 = no file).
    pub queries: u64,
    /// Number of receipts in the claims files (0 = none), written to `claims_out`.
    pub claims: u64,
    /// Directory of the claims files: beside the snapshots, not in them (a build would
    /// report it as a directory of no insurer).
    pub claims_out: PathBuf,
    /// Days of change files after the snapshots (0 = none); see `changes`.
    pub change_days: u32,
    /// Directory of the materialized snapshots, the state after the change files (beside
    /// the snapshots, not in them); `None`: not written (at the nation's scale they would
    /// double the disk a run needs, and the queries' truth does not need them).
    pub materialized_out: Option<PathBuf>,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Replace a previous generator output in `out` instead of refusing a non-empty directory.
    pub overwrite: bool,
    /// Public-expense registers (`out/kohi/`), and `KO` records in the claims files; off,
    /// everything else is byte for byte what it was without them.
    pub kohi: bool,
}

impl Config {
    pub fn new(persons: u64, seed: u64, out: impl Into<PathBuf>) -> Config {
        let out = out.into();
        Config {
            persons,
            seed,
            claims_out: claims_files::default_dir(&out),
            materialized_out: Some(default_materialized_dir(&out)),
            out,
            date: Date::today_jst(),
            defect_rate: 0.0,
            queries: 0,
            claims: 0,
            change_days: 0,
            progress: false,
            overwrite: false,
            kohi: false,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub persons: u64,
    pub households: u64,
    pub insurers: u64,
    pub snapshot_files: u64,
    pub snapshot_date: String,
    pub rows: u64,
    pub bytes: u64,
    /// Records covering the snapshot date, by insurer kind (before defects moved any).
    pub current_by_kind: BTreeMap<String, u64>,
    /// Persons by age on the snapshot date.
    pub age_bands: BTreeMap<String, u64>,
    pub defects: BTreeMap<String, u64>,
    pub queries: u64,
    /// Queries by expected validity 1..=5.
    pub queries_by_expected: [u64; 5],
    /// Receipts in the claims files, and by expected `verdict reason`.
    pub claims: u64,
    pub claims_by_expected: BTreeMap<String, u64>,
    /// The change streams, when `change_days` > 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<stream::ChangesSummary>,
    /// The public-expense registers, with `kohi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kohi: Option<KohiSummary>,
    pub seconds: f64,
}

/// What the public-expense registers hold.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KohiSummary {
    pub payers: u64,
    /// Certificates as generated, and register lines written (defects included).
    pub certificates: u64,
    pub rows: u64,
    /// Persons holding a certificate that covers the snapshot date, in all and by program.
    pub holders: u64,
    pub holders_by_program: BTreeMap<String, u64>,
    /// What a correct build reports, by rule (K1–K6, W1, X1, DUP).
    pub defects: BTreeMap<String, u64>,
    /// Receipts carrying `KO` records of held payers' certificates.
    pub claims_with_ko: u64,
}

impl KohiSummary {
    fn add(&mut self, s: &kohi_chunk::KohiStats) {
        self.certificates += s.certificates;
        self.rows += s.rows;
        self.holders += s.holders;
        for (name, n) in kohi_chunk::program_names().iter().zip(s.holders_by_program) {
            *self.holders_by_program.entry(name.to_string()).or_default() += n;
        }
        for (rule, n) in &s.by_rule {
            *self.defects.entry(rule.to_string()).or_default() += n;
        }
    }
}

/// `OUT.materialized`, beside `OUT`.
pub fn default_materialized_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".materialized");
    out.with_file_name(name)
}

/// The change simulation's RNG stream of chunk `k`: apart from the chunk's own, so that a
/// data set is the same with or without change streams.
const CHANGES_STREAM: u64 = u64::MAX / 2;
/// Most days of change files.
const MAX_CHANGE_DAYS: u32 = 366;

/// Persons per chunk: small enough to parallelize and bound memory, large enough for
/// households of realistic ages to form.
pub(crate) const CHUNK: u64 = 16_384;
/// Chunks generated in parallel before they are handed to the writer.
const BATCH: u64 = 8;
/// Largest population accepted (card and individual number spaces stay far from overflow).
const MAX_PERSONS: u64 = 2_000_000_000;

/// Deterministic RNG for a stream (a chunk, or a named setup stream) of one seed.
pub(crate) fn rng_for(seed: u64, stream: u64) -> Xoshiro256PlusPlus {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    Xoshiro256PlusPlus::seed_from_u64(mix(seed) ^ mix(stream ^ 0x5EED_C0DE))
}

/// Settings and sampling tables shared by every chunk.
pub(crate) struct Params {
    pub persons: u64,
    pub seed: u64,
    pub date: Date,
    pub rate: f64,
    pub chunks: u64,
    pub change_days: u32,
    chunk_queries: u64,
    claims: u64,
    pub(crate) claims_plan: claims::ClaimsPlan,
    pub kohi: bool,
    age_cum: Vec<u32>,
    family_cum: Vec<f64>,
    /// Given-name indexes by sex (0 male, 1 female) and generation.
    given: [[Vec<u16>; 3]; 2],
    scramble_add: u64,
}

const TEN_POW_11: u64 = 100_000_000_000;
/// Coprime with 10^11, so `i ↦ (A·i + B) mod 10^11` is a bijection: unique numbers per person.
const SCRAMBLE_MUL: u64 = 48_271_318_973;

impl Params {
    fn new(cfg: &Config, chunk_queries: u64) -> Params {
        let mut age_cum = Vec::new();
        let mut acc = 0;
        for w in tables::age_weights() {
            acc += w;
            age_cum.push(acc);
        }
        let mut family_cum = Vec::new();
        let mut f = 0.0;
        for i in 0..FAMILY_NAMES.len() {
            f += 1.0 / (i as f64 + 3.0);
            family_cum.push(f);
        }
        let mut given: [[Vec<u16>; 3]; 2] = Default::default();
        for (i, &(_, _, sex, gen)) in GIVEN_NAMES.iter().enumerate() {
            given[sex as usize - 1][gen as usize].push(i as u16);
        }
        Params {
            persons: cfg.persons,
            seed: cfg.seed,
            date: cfg.date,
            rate: cfg.defect_rate,
            chunks: cfg.persons.div_ceil(CHUNK),
            change_days: cfg.change_days,
            chunk_queries,
            claims: cfg.claims,
            claims_plan: claims::ClaimsPlan::new(cfg.date, cfg.claims),
            kohi: cfg.kohi,
            age_cum,
            family_cum,
            given,
            scramble_add: rng_for(cfg.seed, u64::MAX - 7).gen_range(0..TEN_POW_11),
        }
    }

    pub fn sample_age(&self, rng: &mut Xoshiro256PlusPlus) -> u8 {
        let total = *self.age_cum.last().unwrap_or(&1);
        let x = rng.gen_range(0..total);
        self.age_cum.partition_point(|&c| c <= x) as u8
    }

    pub fn sample_family(&self, rng: &mut Xoshiro256PlusPlus) -> u16 {
        let total = self.family_cum.last().copied().unwrap_or(1.0);
        let x = rng.gen::<f64>() * total;
        (self
            .family_cum
            .partition_point(|&c| c <= x)
            .min(FAMILY_NAMES.len() - 1)) as u16
    }

    pub fn sample_given(&self, rng: &mut Xoshiro256PlusPlus, sex: u8, birth_year: i32) -> u16 {
        let gen = match birth_year {
            i32::MIN..=1964 => 0,
            1965..=1994 => 1,
            _ => 2,
        };
        let pool = &self.given[usize::from(sex != 1)][gen];
        pool[rng.gen_range(0..pool.len())]
    }

    /// First eleven digits of person `idx`'s individual number.
    pub fn first11(&self, idx: u64) -> u64 {
        ((u128::from(SCRAMBLE_MUL) * u128::from(idx) + u128::from(self.scramble_add))
            % u128::from(TEN_POW_11)) as u64
    }

    fn queries_of_chunk(&self, k: u64) -> u64 {
        self.share_of_chunk(self.chunk_queries, k)
    }

    fn claims_of_chunk(&self, k: u64) -> u64 {
        self.share_of_chunk(self.claims, k)
    }

    /// Chunk `k`'s share of `total`, the shares adding up to it.
    fn share_of_chunk(&self, total: u64, k: u64) -> u64 {
        let q = u128::from(total);
        let n = u128::from(self.chunks.max(1));
        ((u128::from(k + 1) * q / n) - (u128::from(k) * q / n)) as u64
    }
}

/// A member of an older snapshot (or the carrier of the undecodable bytes): numbers from
/// 8×10^13 are never used by the population, so queries for them must find nothing.
pub(crate) fn stale_row(
    u: &Universe,
    insurer: u32,
    j: u64,
    date: Date,
    over: Option<(Col, &str)>,
) -> Row {
    let habit = &u.insurers[insurer as usize].habit;
    let birth = date.add_days(-20_000 - 37 * j as i32);
    let rec = Rec {
        insurer,
        sym: Sym::None,
        number: 80_000_000_000_000 + u64::from(insurer) * 100 + j,
        branch: habit.head_branch,
        indnum: None,
        family: (j * 7 % FAMILY_NAMES.len() as u64) as u16,
        given: (j * 5 % GIVEN_NAMES.len() as u64) as u16,
        sex: GIVEN_NAMES[(j * 5 % GIVEN_NAMES.len() as u64) as usize].2,
        birth,
        rel: 1,
        qual: date.add_days(-400),
        disq: None,
        reason: None,
        copay: 30,
        limit: None,
    };
    let mut row = Row::plain(rec);
    row.over = over.map(|(c, s)| (c, s.to_string()));
    row
}

struct ChunkOut {
    outs: Vec<InsOut>,
    queries: String,
    qcounts: [u64; 5],
    receipts: Vec<claims::GenReceipt>,
    stats: Stats,
    changes: Option<changes::ChunkChanges>,
    materialized: Vec<InsOut>,
    kohi: Option<(Vec<InsOut>, kohi_chunk::KohiStats)>,
}

/// Runs the chunk's change stream on its own RNG; returns the state after it, the stream
/// and the state as materialized snapshot rows. Queries are then dated after the last day.
fn chunk_changes(
    g: &mut ChunkGen,
    rows: Vec<Row>,
    k: u64,
) -> (Vec<Row>, Option<changes::ChunkChanges>, Vec<InsOut>) {
    let p = g.p;
    if p.change_days == 0 {
        return (rows, None, Vec::new());
    }
    let saved = std::mem::replace(&mut g.rng, rng_for(p.seed, CHANGES_STREAM + k));
    let (state, ch) = changes::simulate(g, rows, k, p.change_days);
    g.rng = saved;
    g.d = p.date.add_days(p.change_days as i32);
    let materialized = writer::render_rows(g.u, &state);
    (state, Some(ch), materialized)
}

fn gen_chunk(p: &Params, u: &Universe, k: u64) -> ChunkOut {
    let start = k * CHUNK;
    let len = CHUNK.min(p.persons - start);
    let mut g = ChunkGen::new(p, u, k);
    let mut ps = g.sample_persons(start, len);
    let head_of = g.form_households(&mut ps);
    let households = g.households(&ps, &head_of);
    let mut rows = Vec::with_capacity(len as usize * 3 / 2);
    let mut inj = defects::Injector::new(p.rate, k == 0);
    for hh in &households {
        let first = rows.len();
        g.emit_household(&ps, hh, &mut rows);
        let head_gidx = ps[hh.members[0] as usize].gidx;
        inj.after_household(&mut g, &mut rows, first, head_gidx);
    }
    let outs = writer::render_rows(u, &rows);
    let kohi = p.kohi.then(|| kohi_chunk::chunk(&mut g, &ps, &rows, k));
    let (rows, changes, materialized) = chunk_changes(&mut g, rows, k);
    let quota = p.queries_of_chunk(k);
    let claims_quota = p.claims_of_chunk(k);
    let t = (quota > 0 || claims_quota > 0).then(|| truth::Truth::build(&rows, u.undecodable));
    // With registers, one query in ten is a public-expense one.
    let kohi_quota = if kohi.is_some() { quota / 10 } else { 0 };
    let (mut queries, mut qcounts) = match &t {
        Some(t) if quota > 0 => truth::make_queries(&mut g, t, &rows, quota - kohi_quota),
        _ => (String::new(), [0; 5]),
    };
    if let Some((_, _, kc)) = kohi.as_ref().filter(|_| kohi_quota > 0) {
        let (lines, counts) = kohi_chunk::queries(&mut g, kc, kohi_quota);
        queries.push_str(&lines);
        for (a, b) in qcounts.iter_mut().zip(counts) {
            *a += b;
        }
    }
    // After the queries, so that a data set without claims is the same with or without
    // this feature.
    let receipts = match &t {
        Some(t) if claims_quota > 0 => {
            let kc = kohi.as_ref().map(|(_, _, kc)| kc);
            claims::make_receipts(&mut g, t, &rows, claims_quota, &p.claims_plan, kc)
        }
        _ => Vec::new(),
    };
    ChunkOut {
        outs,
        queries,
        qcounts,
        receipts,
        stats: g.stats,
        changes,
        materialized,
        kohi: kohi.map(|(outs, stats, _)| (outs, stats)),
    }
}

fn validate(cfg: &Config) -> Result<()> {
    if cfg.persons == 0 || cfg.persons > MAX_PERSONS {
        bail!("--persons must be between 1 and {MAX_PERSONS}");
    }
    if !(0.0..=1.0).contains(&cfg.defect_rate) || cfg.defect_rate.is_nan() {
        bail!("--defects must be a rate between 0 and 1");
    }
    let lo = Date::from_ymd(2000, 1, 1).unwrap_or(Date::MIN);
    let hi = Date::from_ymd(2199, 12, 31).unwrap_or(Date::MAX);
    if cfg.date < lo || cfg.date > hi {
        bail!("--date must be between 2000-01-01 and 2199-12-31");
    }
    if cfg.change_days > MAX_CHANGE_DAYS {
        bail!("--changes-days must be at most {MAX_CHANGE_DAYS}");
    }
    Ok(())
}

/// Names the generator writes at the top of its output directory.
const TOP_FILES: [&str; 3] = ["insurers.csv", "manifest.json", "queries.csv"];

fn is_insurer_dir(name: &str) -> bool {
    (name.len() == 6 || name.len() == 8) && name.bytes().all(|b| b.is_ascii_digit())
}

/// Refuses to mix with other content: an older run's files would change which snapshot is
/// the newest. With `overwrite`, removes only what a previous run wrote.
fn prepare_out(out: &Path, overwrite: bool) -> Result<()> {
    if out.exists() {
        if !out.is_dir() {
            bail!("{} exists and is not a directory", out.display());
        }
        let entries: Vec<_> = fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .collect::<Result<_, _>>()?;
        if !entries.is_empty() && !overwrite {
            bail!(
                "{} is not empty; choose a new directory or pass --overwrite",
                out.display()
            );
        }
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if TOP_FILES.contains(&name.as_str()) {
                fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            } else if (is_insurer_dir(&name) || name == "kohi") && path.is_dir() {
                fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

fn write_insurers(out: &Path, u: &Universe) -> Result<()> {
    let mut s = String::from("insurer_number,insurer_name,kind\n");
    for ins in &u.insurers {
        s.push_str(&format!(
            "{},{},{}\n",
            ins.number.as_str(),
            ins.name,
            ins.kind.as_str()
        ));
    }
    let path = out.join("insurers.csv");
    fs::write(&path, s).with_context(|| format!("cannot write {}", path.display()))
}

/// The older snapshots and the queries that must not find their members.
fn write_older(
    cfg: &Config,
    p: &Params,
    u: &Universe,
    stale_queries: u64,
) -> Result<(Vec<String>, String)> {
    let older_date = cfg.date.add_days(-35);
    let mut files = Vec::new();
    let mut stale: Vec<Row> = Vec::new();
    for &i in &u.older {
        let rows: Vec<Row> = (1..=3)
            .map(|j| stale_row(u, i, j, older_date, None))
            .collect();
        writer::write_older(&cfg.out, u, i, older_date, &rows)?;
        files.push(writer::snapshot_rel(u, i, older_date));
        stale.extend(rows);
    }
    let mut g = ChunkGen::new(p, u, u64::MAX - 3);
    let mut lines = String::new();
    for row in stale.iter().take(stale_queries as usize) {
        truth::stale_query(&mut g, &row.rec, &mut lines);
    }
    Ok((files, lines))
}

#[derive(Serialize)]
struct Manifest<'a> {
    generator: &'static str,
    seed: u64,
    persons: u64,
    snapshot_date: String,
    defect_rate: f64,
    undecodable_file: Option<String>,
    older_snapshots: Vec<String>,
    counts: BTreeMap<String, u64>,
    defects: &'a [writer::Entry],
    #[serde(skip_serializing_if = "Option::is_none")]
    kohi: Option<KohiManifest<'a>>,
}

/// The public-expense registers' defects: what a correct build reports, by rule, and where
/// each injected one is (X1 counts every certificate of a mislinked number).
#[derive(Serialize)]
struct KohiManifest<'a> {
    payers: u64,
    counts: &'a BTreeMap<String, u64>,
    defects: &'a [writer::Entry],
}

fn progress_bar(cfg: &Config) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(cfg.persons), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} persons ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Generates the whole data set into `cfg.out`.
pub fn generate(cfg: &Config) -> Result<Summary> {
    let started = Instant::now();
    validate(cfg)?;
    prepare_out(&cfg.out, cfg.overwrite)?;
    if cfg.claims > 0 {
        claims_files::prepare_dir(&cfg.claims_out, cfg.overwrite)?;
    }
    let u = Universe::build(cfg.persons, cfg.seed, cfg.defect_rate > 0.0);
    let stale_queries = (u.older.len() as u64 * 3).min(cfg.queries / 20);
    let p = Params::new(cfg, cfg.queries - stale_queries);
    write_insurers(&cfg.out, &u)?;
    let mut w = Writer::create(&cfg.out, &u, cfg.date)?;
    let payers = (kohi::municipalities(p.chunks) * kohi::PROGRAMS.len() as u64) as u32;
    let mut kw = match cfg.kohi {
        true => Some(kohi_write::create(&cfg.out, cfg.seed, payers, cfg.date)?),
        false => None,
    };
    let mut ksum = KohiSummary {
        payers: u64::from(payers),
        ..KohiSummary::default()
    };
    let mut mw = match (&cfg.materialized_out, cfg.change_days > 0) {
        (Some(dir), true) => {
            prepare_out(dir, cfg.overwrite)?;
            write_insurers(dir, &u)?;
            Some(Writer::create(dir, &u, cfg.date)?)
        }
        _ => None,
    };
    let mut groups: Vec<changes::Group> = Vec::new();
    let mut csum = stream::ChangesSummary::default();
    let mut queries = if cfg.queries > 0 {
        let path = cfg.out.join("queries.csv");
        let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut f = BufWriter::with_capacity(1 << 20, f);
        // With registers, the public-expense columns last; card and person rows leave them
        // out (`shikaku load` reads rows of fewer cells).
        match cfg.kohi {
            true => write!(f, "{}{KOHI_QUERY_COLUMNS}", QUERIES_HEADER.trim_end())?,
            false => f.write_all(QUERIES_HEADER.as_bytes())?,
        }
        Some(f)
    } else {
        None
    };
    let pb = progress_bar(cfg);
    let mut receipts: Vec<claims::GenReceipt> = Vec::new();
    let mut stats = Stats::default();
    let mut qcounts = [0u64; 5];
    let (tx, rx) = sync_channel::<Vec<ChunkOut>>(2);
    let result: Result<()> = std::thread::scope(|s| {
        let (p, u) = (&p, &u);
        s.spawn(move || {
            let mut k = 0;
            while k < p.chunks {
                let end = (k + BATCH).min(p.chunks);
                let outs: Vec<ChunkOut> = (k..end)
                    .into_par_iter()
                    .map(|c| gen_chunk(p, u, c))
                    .collect();
                if tx.send(outs).is_err() {
                    return; // the writer stopped on an error
                }
                k = end;
            }
        });
        for outs in rx {
            for out in outs {
                pb.inc(out.stats.persons);
                add_stats(&mut stats, &out.stats);
                for (a, b) in qcounts.iter_mut().zip(out.qcounts) {
                    *a += b;
                }
                if let Some(q) = queries.as_mut() {
                    q.write_all(out.queries.as_bytes())
                        .context("cannot write queries.csv")?;
                }
                receipts.extend(out.receipts);
                w.append(out.outs)?;
                if let (Some(kw), Some((outs, stats))) = (kw.as_mut(), out.kohi) {
                    kw.append(outs)?;
                    ksum.add(&stats);
                }
                if let Some(ch) = out.changes {
                    if let Some(mw) = mw.as_mut() {
                        mw.append(out.materialized)?;
                    }
                    csum.add_events(&ch.causes, &ch.defects);
                    groups.extend(ch.groups);
                }
            }
        }
        Ok(())
    });
    result?;
    w.finish()?;
    if let Some(kw) = kw.as_mut() {
        kw.finish()?;
    }
    pb.finish_and_clear();
    if let Some(mw) = mw.as_mut() {
        mw.finish()?;
    }
    let change_entries = match cfg.change_days {
        0 => Vec::new(),
        _ => write_changes(cfg, &u, groups, &mut csum)?,
    };
    let (older_files, stale_lines) = write_older(cfg, &p, &u, stale_queries)?;
    if let Some(mut q) = queries {
        q.write_all(stale_lines.as_bytes())?;
        q.flush().context("cannot write queries.csv")?;
        qcounts[3] += stale_queries;
    }
    let claims_by_expected = if cfg.claims > 0 {
        claims_files::write(&cfg.claims_out, &p.claims_plan, &receipts)?
    } else {
        BTreeMap::new()
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for e in &w.entries {
        *counts.entry(e.rule.to_string()).or_default() += 1;
    }
    let mut entries = w.entries.clone();
    entries.extend(change_entries);
    let manifest = Manifest {
        generator: "shikaku-datagen",
        seed: cfg.seed,
        persons: cfg.persons,
        snapshot_date: cfg.date.to_string(),
        defect_rate: cfg.defect_rate,
        undecodable_file: u.undecodable.map(|i| writer::snapshot_rel(&u, i, cfg.date)),
        older_snapshots: older_files.clone(),
        counts: counts.clone(),
        defects: &entries,
        kohi: kw.as_ref().map(|kw| KohiManifest {
            payers: u64::from(payers),
            counts: &ksum.defects,
            defects: &kw.entries,
        }),
    };
    let path = cfg.out.join("manifest.json");
    let json = serde_json::to_vec_pretty(&manifest)?;
    fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    let mut s = summary(
        cfg,
        &u,
        &stats,
        &w,
        counts,
        qcounts,
        older_files.len(),
        started,
    );
    s.claims = receipts.len() as u64;
    s.claims_by_expected = claims_by_expected;
    s.changes = (cfg.change_days > 0).then_some(csum);
    if cfg.kohi {
        ksum.claims_with_ko = receipts.iter().filter(|r| r.with_ko).count() as u64;
        s.kohi = Some(ksum);
    }
    Ok(s)
}

/// Writes the change files and dates the materialized snapshots; returns the defects' entries.
fn write_changes(
    cfg: &Config,
    u: &Universe,
    groups: Vec<changes::Group>,
    csum: &mut stream::ChangesSummary,
) -> Result<Vec<writer::Entry>> {
    let last = cfg.date.add_days(cfg.change_days as i32 - 1);
    csum.days = cfg.change_days;
    csum.first_day = cfg.date.to_string();
    csum.last_day = last.to_string();
    csum.queries_date = last.add_days(1).to_string();
    let (entries, last_day) = stream::write(&cfg.out, u, cfg.seed, cfg.date, groups, csum)?;
    if let Some(dir) = &cfg.materialized_out {
        csum.materialized_dir = Some(dir.display().to_string());
        stream::date_materialized(dir, u, cfg.date, &last_day)?;
    }
    Ok(entries)
}

fn add_stats(total: &mut Stats, s: &Stats) {
    total.persons += s.persons;
    total.households += s.households;
    for (a, b) in total.age_bands.iter_mut().zip(s.age_bands) {
        *a += b;
    }
    for (a, b) in total.current_by_kind.iter_mut().zip(s.current_by_kind) {
        *a += b;
    }
}

#[allow(clippy::too_many_arguments)]
fn summary(
    cfg: &Config,
    u: &Universe,
    stats: &Stats,
    w: &Writer,
    defects: BTreeMap<String, u64>,
    qcounts: [u64; 5],
    older: usize,
    started: Instant,
) -> Summary {
    let current_by_kind = InsurerKind::ALL
        .iter()
        .map(|&k| (k.as_str().to_string(), stats.current_by_kind[kind_index(k)]))
        .collect();
    let age_bands = ["0-14", "15-64", "65-74", "75+"]
        .iter()
        .zip(stats.age_bands)
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Summary {
        persons: stats.persons,
        households: stats.households,
        insurers: u.insurers.len() as u64,
        snapshot_files: (u.insurers.len() + older) as u64,
        snapshot_date: cfg.date.to_string(),
        rows: w.rows,
        bytes: w.bytes,
        current_by_kind,
        age_bands,
        defects,
        queries: qcounts.iter().sum(),
        queries_by_expected: qcounts,
        claims: 0,
        claims_by_expected: BTreeMap::new(),
        changes: None,
        kohi: None,
        seconds: started.elapsed().as_secs_f64(),
    }
}
