//! A core's drain, in two steps.
//!
//! 1. **Draining** (`start`): from SIGTERM, for the drain delay. Listeners
//!    stay open and every request is still served, but each response
//!    carries `connection: close`, so keep-alive clients move to other
//!    replicas while load balancers learn this one is going (`/ready` is
//!    503 already).
//! 2. **Stopped** (`stop`): listeners close and idle connections close
//!    (one whose next request already arrived is served first, with
//!    `connection: close`); busy connections finish their request until
//!    the drain timeout, tunnels close.
//!
//! Idle connections, accept loops and tunnels wait on `stopped()` next to
//! their IO. Single-threaded: one per core, no locks. Waiters are kept in
//! a slab and remove themselves when dropped, so a connection that waits
//! once per request does not grow the waiter list.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Default)]
pub struct Drain {
    draining: Cell<bool>,
    stopped: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Drain {
    /// Begin draining: responses close their connections from now on.
    pub fn start(&self) {
        self.draining.set(true);
    }

    /// Stop: close listeners and idle connections.
    pub fn stop(&self) {
        self.draining.set(true);
        self.stopped.set(true);
        for waker in self.waiters.borrow_mut().drain() {
            waker.wake();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Resolves once `stop` has been called.
    pub fn stopped(&self) -> Stopped<'_> {
        Stopped {
            drain: self,
            key: None,
        }
    }
}

pub struct Stopped<'a> {
    drain: &'a Drain,
    key: Option<usize>,
}

impl Future for Stopped<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.drain.is_stopped() {
            return Poll::Ready(());
        }
        let mut waiters = self.drain.waiters.borrow_mut();
        match self.key {
            Some(k) if waiters.contains(k) => waiters[k].clone_from(cx.waker()),
            _ => {
                let k = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.key = Some(k);
            }
        }
        Poll::Pending
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.drain.waiters.borrow_mut().try_remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_resolve_on_stop_not_on_start_and_clean_up_on_drop() {
        let drain = Drain::default();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        {
            let mut w = std::pin::pin!(drain.stopped());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert_eq!(drain.waiters.borrow().len(), 1);
        }
        assert_eq!(
            drain.waiters.borrow().len(),
            0,
            "dropped waiter removed itself"
        );
        let mut w = std::pin::pin!(drain.stopped());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        drain.start();
        assert!(drain.is_draining());
        assert!(
            w.as_mut().poll(&mut cx).is_pending(),
            "draining is not stopped"
        );
        drain.stop();
        assert!(w.as_mut().poll(&mut cx).is_ready());
    }
}
