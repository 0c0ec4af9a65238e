//! Busy polling while requests keep coming.
//!
//! A core whose tasks are all waiting parks in the kernel; the next request then has to wake
//! it, and that wake-up is paid by whoever delivers the request: with loopback clients, the
//! client's core, in the kernel, on every request (an interrupt to this core). While requests
//! arrive closer together than [`SPIN_WINDOW`], the core instead keeps polling its ring
//! without sleeping, so a request arriving finds it awake. After a quiet window it parks as
//! before, so an idle server burns no CPU.
//!
//! The poll loop yields through a [`Relay`] (the load generator's pacer spins the same way):
//! monoio runs a task that wakes itself again at once, before the tasks it woke, so a plain
//! self-wake would starve the connections. While the relay's tasks are queued the runtime
//! does not park: between rounds it only submits and reaps completions.

use crate::runtime::Relay;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Keep polling this long after the last request before parking.
pub const SPIN_WINDOW: Duration = Duration::from_micros(200);
/// Park at least this often even under steady load: monoio runs its timers (idle and write
/// timeouts, the generation refresh) only when it parks. Parking waits for the next request
/// as before, so this costs one wake-up per period.
const PARK_EVERY: Duration = Duration::from_millis(1);

/// One core's spinner state.
pub struct Spin {
    window: Duration,
    /// Background work in progress (a reload, a release): park instead of spinning, so those
    /// threads run in the gaps between requests (`Live::background_count`).
    background: Arc<AtomicU32>,
    last_request: Cell<Instant>,
    /// The spinner, while it waits for requests (not spinning).
    idle: Cell<Option<Waker>>,
    relay: Rc<Relay>,
}

impl Spin {
    pub fn new(window: Duration, background: Arc<AtomicU32>) -> Rc<Spin> {
        Rc::new(Spin {
            window,
            background,
            last_request: Cell::new(Instant::now()),
            idle: Cell::new(None),
            relay: Rc::new(Relay::default()),
        })
    }

    /// Notes that requests were answered at `now` (starts the spinner if it was idle).
    #[inline]
    pub fn requests_at(&self, now: Instant) {
        self.last_request.set(now);
        if let Some(w) = self.idle.take() {
            w.wake();
        }
    }

    /// Runs the spinner and its helper on the current runtime; they never finish.
    pub fn start(self: &Rc<Spin>) {
        if self.window.is_zero() {
            return;
        }
        self.relay.start();
        monoio::spawn(spin_loop(self.clone()));
    }
}

async fn spin_loop(spin: Rc<Spin>) {
    let mut since = Instant::now();
    loop {
        let now = Instant::now();
        if now.saturating_duration_since(spin.last_request.get()) > spin.window
            || now.saturating_duration_since(since) > PARK_EVERY
            || spin.background.load(Ordering::Relaxed) > 0
        {
            Idle {
                spin: &spin,
                parked: false,
            }
            .await;
            since = Instant::now();
        }
        spin.relay.yield_now().await;
    }
}

/// Waits until [`Spin::requests_at`] is called.
struct Idle<'a> {
    spin: &'a Spin,
    parked: bool,
}

impl Future for Idle<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.parked {
            return Poll::Ready(());
        }
        self.parked = true;
        self.spin.idle.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While the spinner spins, spawned tasks still run, and timers still fire (the spinner
    /// lets the runtime park every `PARK_EVERY`; without that the sleeps below never end).
    #[test]
    fn spinning_starves_neither_tasks_nor_timers() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let spin = Spin::new(Duration::from_secs(3600), Arc::new(AtomicU32::new(0)));
            spin.start();
            let done = Rc::new(Cell::new(0));
            for _ in 0..3 {
                spin.requests_at(Instant::now());
                let d = done.clone();
                monoio::spawn(async move { d.set(d.get() + 1) }).await;
                monoio::time::sleep(Duration::from_millis(2)).await;
            }
            assert_eq!(done.get(), 3);
        });
    }
}
