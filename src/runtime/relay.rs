//! A yield for busy loops on a monoio runtime that lets the tasks they woke run first: the
//! load generator's pacer and a serving core's poll loop both spin this way.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A yield that lets every other ready task run first. monoio puts a task that wakes itself
/// while running at the *front* of its queue (its `yield_now`), so a self-waking spin loop
/// would starve the writers and readers. Instead the spinner parks its waker here and wakes
/// a helper task, which then wakes the spinner: both wakes come from outside the woken
/// task, so both go to the back of the queue, behind the tasks the spinner just woke.
#[derive(Default)]
pub(crate) struct Relay {
    spinner: Cell<Option<Waker>>,
    helper: Cell<Option<Waker>>,
}

impl Relay {
    /// Starts the helper task; call once, before the first `yield_now`.
    pub(crate) fn start(self: &Rc<Relay>) {
        monoio::spawn(RelayHelper(self.clone()));
    }

    pub(crate) fn yield_now(&self) -> RelayYield<'_> {
        RelayYield {
            relay: self,
            parked: false,
        }
    }
}

pub(crate) struct RelayYield<'a> {
    relay: &'a Relay,
    parked: bool,
}

impl Future for RelayYield<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.parked {
            return Poll::Ready(());
        }
        self.parked = true;
        self.relay.spinner.set(Some(cx.waker().clone()));
        if let Some(h) = self.relay.helper.take() {
            h.wake();
        }
        Poll::Pending
    }
}

/// The helper: whenever it runs, it wakes a parked spinner, then waits to be woken again.
/// It never finishes; it is dropped with the runtime.
struct RelayHelper(Rc<Relay>);

impl Future for RelayHelper {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(s) = self.0.spinner.take() {
            s.wake();
        }
        self.0.helper.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Notify;
    use std::cell::Cell;

    /// The pacer's spin yield must let the tasks it woke run before it resumes; a plain
    /// self-wake would not (monoio runs a self-woken task again first) and the writers
    /// would send nothing until the pacer stopped.
    #[test]
    fn relay_yield_lets_woken_tasks_run_first() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async {
            let relay = Rc::new(Relay::default());
            relay.start();
            let notify = Rc::new(Notify::default());
            let runs = Rc::new(Cell::new(0));
            let (n, r) = (notify.clone(), runs.clone());
            monoio::spawn(async move {
                loop {
                    n.notified().await;
                    r.set(r.get() + 1);
                }
            });
            for i in 1..=100 {
                notify.notify();
                relay.yield_now().await;
                assert_eq!(runs.get(), i);
            }
        });
    }
}
