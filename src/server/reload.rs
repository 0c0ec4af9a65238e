//! Hot-swap: a thread that watches `DATA/CURRENT` (polled every [`POLL`]), SIGHUP and
//! `POST /admin/reload`, opens the generation `CURRENT` names, verifies every checksum (which
//! also faults every page in), and publishes it to every core. A generation that fails is
//! refused and logged, and the old one keeps serving.

use super::live::Live;
use crate::domain::PersonKey;
use crate::generations::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often `CURRENT` is read: a new generation is noticed within this.
pub const POLL: Duration = Duration::from_millis(200);

/// What to reload from, and what asks for it.
pub struct Reloader {
    pub live: Arc<Live>,
    pub store: Store,
    pub key: PersonKey,
    /// Set by SIGHUP and `POST /admin/reload`: reload even if `CURRENT` looks unchanged.
    pub requested: Arc<AtomicBool>,
}

impl Reloader {
    /// Runs the watch loop on its own thread, forever.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("shikaku-reload".into())
            .spawn(move || {
                super::live::lower_this_thread_priority();
                self.run()
            })
    }

    fn run(self) {
        // The id last refused, so a bad CURRENT is not retried every poll.
        let mut refused: Option<String> = None;
        loop {
            std::thread::sleep(POLL);
            let forced = self.requested.swap(false, Ordering::AcqRel);
            let wanted = match self.store.current() {
                Ok(Some(id)) => id,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("cannot read {}: {e}", self.store.current_path().display());
                    continue;
                }
            };
            let serving = self.live.load().id().to_owned();
            if !forced && wanted == serving {
                // CURRENT names what is served (put back after a refusal, say): nothing
                // is refused any more.
                self.set_refusal(None);
                refused = None;
                continue;
            }
            if !forced && refused.as_deref() == Some(wanted.as_str()) {
                continue;
            }
            match self.swap_to(&wanted) {
                Ok(()) => refused = None,
                Err(why) => {
                    tracing::error!(generation = %wanted, serving = %serving, "reload refused, still serving the old generation: {why}");
                    self.live.reload_refusals.fetch_add(1, Ordering::Relaxed);
                    self.set_refusal(Some(format!("{wanted}: {why}")));
                    refused = Some(wanted);
                }
            }
        }
    }

    fn set_refusal(&self, why: Option<String>) {
        *self
            .live
            .last_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Opens, verifies (faulting every page in) and publishes generation `id`.
    pub fn swap_to(&self, id: &str) -> Result<(), String> {
        let _quiet = self.live.background();
        let started = std::time::Instant::now();
        let index = self
            .store
            .open(id, self.key.clone())
            .map_err(|e| e.to_string())?;
        self.live.publish(index).map_err(|e| e.to_string())?;
        self.set_refusal(None);
        tracing::info!(generation = %id, elapsed_ms = started.elapsed().as_millis() as u64, "hot-swapped");
        Ok(())
    }
}
