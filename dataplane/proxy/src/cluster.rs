//! A cluster as one core sees it: its endpoints, its balancer, its
//! connections.
//!
//! Everything here is per core and single-threaded (`Cell`, `RefCell`,
//! `Rc`): no locks, no atomics shared with other cores. The balancer
//! (`balance`) chooses among the endpoints; the connector and the
//! per-endpoint pools (`upstream`) provide connections to the chosen one,
//! within the cluster's per-core share of `max_connections`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use crate::balance::{self, Balancer, Completion, PickCtx, Routing};
use crate::circuit_breaker::{Breaker, Breakers};
use crate::config::model::{Cluster, PoolConfig, Resolved, UpstreamProtocol};
use crate::error::ProxyError;
use crate::metrics::{ClusterStats, EndpointStats};
use crate::outlier::{Detector, Verdict};
use crate::retry_budget::Budget;
use crate::timer::Timer;
use crate::upstream::h2::H2Client;
use crate::upstream::pool::Connecting;
use crate::upstream::{ConnectError, Connector, EndpointPool, Limit, UpstreamConn};

/// One upstream address, its load and its connections on this core.
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Text of `addr`, for Host on HTTP/1.0 requests without one.
    pub authority: Box<[u8]>,
    /// Requests in flight to it from this core (least_request).
    in_flight: Cell<u32>,
    /// Index in the cluster's current endpoint list, for balancers that
    /// keep per-endpoint state in a `Vec`; `usize::MAX` once removed.
    position: Cell<usize>,
    /// Relative share of traffic, 1 to `MAX_WEIGHT`.
    weight: Cell<u32>,
    /// In the proxy's own zone.
    local: Cell<bool>,
    /// Failing active health checks.
    unhealthy: Cell<bool>,
    /// This core's outlier-detection counts for it.
    pub outlier: crate::outlier::EndpointState,
    pub stats: Arc<EndpointStats>,
    pub pool: EndpointPool,
}

impl Endpoint {
    pub(crate) fn new(addr: SocketAddr, stats: Arc<EndpointStats>) -> Rc<Self> {
        Rc::new(Endpoint {
            addr,
            authority: addr.to_string().into_bytes().into(),
            in_flight: Cell::new(0),
            position: Cell::new(usize::MAX),
            weight: Cell::new(1),
            local: Cell::new(false),
            unhealthy: Cell::new(false),
            outlier: Default::default(),
            stats,
            pool: EndpointPool::default(),
        })
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.get()
    }

    /// Its index in the cluster's endpoint list, `None` once it was
    /// removed (its last requests may still be running).
    pub fn position(&self) -> Option<usize> {
        Some(self.position.get()).filter(|&p| p != usize::MAX)
    }

    pub fn weight(&self) -> u32 {
        self.weight.get()
    }

    pub fn is_local(&self) -> bool {
        self.local.get()
    }

    /// Neither ejected by this core nor failing health checks.
    pub fn is_healthy(&self) -> bool {
        !self.is_ejected() && !self.unhealthy.get()
    }

    /// Ejected by this core's outlier detection.
    pub fn is_ejected(&self) -> bool {
        self.outlier.is_ejected()
    }

    /// Its outlier state changed: the gauge follows.
    fn ejection_changed(&self) {
        self.stats.ejected.set(u64::from(self.is_ejected()));
    }

    /// Eject it (or end that) without a detector, as a test needs.
    #[cfg(test)]
    pub(crate) fn set_ejected(&self, on: bool) {
        self.outlier.set_ejected(on);
        self.ejection_changed();
    }

    /// Its position, weight and locality in a new endpoint set.
    pub(crate) fn set_place(&self, position: usize, weight: u32, local: bool) {
        self.position.set(position);
        self.weight.set(weight.max(1));
        self.local.set(local);
    }

    /// Failing active health checks (`health`); the cluster's
    /// `refresh_routing` must follow a change.
    pub(crate) fn set_unhealthy(&self, on: bool) {
        self.unhealthy.set(on);
        self.stats.unhealthy.set(u64::from(on));
    }

    pub fn is_unhealthy(&self) -> bool {
        self.unhealthy.get()
    }
}

/// Per-core state of one cluster.
pub struct ClusterState {
    pub name: String,
    endpoints: RefCell<Vec<Rc<Endpoint>>>,
    /// The candidates of a pick, rebuilt when endpoints or health change.
    routing: RefCell<Routing>,
    balancer: RefCell<Box<dyn Balancer>>,
    /// Asked once, at build.
    locality_aware: bool,
    /// `lb: peak_ewma`: estimates go to the other cores.
    shares: bool,
    /// The proxy's zone: endpoints in it are preferred.
    zone: Option<Arc<str>>,
    panic_threshold: f64,
    pub connector: Connector,
    /// A mesh cluster's connector for opaque TCP relays (the mesh's TCP
    /// ALPN); other clusters relay over `connector`.
    pub tcp_connector: Option<Connector>,
    pool: PoolConfig,
    pub limit: Rc<Limit>,
    pub stats: Arc<ClusterStats>,
    pub protocol: UpstreamProtocol,
    /// This core's share of the cluster's retry budget, if it has one.
    pub budget: Option<Budget>,
    /// This core's share of the circuit-breaker thresholds.
    pub breakers: Breakers,
    outlier: Option<Detector>,
}

impl ClusterState {
    pub fn new(
        cluster: &Cluster,
        endpoints: &[Resolved],
        zone: Option<Arc<str>>,
        core: usize,
        workers: usize,
        stats: Arc<ClusterStats>,
    ) -> Self {
        let balancer = balance::build(&cluster.lb, core);
        let state = ClusterState {
            name: cluster.name.clone(),
            endpoints: RefCell::new(Vec::new()),
            routing: RefCell::new(Routing::default()),
            locality_aware: balancer.locality_aware(),
            shares: matches!(cluster.lb, crate::config::model::LbPolicy::PeakEwma(_)),
            balancer: RefCell::new(balancer),
            zone,
            panic_threshold: cluster.panic_threshold,
            connector: match (&cluster.mesh, &cluster.tls) {
                (Some(id), tls) => Connector::mesh(
                    cluster.connect_timeout,
                    crate::config::model::mesh_transport_key(id),
                    tls.clone(),
                ),
                (None, Some(tls)) => Connector::tls(cluster.connect_timeout, tls.clone()),
                (None, None) => Connector::plain(cluster.connect_timeout),
            },
            tcp_connector: cluster.mesh.as_ref().map(|id| {
                Connector::mesh(
                    cluster.connect_timeout,
                    crate::config::model::mesh_transport_key(&format!("tcp {id}")),
                    cluster.mesh_tcp_tls.clone(),
                )
            }),
            pool: cluster.pool,
            limit: Limit::new(cluster.pool.max_connections, workers, core, stats.clone()),
            stats,
            protocol: cluster.protocol,
            budget: cluster
                .retry_budget
                .map(|b| Budget::new(&b, workers, Instant::now())),
            breakers: Breakers::new(&cluster.breakers, workers, core),
            outlier: cluster.outlier.map(|o| Detector::new(o, Instant::now())),
        };
        state.set_endpoints(endpoints);
        state
    }

    /// Whether this state can serve `cluster` in a config whose proxy zone
    /// is `zone` (a reload keeps it, with its pools and estimates).
    pub fn reusable_for(&self, zone: Option<&Arc<str>>) -> bool {
        self.zone.as_ref() == zone
    }

    /// Replace the endpoint set (DNS refresh, control plane). Endpoints
    /// that stay keep their connections, health and balancer state;
    /// removed ones close their idle connections and let in-flight ones
    /// finish.
    pub fn set_endpoints(&self, resolved: &[Resolved]) {
        let mut eps = self.endpoints.borrow_mut();
        let mut old: HashMap<SocketAddr, Rc<Endpoint>> =
            eps.drain(..).map(|e| (e.addr, e)).collect();
        for r in resolved {
            let ep = old
                .remove(&r.addr)
                .unwrap_or_else(|| Endpoint::new(r.addr, self.stats.endpoints.register(r.addr)));
            let local = self.zone.is_some() && r.zone == self.zone;
            ep.set_place(eps.len(), r.weight, local);
            eps.push(ep);
        }
        for gone in old.into_values() {
            gone.position.set(usize::MAX);
            gone.pool.clear();
        }
        self.balancer.borrow_mut().on_endpoints(&eps);
        drop(eps);
        self.refresh_routing();
    }

    /// Rebuild the pick candidates after an endpoint's health changed.
    pub fn refresh_routing(&self) {
        let routing = Routing::build(&self.endpoints.borrow(), self.panic_threshold);
        if !self.locality_aware {
            self.balancer.borrow_mut().on_routable(routing.healthy());
        }
        *self.routing.borrow_mut() = routing;
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.borrow().len()
    }

    /// The endpoints, in their positions' order.
    pub fn endpoints(&self) -> std::cell::Ref<'_, Vec<Rc<Endpoint>>> {
        self.endpoints.borrow()
    }

    /// The endpoint for one try of a request, by the cluster's balancer,
    /// among the healthy endpoints of the preferred zone.
    pub fn pick(&self, ctx: &mut PickCtx<'_>) -> Option<Rc<Endpoint>> {
        let routing = self.routing.borrow();
        if routing.panic {
            self.stats.panic.inc();
        }
        let set = routing.candidates(self.locality_aware, || ctx.rng.f64());
        let i = self.balancer.borrow_mut().pick(set, ctx)?;
        set.get(i).cloned()
    }

    /// The balancer shares its estimates with the other cores.
    pub fn shares(&self) -> bool {
        self.shares
    }

    /// Estimates that changed since the last call, for the other cores.
    pub fn share(&self, out: &mut Vec<crate::balance::Shared>) {
        self.balancer.borrow_mut().share(out);
    }

    /// Another core's estimates.
    pub fn absorb(&self, from_peer: &[crate::balance::Shared]) {
        self.balancer.borrow_mut().absorb(from_peer);
    }

    /// A try to `ep` finished: count it, tell the balancer, and eject the
    /// endpoint if outlier detection says so.
    pub fn complete(&self, ep: &Endpoint, done: &Completion) {
        ep.stats
            .record(done.outcome.is_failure(), done.latency.as_micros() as u64);
        self.balancer.borrow_mut().on_complete(ep, done);
        if let Some(d) = &self.outlier {
            if d.on_outcome(&ep.outlier, done.outcome) == Verdict::Eject {
                self.eject(d, ep, Instant::now());
            }
        }
    }

    /// Take `ep` out of the candidates, within the cluster's maximum.
    fn eject(&self, d: &Detector, ep: &Endpoint, now: Instant) {
        if ep.position().is_none() {
            return;
        }
        let (total, out) = {
            let eps = self.endpoints.borrow();
            (eps.len(), eps.iter().filter(|e| e.is_ejected()).count())
        };
        if out >= d.max_ejected(total) {
            return;
        }
        let time = d.eject(&ep.outlier, now);
        ep.ejection_changed();
        ep.stats.ejections.inc();
        self.refresh_routing();
        warn!(cluster = %self.name, endpoint = %ep.addr, ?time, "outlier ejected");
    }

    /// Outlier detection's periodic work (the worker's sweep): end the
    /// ejections that are due and, at an interval's end, eject endpoints
    /// whose success rate is an outlier.
    pub fn outlier_tick(&self, now: Instant) {
        let Some(d) = &self.outlier else { return };
        let mut changed = false;
        let outliers = {
            let eps = self.endpoints.borrow();
            for ep in eps.iter() {
                if d.release_due(&ep.outlier, now) {
                    ep.ejection_changed();
                    changed = true;
                    info!(cluster = %self.name, endpoint = %ep.addr, "outlier ejection ended");
                }
            }
            d.interval_end(eps.iter().map(|e| &e.outlier), now)
                .map(|idx| idx.into_iter().map(|i| eps[i].clone()).collect::<Vec<_>>())
        };
        if changed {
            self.refresh_routing();
        }
        for ep in outliers.into_iter().flatten() {
            self.eject(d, &ep, now);
        }
    }

    /// An idle connection to `ep` from this core's pool.
    pub fn checkout(&self, ep: &Endpoint, now: Instant) -> Option<UpstreamConn> {
        ep.pool
            .take_idle(self.connector.transport, now, self.pool.idle_timeout)
    }

    /// A new connection to `ep`, within the cluster's limit and connect
    /// timeout.
    pub async fn connect(
        &self,
        ep: &Endpoint,
        timer: &mut Timer,
    ) -> Result<UpstreamConn, ProxyError> {
        self.connect_with(&self.connector, ep, timer).await
    }

    /// A new connection to `ep` for an opaque TCP relay (on a mesh
    /// cluster, mTLS that asks the peer to relay, not to read HTTP).
    pub async fn connect_tcp(
        &self,
        ep: &Endpoint,
        timer: &mut Timer,
    ) -> Result<UpstreamConn, ProxyError> {
        let connector = self.tcp_connector.as_ref().unwrap_or(&self.connector);
        self.connect_with(connector, ep, timer).await
    }

    async fn connect_with(
        &self,
        connector: &Connector,
        ep: &Endpoint,
        timer: &mut Timer,
    ) -> Result<UpstreamConn, ProxyError> {
        let _pending = self.breakers.pending.enter().ok_or_else(|| {
            self.stats.overflow[Breaker::PendingRequests as usize].inc();
            ProxyError::Overflow(Breaker::PendingRequests)
        })?;
        let slot = self
            .limit
            .reserve()
            .ok_or(ProxyError::Overflow(Breaker::Connections))?;
        let began = Instant::now();
        match connector.connect(ep.addr, timer).await {
            Ok(stream) => {
                self.stats.connect_time.record(began.elapsed());
                Ok(UpstreamConn::new(stream, connector.transport, slot))
            }
            Err(e) => {
                self.stats.connect_failures.inc();
                Err(match e {
                    ConnectError::Refused => ProxyError::ConnectFailed,
                    ConnectError::TimedOut => ProxyError::ConnectTimeout,
                    ConnectError::Tls(why) => ProxyError::UpstreamTls(why),
                })
            }
        }
    }

    /// An HTTP/2 connection to `ep` with room for one more stream: a
    /// shared one from this core's pool, or a new one within the limit.
    ///
    /// A burst of requests finding every connection full opens one more,
    /// not one each: while a connection is being opened, up to its
    /// expected stream limit wait for it.
    pub async fn h2_client(
        &self,
        ep: &Endpoint,
        timer: &mut Timer,
    ) -> Result<Rc<H2Client>, ProxyError> {
        loop {
            if let Some(c) = ep.pool.take_stream(self.connector.transport) {
                return Ok(c);
            }
            match ep.pool.connecting() {
                Some(pending) if pending.claimed.get() < crate::upstream::h2::INITIAL_STREAMS => {
                    // Waiting for a connection: a pending request.
                    let _waiting = self.breakers.pending.enter().ok_or_else(|| {
                        self.stats.overflow[Breaker::PendingRequests as usize].inc();
                        ProxyError::Overflow(Breaker::PendingRequests)
                    })?;
                    pending.claimed.set(pending.claimed.get() + 1);
                    // Bounded by the connect timeout of the one connecting.
                    pending.wait().await?;
                }
                _ => break,
            }
        }
        let opening = Opening::new(ep);
        let result = match self.connect(ep, timer).await {
            Ok(conn) => self.adopt_h2(ep, conn, timer).await,
            Err(e) => Err(e),
        };
        opening.finish(result.as_ref().map(|_| ()).map_err(|e| *e));
        result
    }

    /// Run HTTP/2 on a new connection (`protocol: http2`, or ALPN picked
    /// `h2` for `auto`) and offer it to later requests.
    pub async fn adopt_h2(
        &self,
        ep: &Endpoint,
        conn: UpstreamConn,
        timer: &mut Timer,
    ) -> Result<Rc<H2Client>, ProxyError> {
        let transport = conn.transport;
        let (stream, slot) = conn.into_parts();
        let handshake = H2Client::handshake(stream, transport, slot);
        let client = match timer.within(self.connector.timeout, handshake).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!(cluster = %self.name, error = %e, "upstream h2 handshake failed");
                self.stats.connect_failures.inc();
                return Err(ProxyError::ConnectFailed);
            }
            Err(_) => return Err(ProxyError::ConnectTimeout),
        };
        if ep.position().is_some() {
            ep.pool.add_shared(client.clone());
        }
        Ok(client)
    }

    /// Return a connection after a cleanly delimited exchange; it closes
    /// instead when `ep` left the cluster or has enough idle ones.
    pub fn release(&self, ep: &Endpoint, conn: UpstreamConn, now: Instant) {
        if ep.position().is_some() {
            ep.pool.put_idle(conn, now, self.pool.max_idle_per_endpoint);
        }
    }

    /// Close idle connections past their timeout; run periodically.
    pub fn sweep(&self, now: Instant) {
        for ep in self.endpoints.borrow().iter() {
            ep.pool.sweep(now, self.pool.idle_timeout);
        }
    }

    /// Close every idle connection (shutdown, cluster removed).
    pub fn close_idle(&self) {
        for ep in self.endpoints.borrow().iter() {
            ep.pool.clear();
        }
    }
}

/// A shared connection being opened for an endpoint. Its waiters learn
/// how it ended even when the request opening it goes away first (its
/// future dropped): then as a failed connect, and they try again.
struct Opening<'a> {
    ep: &'a Endpoint,
    pending: Rc<Connecting>,
    outcome: Result<(), ProxyError>,
}

impl<'a> Opening<'a> {
    fn new(ep: &'a Endpoint) -> Self {
        let pending = Rc::new(Connecting::default());
        pending.claimed.set(1);
        ep.pool.set_connecting(Some(pending.clone()));
        Opening {
            ep,
            pending,
            outcome: Err(ProxyError::ConnectFailed),
        }
    }

    fn finish(mut self, outcome: Result<(), ProxyError>) {
        self.outcome = outcome;
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.ep.pool.set_connecting(None);
        self.pending.finish(self.outcome);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::GET;
    use crate::config::parse;

    fn state(lb: &str, addrs: &[&str]) -> ClusterState {
        let yaml = format!(
            "listeners: [ {{ name: l, address: '127.0.0.1:1' }} ]\nclusters:\n  - {{ name: c, lb: {lb}, endpoints: [127.0.0.1:1], pool: {{ max_connections: 3 }} }}\n"
        );
        let config = parse(&yaml, "t").unwrap();
        let eps: Vec<Resolved> = addrs.iter().map(|a| ep(a)).collect();
        ClusterState::new(
            &config.clusters[0],
            &eps,
            None,
            0,
            2,
            Arc::new(ClusterStats::default()),
        )
    }

    fn ep(addr: &str) -> Resolved {
        Resolved::plain(addr.parse().unwrap())
    }

    fn pick(c: &ClusterState, rng: &mut fastrand::Rng) -> Rc<Endpoint> {
        let mut ctx = PickCtx {
            request: Some(&GET),
            client: [127, 0, 0, 1].into(),
            rng,
            avoid: None,
        };
        c.pick(&mut ctx).expect("an endpoint")
    }

    #[test]
    fn endpoints_that_stay_keep_their_state_and_positions_follow() {
        let c = state("round_robin", &["10.0.0.1:80", "10.0.0.2:80"]);
        let mut rng = fastrand::Rng::with_seed(1);
        let first = pick(&c, &mut rng);
        assert_eq!(first.addr.to_string(), "10.0.0.1:80");
        let kept = InFlight::new(first.clone());
        c.set_endpoints(&[ep("10.0.0.3:80"), ep("10.0.0.1:80")]);
        assert_eq!(c.endpoint_count(), 2);
        assert_eq!(
            kept.endpoint().position(),
            Some(1),
            "same endpoint, new place"
        );
        assert_eq!(kept.endpoint().in_flight(), 1, "its load carried over");
        c.set_endpoints(&[ep("10.0.0.3:80")]);
        assert_eq!(kept.endpoint().position(), None, "removed");
    }

    #[test]
    fn waiters_learn_how_an_opening_ended_even_when_its_opener_goes_away() {
        crate::testing::run(async {
            let ep = Endpoint::new("10.0.0.1:80".parse().unwrap(), Default::default());
            let done = Opening::new(&ep);
            let waiter = ep.pool.connecting().expect("an opening is known");
            done.finish(Err(ProxyError::ConnectTimeout));
            assert_eq!(waiter.wait().await, Err(ProxyError::ConnectTimeout));
            assert!(ep.pool.connecting().is_none());
            // The opener's future dropped mid-way (its client left): the
            // waiters are not left hanging.
            let abandoned = Opening::new(&ep);
            let waiter = ep.pool.connecting().expect("an opening is known");
            drop(abandoned);
            assert_eq!(waiter.wait().await, Err(ProxyError::ConnectFailed));
            assert!(ep.pool.connecting().is_none());
        });
    }

    #[test]
    fn no_endpoints_means_no_pick() {
        let c = state("least_request", &[]);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut ctx = PickCtx {
            request: Some(&GET),
            client: [127, 0, 0, 1].into(),
            rng: &mut rng,
            avoid: None,
        };
        assert!(c.pick(&mut ctx).is_none());
    }
}
