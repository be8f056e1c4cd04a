//! A cluster as one core sees it: endpoints, balancer state, connection pool.
//!
//! Everything here is per core and single-threaded (`Cell`, `RefCell`, `Rc`):
//! no locks, no atomics shared with other cores. Global limits are split: a
//! cluster's `max_connections` becomes `ceil(max / workers)` on each core, so
//! the sum over cores never exceeds the configured total by more than
//! `workers - 1`.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use crate::config::model::{Cluster, LbPolicy, PoolConfig};
use crate::metrics::ClusterStats;
use std::sync::Arc;

/// One upstream address and its idle connections on this core.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Text of `addr`, for Host on HTTP/1.0 requests without one.
    pub authority: Box<[u8]>,
    /// Requests in flight to it from this core (least_request).
    in_flight: Cell<u32>,
    /// Idle keep-alive connections, most recently used last.
    idle: RefCell<Vec<(TcpStream, Instant)>>,
    /// Dropped from the cluster by a DNS refresh while requests were still
    /// using it: their connections close instead of going idle.
    removed: Cell<bool>,
}

impl Endpoint {
    fn new(addr: SocketAddr) -> Rc<Self> {
        Rc::new(Endpoint {
            addr,
            authority: addr.to_string().into_bytes().into(),
            in_flight: Cell::new(0),
            idle: RefCell::new(Vec::new()),
            removed: Cell::new(false),
        })
    }
}

/// Per-core state of one cluster.
pub struct ClusterState {
    pub name: String,
    lb: LbPolicy,
    pool: PoolConfig,
    pub connect_timeout: Duration,
    endpoints: RefCell<Vec<Rc<Endpoint>>>,
    cursor: Cell<usize>,
    /// Upstream connections open from this core, idle ones included.
    open: Cell<usize>,
    /// This core's share of `max_connections`.
    max_open: usize,
    pub stats: Arc<StatsRef>,
}

/// This cluster's counters on this core (kept by name across config
/// swaps, see `CoreStats::cluster`).
pub struct StatsRef(pub Arc<ClusterStats>);

impl StatsRef {
    pub fn get(&self) -> &ClusterStats {
        &self.0
    }
}

impl ClusterState {
    pub fn new(
        cluster: &Cluster,
        addrs: &[SocketAddr],
        worker: usize,
        workers: usize,
        stats: Arc<StatsRef>,
    ) -> Self {
        let state = ClusterState {
            name: cluster.name.clone(),
            lb: cluster.lb,
            pool: cluster.pool,
            connect_timeout: cluster.connect_timeout,
            endpoints: RefCell::new(Vec::new()),
            // Start each core at a different endpoint so N cores do not hit
            // the same upstream first in lockstep.
            cursor: Cell::new(worker),
            open: Cell::new(0),
            max_open: cluster.pool.max_connections.div_ceil(workers.max(1)),
            stats,
        };
        state.set_endpoints(addrs);
        state
    }

    /// Replace the endpoint set (DNS refresh). Endpoints that stay keep their
    /// idle connections.
    pub fn set_endpoints(&self, addrs: &[SocketAddr]) {
        let mut eps = self.endpoints.borrow_mut();
        let old = std::mem::take(&mut *eps);
        for &addr in addrs {
            match old.iter().find(|e| e.addr == addr) {
                Some(e) => eps.push(e.clone()),
                None => eps.push(Endpoint::new(addr)),
            }
        }
        for gone in old.iter().filter(|e| !addrs.contains(&e.addr)) {
            gone.removed.set(true);
            let n = gone.idle.borrow_mut().drain(..).count();
            for _ in 0..n {
                self.closed();
            }
        }
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.borrow().len()
    }

    /// Choose an endpoint with the cluster's policy; `rng` feeds P2C.
    pub fn pick(&self, rng: &mut fastrand::Rng) -> Option<Rc<Endpoint>> {
        let eps = self.endpoints.borrow();
        let n = eps.len();
        if n == 0 {
            return None;
        }
        let i = match self.lb {
            LbPolicy::RoundRobin => {
                let i = self.cursor.get() % n;
                self.cursor.set(i + 1);
                i
            }
            LbPolicy::LeastRequest => p2c(n, |i| eps[i].in_flight.get(), rng),
        };
        Some(eps[i].clone())
    }

    /// An idle connection to `ep` that has not passed its idle timeout.
    pub fn take_idle(&self, ep: &Endpoint, now: Instant) -> Option<TcpStream> {
        let mut idle = ep.idle.borrow_mut();
        while let Some((conn, since)) = idle.pop() {
            if now.duration_since(since) < self.pool.idle_timeout {
                return Some(conn);
            }
            self.closed();
        }
        None
    }

    /// Reserve room for a new connection; false when at this core's limit.
    pub fn reserve_connection(&self) -> bool {
        if self.open.get() >= self.max_open {
            self.stats.get().overflow.inc();
            return false;
        }
        self.open.set(self.open.get() + 1);
        let stats = self.stats.get();
        stats.connections_active.inc();
        stats.connections_total.inc();
        true
    }

    /// A connection (idle or in use) was closed.
    pub fn closed(&self) {
        self.open.set(self.open.get().saturating_sub(1));
        self.stats.get().connections_active.dec();
    }

    /// Return a connection after a complete exchange; it is closed instead
    /// when the endpoint already has `max_idle_per_endpoint` idle ones.
    pub fn release(&self, ep: &Endpoint, conn: TcpStream, now: Instant) {
        let mut idle = ep.idle.borrow_mut();
        if idle.len() < self.pool.max_idle_per_endpoint && !ep.removed.get() {
            idle.push((conn, now));
        } else {
            drop(conn);
            self.closed();
        }
    }

    /// Close idle connections past their timeout; run periodically.
    pub fn sweep(&self, now: Instant) {
        for ep in self.endpoints.borrow().iter() {
            let mut idle = ep.idle.borrow_mut();
            let before = idle.len();
            idle.retain(|(_, since)| now.duration_since(*since) < self.pool.idle_timeout);
            for _ in idle.len()..before {
                self.closed();
            }
        }
    }

    /// Close every idle connection (shutdown).
    pub fn close_idle(&self) {
        for ep in self.endpoints.borrow().iter() {
            let n = ep.idle.borrow_mut().drain(..).count();
            for _ in 0..n {
                self.closed();
            }
        }
    }
}

/// Marks a request in flight to an endpoint for as long as it lives.
pub struct InFlight(Rc<Endpoint>);

impl InFlight {
    pub fn new(ep: Rc<Endpoint>) -> Self {
        ep.in_flight.set(ep.in_flight.get() + 1);
        InFlight(ep)
    }

    pub fn endpoint(&self) -> &Rc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
    }
}

/// Power of two choices: the less loaded of two distinct random endpoints.
fn p2c(n: usize, load: impl Fn(usize) -> u32, rng: &mut fastrand::Rng) -> usize {
    if n == 1 {
        return 0;
    }
    let a = rng.usize(..n);
    let b = (a + 1 + rng.usize(..n - 1)) % n;
    if load(b) < load(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::metrics::CoreStats;

    fn state(lb: &str, addrs: &[&str]) -> ClusterState {
        let yaml = format!(
            "listeners: [ {{ name: l, address: '127.0.0.1:1' }} ]\nclusters:\n  - {{ name: c, lb: {lb}, endpoints: [127.0.0.1:1], pool: {{ max_connections: 3 }} }}\n"
        );
        let config = parse(&yaml, "t").unwrap();
        let stats = Arc::new(StatsRef(CoreStats::for_config(&config).cluster("c")));
        let addrs: Vec<SocketAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
        ClusterState::new(&config.clusters[0], &addrs, 0, 2, stats)
    }

    #[test]
    fn round_robin_cycles_through_endpoints() {
        let c = state(
            "round_robin",
            &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
        );
        let mut rng = fastrand::Rng::with_seed(1);
        let picks: Vec<u8> = (0..6)
            .map(|_| c.pick(&mut rng).unwrap().addr.ip().to_string().as_bytes()[7])
            .collect();
        assert_eq!(picks, b"123123");
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let c = state("least_request", &["10.0.0.1:80", "10.0.0.2:80"]);
        let mut rng = fastrand::Rng::with_seed(7);
        let busy = c.pick(&mut rng).unwrap();
        let _held: Vec<InFlight> = (0..5).map(|_| InFlight::new(busy.clone())).collect();
        for _ in 0..50 {
            assert_ne!(c.pick(&mut rng).unwrap().addr, busy.addr);
        }
    }

    #[test]
    fn p2c_picks_two_distinct_candidates() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..1000 {
            // Endpoint 0 is always the least loaded; with two distinct
            // candidates it wins whenever it is drawn.
            let i = p2c(2, |i| if i == 0 { 0 } else { 9 }, &mut rng);
            assert_eq!(i, 0);
        }
    }

    #[test]
    fn connection_limit_is_split_across_cores() {
        // max_connections 3 over 2 workers: 2 on this core.
        let c = state("round_robin", &["10.0.0.1:80"]);
        assert!(c.reserve_connection());
        assert!(c.reserve_connection());
        assert!(!c.reserve_connection());
        assert_eq!(c.stats.get().overflow.get(), 1);
        c.closed();
        assert!(c.reserve_connection());
    }

    #[test]
    fn no_endpoints_means_no_pick() {
        let c = state("round_robin", &[]);
        assert!(c.pick(&mut fastrand::Rng::with_seed(1)).is_none());
    }
}
