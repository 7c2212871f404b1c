//! A wait for a `CancellationToken` that costs almost nothing to poll until the token
//! fires. A viewer's connection task is woken for every frame and polls every branch of
//! its `select!`; a plain `cancelled()` future locks the token's node (and, for the
//! server-wide token, one mutex shared by every connection) on each of those polls. Here
//! the token's future is polled with a waker of our own, and polled again only after that
//! waker fired, so a turn woken by a frame or a socket costs one atomic load and a
//! waker comparison.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Resolves once the token is cancelled, like `token.cancelled_owned()`, and stays
/// resolved.
pub struct StopSignal {
    inner: Pin<Box<WaitForCancellationFutureOwned>>,
    gate: Arc<Gate>,
    /// The waker the inner future is polled with: it opens the gate.
    gate_waker: Waker,
    /// The poller's waker last handed to the gate (compared, not re-stored, each poll).
    registered: Option<Waker>,
    fired: bool,
}

/// Set by the token's wake-up; forwards it to whoever polls the `StopSignal`.
struct Gate {
    woken: AtomicBool,
    /// Locked only when the poller's waker changes and when the token fires.
    outer: Mutex<Option<Waker>>,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let outer = self.outer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = outer.as_ref() {
            w.wake_by_ref();
        }
    }
}

impl StopSignal {
    pub fn new(token: CancellationToken) -> Self {
        let gate = Arc::new(Gate {
            // Open at first, so the first poll registers with the token.
            woken: AtomicBool::new(true),
            outer: Mutex::new(None),
        });
        Self {
            inner: Box::pin(token.cancelled_owned()),
            gate_waker: Waker::from(gate.clone()),
            gate,
            registered: None,
            fired: false,
        }
    }
}

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired {
            return Poll::Ready(());
        }
        let this = &mut *self;
        // Handed over before the gate is read: a wake-up in between is not lost.
        if !this
            .registered
            .as_ref()
            .is_some_and(|r| r.will_wake(cx.waker()))
        {
            let w = cx.waker().clone();
            *this.gate.outer.lock().unwrap_or_else(|p| p.into_inner()) = Some(w.clone());
            this.registered = Some(w);
        }
        if !this.gate.woken.load(Ordering::Acquire)
            || !this.gate.woken.swap(false, Ordering::AcqRel)
        {
            return Poll::Pending;
        }
        let mut inner_cx = Context::from_waker(&this.gate_waker);
        match this.inner.as_mut().poll(&mut inner_cx) {
            Poll::Ready(()) => {
                this.fired = true;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(s: &mut StopSignal, waker: &Waker) -> Poll<()> {
        Pin::new(s).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn pending_until_cancelled_then_ready_for_good() {
        let token = CancellationToken::new();
        let mut stop = StopSignal::new(token.clone());
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        assert!(poll(&mut stop, &waker).is_pending());
        // Polls without a wake-up do not touch the token (and stay pending).
        for _ in 0..3 {
            assert!(poll(&mut stop, &waker).is_pending());
        }
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        token.cancel();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the poller is woken");
        assert!(poll(&mut stop, &waker).is_ready());
        assert!(poll(&mut stop, &waker).is_ready());
    }

    #[test]
    fn a_token_cancelled_before_the_first_poll_is_seen_at_once() {
        let token = CancellationToken::new();
        token.cancel();
        let mut stop = StopSignal::new(token.child_token());
        let waker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
        assert!(poll(&mut stop, &waker).is_ready());
    }

    #[test]
    fn a_parent_cancel_reaches_a_child_signal() {
        let parent = CancellationToken::new();
        let mut stop = StopSignal::new(parent.child_token());
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        assert!(poll(&mut stop, &waker).is_pending());
        parent.cancel();
        assert!(counter.0.load(Ordering::SeqCst) >= 1);
        assert!(poll(&mut stop, &waker).is_ready());
    }
}
