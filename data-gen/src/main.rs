//! `shikaku-datagen`: synthetic insurers, snapshots, defects and queries for shikaku.

use anyhow::{Context, Result};
use clap::Parser;
use shikaku::domain::Date;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Writes a national-scale synthetic data set: `insurers.csv` and one snapshot per insurer
/// (docs/delivery.md), optionally with injected defects (`manifest.json` says where) and a query
/// workload with expected answers (`queries.csv`).
#[derive(Parser, Debug)]
#[command(name = "shikaku-datagen", version, about, long_about = None)]
struct Args {
    /// Number of persons in the population (126000000 is the nation).
    #[arg(long)]
    persons: u64,
    /// Seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (created; must be empty unless --overwrite).
    #[arg(long)]
    out: PathBuf,
    /// Snapshot date (YYYY-MM-DD, YYYYMMDD or 和暦); default today in Japan.
    #[arg(long)]
    date: Option<String>,
    /// Rate of injected defects per row, 0..1 (e.g. 0.001).
    #[arg(long, default_value_t = 0.0)]
    defects: f64,
    /// Number of queries to write to queries.csv with their expected validity.
    #[arg(long, default_value_t = 0)]
    queries: u64,
    /// Number of receipts in monthly claims files (UKE, 医科) of synthetic institutions, for
    /// the month before the snapshot date's, with their expected verdicts in truth.csv.
    #[arg(long, default_value_t = 0)]
    claims: u64,
    /// Directory of the claims files (default: OUT.claims, beside OUT).
    #[arg(long)]
    claims_out: Option<PathBuf>,
    /// Days of change files (異動) after the snapshots, from the snapshot date on:
    /// OUT/<insurer>/changes/<YYYYMMDD>-<hhmmss>.csv at Japan's daily rates scaled to
    /// --persons (job changes, births, deaths, the move to 後期高齢者 at 75, corrections,
    /// registrations in error), with C1–C4, R1–R7 and W1–W4 at the --defects rate. The ground
    /// truth is each insurer's state after them, written as plain snapshots to
    /// --materialized-out; queries.csv and the claims truth then hold for that state (queries
    /// dated the day after the last change).
    #[arg(long, default_value_t = 0)]
    changes_days: u32,
    /// Directory of the materialized snapshots (default: OUT.materialized, beside OUT).
    #[arg(long)]
    materialized_out: Option<PathBuf>,
    /// Do not write the materialized snapshots (the queries' and claims' truth still holds
    /// for the state after the changes): for runs at the nation's scale, where they would
    /// take another 16 GB.
    #[arg(long, conflicts_with = "materialized_out")]
    no_materialized: bool,
    /// Public-expense (公費) registers too: OUT/kohi/payers.csv and one
    /// OUT/kohi/<payer_number>/<YYYYMMDD>.csv per payer (医療扶助, 自立支援医療, 難病,
    /// 小児慢性特定疾病 and the municipality's 子ども医療費助成, one payer of each per
    /// municipality-sized part of the population), with K1–K6, W1, X1 and duplicates at the
    /// --defects rate; the claims files then carry KO records (about 30% of receipts).
    #[arg(long)]
    kohi: bool,
    /// Replace a previous generator output in --out.
    #[arg(long)]
    overwrite: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn run(args: Args) -> Result<()> {
    let date = match &args.date {
        Some(s) => Date::parse(s).with_context(|| format!("--date {s:?}"))?,
        None => Date::today_jst(),
    };
    let mut cfg = data_gen::Config::new(args.persons, args.seed, args.out);
    cfg.date = date;
    cfg.defect_rate = args.defects;
    cfg.queries = args.queries;
    cfg.claims = args.claims;
    if let Some(dir) = args.claims_out {
        cfg.claims_out = dir;
    }
    cfg.change_days = args.changes_days;
    if let Some(dir) = args.materialized_out {
        cfg.materialized_out = Some(dir);
    }
    if args.no_materialized {
        cfg.materialized_out = None;
    }
    cfg.progress = !args.quiet;
    cfg.overwrite = args.overwrite;
    cfg.kohi = args.kohi;
    let summary = data_gen::generate(&cfg)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    eprintln!(
        "{} persons in {:.1} s ({:.0} persons/s)",
        summary.persons,
        summary.seconds,
        summary.persons as f64 / summary.seconds.max(1e-9)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    shikaku::cli::end_quietly_on_closed_stdout();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shikaku-datagen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
