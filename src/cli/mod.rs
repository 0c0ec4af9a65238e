//! The `shikaku` command line: its arguments (`args.rs`, clap), the commands on a data
//! directory (`data.rs`) and on the network (`net.rs`), and what every command-line program
//! shares (`shikaku-datagen` too): the person key from configuration, logging, SIGPIPE.

mod args;
mod claims;
mod data;
mod key;
mod materialize;
mod net;

pub use args::*;

use crate::domain::PersonKey;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

/// Environment variable naming the operator's person key file (64 hex digits).
pub const PERSON_KEY_ENV: &str = "SHIKAKU_PERSON_KEY_FILE";

/// Loads the person key: from `path`, else from `$SHIKAKU_PERSON_KEY_FILE`, else the fixed
/// demo key (with a warning: acceptable for demo data only, docs/api.md#individual-number).
pub fn person_key(path: Option<&Path>) -> anyhow::Result<PersonKey> {
    let from_env = std::env::var_os(PERSON_KEY_ENV).map(std::path::PathBuf::from);
    // Set but empty is a mistake, not a wish for the demo key: its hashes would answer
    // nobody's individual number.
    if path.is_none() && from_env.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        anyhow::bail!(
            "{PERSON_KEY_ENV} is set but empty: name the person key file, or unset it to use the demo key"
        );
    }
    match path.map(Path::to_path_buf).or(from_env) {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read person key file {}", p.display()))?;
            PersonKey::from_hex(&text)
                .with_context(|| format!("person key file {} must hold 64 hex digits", p.display()))
        }
        None => {
            tracing::warn!("no person key configured (--person-key-file or {PERSON_KEY_ENV}); using the fixed demo key, fit for demo data only");
            Ok(PersonKey::demo())
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the level (default info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only on a terminal: log files and CI output stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Lets a closed standard output end the program quietly, as it ends `cat` or `grep`
/// (`shikaku generations list | head -1`): the default action of SIGPIPE. Rust ignores
/// SIGPIPE, so the next `println!` would panic on the broken pipe instead. Only for programs
/// that write no sockets: a server or load generator must get EPIPE from a closed
/// connection, not die of it.
#[allow(unsafe_code)] // Restoring SIGPIPE's default action; see SAFETY below.
pub fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default action at the start of `main`, before any other
    // thread runs, races with nothing; no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs the command `cli` names: a closed standard output ends a command without sockets
/// quietly, and an error is printed on one line (its causes each once) with exit status 1.
pub fn run(cli: Cli) -> ExitCode {
    if !cli.command.uses_sockets() {
        end_quietly_on_closed_stdout();
    }
    if cli.command.holds_memory_idle() {
        crate::allocator::return_freed_memory_at_once();
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build(args) => {
            let key = args.key.file.clone();
            data::run_build(args, key)
        }
        Command::Materialize(args) => materialize::run_materialize(args),
        Command::Query(args) => {
            let key = args.key.file.clone();
            data::run_query(args, key)
        }
        Command::Generations(args) => data::run_generations(args),
        Command::Verify(args) => {
            let key = args.key.file.clone();
            data::run_verify(args, key)
        }
        Command::Serve(args) => {
            let key = person_key(args.key.file.as_deref())?;
            net::run_serve(args, key)
        }
        Command::Demo(args) => {
            let key = args.key.file.clone();
            net::run_demo(args, key)
        }
        Command::AuthLine(args) => net::run_auth_line(args),
        Command::Load(args) => net::run_load(args),
        Command::RedisExport(args) => {
            let key = args.key.file.clone();
            data::run_redis_export(args, key)
        }
        Command::PersonKey { action } => key::run_person_key(action),
        Command::SigningKey { action } => key::run_signing_key(action),
        Command::Claims(args) => {
            let key = args.key.file.clone();
            claims::run_claims(args, key)
        }
        Command::Publish(args) => {
            crate::fleet::command::run_publish(args).map(|()| ExitCode::SUCCESS)
        }
        Command::Fleet(args) => crate::fleet::command::run_fleet(args).map(|()| ExitCode::SUCCESS),
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
    pub fn uses_sockets(&self) -> bool {
        match self {
            Command::Serve(_) | Command::Load(_) | Command::Publish(_) | Command::Fleet(_) => true,
            Command::Demo(args) => !args.no_serve,
            Command::Build(args) => args.publish.is_some(),
            _ => false,
        }
    }

    /// Whether the command may sit idle holding freed memory (a server between bursts),
    /// so mimalloc should give it back at once. Not the build: it frees and allocates the
    /// same large buffers insurer after insurer, and returning each to the OS made the
    /// kernel zero them again on the next insurer (page faults were 18% of a build's CPU).
    pub fn holds_memory_idle(&self) -> bool {
        !matches!(self, Command::Build(_))
    }
}

/// A percentage from 0 to 100.
pub(super) fn percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a percentage from 0 to 100")),
    }
}
