//! Idle keep-alive connections, parked at a few hundred bytes each.
//!
//! A connection task carries its state machine (about 2 KiB), a read
//! buffer the pending read holds, and a timer. That is the right shape for a
//! connection with requests in flight and wrong for one that has been quiet
//! for a second: sidecars hold thousands of those. After `PARK_AFTER` with
//! no byte, the connection task cancels its read (keeping any byte that
//! raced the cancel), ends, and hands the bare socket to `park`: a small
//! task that waits for readability (a poll, no buffer), the drain, or the
//! idle deadline. When bytes arrive it spawns a full connection task again.
//!
//! New connections start parked too, as in nginx: a connection holds no
//! task state and no buffer until its first byte arrives (one poll more per
//! new connection: about 2 us, measured with connection-per-request load).
//!
//! Idle deadlines of parked connections are not timers: the core's 1 s
//! sweep marks the expired ones, so a parked connection costs a slab entry
//! instead of a 512-byte timer, and its idle timeout is honoured to within a
//! second.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use monoio::net::TcpStream;
use slab::Slab;

use crate::worker::Core;

/// Quiet time after which a keep-alive connection is parked. Clients that
/// reuse connections (pools, browsers) send their next request within
/// milliseconds; one quiet for a second is likely to stay quiet, and waking
/// it again costs a few microseconds once.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// An open downstream connection, counted for as long as it lives, across
/// the tasks that serve and park it.
pub struct ConnSlot {
    pub core: Rc<Core>,
    pub listener: usize,
}

impl ConnSlot {
    pub fn open(core: Rc<Core>, listener: usize) -> Self {
        let stats = &core.stats.listeners[listener];
        stats.connections_total.inc();
        stats.connections_active.inc();
        core.connections.set(core.connections.get() + 1);
        ConnSlot { core, listener }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.core.stats.listeners[self.listener]
            .connections_active
            .dec();
        self.core.connections.set(self.core.connections.get() - 1);
    }
}

struct Entry {
    until: Instant,
    expired: bool,
    waker: Option<Waker>,
}

/// This core's parked connections' deadlines.
#[derive(Default)]
pub struct Parked {
    entries: RefCell<Slab<Entry>>,
}

impl Parked {
    fn insert(&self, until: Instant) -> usize {
        self.entries.borrow_mut().insert(Entry {
            until,
            expired: false,
            waker: None,
        })
    }

    fn remove(&self, key: usize) {
        self.entries.borrow_mut().try_remove(key);
    }

    /// Wake every parked connection whose idle deadline has passed; called
    /// by the core's periodic sweep.
    pub fn expire(&self, now: Instant) {
        for (_, e) in self.entries.borrow_mut().iter_mut() {
            if !e.expired && now >= e.until {
                e.expired = true;
                if let Some(w) = e.waker.take() {
                    w.wake();
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn deadline(&self, key: usize) -> Deadline<'_> {
        Deadline { parked: self, key }
    }
}

/// Resolves when the sweep has found the entry's deadline passed.
struct Deadline<'a> {
    parked: &'a Parked,
    key: usize,
}

impl Future for Deadline<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut entries = self.parked.entries.borrow_mut();
        match entries.get_mut(self.key) {
            Some(e) if !e.expired => {
                e.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }
}

/// Hold an idle connection until it has bytes to read (then serve it again),
/// its idle deadline passes, or the core drains (then close it).
pub async fn park(slot: ConnSlot, io: TcpStream, peer: SocketAddr, until: Instant) {
    let core = slot.core.clone();
    let parked = &core.stats.listeners[slot.listener].connections_parked;
    parked.inc();
    let key = core.parked.insert(until);
    let readable = {
        let poll = std::pin::pin!(io.readable(true));
        let stop = select(core.drain.wait(), core.parked.deadline(key));
        matches!(select(poll, stop).await, Either::Left((Ok(()), _)))
    };
    core.parked.remove(key);
    parked.dec();
    if readable && !core.drain.is_draining() {
        monoio::spawn(crate::conn::serve(slot, io, peer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_expires_only_passed_deadlines() {
        let parked = Parked::default();
        let now = Instant::now();
        let soon = parked.insert(now + Duration::from_millis(10));
        let later = parked.insert(now + Duration::from_secs(60));
        parked.expire(now + Duration::from_secs(1));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(std::pin::pin!(parked.deadline(soon))
            .poll(&mut cx)
            .is_ready());
        assert!(std::pin::pin!(parked.deadline(later))
            .poll(&mut cx)
            .is_pending());
        parked.remove(soon);
        parked.remove(later);
        assert!(parked.is_empty());
    }
}
