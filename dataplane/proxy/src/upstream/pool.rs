//! Per-endpoint pools of upstream connections and the per-core limit.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::TransportKey;
use crate::metrics::ClusterStats;
use crate::transport::Stream;

/// A cluster's connection limit on this core: its share of
/// `max_connections` (`circuit_breaker::share`: the shares add up to the
/// total).
pub struct Limit {
    open: Cell<usize>,
    max: usize,
    stats: Arc<ClusterStats>,
}

impl Limit {
    pub fn new(
        max_total: usize,
        workers: usize,
        core: usize,
        stats: Arc<ClusterStats>,
    ) -> Rc<Limit> {
        Rc::new(Limit {
            open: Cell::new(0),
            max: crate::circuit_breaker::share(max_total as u64, workers, core) as usize,
            stats,
        })
    }

    /// Room for one more connection, or `None` (counted as an overflow)
    /// when this core's share is in use.
    pub fn reserve(self: &Rc<Self>) -> Option<OpenSlot> {
        if self.open.get() >= self.max {
            self.stats.overflow[crate::circuit_breaker::Breaker::Connections as usize].inc();
            return None;
        }
        self.open.set(self.open.get() + 1);
        self.stats.connections_active.inc();
        self.stats.connections_total.inc();
        Some(OpenSlot(self.clone()))
    }

    /// Connections open from this core, idle ones included.
    pub fn open(&self) -> usize {
        self.open.get()
    }

    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }
}

/// One open connection counted against its cluster's limit for as long as
/// it lives: pooled, in use, or carrying a tunnel.
pub struct OpenSlot(Rc<Limit>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        let limit = &self.0;
        limit.open.set(limit.open.get().saturating_sub(1));
        limit.stats.connections_active.dec();
    }
}

/// An exclusive upstream connection, checked out for one request. Dropping
/// it closes the connection and frees its place in the limit.
pub struct UpstreamConn {
    pub stream: Stream,
    pub transport: TransportKey,
    /// It came from the pool: it may have been closed by the upstream
    /// while idle.
    pub reused: bool,
    _slot: OpenSlot,
}

impl UpstreamConn {
    pub fn new(stream: Stream, transport: TransportKey, slot: OpenSlot) -> Self {
        UpstreamConn {
            stream,
            transport,
            reused: false,
            _slot: slot,
        }
    }

    /// The stream and its place in the limit, apart (a tunnel owns the
    /// stream and keeps the place while it runs).
    pub fn into_parts(self) -> (Stream, OpenSlot) {
        (self.stream, self._slot)
    }
}

/// A multiplexed upstream connection (HTTP/2) as the pool sees it: the
/// protocol's client handle implements this, holds its `OpenSlot`, and
/// counts its own streams.
pub trait SharedConn {
    fn transport(&self) -> TransportKey;
    /// Can open one more stream now (below the peer's concurrency limit).
    fn has_capacity(&self) -> bool;
    /// Still takes new streams: not draining after a GOAWAY, not closed.
    fn is_usable(&self) -> bool;
}

/// An idle exclusive connection and when it went idle.
pub struct Idle {
    conn: UpstreamConn,
    since: Instant,
}

/// One endpoint's connections on this core. Shared connections are the
/// protocol's concrete client (HTTP/2's `H2Client`), which opens streams;
/// the pool only needs `SharedConn` of them (tests use a stand-in).
pub struct EndpointPool<S = super::h2::H2Client> {
    /// Idle exclusive connections, most recently used last.
    idle: RefCell<Vec<Idle>>,
    shared: RefCell<Vec<Rc<S>>>,
    /// A shared connection being opened: requests that find no room on
    /// the open ones wait for it instead of each opening their own.
    connecting: RefCell<Option<Rc<Connecting>>>,
}

impl<S> Default for EndpointPool<S> {
    fn default() -> Self {
        EndpointPool {
            idle: RefCell::new(Vec::new()),
            shared: RefCell::new(Vec::new()),
            connecting: RefCell::new(None),
        }
    }
}

/// A shared connection on its way: who waits for it, and how it ended.
#[derive(Default)]
pub struct Connecting {
    /// Requests counting on it (its first streams).
    pub claimed: Cell<usize>,
    /// `Some` once it is open (`Ok`) or failed.
    outcome: Cell<Option<Result<(), crate::error::ProxyError>>>,
    waiters: RefCell<Vec<std::task::Waker>>,
}

impl Connecting {
    /// Tell every waiter how it ended.
    pub fn finish(&self, outcome: Result<(), crate::error::ProxyError>) {
        self.outcome.set(Some(outcome));
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves with how the connection attempt ended.
    pub async fn wait(&self) -> Result<(), crate::error::ProxyError> {
        std::future::poll_fn(|cx| match self.outcome.get() {
            Some(o) => std::task::Poll::Ready(o),
            None => {
                self.waiters.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }
}

impl<S: SharedConn> EndpointPool<S> {
    /// The most recently used idle connection of `transport` that has not
    /// been idle for `max_age`; older ones met on the way are closed.
    pub fn take_idle(
        &self,
        transport: TransportKey,
        now: Instant,
        max_age: Duration,
    ) -> Option<UpstreamConn> {
        let mut idle = self.idle.borrow_mut();
        while let Some(i) = idle.iter().rposition(|e| e.conn.transport == transport) {
            let entry = idle.remove(i);
            if now.duration_since(entry.since) < max_age {
                let mut conn = entry.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Keep `conn` for reuse unless `max_idle` are already waiting (then it
    /// closes). Returns whether it was kept.
    pub fn put_idle(&self, conn: UpstreamConn, now: Instant, max_idle: usize) -> bool {
        let mut idle = self.idle.borrow_mut();
        if idle.len() >= max_idle {
            return false;
        }
        idle.push(Idle { conn, since: now });
        true
    }

    /// Close idle connections that have waited `max_age` or more.
    pub fn sweep(&self, now: Instant, max_age: Duration) {
        self.idle
            .borrow_mut()
            .retain(|e| now.duration_since(e.since) < max_age);
        self.shared.borrow_mut().retain(|c| c.is_usable());
    }

    /// Close every idle connection and forget shared ones (their streams
    /// in flight keep them open until they end).
    pub fn clear(&self) {
        self.idle.borrow_mut().clear();
        self.shared.borrow_mut().clear();
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().len()
    }

    /// A shared connection of `transport` that can take one more stream;
    /// unusable ones met on the way are retired.
    pub fn take_stream(&self, transport: TransportKey) -> Option<Rc<S>> {
        let mut shared = self.shared.borrow_mut();
        shared.retain(|c| c.is_usable());
        shared
            .iter()
            .find(|c| c.transport() == transport && c.has_capacity())
            .cloned()
    }

    /// A new shared connection, offered to later requests.
    pub fn add_shared(&self, conn: Rc<S>) {
        self.shared.borrow_mut().push(conn);
    }

    /// The shared connection being opened, if any.
    pub fn connecting(&self) -> Option<Rc<Connecting>> {
        self.connecting.borrow().clone()
    }

    pub fn set_connecting(&self, c: Option<Rc<Connecting>>) {
        *self.connecting.borrow_mut() = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::memory::duplex;

    fn limit(max: usize) -> Rc<Limit> {
        Limit::new(max, 1, 0, Arc::new(ClusterStats::default()))
    }

    fn conn(limit: &Rc<Limit>) -> UpstreamConn {
        let (a, _b) = duplex(16);
        UpstreamConn::new(
            Stream::Memory(a),
            TransportKey::Plain,
            limit.reserve().expect("room"),
        )
    }

    #[test]
    fn the_limit_is_split_across_cores_and_slots_free_on_drop() {
        let l = Limit::new(3, 2, 0, Arc::new(ClusterStats::default()));
        let a = l.reserve().expect("first");
        let _b = l.reserve().expect("second");
        assert!(l.reserve().is_none(), "3 = 2 on core 0 + 1 on core 1");
        assert_eq!(l.stats().overflow[0].get(), 1);
        let other = Limit::new(3, 2, 1, Arc::new(ClusterStats::default()));
        let _c = other.reserve().expect("core 1's one");
        assert!(other.reserve().is_none());
        drop(a);
        assert!(l.reserve().is_some());
    }

    #[test]
    fn idle_connections_are_lifo_and_expire() {
        let l = limit(10);
        let pool = EndpointPool::<Mux>::default();
        let t0 = Instant::now();
        let age = Duration::from_secs(4);
        assert!(pool.put_idle(conn(&l), t0, 8));
        assert!(pool.put_idle(conn(&l), t0 + Duration::from_secs(2), 8));
        assert_eq!(l.open(), 2);
        let later = t0 + Duration::from_secs(5);
        let got = pool
            .take_idle(TransportKey::Plain, later, age)
            .expect("the newer one");
        assert!(got.reused);
        assert!(
            pool.take_idle(TransportKey::Plain, later, age).is_none(),
            "the older one expired and was closed"
        );
        assert_eq!(l.open(), 1, "only the checked-out one is open");
    }

    #[test]
    fn the_pool_keeps_at_most_max_idle() {
        let l = limit(10);
        let pool = EndpointPool::<Mux>::default();
        let now = Instant::now();
        assert!(pool.put_idle(conn(&l), now, 1));
        assert!(!pool.put_idle(conn(&l), now, 1), "the second is closed");
        assert_eq!(l.open(), 1);
        pool.sweep(now + Duration::from_secs(10), Duration::from_secs(4));
        assert_eq!((pool.idle_count(), l.open()), (0, 0));
    }

    struct Mux {
        streams: Cell<u32>,
        max: u32,
        goaway: Cell<bool>,
    }

    impl SharedConn for Mux {
        fn transport(&self) -> TransportKey {
            TransportKey::Plain
        }
        fn has_capacity(&self) -> bool {
            self.streams.get() < self.max
        }
        fn is_usable(&self) -> bool {
            !self.goaway.get()
        }
    }

    #[test]
    fn shared_connections_take_streams_until_full_and_retire_on_goaway() {
        let pool = EndpointPool::<Mux>::default();
        let a = Rc::new(Mux {
            streams: Cell::new(0),
            max: 2,
            goaway: Cell::new(false),
        });
        let b = Rc::new(Mux {
            streams: Cell::new(0),
            max: 2,
            goaway: Cell::new(false),
        });
        pool.add_shared(a.clone());
        pool.add_shared(b.clone());
        let first = pool.take_stream(TransportKey::Plain).expect("a");
        assert!(Rc::ptr_eq(&first, &a));
        a.streams.set(2);
        let second = pool.take_stream(TransportKey::Plain).expect("b, a is full");
        assert!(Rc::ptr_eq(&second, &b));
        b.goaway.set(true);
        assert!(pool.take_stream(TransportKey::Plain).is_none());
        assert_eq!(pool.shared.borrow().len(), 1, "b retired, a kept");
    }
}
