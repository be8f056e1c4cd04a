//! Load balancing: which endpoint of a cluster gets a request.
//!
//! A `Balancer` is per core and per cluster, like everything on the
//! request path: it keeps whatever state its policy needs (a cursor,
//! latency estimates, a hash ring) in plain fields, touched by one thread.
//! The pipeline calls it at three points:
//!
//! - `pick`: choose an endpoint for one try of a request, given the
//!   request (for hash policies: a header, a cookie), the client's
//!   address, the core's random source, and the endpoint a failed try
//!   just used (a retry goes elsewhere when it can);
//! - `on_endpoints`: the endpoint set changed (DNS, control plane); a
//!   policy rebuilds what depends on it (a ring) and may carry state over
//!   for endpoints that stayed;
//! - `on_complete`: a try ended, with its outcome and latency (for
//!   latency-aware and outlier-aware policies).
//!
//! Endpoints carry what every policy may read: their position in the
//! current set (so per-endpoint state is a `Vec` indexed by position) and
//! the requests this core has in flight to them.
//!
//! The cluster hands `pick` its candidates: healthy endpoints of the
//! preferred zone, or all of them in panic (`routing`). Endpoints carry
//! what every policy may read: their position in the full set (so
//! per-endpoint state is a `Vec` indexed by position, stable while health
//! changes), their weight, and the requests this core has in flight to
//! them.
//!
//! Policies: `round_robin` (a cursor; smooth weighted round robin when
//! weights differ), `least_request` and `peak_ewma` (power of two choices
//! on in-flight requests, or on latency estimates weighted by them, which
//! cores share with each other: `share`), `ring_hash` and `maglev`
//! (consistent hashing on a request key: `hash_key`).

mod hash_key;
mod least_request;
mod maglev;
mod peak_ewma;
mod ring_hash;
mod round_robin;
mod routing;
pub mod share;

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use crate::cluster::Endpoint;
use crate::config::model::LbPolicy;
use crate::view::RequestView;

pub use least_request::LeastRequest;
pub use maglev::Maglev;
pub use peak_ewma::PeakEwma;
pub use ring_hash::RingHash;
pub use round_robin::RoundRobin;
pub use routing::Routing;

/// What a policy may use to choose.
pub struct PickCtx<'a> {
    /// `None` for opaque TCP, which has no request: a policy that hashes
    /// a request's header falls back to the client's address or its own
    /// choice.
    pub request: Option<&'a dyn RequestView>,
    pub client: IpAddr,
    pub rng: &'a mut fastrand::Rng,
    /// The endpoint the previous try of this request used, if this is a
    /// retry: avoided when another endpoint is available.
    pub avoid: Option<&'a Endpoint>,
}

/// How a try ended, as a balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response head arrived with this status.
    Response(u16),
    /// The connection was made (opaque TCP: there is no response to see).
    Connected,
    /// The connection could not be made.
    ConnectFailed,
    /// The upstream closed, reset or broke the protocol before a response.
    Failed,
    /// No response head within the route's timeout.
    TimedOut,
}

impl Outcome {
    /// The try failed: no connection, a reset, a timeout or a 5xx.
    pub fn is_failure(self) -> bool {
        match self {
            Outcome::Response(status) => status >= 500,
            Outcome::Connected => false,
            Outcome::ConnectFailed | Outcome::Failed | Outcome::TimedOut => true,
        }
    }

    /// The try failed as a gateway would answer it: no connection, a
    /// reset, a timeout, or a 502, 503 or 504 (what outlier detection's
    /// `consecutive_gateway_errors` counts and Peak-EWMA penalises).
    pub fn is_gateway_error(self) -> bool {
        match self {
            Outcome::Response(status) => matches!(status, 502..=504),
            Outcome::Connected => false,
            Outcome::ConnectFailed | Outcome::Failed | Outcome::TimedOut => true,
        }
    }
}

/// A finished try.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub outcome: Outcome,
    /// From the start of the try to the response head (or the failure).
    pub latency: Duration,
}

/// One endpoint's latency estimate, as a core shares it with the others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shared {
    pub addr: SocketAddr,
    pub rtt_ns: u64,
}

/// A per-core load-balancing policy for one cluster.
pub trait Balancer {
    /// The index in `candidates` of the endpoint for this try; `None` only
    /// when `candidates` is empty.
    fn pick(&mut self, candidates: &[Rc<Endpoint>], ctx: &mut PickCtx<'_>) -> Option<usize>;

    /// The endpoint set changed; `all` is the new one, in position order.
    fn on_endpoints(&mut self, all: &[Rc<Endpoint>]) {
        let _ = all;
    }

    /// The healthy set changed (only for policies that are not
    /// `locality_aware`: their candidates are always this set, so a hash
    /// table can be built over it here rather than per pick).
    fn on_routable(&mut self, candidates: &[Rc<Endpoint>]) {
        let _ = candidates;
    }

    /// A try to `endpoint` finished.
    fn on_complete(&mut self, endpoint: &Endpoint, done: &Completion) {
        let _ = (endpoint, done);
    }

    /// Whether the cluster may narrow the candidates to the proxy's zone.
    /// A hash policy says no: a key must map to the same endpoint for
    /// every pick.
    fn locality_aware(&self) -> bool {
        true
    }

    /// Append the estimates that changed since the last call, for the
    /// other cores (`share`).
    fn share(&mut self, out: &mut Vec<Shared>) {
        let _ = out;
    }

    /// Another core's estimates.
    fn absorb(&mut self, from_peer: &[Shared]) {
        let _ = from_peer;
    }
}

/// The balancer for `policy`, for core `core` (so cores start at different
/// endpoints and do not hit the same one in lockstep).
pub fn build(policy: &LbPolicy, core: usize) -> Box<dyn Balancer> {
    match policy {
        LbPolicy::RoundRobin => Box::new(RoundRobin::new(core)),
        LbPolicy::LeastRequest => Box::new(LeastRequest::default()),
        LbPolicy::PeakEwma(p) => Box::new(PeakEwma::new(p)),
        LbPolicy::RingHash(h) => Box::new(RingHash::new(h)),
        LbPolicy::Maglev(h) => Box::new(Maglev::new(h)),
    }
}

/// Two distinct candidates for power of two choices, drawn in proportion
/// to their weights when `weighted` (rejection sampling: a draw is kept
/// with probability weight / `max_weight`, at most 16 draws, then the
/// last is kept, so a pick stays O(1)).
fn two_candidates(
    set: &[Rc<Endpoint>],
    rng: &mut fastrand::Rng,
    max_weight: u32,
) -> (usize, usize) {
    let n = set.len();
    let draw = |rng: &mut fastrand::Rng, exclude: Option<usize>| {
        let mut i = 0;
        for _ in 0..16 {
            i = match exclude {
                None => rng.usize(..n),
                Some(x) => (x + 1 + rng.usize(..n - 1)) % n,
            };
            if max_weight <= 1 || rng.u32(..max_weight) < set[i].weight() {
                break;
            }
        }
        i
    };
    let a = draw(rng, None);
    let b = draw(rng, Some(a));
    (a, b)
}

/// The largest weight among `all` (1 when every weight is 1).
fn max_weight(all: &[Rc<Endpoint>]) -> u32 {
    all.iter().map(|e| e.weight()).max().unwrap_or(1)
}

/// Whether `ep` is the endpoint a retry should avoid.
fn is_avoided(ep: &Endpoint, avoid: Option<&Endpoint>) -> bool {
    avoid.is_some_and(|a| std::ptr::eq(ep, a))
}

/// When `avoid` is set and there is another endpoint, move `i` off it.
fn steer(i: usize, endpoints: &[Rc<Endpoint>], avoid: Option<&Endpoint>) -> usize {
    match avoid {
        Some(a) if endpoints.len() > 1 && std::ptr::eq(&*endpoints[i], a) => {
            (i + 1) % endpoints.len()
        }
        _ => i,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Endpoints and a request view for balancer tests.
    use super::*;
    use crate::view::{BodyKind, Protocol};

    pub fn endpoints(n: usize) -> Vec<Rc<Endpoint>> {
        let eps: Vec<Rc<Endpoint>> = (0..n)
            .map(|i| {
                Endpoint::new(
                    std::net::SocketAddr::from(([10, 0, 0, i as u8 + 1], 80)),
                    Default::default(),
                )
            })
            .collect();
        for (i, e) in eps.iter().enumerate() {
            e.set_place(i, 1, false);
        }
        eps
    }

    /// Endpoints 10.0.0.1.. with weights.
    pub fn weighted(weights: &[u32]) -> Vec<Rc<Endpoint>> {
        let eps = endpoints(weights.len());
        for (i, (e, w)) in eps.iter().zip(weights).enumerate() {
            e.set_place(i, *w, false);
        }
        eps
    }

    /// Endpoints 10.0.0.1..; `local[i]`: in the proxy's zone.
    pub fn zoned(local: &[bool]) -> Vec<Rc<Endpoint>> {
        let eps = endpoints(local.len());
        for (i, (e, l)) in eps.iter().zip(local).enumerate() {
            e.set_place(i, 1, *l);
        }
        eps
    }

    /// A GET whose `x-user` header is the value (none when empty).
    pub struct WithUser(pub String);

    /// A GET with no headers.
    pub const GET: WithUser = WithUser(String::new());

    impl RequestView for WithUser {
        fn method(&self) -> &[u8] {
            b"GET"
        }
        fn scheme(&self) -> &[u8] {
            b"http"
        }
        fn authority(&self) -> &[u8] {
            b"svc"
        }
        fn path(&self) -> &[u8] {
            b"/"
        }
        fn query(&self) -> Option<&[u8]> {
            None
        }
        fn header(&self, name: &[u8]) -> Option<&[u8]> {
            (name == b"x-user" && !self.0.is_empty()).then_some(self.0.as_bytes())
        }
        fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
            if !self.0.is_empty() {
                f(b"x-user", self.0.as_bytes());
            }
        }
        fn body(&self) -> BodyKind {
            BodyKind::Empty
        }
        fn protocol(&self) -> Protocol {
            Protocol::Http11
        }
    }

    /// A pick for a request from user `user`.
    pub fn pick_for(b: &mut dyn Balancer, eps: &[Rc<Endpoint>], user: &str) -> usize {
        let mut rng = fastrand::Rng::with_seed(1);
        let req = WithUser(user.to_string());
        let mut ctx = PickCtx {
            request: Some(&req),
            client: IpAddr::from([127, 0, 0, 1]),
            rng: &mut rng,
            avoid: None,
        };
        b.pick(eps, &mut ctx).expect("an endpoint")
    }

    pub fn pick_with(
        b: &mut dyn Balancer,
        eps: &[Rc<Endpoint>],
        rng: &mut fastrand::Rng,
        avoid: Option<&Endpoint>,
    ) -> usize {
        let mut ctx = PickCtx {
            request: Some(&GET),
            client: IpAddr::from([127, 0, 0, 1]),
            rng,
            avoid,
        };
        b.pick(eps, &mut ctx).expect("an endpoint")
    }
}
