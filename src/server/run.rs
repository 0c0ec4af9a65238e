//! `shikaku serve` as a library function: open and verify the live generation, serve it,
//! reload on a new `CURRENT`, SIGHUP or `POST /admin/reload`, and drain on SIGTERM or Ctrl-C.

use super::{serve, Live, Reloader, ServeConfig, ServeError, Server};
use crate::domain::PersonKey;
use crate::format::FormatError;
use crate::generations::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RunError {
    #[error("opening the live generation in {}", data.display())]
    Open {
        data: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("generation {id} failed verification")]
    Verify {
        id: String,
        #[source]
        source: FormatError,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("{what}")]
    Setup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn setup(what: &'static str) -> impl FnOnce(std::io::Error) -> RunError {
    move |source| RunError::Setup { what, source }
}

/// Serves the live generation of the data directory `data` until SIGTERM or SIGINT has
/// drained the server (a second SIGINT while draining exits the process at once, status
/// 130). `started` is called once every core listens and the handlers are installed, with the
/// server and the generation id.
pub fn serve_until_signal(
    data: &Path,
    config: ServeConfig,
    key: PersonKey,
    started: impl FnOnce(&Server, &str),
) -> Result<(), RunError> {
    // Verification runs on rayon's pool (`Index::verify_new`); while serving, a reload's
    // verification must not take the CPU from the serving cores.
    let _ = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| super::live::lower_this_thread_priority())
        .build_global();
    let store = Store::new(data);
    let index = store
        .open_current(key.clone())
        .map_err(|source| RunError::Open {
            data: data.to_owned(),
            source,
        })?;
    let id = index.generation().to_owned();
    tracing::info!(generation = %id, "verifying checksums");
    let live = Live::new(index).map_err(|source| RunError::Verify {
        id: id.clone(),
        source,
    })?;
    let server = serve(config, Arc::new(live))?;
    let reload = server.reload_flag();
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .map_err(setup("installing the SIGHUP handler"))?;
    Reloader {
        live: server.live().clone(),
        store,
        key,
        requested: reload,
    }
    .spawn()
    .map_err(setup("starting the reload thread"))?;
    // SIGTERM or Ctrl-C drains (answer what was read, close, return); a second Ctrl-C while
    // draining exits at once.
    let drain = server.drain_flag();
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        drain.clone(),
    )
    .map_err(setup("installing the SIGINT handler"))?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, drain.clone())
            .map_err(setup("installing the SIGTERM/SIGINT handlers"))?;
    }
    // Told only now, so a signal sent as soon as the caller hears of the server finds the
    // handlers installed.
    started(&server, &id);
    server.join();
    tracing::info!("drained; exiting");
    Ok(())
}
