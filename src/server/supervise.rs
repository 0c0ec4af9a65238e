//! Background threads (reload, reaper) that a panic does not end: the panic is caught, logged,
//! counted for `/metrics`, and the thread's work starts again, so hot-swap never stops
//! silently. (The audit log has no thread of its own: each core writes its own file.)

use super::live::lower_this_thread_priority;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The server's background threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackgroundThread {
    Reload,
    Reaper,
}

impl BackgroundThread {
    pub const ALL: [BackgroundThread; 2] = [BackgroundThread::Reload, BackgroundThread::Reaper];

    pub fn name(self) -> &'static str {
        match self {
            BackgroundThread::Reload => "reload",
            BackgroundThread::Reaper => "reaper",
        }
    }
}

/// Panics caught per background thread, since the start.
#[derive(Debug, Default)]
pub struct BackgroundPanics([AtomicU64; BackgroundThread::ALL.len()]);

impl BackgroundPanics {
    /// Counts one panic of `thread`; returns its count so far.
    fn record(&self, thread: BackgroundThread) -> u64 {
        self.0[thread as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Each thread's name with its panic count, for `/metrics`.
    pub fn counts(&self) -> [(&'static str, u64); BackgroundThread::ALL.len()] {
        BackgroundThread::ALL.map(|t| (t.name(), self.0[t as usize].load(Ordering::Relaxed)))
    }
}

/// Pause before a thread's work starts again after a panic, so a panic that recurs at once
/// costs a log line a second, not a spinning core.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Spawns `work` as background thread `thread` (at background priority), running it again
/// after each panic until it returns. State that must outlive a panic lives in `work`'s
/// captures.
pub fn spawn_supervised(
    thread: BackgroundThread,
    panics: Arc<BackgroundPanics>,
    mut work: impl FnMut() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("shikaku-{}", thread.name()))
        .spawn(move || {
            lower_this_thread_priority();
            // The work's state is left as the panic left it; each thread's work is written
            // to start again from whatever state a poll or a message can leave.
            while let Err(payload) = catch_unwind(AssertUnwindSafe(&mut work)) {
                let count = panics.record(thread);
                tracing::error!(
                    thread = thread.name(),
                    panics = count,
                    "background thread panicked ({}); restarting it",
                    panic_message(&*payload)
                );
                std::thread::sleep(RESTART_DELAY);
            }
        })
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// Test-only fault injection: the background work panics once when it reaches the
/// generation named (by id, so tests running side by side cannot take each other's panic).
#[cfg(test)]
pub(crate) mod inject {
    use std::sync::Mutex;

    static PANIC_AT: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub(crate) fn panic_once_at(generation: &str) {
        PANIC_AT.lock().unwrap().push(generation.to_owned());
    }

    pub(crate) fn maybe_panic(generation: &str) {
        let mut at = PANIC_AT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = at.iter().position(|g| g == generation) {
            at.remove(i);
            drop(at);
            panic!("injected panic at generation {generation}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_thread_is_counted_and_runs_again() {
        let panics = Arc::new(BackgroundPanics::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let mut runs = 0;
        let handle = spawn_supervised(BackgroundThread::Reaper, panics.clone(), move || {
            runs += 1;
            tx.send(runs).unwrap();
            if runs < 3 {
                panic!("injected panic {runs}");
            }
        })
        .unwrap();
        handle.join().unwrap();
        assert_eq!(rx.iter().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(panics.counts(), [("reload", 0), ("reaper", 2)]);
    }

    #[test]
    fn panic_messages() {
        let text: Box<dyn Any + Send> = Box::new("static");
        let owned: Box<dyn Any + Send> = Box::new(String::from("owned"));
        let other: Box<dyn Any + Send> = Box::new(7);
        assert_eq!(panic_message(&*text), "static");
        assert_eq!(panic_message(&*owned), "owned");
        assert_eq!(panic_message(&*other), "no message");
    }
}
