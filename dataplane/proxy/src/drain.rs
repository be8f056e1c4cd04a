//! A core's "stop taking new work" signal.
//!
//! Idle keep-alive connections and accept loops wait on it next to their
//! reads, so a drain closes them at once while busy connections finish their
//! current exchange. Single-threaded: one per core, no locks. Waiters are kept
//! in a slab and remove themselves when dropped, so a connection that waits
//! once per request does not grow the waiter list.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Default)]
pub struct Drain {
    draining: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Drain {
    pub fn start(&self) {
        self.draining.set(true);
        for waker in self.waiters.borrow_mut().drain() {
            waker.wake();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Resolves once `start` has been called.
    pub fn wait(&self) -> DrainWait<'_> {
        DrainWait {
            drain: self,
            key: None,
        }
    }
}

pub struct DrainWait<'a> {
    drain: &'a Drain,
    key: Option<usize>,
}

impl Future for DrainWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.drain.is_draining() {
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

impl Drop for DrainWait<'_> {
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
    fn waiters_resolve_on_start_and_clean_up_on_drop() {
        let drain = Drain::default();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        {
            let mut w = std::pin::pin!(drain.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert_eq!(drain.waiters.borrow().len(), 1);
        }
        assert_eq!(
            drain.waiters.borrow().len(),
            0,
            "dropped waiter removed itself"
        );
        let mut w = std::pin::pin!(drain.wait());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        drain.start();
        assert!(w.as_mut().poll(&mut cx).is_ready());
    }
}
