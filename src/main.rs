//! `shikaku`: build, query, serve and inspect eligibility index generations.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use shikaku::domain::Date;
use shikaku::generations::{Store, StoreError};
use shikaku::query::{self, CardFields, CardQuery, Lookup, PersonFields, PersonQuery};
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
    /// Build a new index generation from insurer snapshots, report, and publish it.
    Build(BuildArgs),
    /// Answer one query from the live generation and print the answer JSON.
    Query(QueryArgs),
    /// List, roll back or garbage-collect index generations.
    Generations(GenerationsArgs),
    /// Check every checksum of a generation (the live one by default), as a server does
    /// before serving it.
    Verify(VerifyArgs),
    /// Serve the live generation over RESP and HTTP (SPEC 6), one thread per core.
    Serve(ServeArgs),
    /// Build the built-in demo data, print queries to try, and serve it.
    Demo(DemoArgs),
    /// Make a new client token and the auth file line that admits it (see `shikaku serve --auth`).
    AuthLine(AuthLineArgs),
    /// Drive the RESP port with a workload file; report rate, latency and wrong answers.
    Load(LoadArgs),
    /// Print `SET <card key> <answer JSON>` for the workload's card queries, for `redis-cli --pipe`.
    RedisExport(RedisExportArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// Snapshot directory: insurers.csv and <insurer_number>/<YYYYMMDD>.csv.
    #[arg(long)]
    snapshots: PathBuf,
    /// Data directory: generations/, CURRENT.
    #[arg(long)]
    data: PathBuf,
    /// Refuse to publish when an insurer's members covered today fall by more than this
    /// percent (0 to 100).
    #[arg(long, default_value_t = shikaku::build::run::DEFAULT_MAX_DROP_PERCENT, value_parser = percent)]
    max_drop_percent: f64,
    /// Publish even though this insurer trips the guard (repeatable).
    #[arg(long = "accept", value_name = "INSURER")]
    accept: Vec<String>,
    /// Build date (default: today in Japan); used for the members-covered-today counts.
    #[arg(long)]
    date: Option<String>,
    /// Parse every snapshot again instead of reusing the live generation's unchanged insurers
    /// (recognized by path, size and modification time).
    #[arg(long)]
    full: bool,
}

#[derive(Args)]
struct VerifyArgs {
    #[arg(long)]
    data: PathBuf,
    /// Generation id (default: the live one).
    #[arg(long)]
    generation: Option<String>,
}

#[derive(Args)]
struct GenerationsArgs {
    #[arg(long)]
    data: PathBuf,
    #[command(subcommand)]
    action: GenerationsAction,
}

#[derive(Subcommand)]
enum GenerationsAction {
    /// List published generations, oldest first; the live one is marked. Warns when
    /// DATA/CURRENT names none, and then fails unless nothing was ever published.
    List,
    /// Make an earlier generation live again (default: the one before the live one), after
    /// verifying every checksum of it. `--to <id>` also mends a lost or damaged DATA/CURRENT.
    Rollback {
        #[arg(long)]
        to: Option<String>,
    },
    /// Delete all but the newest K generations, never the live one nor one newer than it
    /// (rolled back from), and all but the newest K refused builds (DATA/refused/). Removes
    /// nothing unless DATA/CURRENT names a generation that passes verification.
    Gc {
        #[arg(long, default_value_t = 3)]
        keep: usize,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Data directory holding CURRENT and generations/.
    #[arg(long)]
    data: PathBuf,
    /// RESP (Redis protocol) listen address.
    #[arg(long, default_value = "127.0.0.1:7379")]
    resp: std::net::SocketAddr,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:7380")]
    http: std::net::SocketAddr,
    /// Worker threads, one per core (default: every available core; at most 1,024).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    threads: u16,
    /// I/O driver: `auto` (io_uring, else epoll) or `epoll` (faster at low pipelining depth).
    #[arg(long, default_value = "auto", value_parser = ["auto", "epoll"])]
    driver: String,
    /// Microseconds a core keeps polling after a request before it sleeps; 0 never polls
    /// (try it on a crowded virtual machine, where a core that never sleeps is descheduled).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    poll_us: u64,
    /// Auth file: one `institution_code role blake3_hex(token)` line per client (make lines
    /// with `shikaku auth-line`). Without it anyone may query, on loopback addresses only.
    #[arg(long)]
    auth: Option<PathBuf>,
    /// Keep an audit log here: one JSON line per query answered (who asked, about which card
    /// or which person's keyed hash, the validity told), a file per core. Created if missing.
    #[arg(long)]
    audit_dir: Option<PathBuf>,
    /// Most bytes the connections' read buffers may hold together beyond their first 16 KiB
    /// each (large bodies: batches); a request needing more is refused with 503 / -ERR and
    /// counted in /metrics. Default 1 GiB.
    #[arg(long, default_value_t = shikaku::server::budget::DEFAULT_MEMORY_BUDGET_BYTES)]
    memory_budget_bytes: usize,
    /// Seconds a request's head (request line and headers, a RESP command) may take to arrive
    /// from its first byte; then 408 / -ERR and the connection closes (slow clients).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    head_deadline_secs: u64,
    /// Seconds a whole request, body included, may take to arrive from its first byte.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_deadline_secs: u64,
    /// Connections each core serves at once; the next is refused (503 / -ERR). Default: what
    /// RLIMIT_NOFILE leaves each core, at most 16,384 (the soft limit is raised to the hard).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_core: Option<u64>,
}

#[derive(Args)]
struct DemoArgs {
    /// Snapshot directory to build (default: the built-in demo delivery in data-gen/demo).
    #[arg(long)]
    snapshots: Option<PathBuf>,
    /// Data directory for the demo's generations.
    #[arg(long, default_value = "demo-data")]
    data: PathBuf,
    /// RESP (Redis protocol) listen address.
    #[arg(long, default_value = "127.0.0.1:7379")]
    resp: std::net::SocketAddr,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:7380")]
    http: std::net::SocketAddr,
    /// Build and print the queries, then exit instead of serving.
    #[arg(long)]
    no_serve: bool,
}

#[derive(Args)]
struct AuthLineArgs {
    /// The client's 医療機関コード (10 digits).
    #[arg(long)]
    institution_code: String,
    /// `query` (eligibility queries) or `admin` (also /metrics and administration).
    #[arg(long, default_value = "query")]
    role: String,
}

#[derive(Args)]
struct QueryArgs {
    /// Data directory holding CURRENT and generations/.
    #[arg(long)]
    data: PathBuf,
    /// Verify every checksum of the live generation before answering, as the server does
    /// before serving it (`shikaku verify`; about a second per 300 MB of index). Without it
    /// the files are read as they are on disk.
    #[arg(long)]
    verify: bool,
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
    if !cli.command.uses_sockets() {
        shikaku::cli::end_quietly_on_closed_stdout();
    }
    shikaku::cli::return_freed_memory_at_once();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: library errors often quote their
/// source in their own message already.
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}

impl Command {
    /// Whether the command talks to the network (a closed socket must not end it).
    fn uses_sockets(&self) -> bool {
        match self {
            Command::Serve(_) | Command::Load(_) => true,
            Command::Demo(args) => !args.no_serve,
            _ => false,
        }
    }
}

/// A percentage from 0 to 100.
fn percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a percentage from 0 to 100")),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build(args) => run_build(args, cli.person_key_file),
        Command::Query(args) => run_query(args, cli.person_key_file),
        Command::Generations(args) => run_generations(args, cli.person_key_file),
        Command::Verify(args) => run_verify(args, cli.person_key_file),
        Command::Serve(args) => run_serve(
            args,
            shikaku::cli::person_key(cli.person_key_file.as_deref())?,
        ),
        Command::Demo(args) => run_demo(args, cli.person_key_file),
        Command::AuthLine(args) => run_auth_line(args),
        Command::Load(args) => run_load(args),
        Command::RedisExport(args) => run_redis_export(args, cli.person_key_file),
    }
}

fn run_build(args: BuildArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use shikaku::build::run::{run, BuildConfig, BuildError, Reuse};
    use shikaku::domain::InsurerNumber;
    let key = shikaku::cli::person_key(key_file.as_deref())?;
    let accept = args
        .accept
        .iter()
        .map(|a| {
            InsurerNumber::parse(a)
                .with_context(|| format!("--accept {a:?} is not an insurer number"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let built_on = match &args.date {
        Some(d) => Date::parse(d).with_context(|| format!("--date {d:?}"))?,
        None => Date::today_jst(),
    };
    let cfg = BuildConfig {
        snapshots: args.snapshots.clone(),
        data: args.data.clone(),
        key,
        built_on,
        max_drop_percent: args.max_drop_percent,
        accept,
        reuse: if args.full {
            Reuse::Nothing
        } else {
            Reuse::UnchangedInsurers
        },
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    match run(&cfg) {
        Ok(out) => {
            let t = &out.report.totals;
            println!(
                "published {} in {:.1} s: {} rows read, {} indexed, {} rejected, {} duplicates; {} index bytes",
                out.generation,
                out.report.elapsed_ms as f64 / 1000.0,
                t.rows_read,
                t.rows_indexed,
                t.rows_rejected,
                t.rows_deduplicated,
                out.report.index_bytes
            );
            println!(
                "report: {}",
                out.generation_dir
                    .join(shikaku::generations::REPORT_FILE)
                    .display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ BuildError::Refused { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(3))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "building from {} into {}",
            args.snapshots.display(),
            args.data.display()
        ))),
    }
}

fn run_verify(args: VerifyArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let key = shikaku::cli::person_key(key_file.as_deref())?;
    let store = Store::new(&args.data);
    let id = match args.generation {
        Some(id) => id,
        None => store.live()?,
    };
    let started = std::time::Instant::now();
    let index = store
        .open_verified(&id, key)
        .with_context(|| format!("verifying generation {id}"))?;
    let h = index.header();
    println!(
        "generation {id}: ok, {} bytes ({} in segment files), {} insurers, {} records, {} persons verified in {:.2} s",
        index.total_bytes(),
        index.total_bytes() - h.file_bytes,
        h.insurer_count,
        h.record_count,
        h.person_count,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_generations(args: GenerationsArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let store = Store::new(&args.data);
    // A mistyped --data would list nothing and succeed: every action needs the directory.
    store.require_root()?;
    let ctx = || format!("data directory {}", args.data.display());
    match args.action {
        GenerationsAction::List => return list_generations(&store),
        GenerationsAction::Rollback { to } => {
            let _lock = store.lock().with_context(ctx)?;
            let key = shikaku::cli::person_key(key_file.as_deref())?;
            let id = store.rollback(to.as_deref(), key).with_context(ctx)?;
            println!("live generation is now {id}");
        }
        GenerationsAction::Gc { keep } => {
            let _lock = store.lock().with_context(ctx)?;
            let key = shikaku::cli::person_key(key_file.as_deref())?;
            let collected = store.gc(keep, key).with_context(ctx)?;
            for id in collected.generations {
                println!("removed {id}");
            }
            for id in collected.incomplete {
                println!("removed incomplete generation {id} (no index file)");
            }
            for id in collected.refused {
                println!("removed refused build {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the generations, the live one marked. A `CURRENT` naming none is warned about
/// after the list and fails the command, unless nothing was ever published.
fn list_generations(store: &Store) -> anyhow::Result<ExitCode> {
    let live = store.live();
    let ids = store
        .list()
        .with_context(|| format!("data directory {}", store.root().display()))?;
    for id in ids {
        let is_live = live.as_ref().is_ok_and(|live| *live == id);
        println!("{} {id}", if is_live { "*" } else { " " });
    }
    match live {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("warning: {e}");
            let fresh = matches!(e, StoreError::NothingPublished { .. });
            Ok(if fresh {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn run_demo(args: DemoArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let snapshots = args
        .snapshots
        .clone()
        .unwrap_or_else(shikaku::demo::builtin_snapshots);
    anyhow::ensure!(
        snapshots.join("insurers.csv").is_file(),
        "no demo delivery at {} (it ships in the repository's data-gen/demo); pass --snapshots DIR, e.g. one made by shikaku-datagen",
        snapshots.display()
    );
    let key = shikaku::cli::person_key(key_file.as_deref())?;
    println!(
        "building {} into {} ...",
        snapshots.display(),
        args.data.display()
    );
    if let Some(out) = shikaku::demo::build(&snapshots, &args.data, key.clone())? {
        let t = &out.report.totals;
        println!(
            "published {}: {} rows read, {} indexed, {} rejected, {} duplicates",
            out.generation, t.rows_read, t.rows_indexed, t.rows_rejected, t.rows_deduplicated
        );
        let rules: Vec<String> = t.by_rule.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("findings by rule: {}", rules.join(", "));
        println!("report: {}", out.generation_dir.display());
    }
    let queries = snapshots.join("queries.csv");
    if queries.is_file() {
        println!("\nqueries to try (expected validity from the generator's ground truth):");
        for e in shikaku::demo::examples(&queries)? {
            println!("  # {} query, expected validity {}", e.kind, e.expected);
            println!("  {}", e.redis_cli(args.resp.port()));
            println!("  {}", e.curl(args.http.port()));
        }
        println!(
            "  curl -s localhost:{}/metrics | head; curl -s localhost:{}/v1/generation\n",
            args.http.port(),
            args.http.port()
        );
        println!(
            "  tail -n 3 {}/audit-*.jsonl   # the audit log: who asked about whom\n",
            demo_audit_dir(&args.data).display()
        );
    }
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    let audit_dir = demo_audit_dir(&args.data);
    run_serve(
        ServeArgs {
            data: args.data,
            resp: args.resp,
            http: args.http,
            threads: 0,
            driver: "auto".into(),
            poll_us: shikaku::server::ServeConfig::default()
                .poll_window
                .as_micros() as u64,
            auth: None,
            audit_dir: Some(audit_dir),
            memory_budget_bytes: shikaku::server::budget::DEFAULT_MEMORY_BUDGET_BYTES,
            head_deadline_secs: shikaku::server::limits::HEAD_DEADLINE.as_secs(),
            body_deadline_secs: shikaku::server::limits::BODY_DEADLINE.as_secs(),
            max_connections_per_core: None,
        },
        key,
    )
}

/// The demo keeps its audit log beside its generations.
fn demo_audit_dir(data: &std::path::Path) -> PathBuf {
    data.join("audit")
}

fn run_serve(args: ServeArgs, key: shikaku::domain::PersonKey) -> anyhow::Result<ExitCode> {
    use shikaku::server::{serve_until_signal, AuthTable, ServeConfig};
    let auth = args.auth.as_deref().map(AuthTable::load).transpose()?;
    if let Some(table) = &auth {
        tracing::info!(clients = table.len(), "authentication required");
    }
    let config = ServeConfig {
        resp: args.resp,
        http: args.http,
        threads: usize::from(args.threads),
        auth,
        pin: true,
        driver: if args.driver == "epoll" {
            shikaku::server::Driver::Epoll
        } else {
            shikaku::server::Driver::Auto
        },
        poll_window: std::time::Duration::from_micros(args.poll_us),
        audit_dir: args.audit_dir,
        memory_budget_bytes: args.memory_budget_bytes,
        head_deadline: std::time::Duration::from_secs(args.head_deadline_secs),
        body_deadline: std::time::Duration::from_secs(args.body_deadline_secs),
        max_connections_per_core: args.max_connections_per_core.map(|n| n as usize),
    };
    serve_until_signal(&args.data, config, key, |server, id| {
        eprintln!(
            "shikaku serving generation {id}: RESP on {}, HTTP on {}",
            server.resp_addr(),
            server.http_addr()
        );
    })?;
    Ok(ExitCode::SUCCESS)
}

fn run_auth_line(args: AuthLineArgs) -> anyhow::Result<ExitCode> {
    use shikaku::server::auth::{new_entry, Role};
    let code = shikaku::domain::InstitutionCode::parse(&args.institution_code)
        .map_err(|e| anyhow::anyhow!("--institution-code: {e}"))?;
    let role = Role::parse(&args.role)
        .ok_or_else(|| anyhow::anyhow!("--role must be query or admin, not {:?}", args.role))?;
    let (token, line) = new_entry(code, role).context("reading the OS random source")?;
    eprintln!(
        "credential for {code} (give it to the institution; it is stored nowhere): {code}:{token}"
    );
    eprintln!("append this line to the auth file:");
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

fn run_query(args: QueryArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let key = shikaku::cli::person_key(key_file.as_deref())?;
    let store = Store::new(&args.data);
    let index = store
        .open_current(key)
        .with_context(|| format!("opening the live generation in {}", args.data.display()))?;
    if args.verify {
        index.verify().with_context(|| {
            format!(
                "generation {} in {} failed verification",
                index.generation(),
                args.data.display()
            )
        })?;
    }
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

#[derive(Args)]
struct LoadArgs {
    /// Workload file: queries.csv of shikaku-datagen --queries (with the expected validity).
    #[arg(long)]
    queries: PathBuf,
    /// RESP address of the server.
    #[arg(long, default_value = "127.0.0.1:7379")]
    addr: String,
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Closed loop: requests kept outstanding on each connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Closed loop: send the --pipeline requests together and the next ones only when all are
    /// answered (redis-benchmark -P); default: refill each slot as soon as its reply comes.
    #[arg(long, conflicts_with = "rate")]
    batch: bool,
    /// Open loop at this total rate (requests/s), whatever the replies; default closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: most requests outstanding on one connection; later ones wait (and count).
    #[arg(long, default_value_t = 1000)]
    max_outstanding: usize,
    /// Seconds of measured load (default 10 unless --requests is given).
    #[arg(long, conflicts_with = "requests")]
    duration: Option<f64>,
    /// Number of measured requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Client threads, one io_uring runtime each; connections are spread over them.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Authenticate every connection first: AUTH CODE TOKEN.
    #[arg(long, value_name = "CODE:TOKEN")]
    auth: Option<String>,
    /// elig: ELIG.CARD/ELIG.PERSON; redis-get: GET <card key> (against redis-export's data);
    /// ping: PING per row, expecting +PONG (the floor any server allows with this client).
    #[arg(long, value_enum, default_value = "elig")]
    mode: shikaku::load::Mode,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Print the report as one JSON line.
    #[arg(long)]
    json: bool,
}

fn run_load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    use shikaku::load::{self, Length, LoadConfig, Workload};
    use std::net::ToSocketAddrs;
    let addr = args
        .addr
        .to_socket_addrs()
        .with_context(|| format!("--addr {:?}", args.addr))?
        .next()
        .with_context(|| format!("--addr {:?} resolves to no address", args.addr))?;
    let auth = match &args.auth {
        None => None,
        Some(a) => {
            let (code, token) = a.split_once(':').context("--auth must be CODE:TOKEN")?;
            Some((code.to_string(), token.to_string()))
        }
    };
    let length = match (args.requests, args.duration) {
        (Some(k), _) => Length::Requests(k),
        (None, d) => Length::Duration(d.unwrap_or(10.0)),
    };
    let cfg = LoadConfig {
        addr,
        connections: args.connections,
        pipeline: args.pipeline,
        batch: args.batch,
        rate: args.rate,
        max_outstanding: args.max_outstanding,
        length,
        threads: args.threads,
        auth,
        warmup: args.warmup,
    };
    cfg.check()?;
    let workload = Workload::load(&args.queries, args.mode)?;
    tracing::info!(
        "{} requests from {} ({} rows skipped)",
        workload.len(),
        args.queries.display(),
        workload.skipped
    );
    let report = load::run(&cfg, std::sync::Arc::new(workload), args.mode)
        .with_context(|| format!("load against {addr}"))?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(if report.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Args)]
struct RedisExportArgs {
    /// Data directory holding CURRENT and generations/.
    #[arg(long)]
    data: PathBuf,
    /// Workload file whose card queries with a branch are exported first, with their own
    /// answers; every other card key of the index follows, answered for today.
    #[arg(long)]
    queries: PathBuf,
}

fn run_redis_export(args: RedisExportArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let key = shikaku::cli::person_key(key_file.as_deref())?;
    let index = Store::new(&args.data)
        .open_current(key)
        .with_context(|| format!("opening the live generation in {}", args.data.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let stats = shikaku::load::export::export(&index, &args.queries, Date::today_jst(), &mut out)?;
    eprintln!(
        "exported {} keys ({} from the workload, {} more records of the index; {} rows skipped); {} answers differ from the expected validity",
        stats.keys, stats.keys - stats.record_keys, stats.record_keys, stats.skipped, stats.unexpected_validity
    );
    Ok(ExitCode::SUCCESS)
}
