//! The command line: clap's structures for every subcommand and its arguments.

use super::percent;
use crate::server::Driver;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "shikaku",
    version,
    about = "High-throughput health-insurance eligibility lookup engine (オンライン資格確認)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The person key, for the commands that open or make an index.
#[derive(Args, Clone, Default)]
pub struct KeyArg {
    /// File holding the person key, the secret of the individual-number hash (64 hex digits;
    /// `shikaku person-key new` makes one). Default: $SHIKAKU_PERSON_KEY_FILE, else the fixed
    /// demo key, fit for demo data only.
    #[arg(long = "person-key-file", value_name = "FILE", global = true)]
    pub file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build a new index generation from insurer snapshots, report, and publish it.
    Build(BuildArgs),
    /// Write each insurer's state (its newest snapshot with its change files applied) as a
    /// plain snapshot, with insurers.csv: a full build over the output answers every query as
    /// a build over the delivery does.
    Materialize(MaterializeArgs),
    /// Answer one query from the live generation and print the answer JSON.
    Query(QueryArgs),
    /// List, roll back or garbage-collect index generations.
    Generations(GenerationsArgs),
    /// Check every checksum of a generation (the live one by default), as a server does
    /// before serving it.
    Verify(VerifyArgs),
    /// Serve the live generation over RESP and HTTP (docs/api.md), one thread per core.
    Serve(ServeArgs),
    /// Build the built-in demo data, print queries to try, and serve it.
    Demo(DemoArgs),
    /// Make a new client token and the auth file line that admits it (see `shikaku serve --auth`).
    AuthLine(AuthLineArgs),
    /// Drive the RESP port with a workload file; report rate, latency and wrong answers.
    Load(LoadArgs),
    /// Print `SET <card key> <answer JSON>` for the workload's card queries, for `redis-cli --pipe`.
    RedisExport(RedisExportArgs),
    /// Make the operator's signing key: a builder given it (`build --signing-key`) signs
    /// each generation's manifest after its deep check, and servers and replicas that trust
    /// its public key (`serve --trusted-keys`) then check only checksums before serving.
    SigningKey {
        #[command(subcommand)]
        action: SigningKeyAction,
    },
    /// Make a person key, or hash individual numbers under one (docs/operations.md: creating
    /// and rotating the key).
    PersonKey {
        #[command(subcommand)]
        action: PersonKeyAction,
    },
    /// Check monthly claims files (UKE, 医科) against the live generation: one row per
    /// receipt on stdout, the summary on stderr.
    ///
    /// Before the first row, the parts of the generation the files' receipts can read are
    /// verified (the whole generation when the files hold a quarter of its segments' bytes or
    /// more); a part that fails stops the run with no row written. Exit status: 0 when every file was
    /// checked, whatever the verdicts; 1 when a file could not be read or the generation
    /// failed verification.
    Claims(ClaimsArgs),
    /// Upload a generation to the fleet's object store (s3://BUCKET/PREFIX); not yet live.
    Publish(crate::fleet::command::PublishArgs),
    /// The fleet's pointer: status, promote GEN, rollback, pin GEN; the promote policy.
    Fleet(crate::fleet::command::FleetArgs),
}

#[derive(Subcommand)]
pub enum SigningKeyAction {
    /// Write a new random ed25519 signing key (mode 0400) to a file that must not exist, and
    /// print its public key (`ed25519:` and 64 hex digits), the line a trusted-keys file holds.
    New {
        /// The key file to create, e.g. /etc/shikaku/signing.key (on the builder only).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum PersonKeyAction {
    /// Write a new random person key (64 hex digits, mode 0400) to a file that must not exist,
    /// and print its fingerprint (an index opened with another key is refused with an error
    /// naming both fingerprints).
    New {
        /// The key file to create, e.g. /etc/shikaku/person.key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the keyed hash (32 hex digits) of each individual number read from standard
    /// input, one a line, under the configured person key: the `person` field of that
    /// person's audit-log lines. Read from standard input, never from the command line (which
    /// shell histories and process lists show).
    Hash {
        #[command(flatten)]
        key: KeyArg,
    },
}

#[derive(Args)]
pub struct BuildArgs {
    /// Snapshot directory: insurers.csv, <insurer_number>/<YYYYMMDD>.csv and change files
    /// <insurer_number>/changes/<YYYYMMDD>-<hhmmss>.csv.
    #[arg(long)]
    pub snapshots: PathBuf,
    #[command(flatten)]
    pub key: KeyArg,
    /// Data directory: generations/, CURRENT.
    #[arg(long)]
    pub data: PathBuf,
    /// Refuse to publish when an insurer's members covered today fall by more than this
    /// percent (0 to 100).
    #[arg(long, default_value_t = crate::nightly::run::DEFAULT_MAX_DROP_PERCENT, value_parser = percent)]
    pub max_drop_percent: f64,
    /// Publish even though this insurer (or public-expense payer) trips the guard
    /// (repeatable).
    #[arg(long = "accept", value_name = "INSURER")]
    pub accept: Vec<String>,
    /// Build date (default: today in Japan); used for the members-covered-today counts.
    /// Change files are applied up to now, or, for another day than today, up to its end.
    #[arg(long)]
    pub date: Option<String>,
    /// Parse every snapshot and change file again instead of reusing the live generation's
    /// unchanged insurers (recognized by path, size and modification time of the snapshot,
    /// and path and content of each change file).
    #[arg(long, conflicts_with_all = ["watch", "compact", "fold"])]
    pub full: bool,
    /// Merge the live generation's change layers into one layer on the same base, from the
    /// index alone (no snapshot or change file is read; the answers stay the same): what a
    /// change build does by itself once its generation stacks 32 layers. New delivery files
    /// wait for the next build.
    #[arg(long, conflicts_with_all = ["watch", "fold", "whole_states"])]
    pub compact: bool,
    /// Fold the live generation's change layers into a new base (the incremental build: each
    /// insurer a layer touched read again), even when only change files are new. Without it,
    /// a build whose only new inputs are change files of insurers the live generation holds
    /// makes a change generation (one layer), and folds by itself once the layers hold more
    /// than 5% of the base's bytes.
    #[arg(long, conflicts_with = "full")]
    pub fold: bool,
    /// A change generation computes every touched insurer from its whole state (the full
    /// path), never by the cards its new change files name (the card path): the same
    /// generation, at the full path's cost; for comparing the two.
    #[arg(long, conflicts_with_all = ["full", "compact", "fold"])]
    pub whole_states: bool,
    /// Keep running: each change file or snapshot renamed into the snapshots directory (only
    /// names ending in .csv count) is built into a generation and made live within seconds;
    /// files landing together go into one build. Stops between builds on SIGTERM or SIGINT.
    /// What it does is logged and written to DATA/watch.json.
    #[arg(long)]
    pub watch: bool,
    /// Upload each generation built to the fleet's store, s3://BUCKET/PREFIX (only the
    /// segment files the store lacks), and apply the fleet's promote policy
    /// (`shikaku fleet policy`).
    #[arg(long, value_name = "URL")]
    pub publish: Option<String>,
    /// S3-compatible endpoint for --publish; else $AWS_ENDPOINT_URL, else AWS.
    #[arg(long, requires = "publish")]
    pub endpoint: Option<String>,
    /// With --watch: a build starts once no file has landed for this many milliseconds (or
    /// 10 times as long after the first, whatever keeps landing). Default 0: at once, files
    /// that land during a build going into the next one.
    #[arg(long, default_value_t = 0, requires = "watch")]
    pub settle_ms: u64,
    /// With --watch: generations kept in the data directory (older ones are removed once
    /// there are twice as many).
    #[arg(long, default_value_t = 4, requires = "watch", value_parser = clap::value_parser!(u64).range(2..))]
    pub keep: u64,
    /// Deep-check the new generation and sign its manifest with this key (made by
    /// `shikaku signing-key new`): servers and replicas trusting the key then check only
    /// checksums before serving it (docs/operations.md, signed generations).
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Args)]
pub struct MaterializeArgs {
    /// Delivery directory: insurers.csv, <insurer_number>/<YYYYMMDD>.csv and
    /// <insurer_number>/changes/<YYYYMMDD>-<hhmmss>.csv.
    #[arg(long)]
    pub snapshots: PathBuf,
    /// Output directory, new or empty: insurers.csv and <insurer_number>/<YYYYMMDD>.csv, dated
    /// with the day of the insurer's last change file applied (else its snapshot's).
    #[arg(long)]
    pub out: PathBuf,
    /// Take the delivery as `shikaku build --date` does (default: now in Japan): snapshots
    /// dated after this day, and change files timed after its end (after now, if it is
    /// today), are left out.
    #[arg(long)]
    pub date: Option<String>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Data directory holding CURRENT and generations/.
    #[arg(long)]
    pub data: PathBuf,
    /// Generation id (default: the live one; `shikaku generations list` shows the ids).
    #[arg(long)]
    pub generation: Option<String>,
    /// Check as a server given these trusted keys does: only checksums when the generation is
    /// signed by one of them (default: the full deep check).
    #[arg(long, value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArg,
}

#[derive(Args)]
pub struct GenerationsArgs {
    /// Data directory holding CURRENT, generations/ and refused/ (required; before or after
    /// the action).
    #[arg(long, value_name = "DATA", global = true)]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub action: GenerationsAction,
}

#[derive(Subcommand)]
pub enum GenerationsAction {
    /// List published generations, oldest first; the live one is marked. Warns when
    /// DATA/CURRENT names none, and then fails unless nothing was ever published.
    List,
    /// Make an earlier generation live again (default: the one before the live one), after
    /// verifying every checksum of it. `--to <id>` also mends a lost or damaged DATA/CURRENT.
    Rollback {
        /// The generation to make live (an id of `generations list`); default: the one
        /// before the live one.
        #[arg(long, value_name = "ID")]
        to: Option<String>,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Delete all but the newest K generations, never the live one nor one newer than it
    /// (rolled back from), and all but the newest K refused builds (DATA/refused/). Removes
    /// nothing unless DATA/CURRENT names a generation that passes verification.
    Gc {
        /// How many of the newest generations (and of the newest refused builds) to keep.
        #[arg(long, value_name = "K", default_value_t = 3)]
        keep: usize,
        #[command(flatten)]
        key: KeyArg,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    /// Data directory holding CURRENT and generations/.
    #[arg(long)]
    pub data: PathBuf,
    /// RESP (Redis protocol) listen address.
    #[arg(long, default_value = "127.0.0.1:7379")]
    pub resp: std::net::SocketAddr,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:7380")]
    pub http: std::net::SocketAddr,
    /// Worker threads, one per core, at most 1,024 [default: every available core; 0 means
    /// the same].
    #[arg(long, default_value_t = 0, hide_default_value = true, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub threads: u16,
    /// I/O driver: `auto` (io_uring, else epoll) or `epoll` (faster at low pipelining depth).
    #[arg(long, value_enum, default_value = "auto")]
    pub driver: Driver,
    /// Microseconds a core keeps polling after a request before it sleeps; 0 never polls
    /// (try it on a crowded virtual machine, where a core that never sleeps is descheduled).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub poll_us: u64,
    /// Auth file: one `institution_code role blake3_hex(token)` line per client (make lines
    /// with `shikaku auth-line`). Without it anyone may query, on loopback addresses only.
    #[arg(long)]
    pub auth: Option<PathBuf>,
    /// Trusted-keys file: one `ed25519:<64 hex>` public key per line (`shikaku signing-key
    /// new` prints it). A generation whose manifest one of them signed is checked against the
    /// manifest and its own checksums only; any other gets the full deep check.
    #[arg(long, value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
    /// Keep an audit log here: one JSON line per query answered (who asked, about which card
    /// or which person's keyed hash, the validity told), a file per core. Created if missing.
    #[arg(long)]
    pub audit_dir: Option<PathBuf>,
    /// Most bytes the connections' read buffers may hold together beyond their first 16 KiB
    /// each (large bodies: batches); a request needing more is refused with 503 / -ERR and
    /// counted in /metrics. Default 1 GiB.
    #[arg(long, default_value_t = crate::server::budget::DEFAULT_MEMORY_BUDGET_BYTES)]
    pub memory_budget_bytes: usize,
    /// Seconds a request's head (request line and headers, a RESP command) may take to arrive
    /// from its first byte; then 408 / -ERR and the connection closes (slow clients).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub head_deadline_secs: u64,
    /// Seconds a whole request, body included, may take to arrive from its first byte.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_deadline_secs: u64,
    /// Connections each core serves at once; the next is refused (503 / -ERR). Default: what
    /// RLIMIT_NOFILE leaves each core, at most 16,384 (the soft limit is raised to the hard).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_core: Option<u64>,
    /// Copy each generation into one anonymous mapping with 2 MB pages instead of serving it
    /// from its files: about a tenth less CPU per card query, for the generation's size in
    /// memory that is never reclaimed, copied at each swap, twice during one (old and new), and
    /// once for each generation a replica holds ready.
    #[arg(long)]
    pub preload: bool,
    #[command(flatten)]
    pub follow: crate::fleet::command::FollowArgs,
    #[command(flatten)]
    pub key: KeyArg,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Snapshot directory to build (default: the built-in demo delivery in data-gen/demo).
    #[arg(long)]
    pub snapshots: Option<PathBuf>,
    /// Data directory for the demo's generations.
    #[arg(long, default_value = "demo-data")]
    pub data: PathBuf,
    /// RESP (Redis protocol) listen address.
    #[arg(long, default_value = "127.0.0.1:7379")]
    pub resp: std::net::SocketAddr,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:7380")]
    pub http: std::net::SocketAddr,
    /// Build and print the queries, then exit instead of serving.
    #[arg(long)]
    pub no_serve: bool,
    #[command(flatten)]
    pub key: KeyArg,
}

#[derive(Args)]
pub struct AuthLineArgs {
    /// The client's 医療機関コード (10 digits).
    #[arg(long)]
    pub institution_code: String,
    /// `query` (eligibility queries) or `admin` (also /metrics and administration).
    #[arg(long, default_value = "query")]
    pub role: String,
}

#[derive(Args)]
pub struct QueryArgs {
    /// Data directory holding CURRENT and generations/ (required; before or after the kind).
    #[arg(long, value_name = "DATA", global = true)]
    pub data: Option<PathBuf>,
    /// Verify every checksum of the live generation before answering, as the server does
    /// before serving it (`shikaku verify`; about a second per 300 MB of index). Without it
    /// only what the query reads is verified: the main file and the segment files of the
    /// insurers it can look in.
    #[arg(long, global = true)]
    pub verify: bool,
    #[command(flatten)]
    pub key: KeyArg,
    #[command(subcommand)]
    pub kind: QueryCommand,
}

#[derive(Subcommand)]
pub enum QueryCommand {
    /// 記号・番号等による照会: by the insurance card's numbers and the birth date
    /// (docs/api.md, card query).
    Card {
        /// 保険者番号: 8 digits (6 for 国保) with a valid check digit; full-width digits and
        /// padding spaces are accepted.
        #[arg(long)]
        insurer_number: String,
        /// 記号, when the card has one (後期高齢者 cards have none).
        #[arg(long)]
        symbol: Option<String>,
        /// 番号 (leading zeros of an all-digit number do not count).
        #[arg(long)]
        number: String,
        /// 枝番, one or two digits; without it every branch of the card is a candidate.
        #[arg(long)]
        branch: Option<String>,
        /// The member's birth date: YYYY-MM-DD, YYYYMMDD or 和暦 (S55.1.23, 3550123).
        #[arg(long)]
        birthdate: String,
        /// Day to check, as a date is written for --birthdate (default: today in Japan).
        #[arg(long)]
        date: Option<String>,
        /// The patient consents to showing the 限度額適用区分.
        #[arg(long)]
        limit_consent: bool,
    },
    /// マイナンバーカードによる照会: by the individual number (docs/api.md, person query).
    Person {
        /// 個人番号: 12 digits with a valid check digit (never logged nor shown in an error).
        #[arg(long)]
        individual_number: String,
        /// Day to check: YYYY-MM-DD, YYYYMMDD or 和暦 (default: today in Japan).
        #[arg(long)]
        date: Option<String>,
        /// The patient consents to showing the 限度額適用区分.
        #[arg(long)]
        limit_consent: bool,
    },
    /// 公費 (public expense): by payer and recipient number (docs/api.md, public-expense query).
    Kohi {
        /// 公費負担者番号: 8 digits with a valid check digit.
        #[arg(long)]
        payer_number: String,
        /// 公費受給者番号: 7 digits with a check digit (法別 10–79), 1–20 characters (80–99).
        #[arg(long)]
        recipient_number: String,
        /// Birth date: YYYY-MM-DD, YYYYMMDD or 和暦.
        #[arg(long)]
        birthdate: String,
        /// Day to check: YYYY-MM-DD, YYYYMMDD or 和暦 (default: today in Japan).
        #[arg(long)]
        date: Option<String>,
        /// 医療機関コード of the institution asking: a certificate for designated
        /// institutions only is invalid elsewhere (without it, that rule is not applied).
        #[arg(long)]
        institution_code: Option<String>,
    },
}

#[derive(Args)]
pub struct LoadArgs {
    /// Workload file: queries.csv of shikaku-datagen --queries (with the expected validity).
    #[arg(long)]
    pub queries: PathBuf,
    /// RESP address of the server.
    #[arg(long, default_value = "127.0.0.1:7379")]
    pub addr: String,
    /// Connections to open, spread over --threads.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Closed loop: requests kept outstanding on each connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Closed loop: send the --pipeline requests together and the next ones only when all are
    /// answered (redis-benchmark -P); default: refill each slot as soon as its reply comes.
    #[arg(long, conflicts_with = "rate")]
    pub batch: bool,
    /// Open loop at this total rate (requests/s), whatever the replies; default closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: most requests outstanding on one connection; later ones wait (and count).
    #[arg(long, default_value_t = 1000)]
    pub max_outstanding: usize,
    /// Seconds of measured load (default 10 unless --requests is given).
    #[arg(long, conflicts_with = "requests")]
    pub duration: Option<f64>,
    /// Number of measured requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Client threads, one io_uring runtime each; connections are spread over them.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Authenticate every connection first: AUTH CODE TOKEN.
    #[arg(long, value_name = "CODE:TOKEN")]
    pub auth: Option<String>,
    /// elig: ELIG.CARD/ELIG.PERSON; redis-get: GET <card key> (against redis-export's data);
    /// ping: PING per row, expecting +PONG (the floor any server allows with this client).
    #[arg(long, value_enum, default_value = "elig")]
    pub mode: crate::load::Mode,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Print the report as one JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RedisExportArgs {
    /// Data directory holding CURRENT and generations/.
    #[arg(long)]
    pub data: PathBuf,
    /// Workload file whose card queries with a branch are exported first, with their own
    /// answers; every other card key of the index follows, answered for today.
    #[arg(long)]
    pub queries: PathBuf,
    #[command(flatten)]
    pub key: KeyArg,
}

#[derive(Args)]
pub struct ClaimsArgs {
    /// Data directory: generations/, CURRENT.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub key: KeyArg,
    /// Print a JSON array instead of CSV.
    #[arg(long)]
    pub json: bool,
    /// Claims files (RECEIPTC.UKE), CP932 or UTF-8.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}
