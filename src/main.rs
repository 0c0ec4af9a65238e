//! `shikaku`: build, query, serve and inspect eligibility index generations.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use shikaku::domain::Date;
use shikaku::generations::Store;
use shikaku::query::{self, CardFields, CardQuery, PersonFields, PersonQuery};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "shikaku",
    version,
    about = "High-throughput health-insurance eligibility lookup engine (オンライン資格確認)"
)]
struct Cli {
    /// File holding the 64-hex-digit key of the individual-number hash (else $SHIKAKU_PERSON_KEY_FILE, else the demo key).
    #[arg(long, global = true)]
    person_key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer one query from the live generation and print the answer JSON.
    Query(QueryArgs),
}

#[derive(Args)]
struct QueryArgs {
    /// Data directory holding CURRENT and generations/.
    #[arg(long)]
    data: PathBuf,
    #[command(subcommand)]
    kind: QueryKind,
}

#[derive(Subcommand)]
enum QueryKind {
    /// 記号・番号等による照会 (SPEC 4.1).
    Card {
        #[arg(long)]
        insurer_number: String,
        #[arg(long)]
        symbol: Option<String>,
        #[arg(long)]
        number: String,
        #[arg(long)]
        branch: Option<String>,
        #[arg(long)]
        birthdate: String,
        /// Day to check (default: today in Japan).
        #[arg(long)]
        date: Option<String>,
        /// The patient consents to showing the 限度額適用区分.
        #[arg(long)]
        limit_consent: bool,
    },
    /// マイナンバーカードによる照会 (SPEC 4.2).
    Person {
        #[arg(long)]
        individual_number: String,
        #[arg(long)]
        date: Option<String>,
        #[arg(long)]
        limit_consent: bool,
    },
}

fn main() -> ExitCode {
    shikaku::cli::init_logging();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Query(args) => run_query(args, cli.person_key_file),
    }
}

fn run_query(args: QueryArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let key = shikaku::cli::person_key(key_file.as_deref())?;
    let store = Store::new(&args.data);
    let index = store
        .open_current(key)
        .with_context(|| format!("opening the live generation in {}", args.data.display()))?;
    let today = Date::today_jst();
    let mut out = Vec::new();
    match &args.kind {
        QueryKind::Card {
            insurer_number,
            symbol,
            number,
            branch,
            birthdate,
            date,
            limit_consent,
        } => {
            let q = CardQuery::parse(&CardFields {
                insurer_number: Some(insurer_number),
                symbol: symbol.as_deref(),
                number: Some(number),
                branch: branch.as_deref(),
                birthdate: Some(birthdate),
                date: date.as_deref(),
                limit_consent: *limit_consent,
            })?;
            let outcome = index.card(&q, today);
            query::write_answer(
                &mut out,
                &outcome,
                q.date.unwrap_or(today),
                index.generation(),
                q.limit_consent,
            );
        }
        QueryKind::Person {
            individual_number,
            date,
            limit_consent,
        } => {
            let q = PersonQuery::parse(&PersonFields {
                individual_number: Some(individual_number),
                date: date.as_deref(),
                limit_consent: *limit_consent,
            })?;
            let outcome = index.person(&q, today);
            query::write_answer(
                &mut out,
                &outcome,
                q.date.unwrap_or(today),
                index.generation(),
                q.limit_consent,
            );
        }
    }
    println!("{}", String::from_utf8_lossy(&out));
    Ok(ExitCode::SUCCESS)
}
