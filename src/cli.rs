//! Shared pieces of the command-line programs: the person key from configuration, logging.

use crate::domain::PersonKey;
use anyhow::Context;
use std::path::Path;

/// Environment variable naming the operator's person key file (64 hex digits).
pub const PERSON_KEY_ENV: &str = "SHIKAKU_PERSON_KEY_FILE";

/// Loads the person key: from `path`, else from `$SHIKAKU_PERSON_KEY_FILE`, else the fixed
/// demo key (with a warning: acceptable for demo data only, SPEC 1.3).
pub fn person_key(path: Option<&Path>) -> anyhow::Result<PersonKey> {
    let from_env = std::env::var_os(PERSON_KEY_ENV).map(std::path::PathBuf::from);
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
pub fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default action at the start of `main`, before any other
    // thread runs, races with nothing; no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// mimalloc's `mi_option_purge_delay` (the same place in the option list of its v2 and v3,
/// `mimalloc.h`); the Rust bindings name no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has mimalloc give freed memory back to the OS at once. By default it waits 10 ms and
/// purges only on a later allocation or free in the same thread, so a serving core left idle
/// after thousands of connections closed kept their buffers resident indefinitely (120 MiB
/// after 3,000 connections, in the hostile-server test). Pages freed on the query path are
/// none: lookups and answers allocate nothing per request.
pub fn return_freed_memory_at_once() {
    // SAFETY: sets an integer option that mimalloc reads when it next purges; the call takes
    // no pointer and mimalloc allows it from any thread at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}
