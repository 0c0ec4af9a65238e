//! Hot-swap: a thread that watches `DATA/CURRENT` (polled every [`POLL`]), SIGHUP and
//! `POST /admin/reload`, opens the generation `CURRENT` names, verifies every checksum (which
//! also faults every page in), and publishes it to every core. A generation that fails is
//! refused and logged, and the old one keeps serving.

use super::live::{Live, VerifiedIndex};
use super::supervise::{spawn_supervised, BackgroundThread};
use crate::domain::PersonKey;
use crate::generations::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often `CURRENT` is read: a new generation is noticed within this. Reading a file of
/// 30 bytes twenty times a second costs nothing next to the delay a slower poll adds to
/// every change going live.
pub const POLL: Duration = Duration::from_millis(50);

/// What to reload from, and what asks for it.
pub struct Reloader {
    pub live: Arc<Live>,
    pub store: Store,
    pub key: PersonKey,
    /// Set by SIGHUP and `POST /admin/reload`: reload even if `CURRENT` looks unchanged.
    pub requested: Arc<AtomicBool>,
}

/// What the watch loop remembers from poll to poll, kept outside it so that it outlives a
/// panic of the loop (which [`spawn_supervised`] restarts).
#[derive(Default)]
struct Watch {
    /// The id last refused, so a bad CURRENT is not retried every poll.
    refused: Option<String>,
    /// The id being swapped to: still set when a swap panicked, which refuses that id.
    swapping: Option<String>,
    /// The last error reading CURRENT, so a garbage CURRENT is logged once per change, not
    /// every poll.
    unreadable: Option<String>,
    /// The id whose open failed for want of a descriptor: tried again every poll (nothing is
    /// wrong with it), logged once.
    waiting: Option<String>,
}

/// Why a swap did not happen.
#[derive(Debug)]
pub enum NotSwapped {
    /// Refused until `CURRENT` names another generation or a reload is asked for.
    Refused(String),
    /// The process had no descriptor left to open it: nothing is wrong with the generation,
    /// so it is tried again at the next poll (before, it was refused until CURRENT changed).
    NoDescriptor(String),
}

impl Reloader {
    /// Runs the watch loop on its own thread, forever; a panic in it is caught, logged and
    /// counted (`shikaku_background_panics_total{thread="reload"}`), and the loop restarted.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let panics = self.live.background_panics.clone();
        let mut watch = Watch::default();
        spawn_supervised(BackgroundThread::Reload, panics, move || {
            self.run(&mut watch)
        })
    }

    fn run(&self, watch: &mut Watch) {
        if let Some(id) = watch.swapping.take() {
            // The last swap panicked (logged and counted by the supervisor): refuse that
            // generation as any failed reload is, rather than panic on it every poll.
            self.refuse(watch, id, "the reload thread panicked while opening it");
        }
        loop {
            std::thread::sleep(POLL);
            let forced = self.requested.swap(false, Ordering::AcqRel);
            let wanted = match self.store.current() {
                Ok(Some(id)) => id,
                Ok(None) => continue,
                Err(e) => {
                    let e = e.to_string();
                    if watch.unreadable.as_ref() != Some(&e) {
                        tracing::warn!(
                            "cannot read {} (logged again only when this changes): {e}",
                            self.store.current_path().display()
                        );
                        watch.unreadable = Some(e);
                    }
                    continue;
                }
            };
            watch.unreadable = None;
            let serving = self.live.load().id().to_owned();
            if !forced && wanted == serving {
                // CURRENT names what is served (put back after a refusal, say): nothing
                // is refused any more.
                self.set_refusal(None);
                watch.refused = None;
                continue;
            }
            if !forced && watch.refused.as_deref() == Some(wanted.as_str()) {
                continue;
            }
            watch.swapping = Some(wanted.clone());
            let swapped = self.swap_to(&wanted);
            watch.swapping = None;
            match swapped {
                Ok(()) => (watch.refused, watch.waiting) = (None, None),
                Err(NotSwapped::Refused(why)) => self.refuse(watch, wanted, &why),
                Err(NotSwapped::NoDescriptor(why)) => self.wait_for_descriptor(watch, wanted, &why),
            }
        }
    }

    fn wait_for_descriptor(&self, watch: &mut Watch, wanted: String, why: &str) {
        if watch.waiting.as_deref() != Some(wanted.as_str()) {
            tracing::warn!(generation = %wanted, "cannot open the generation to swap to, tried again every poll: {why}");
        }
        self.set_refusal(Some(format!("{wanted}: {why}; tried again every poll")));
        watch.waiting = Some(wanted);
    }

    fn refuse(&self, watch: &mut Watch, wanted: String, why: &str) {
        let serving = self.live.load().id().to_owned();
        tracing::error!(generation = %wanted, serving = %serving, "reload refused, still serving the old generation: {why}");
        self.live.reload_refusals.fetch_add(1, Ordering::Relaxed);
        self.set_refusal(Some(format!("{wanted}: {why}")));
        watch.refused = Some(wanted);
    }

    fn set_refusal(&self, why: Option<String>) {
        *self
            .live
            .last_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Opens, verifies (faulting every page in) and publishes generation `id`; one held
    /// ready (a fleet's replica verified it when it downloaded it) is published as it is.
    pub fn swap_to(&self, id: &str) -> Result<(), NotSwapped> {
        let _quiet = self.live.background();
        #[cfg(test)]
        super::supervise::inject::maybe_panic(id);
        let started = std::time::Instant::now();
        let (index, held) = match self.live.take_ready(id) {
            Some(index) => (index, true),
            None => {
                // A change generation of the one served opens as its child: only its new
                // layers are read and folded.
                let serving = self.live.load();
                let parent = Some(&serving.index);
                let opened = self.store.open_named_after(id, self.key.clone(), parent);
                drop(serving);
                let index = opened.map_err(|e| match for_want_of_descriptors(&e) {
                    true => NotSwapped::NoDescriptor(e.to_string()),
                    false => NotSwapped::Refused(e.to_string()),
                })?;
                let verified =
                    VerifiedIndex::verify(index).map_err(|e| NotSwapped::Refused(e.to_string()))?;
                (verified, false)
            }
        };
        self.live.publish_verified(index);
        self.set_refusal(None);
        tracing::info!(generation = %id, elapsed_ms = started.elapsed().as_millis() as u64, held_ready = held, layers_read = self.live.load().index.layers_read(), "hot-swapped");
        Ok(())
    }
}

/// Whether `e`, or an error it was caused by, says the process is out of descriptors.
fn for_want_of_descriptors(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        let io = e.downcast_ref::<std::io::Error>();
        if io.is_some_and(super::descriptors::out_of_descriptors) {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::live::tests::generation_files;
    use crate::server::supervise::inject;
    use std::time::Instant;

    fn add(store: &Store, id: &str) {
        crate::nightly::write_files(&generation_files(id), &store.begin(id).unwrap()).unwrap();
        store.seal(id).unwrap();
        store.publish(id).unwrap();
    }

    fn within(wait: Duration, done: impl Fn() -> bool) -> bool {
        let until = Instant::now() + wait;
        while !done() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        done()
    }

    /// What `GET /metrics` answers about `live`, through the HTTP session as a client sees it.
    fn metrics_of(live: &Arc<Live>) -> String {
        let shared = crate::server::session::Shared {
            live: live.clone(),
            auth: None,
            cores: vec![Arc::new(crate::server::metrics::CoreMetrics::default())],
            reload: Default::default(),
            draining: Default::default(),
            budget: Default::default(),
        };
        let request: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let session = crate::server::http::HttpSession::default();
        crate::server::tests::feed(session, &shared, &[request]).0
    }

    /// An open that failed for want of a descriptor is tried again, whatever wraps the
    /// error; any other failure refuses the generation.
    #[test]
    fn only_a_want_of_descriptors_is_tried_again() {
        fn check(errno: i32, expected: bool) {
            let io = || std::io::Error::from_raw_os_error(errno);
            let store = crate::generations::StoreError::Io {
                path: "g/index.shk".into(),
                source: io(),
            };
            let open = crate::index::OpenError::Io("g/index.shk".into(), io());
            let from_open = crate::generations::StoreError::from(crate::index::OpenError::Io(
                "g/index.shk".into(),
                io(),
            ));
            for e in [
                &store as &(dyn std::error::Error + 'static),
                &open,
                &from_open,
            ] {
                assert_eq!(for_want_of_descriptors(e), expected, "{errno}: {e}");
            }
        }
        check(libc::EMFILE, true);
        check(libc::ENFILE, true);
        check(libc::ENOENT, false);
        check(libc::EIO, false);
    }

    #[test]
    fn hot_swap_goes_on_after_the_reload_thread_panics() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        add(&store, "g-reload-1");
        let live = Arc::new(Live::new(store.open_current(PersonKey::demo()).unwrap()).unwrap());
        Reloader {
            live: live.clone(),
            store: Store::new(dir.path()),
            key: PersonKey::demo(),
            requested: Arc::new(AtomicBool::new(false)),
        }
        .spawn()
        .unwrap();
        inject::panic_once_at("g-reload-2");
        add(&store, "g-reload-2");
        let wait = Duration::from_secs(20);
        assert!(within(wait, || live.background_panics.counts()[0] == ("reload", 1)));
        // The generation whose reload panicked is refused; the old one keeps serving.
        assert!(within(wait, || live
            .reload_refusals
            .load(Ordering::Relaxed)
            == 1));
        assert_eq!(live.load().id(), "g-reload-1");
        let refusal = live.last_refusal.lock().unwrap().clone().unwrap();
        assert!(
            refusal.contains("g-reload-2") && refusal.contains("panicked"),
            "{refusal}"
        );
        add(&store, "g-reload-3");
        assert!(
            within(wait, || live.load().id() == "g-reload-3"),
            "no reload after the panic"
        );
        assert_eq!(
            live.background_panics.counts(),
            [("reload", 1), ("reaper", 0)]
        );
        let metrics = metrics_of(&live);
        for line in [
            "\nshikaku_background_panics_total{thread=\"reload\"} 1\n",
            "\nshikaku_background_panics_total{thread=\"reaper\"} 0\n",
            "\nshikaku_reload_refusals_total 1\n",
        ] {
            assert!(metrics.contains(line), "{line:?} not in {metrics}");
        }
    }
}
